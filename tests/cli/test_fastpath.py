"""The fast path of `llmflow run` and `llmflow resume`: its option tables match the typer commands, it takes only
command lines it fully understands, and it behaves exactly as the typer app (same outputs and exit codes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import Result, environment

from llmflow.cli import fastpath
from llmflow.cli.app import app

COMMANDS = typer.main.get_group(app).commands


def kind_of(param: Any) -> str:
    if param.is_flag:
        return fastpath.FLAG
    if param.multiple:
        return fastpath.VALUES
    return fastpath.PATH if type(param.type).__name__ == "TyperPath" else fastpath.VALUE


@pytest.mark.parametrize("name", ["run", "resume"])
def test_the_option_tables_are_the_typer_commands_parameters(name: str) -> None:
    options = [param for param in COMMANDS[name].params if param.param_type_name == "option"]
    table = {flag: (param.name, kind_of(param)) for param in options for flag in [*param.opts, *param.secondary_opts]}
    assert fastpath.OPTIONS[name] == table
    for param in options:
        assert param.envvar is None and not param.required and param.nargs == 1, param.name
        choices = getattr(param.type, "choices", None)
        if choices is None:
            assert param.name not in fastpath.CHOICES
        else:
            assert fastpath.CHOICES[param.name] == tuple(choices) and param.type.case_sensitive
        default = param.default.value if hasattr(param.default, "value") else param.default
        expected = False if param.is_flag else [] if param.multiple else None
        assert fastpath.DEFAULTS.get(param.name, expected) == (default if default is not None else expected)


@pytest.mark.parametrize("name", ["run", "resume"])
def test_the_argument_table_is_the_typer_commands_argument(name: str) -> None:
    (argument,) = [param for param in COMMANDS[name].params if param.param_type_name == "argument"]
    is_path = type(argument.type).__name__ == "TyperPath"
    assert fastpath.ARGUMENTS[name] == (argument.name, argument.required, is_path)
    assert argument.nargs == 1


@pytest.mark.parametrize("name", ["run", "resume"])
def test_paths_are_checked_as_the_fast_parser_checks_them(name: str) -> None:
    """A path parameter is a file that may be missing: the fast parser lets typer judge a folder or worse."""
    for param in COMMANDS[name].params:
        if type(param.type).__name__ == "TyperPath":
            checks = {key: getattr(param.type, key) for key in ("exists", "file_okay", "dir_okay", "writable")}
            assert checks == {"exists": False, "file_okay": True, "dir_okay": False, "writable": False}, param.name
            assert not param.type.resolve_path and not param.type.allow_dash and param.type.type is None


def test_the_tables_name_every_parameter_of_the_commands() -> None:
    assert [param.name for param in COMMANDS["run"].params] == [
        "file", "inputs", "inputs_file", "dry_run", "json_output", "events", "quiet", "state_dir", "durability",
        "webhook",
    ]  # fmt: skip
    assert {param.name for param in COMMANDS["resume"].params} == {
        param for param, _ in fastpath.OPTIONS["resume"].values()
    } | {"run_id"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "flow.yaml"], {"file": Path("flow.yaml"), "inputs": [], "quiet": False, "durability": "strict"}),
        (["run", "-q", "flow.yaml", "-i", "a=1", "--input=b=2"], {"quiet": True, "inputs": ["a=1", "b=2"]}),
        (["run", "flow.yaml", "--events", "jsonl", "--durability=none"], {"events": "jsonl", "durability": "none"}),
        (["run", "flow.yaml", "--state-dir", "s", "--state-dir", "t"], {"state_dir": "t"}),
        (["run", "flow.yaml", "--inputs-file", "in.json"], {"inputs_file": Path("in.json")}),
        (["resume", "--last", "--approve", "--comment", "ok"], {"run_id": None, "last": True, "comment": "ok"}),
        (["resume", "20250101-000000-abcd", "--from", "b"], {"run_id": "20250101-000000-abcd", "from_step": "b"}),
    ],
    ids=["plain", "inputs", "choices", "last-wins", "inputs-file", "resume-last", "resume-id"],
)
def test_command_lines_the_fast_parser_takes(args: list[str], expected: dict[str, Any]) -> None:
    parsed = fastpath.parse(args)
    assert parsed is not None and parsed[0] == args[0]
    assert {key: parsed[1][key] for key in expected} == expected


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["validate", "flow.yaml"],
        ["--version"],
        ["run"],
        ["run", "a.yaml", "b.yaml"],
        ["run", "flow.yaml", "--help"],
        ["run", "-h"],
        ["run", "flow.yaml", "--nope"],
        ["run", "flow.yaml", "--js"],
        ["run", "flow.yaml", "-qi", "a=1"],
        ["run", "flow.yaml", "-ia=1"],
        ["run", "flow.yaml", "-i"],
        ["run", "flow.yaml", "-i", "-q"],
        ["run", "flow.yaml", "--input="],
        ["run", "flow.yaml", "--quiet=yes"],
        ["run", "flow.yaml", "--events", "json"],
        ["run", "flow.yaml", "--durability", "STRICT"],
        ["run", "--", "flow.yaml"],
        ["run", "-"],
        ["run", "."],
        ["run", "flow.yaml", "--inputs-file", "."],
        ["resume", "a", "b"],
        ["resume", "--last", "--dry-run"],
    ],
    ids=lambda args: " ".join(args) or "nothing",
)
def test_command_lines_left_to_typer(args: list[str]) -> None:
    assert fastpath.parse(args) is None


def test_shell_completion_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LLMFLOW_COMPLETE", "bash_complete")
    assert fastpath.parse(["run", "flow.yaml"]) is None


def test_wildcards_typer_would_expand_are_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastpath.parse(["run", "f*.yaml"]) is not None  # a POSIX shell expanded what it could
    monkeypatch.setattr(fastpath, "EXPANDS_WILDCARDS", True)  # as on Windows
    assert fastpath.parse(["run", "f*.yaml"]) is None
    assert fastpath.parse(["run", "flow.yaml"]) is not None


# -- the same behaviour both ways ------------------------------------------------------------------------
FLOW = """\
version: 1
name: both
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    run: echo "hello {{ inputs.who }}"
  - id: check
    if: inputs.who == "nobody"
    fail: {message: "nobody is there"}
