"""The shell rule, proved by running the scripts: a template value never becomes shell code."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmflow.errors import ExpressionError
from llmflow.expressions.shell import ShellCommand, ShellTemplate, compile_shell

HOSTILE = [
    "$(touch pwned)",
    "`touch pwned`",
    '"; touch pwned; echo "',
    "'; touch pwned; echo '",
    "\\",
    "$HOME",
    "*",
    "a b  c",
    "\ntouch pwned",
    "x; touch pwned",
    "--help",
    "${IFS}",
    "a[$(touch pwned)]",
    "%s%n",
    "héllo ✓ — 日本",
    "",
    "${LLMFLOW_V1}",
    "\\x00000000000001:0\\x00",
    "EOF\ntouch pwned\nEOF",
    "' \" ` $ \\ ! # & ; | < > ( ) { } [ ] ~",
]


def same(value: str) -> str:
    return value


def split(value: str) -> str:
    """What an unquoted substitution leaves of the value: words joined by single spaces."""
    return " ".join(value.split())


# (id, author's script, what the output must be given the value, which shells)
CONTEXTS: list[tuple[str, str, Callable[[str], str], tuple[str, ...]]] = [
    ("unquoted", "echo {{ v }}", lambda v: v + "\n", ("sh", "bash")),
    ("double-quoted", 'echo "{{ v }}"', lambda v: v + "\n", ("sh", "bash")),
    ("inside-double-quotes", 'echo "pre {{ v }} post"', lambda v: f"pre {v} post\n", ("sh", "bash")),
    ("inside-single-quotes", "echo 'pre {{ v }} post'", lambda v: f"pre {v} post\n", ("sh", "bash")),
    ("command-substitution", "echo $(echo {{ v }})", lambda v: split(v) + "\n", ("sh", "bash")),
    ("quoted-substitution", 'echo "$(echo "{{ v }}")"', lambda v: v.rstrip("\n") + "\n", ("sh", "bash")),
    ("backquotes", "echo `echo {{ v }}`", lambda v: split(v) + "\n", ("sh", "bash")),
    ("printf", "printf '%s' {{ v }}", same, ("sh", "bash")),
    ("glued-to-text", "printf '%s' x{{ v }}y", lambda v: f"x{v}y", ("sh", "bash")),
    ("heredoc", "cat <<EOF\n{{ v }}\nEOF", lambda v: v + "\n", ("sh", "bash")),
    ("heredoc-tabs", "cat <<-EOF\n\t{{ v }}\n\tEOF", lambda v: v + "\n", ("sh", "bash")),
    ("assignment", 'x={{ v }}; printf "%s" "$x"', same, ("sh", "bash")),
    ("bash-test", '[[ "{{ v }}" == x ]] && echo yes || echo no', lambda v: "no\n", ("bash",)),
    ("bash-test-unquoted", "[[ {{ v }} == {{ v }} ]] && echo yes || echo no", lambda v: "yes\n", ("bash",)),
    ("bash-string-compare", '[[ "{{ v }}" = "{{ v }}" ]] && echo same', lambda v: "same\n", ("bash",)),
    ("subshell-and-pipe", "(printf '%s' {{ v }}) | cat", same, ("sh", "bash")),
    ("comment-after", "printf '%s' {{ v }} # {{ v }}", same, ("sh", "bash")),
    ("bash-c-argument", 'bash -c \'printf "%s" "$1"\' _ {{ v }}', same, ("sh", "bash")),
    ("prefix-assignment", 'FOO={{ v }} sh -c \'printf "%s" "$FOO"\'', same, ("sh", "bash")),
    ("assignment-then-command", 'FOO="{{ v }}"; printf \'%s\' "$FOO"', same, ("sh", "bash")),
    (
        "case-subject-and-body",
        "case {{ v }} in a) echo a;; *) printf '%s' {{ v }};; esac",
        same,
        ("sh", "bash"),
    ),
    (
        "case-in-substitution",
        "printf '%s' \"$(case x in (x) printf '%s|' {{ v }};; esac)\"",
        lambda v: v + "|",
        ("sh", "bash"),
    ),
    ("export", 'export FOO={{ v }} BAR="{{ v }}"; printf "%s" "$FOO$BAR"', lambda v: v + v, ("sh", "bash")),
    ("local", 'f() { local x={{ v }}; printf "%s" "$x"; }; f', same, ("sh", "bash")),
    ("redirections", "printf '%s' {{ v }} 2>&1 >&1 | cat", same, ("sh", "bash")),
    (
        "herestring-read",
        "read -r line <<< {{ v }}; printf '%s' \"$line\"",
        lambda v: v.split("\n")[0].strip(),
        ("bash",),
    ),
    (
        "argument-after-a-shell-script",
        "sh -e /dev/stdin {{ v }} <<'EOF'\nprintf '%s' \"$1\"\nEOF",
        same,
        ("sh", "bash"),
    ),
    ("argument-after-a-wrapper-operand", "taskset 1 printf '%s' {{ v }}", same, ("sh", "bash")),
    ("find-exec-argument", "find . -maxdepth 0 -exec printf '%s' {{ v }} \\;", same, ("sh", "bash")),
    (
        "grep-v-is-not-test-v",
        "printf '%s\\n' {{ v }} | grep -c -v -F -x -e {{ v }} || true",
        lambda v: "0\n",
        ("sh", "bash"),
    ),
]


def run(command: ShellCommand, shell: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, "-c", command.script],
        env={**os.environ, **command.env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def fresh_directory(base: Path, name: str) -> Path:
    folder = base / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    return folder


PARAMETERS = [(case[1], case[2], shell) for case in CONTEXTS for shell in case[3]]
IDS = [f"{case[0]}-{shell}" for case in CONTEXTS for shell in case[3]]


@pytest.mark.parametrize(("source", "expected", "shell"), PARAMETERS, ids=IDS)
def test_hostile_values_stay_data(source: str, expected: Callable[[str], str], shell: str, tmp_path: Path) -> None:
    template = compile_shell(source)
    for number, value in enumerate(HOSTILE):
        folder = fresh_directory(tmp_path, f"run{number}")
        result = run(template.render({"v": value}), shell, folder)
        assert not (folder / "pwned").exists(), f"{value!r} ran as code in {source!r}"
        assert result.returncode == 0, (value, result.stderr)
        assert result.stdout == expected(value), f"{value!r} in {source!r}"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_loop_over_hostile_values(shell: str, tmp_path: Path) -> None:
    template = compile_shell("{% for v in values %}printf '%s|' {{ v }}\n{% endfor %}")
    result = run(template.render({"values": HOSTILE}), shell, tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert result.stdout == "".join(value + "|" for value in HOSTILE)


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_set_block_carries_the_real_value(shell: str, tmp_path: Path) -> None:
    template = compile_shell("{% set x %}pre {{ v }}{% endset %}printf '%s' {{ x }} \"{{ x }}\"")
    value = "$(touch pwned) 'q' \"d\""
    result = run(template.render({"v": value}), shell, tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert result.stdout == f"pre {value}pre {value}"


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_text_built_around_a_value_is_data_too(shell: str, tmp_path: Path) -> None:
    source = "{% macro q(a) %}\"{{ a }}\"{% endmacro %}printf '%s' {{ q(v) }} {{ '$(touch pwned)' ~ v }}"
    result = run(compile_shell(source).render({"v": "x"}), shell, tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert result.stdout == '"x"$(touch pwned)x'


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), (True, "true"), (3, "3"), ([1, "é"], '[1, "é"]'), ({"a": None}, '{"a": null}')],
    ids=["none", "bool", "int", "list", "mapping"],
)
def test_non_string_values_are_stringified(value: Any, expected: str, tmp_path: Path) -> None:
    result = run(compile_shell("printf '%s' {{ v }}").render({"v": value}), "sh", tmp_path)
    assert result.stdout == expected


def test_script_and_environment_are_deterministic() -> None:
    template = compile_shell('cp {{ a }} "{{ b }}/{{ a }}"')
    first = template.render({"a": "x y", "b": "dir"})
    second = template.render({"a": "x y", "b": "dir"})
    assert first == second
    assert first.script == 'cp "${LLMFLOW_V1}" "${LLMFLOW_V2}/${LLMFLOW_V1}"'
    assert dict(first.env) == {"LLMFLOW_V1": "x y", "LLMFLOW_V2": "dir"}


def test_static_command_passes_through() -> None:
    command = compile_shell("ls -la | grep '{x}'").render({})
    assert command == ShellCommand("ls -la | grep '{x}'")
    assert dict(command.env) == {}


def test_shell_template_references() -> None:
    template = compile_shell("gh issue list --repo {{ inputs.repo }} {% if x %}{{ steps.a.output }}{% endif %}")
    assert isinstance(template, ShellTemplate)
    assert {str(reference) for reference in template.references} == {"inputs.repo", "x", "steps.a.output"}


# Contexts with no safe placement: refused when compiled (no blocks) ...
REFUSED_AT_COMPILE = [
    ("arithmetic-expansion", "echo $(( {{ v }} + 1 ))", "shell arithmetic"),
    ("arithmetic-command", "(( x = {{ v }} ))", "shell arithmetic"),
    ("arithmetic-for", "for (( i = 0; i < {{ v }}; i++ )); do :; done", "shell arithmetic"),
    ("old-arithmetic", "echo $[ {{ v }} ]", "shell arithmetic"),
    ("arithmetic-in-quotes", 'echo "$(( {{ v }} ))"', "shell arithmetic"),
    ("substitution-in-arithmetic", "echo $(( $(echo {{ v }}) ))", "shell arithmetic"),
    ("test-eq", "[[ {{ v }} -eq 1 ]]", "-eq/-ne/-lt/-le/-gt/-ge"),
    ("test-lt-quoted", '[[ 1 -lt "{{ v }}" ]] && echo', "-eq/-ne/-lt/-le/-gt/-ge"),
    ("quoted-heredoc", "cat <<'EOF'\n{{ v }}\nEOF", "quoted delimiter"),
    ("double-quoted-heredoc", 'cat <<"EOF"\n{{ v }}\nEOF', "quoted delimiter"),
    ("escaped-heredoc", "cat <<\\EOF\n{{ v }}\nEOF", "quoted delimiter"),
    ("heredoc-delimiter", "cat <<{{ v }}\nx\n", "here-document delimiter"),
    ("backslash", "echo \\{{ v }}", "right after a backslash"),
    ("backslash-in-quotes", 'echo "\\{{ v }}"', "right after a backslash"),
    ("after-dollar", "echo ${{ v }}", "right after '$'"),
    ("parameter-expansion", "echo ${x:-{{ v }}}", "inside ${...}"),
    ("substring-offset", "echo ${x:{{ v }}}", "inside ${...}"),
    ("array-subscript", "a[{{ v }}]=1", "array subscript"),
    ("array-literal-subscript", "a=([{{ v }}]=1)", "array subscript"),
    ("ansi-c-quotes", "echo $'{{ v }}'", "inside $'...'"),
    ("backquotes-in-double-quotes", 'echo "`echo {{ v }}`"', "within double quotes"),
    ("eval", 'eval "echo {{ v }}"', "'eval'"),
    ("eval-single-quoted", "eval 'echo {{ v }}'", "'eval'"),
    ("builtin-eval", "builtin eval {{ v }}", "'eval'"),
    ("let", "let x={{ v }}", "'let'"),
    ("trap", "trap 'echo {{ v }}' EXIT", "'trap'"),
    ("source", "source {{ v }}", "'source'"),
    ("sh-c", 'sh -c "echo {{ v }}"', "as the script of 'sh -c'"),
    ("sudo-bash-c", "sudo -n bash -ec '{{ v }}'", "as the script of 'bash -ec'"),
    ("xargs-sh-c", "xargs sh -c {{ v }}", "as the script of 'sh -c'"),
    ("heredoc-into-bash", "bash <<EOF\n{{ v }}\nEOF", "read by 'bash'"),
    ("brackets-as-an-argument", 'declare -x [[ "{{ v }}" ]]', "as a variable name in 'declare'"),
    ("alias", "alias x={{ v }}", "'alias'"),
    ("ps4", 'PS4="{{ v }}"; set -x', "assignment to PS4"),
    ("export-path", "export PATH={{ v }}:$PATH", "assignment to PATH"),
    ("ld-preload", "LD_PRELOAD={{ v }} ls", "assignment to LD_PRELOAD"),
    ("function-body-command", "function f { {{ v }}; }", "as a command name"),
    ("command-name", "{{ v }} --version", "as a command name"),
    ("quoted-command-name", '"{{ v }}" arg', "as a command name"),
    ("command-name-after-assignment", "X=1 {{ v }}", "as a command name"),
    ("command-name-in-substitution", "echo $({{ v }})", "as a command name"),
    ("command-name-after-pipe", "echo x | {{ v }}", "as a command name"),
    ("command-name-after-if", "if {{ v }}; then :; fi", "as a command name"),
    ("wrapped-command-name", "sudo -u bob {{ v }}", "as a command name"),
    ("xargs-command-name", "xargs -I{} -n 1 {{ v }}", "as a command name"),
    ("setsid-command-name", "setsid {{ v }}", "as a command name"),
    ("chroot-command-name", "chroot /srv {{ v }}", "as a command name"),
    ("flock-command-name", "flock /tmp/lock {{ v }}", "as a command name"),
    ("taskset-command-name", "taskset 3 {{ v }}", "as a command name"),
    ("ionice-command-name", "ionice -c 3 {{ v }}", "as a command name"),
    ("unshare-command-name", "unshare {{ v }}", "as a command name"),
    ("runuser-command-name", "runuser -u bob -- {{ v }}", "as a command name"),
    ("find-exec", "find . -exec {{ v }} {} \\;", "as the command of 'find -exec'"),
    ("su-c", "su bob -c {{ v }}", "as the command of 'su -c'"),
    ("su-command", "su bob --command={{ v }}", "as the command of 'su --command'"),
    ("sudo-su-c", "sudo su -c '{{ v }}'", "as the command of 'su -c'"),
    ("script-c", "script -qc {{ v }} /dev/null", "as the command of 'script -qc'"),
    ("flock-c", "flock /tmp/lock -c {{ v }}", "as the command of 'flock -c'"),
    ("runuser-c", "runuser -l bob -c {{ v }}", "as the command of 'runuser -c'"),
    ("watch", "watch -n 1 {{ v }}", "'watch'"),
    ("fish-c", "fish -c {{ v }}", "as the script of 'fish -c'"),
    ("pwsh-command", "pwsh -Command {{ v }}", "as the script of 'pwsh -Command'"),
    ("shell-script-file", "bash {{ v }}", "as the script (or an option) of 'bash'"),
    ("shell-script-file-after-options", "sh -e -o pipefail ./{{ v }}.sh", "as the script (or an option) of 'sh'"),
    ("shell-rcfile", "bash --rcfile {{ v }} -i", "as the script (or an option) of 'bash'"),
    ("git-ssh-command", "GIT_SSH_COMMAND={{ v }} git fetch", "assignment to GIT_SSH_COMMAND"),
    ("exported-pager", "export PAGER={{ v }}; man ls", "assignment to PAGER"),
    ("script-path", "./scripts/{{ v }}.sh", "as a command name"),
    ("expanded-command-name", "$CMD {{ v }}", "not plain text"),
    ("escaped-command-name", "\\declare x={{ v }}", "not plain text"),
    ("parameter-command-name", "${x:-declare ,} {{ v }}", "not plain text"),
    ("glued-expansion-command-name", "$*let {{ v }}", "not plain text"),
    ("herestring-into-bash", "bash <<< {{ v }}", "read by 'bash'"),
    ("printf-v", "printf -v {{ v }} '%s' x", "after 'printf -v'"),
    ("test-v", "test -v {{ v }}", "after 'test -v'"),
    ("bracket-test-v", '[[ -v "{{ v }}" ]]', "after -v in [[ ... ]]"),
    ("read-name", "read -r {{ v }}", "'read', which are variable names"),
    ("unset-name", "unset {{ v }}", "'unset'"),
    ("declare-name", "declare {{ v }}=1", "as a variable name in 'declare'"),
    ("export-quoted-name", 'export "{{ v }}"', "as a variable name in 'export'"),
    ("declare-integer", "declare -i x={{ v }}", "'declare -i'"),
    ("local-nameref", "f() { local -n r={{ v }}; }", "'local -n'"),
]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [case[1:] for case in REFUSED_AT_COMPILE],
    ids=[case[0] for case in REFUSED_AT_COMPILE],
)
def test_unsafe_placements_are_refused_at_compile_time(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_shell(source)
    assert fragment in caught.value.message
    assert caught.value.message.startswith("{{ v }} cannot be used ")
    assert caught.value.offset == source.index("{{ v }}")
    assert "\n" not in caught.value.message


# ... or when rendered, when blocks decide the final script.
REFUSED_AT_RENDER = [
    ("arithmetic-in-if", "{% if v %}echo $(( {{ v }} )){% endif %}", "shell arithmetic"),
    ("quoted-heredoc-in-loop", "cat <<'EOF'\n{% for x in [v] %}{{ x }}\n{% endfor %}EOF", "quoted delimiter"),
    ("eval-in-block", "{% if true %}eval {{ v }}{% endif %}", "'eval'"),
    ("mangled-by-filter-block", "{% filter replace(':', '-') %}echo {{ v }}{% endfilter %}", "was altered"),
    ("reversed-by-filter-block", "{% filter reverse %}echo {{ v }}{% endfilter %}", "was altered"),
    ("nul-in-value", "echo {% if true %}{{ v ~ '\\x00' }}{% endif %}", "NUL character"),
]


@pytest.mark.parametrize(
    ("source", "fragment"),
    [case[1:] for case in REFUSED_AT_RENDER],
    ids=[case[0] for case in REFUSED_AT_RENDER],
)
def test_unsafe_placements_are_refused_at_render_time(source: str, fragment: str) -> None:
    template = compile_shell(source)
    with pytest.raises(ExpressionError) as caught:
        template.render({"v": "1"})
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message


def test_refusal_names_the_rendered_line() -> None:
    template = compile_shell("{% if true %}echo ok\necho $(( {{ v }} )){% endif %}")
    with pytest.raises(ExpressionError, match=r"\(line 2 of the rendered command\)"):
        template.render({"v": "1"})


@pytest.mark.parametrize(
    "source",
    ["{% filter lower %}ECHO {{ v }}{% endfilter %}", "{% filter trim %}  echo {{ v }}  {% endfilter %}"],
    ids=["lower", "trim"],
)
def test_filter_blocks_that_keep_placeholders_work(source: str, tmp_path: Path) -> None:
    command = compile_shell(source).render({"v": "$(touch pwned)"})
    assert command.env["LLMFLOW_V1"] == "$(touch pwned)"
    result = run(command, "sh", tmp_path)
    assert not (tmp_path / "pwned").exists()
    assert result.stdout == "$(touch pwned)\n"


def test_filter_block_arguments_must_be_constants() -> None:
    with pytest.raises(ExpressionError, match="must be constants"):
        compile_shell("{% filter replace('a', v) %}echo a{% endfilter %}")


def test_nul_in_a_value_is_refused() -> None:
    with pytest.raises(ExpressionError, match="NUL character"):
        compile_shell("echo {{ v }}").render({"v": "a\x00b"})


def test_nul_in_the_source_is_refused() -> None:
    with pytest.raises(ExpressionError, match="NUL character"):
        compile_shell("echo \x00 {{ v }}")


def test_forged_placeholder_in_a_value_stays_data(tmp_path: Path) -> None:
    # A value cannot hold NUL, so it cannot forge a placeholder; the look-alike text stays text.
    command = compile_shell("printf '%s' {{ a }} {{ b }}").render({"a": "\\x000:0\\x00", "b": "0:0"})
    assert run(command, "sh", tmp_path).stdout == "\\x000:0\\x000:0"


def test_values_too_large_for_the_environment_are_refused() -> None:
    with pytest.raises(ExpressionError, match="too large for a command's environment"):
        compile_shell("printf '%s' {{ v }}").render({"v": "x" * 200_000})


def test_undefined_values_are_errors() -> None:
    with pytest.raises(ExpressionError, match="'missing' is undefined"):
        compile_shell("echo {{ missing }}").render({})


def test_template_syntax_errors_are_compile_errors() -> None:
    with pytest.raises(ExpressionError, match="unexpected '}'"):
        compile_shell("echo {{ v }")


# Random scripts built from shell fragments, with a value dropped in somewhere: whatever the lexer
# decides (place or refuse), running the script must never run the value.
FRAGMENTS = [
    *("echo ", " ", '"', "'", "$(", ")", "`", "\\", "${x:-", "}", "$((1+", "))", "((", "[[ ", " ]]"),
    *(" -eq ", " == ", "; ", "\n", "cat <<EOF\n", "\nEOF\n", "cat <<'E'\n", "\nE\n", "#", "x=", "a["),
    *("]", "$", "{", "(", "|", "&&", " -v ", "printf %s ", "case x in ", "*) ", ";; esac", "eval "),
    *("export ", "$'", "<<<", ">/dev/null ", "2>&1 ", "declare ", "read ", "-c ", "bash ", "let "),
    *("if true; then ", "; fi", "$[", "~", "=", "${#", "[ ", " ]", "test ", "{a,", "b}", "*", "{{ v }}"),
    *("$x ", "sudo ", "env ", "${x:-eval ,} ", "$*", "unset ", "printf -v ", "source ", "f() { ", "} "),
]


@pytest.mark.parametrize("seed", range(4))
def test_random_scripts_never_run_values(seed: int, tmp_path: Path) -> None:
    import random

    rng = random.Random(seed)
    for _ in range(15):
        source = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(2, 9))) + " {{ v }}"
        try:
            template = compile_shell(source)
        except ExpressionError:
            continue
        for value in ("$(touch pwned)", "a[$(touch pwned)]", "x\ntouch pwned\n`touch pwned`"):
            try:
                command = template.render({"v": value})
            except ExpressionError:
                continue
            subprocess.run(
                ["bash", "-c", command.script],
                env={**os.environ, **command.env},
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
            assert not (tmp_path / "pwned").exists(), (source, value, command.script)