outputs:
  text: "{{ steps.greet.output }}"
"""

#: The typer app alone, under the program name click gives ``python -m llmflow``.
TYPER_ONLY = "import sys; from llmflow.cli.app import run_app; sys.argv[0] = 'python -m llmflow'; run_app()"


def both_ways(tmp_path: Path, *args: str) -> tuple[Result, Result]:
    """The command line run by ``python -m llmflow`` (fast path) and by the typer app alone."""
    done = []
    for command in ([sys.executable, "-m", "llmflow"], [sys.executable, "-c", TYPER_ONLY]):
        ran = subprocess.run(
            [*command, *args], cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60
        )
        done.append(Result(ran.returncode, normalized(ran.stdout), normalized(ran.stderr)))
    return done[0], done[1]


def normalized(text: str) -> str:
    text = re.sub(r"\b\d{8}-\d{6}-[a-z0-9]{4}\b", "RUN", text)
    text = re.sub(r"\d+\.\d+s\b", "Ts", text)
    return re.sub(r'"(ts|time|started|ended|duration|duration_ms|seq)": ?[^,}]+', r'"\1": X', text)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "flow.yaml"],
        ["run", "flow.yaml", "-q"],
        ["run", "flow.yaml", "--json", "-i", "who=you"],
        ["run", "flow.yaml", "--events", "jsonl", "-q"],
        ["run", "flow.yaml", "--dry-run"],
        ["run", "flow.yaml", "-i", "who=nobody"],
        ["run", "flow.yaml", "-i", "nobody"],
        ["run", "flow.yaml", "-i", "whom=x"],
        ["run", "flow.yaml", "--json", "--events", "jsonl"],
        ["run", "missing.yaml"],
        ["run", "broken.yaml"],
        ["run", "flow.yaml", "--inputs-file", "missing.json"],
        ["run", "flow.yaml", "--webhook", "ftp://example.org/x"],
        ["resume"],
        ["resume", "--approve", "--reject", "--last"],
        ["resume", "nosuchrun"],
    ],
    ids=lambda args: " ".join(args[1:]) or args[0],
)
def test_the_fast_path_behaves_as_the_typer_app(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("version: 1\nname: broken\nsteps:\n  - run: [\n", encoding="utf-8")
    assert fastpath.parse(args) is not None
    fast, typed = both_ways(tmp_path, *args)
    assert fast == typed


def test_a_resume_behaves_as_with_the_typer_app(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    failed, _ = both_ways(tmp_path, "run", "flow.yaml", "-i", "who=nobody", "-q")
    assert failed.code == 1
    fast, typed = both_ways(tmp_path, "resume", "--last", "-i", "who=somebody", "--json")
    assert fast.code == 0 and typed.code == 2  # the first resume finished the run, so the second is refused
    assert "already succeeded" in typed.stderr


@pytest.mark.parametrize(
    "args",
    [["run", "flow.yaml", "--nope"], ["run", "flow.yaml", "--durability", "fast"], ["run", "."], ["run", "--help"]],
    ids=["unknown-option", "bad-choice", "folder", "help"],
)
def test_what_the_fast_path_leaves_gets_typers_answer(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    fast, typed = both_ways(tmp_path, *args)
    assert fast == typed
    assert fast.code == (0 if "--help" in args else 2)
    if "--help" in args:
        assert "Usage: python -m llmflow run" in fast.stdout
    else:  # one line, naming the command and where its help is
        assert fast.stdout == ""
        assert fast.stderr.startswith("error: python -m llmflow run: ")
        assert fast.stderr.endswith(" (see 'python -m llmflow run --help')\n")
        assert fast.stderr.count("\n") == 1
