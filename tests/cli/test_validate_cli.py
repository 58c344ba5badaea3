"""``llmflow validate``, ``schema``, ``graph``, ``--version`` and ``--help`` through the real CLI: whole outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmflow
from llmflow.resources import schema_path

BAD = """\
version: 1
name: bad
steps:
  - id: fetch
    run: echo hi
    parse: jsn
"""
BAD_MESSAGE = "'parse' must be one of text, json, lines, yaml, not 'jsn' (did you mean 'json'?)"

GOOD = """\
version: 1
name: good
secrets: [GITHUB_TOKEN]
steps:
  - id: issues
    http:
      url: https://api.github.com/repos/o/r/issues
      headers: {Authorization: "Bearer {{ secrets.GITHUB_TOKEN }}"}
  - id: summary
    llm: "Summarise {{ steps.issues.output }}"
"""

WARNS = """\
version: 1
name: warns
inputs:
  topic: string
  leftover: {type: integer, default: 1}
steps:
  - run: echo {{ inputs.topic }}
"""


def llmflow_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m llmflow`` in ``cwd`` offline: no keys, no secrets, no colour, and no way out."""
    env = {key: value for key, value in os.environ.items() if not key.endswith(("_API_KEY", "_TOKEN"))}
    env.pop("FORCE_COLOR", None)
    env.update(NO_COLOR="1", COLUMNS="200", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    command = [sys.executable, "-m", "llmflow", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "bad.yaml").write_text(BAD, encoding="utf-8")
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "warns.yaml").write_text(WARNS, encoding="utf-8")
    return tmp_path


def test_text_format_shows_the_line_and_a_caret(files: Path) -> None:
    done = llmflow_cli(files, "validate", "bad.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        f"bad.yaml:6:12: error[bad-value]: {BAD_MESSAGE}\n    6 |     parse: jsn\n      |            ^\n"
    )
    assert done.stderr == "1 of 1 file invalid: 1 error\n"


def test_text_format_shows_hints(files: Path) -> None:
    (files / "typo.yaml").write_text("version: 1\nname: t\nstepz:\n  - run: echo\n", encoding="utf-8")
    done = llmflow_cli(files, "validate", "typo.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        "typo.yaml:3:1: error[unknown-key]: unknown key 'stepz' at the top level\n"
        "    3 | stepz:\n"
        "      | ^\n"
        "      = hint: did you mean 'steps'?\n"
    )


def test_the_hint_lines_up_with_the_gutter_of_a_six_digit_line(files: Path) -> None:
    filler = "#\n" * 100_000
    (files / "long.yaml").write_text(f"version: 1\nname: t\n{filler}stepz:\n  - run: echo\n", encoding="utf-8")
    done = llmflow_cli(files, "validate", "long.yaml")
    assert done.stdout == (
        "long.yaml:100003:1: error[unknown-key]: unknown key 'stepz' at the top level\n"
        "100003 | stepz:\n"
        "       | ^\n"
        "       = hint: did you mean 'steps'?\n"
    )


def test_an_empty_file_says_what_a_workflow_needs(files: Path) -> None:
    (files / "empty.yaml").write_text("", encoding="utf-8")
    done = llmflow_cli(files, "validate", "empty.yaml")
    assert (done.returncode, done.stdout) == (
        1,
        "empty.yaml:1:1: error[empty-file]: the file is empty\n"
        "      = hint: a workflow needs at least version, name and steps; "
        "`llmflow new NAME` writes one to start from\n",
    )


class _Terminal:
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, True), ({"TERM": "dumb"}, False)],
    ids=["terminal", "no-color", "empty-no-color", "dumb-terminal"],
)
def test_colour_only_on_a_real_terminal(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: bool
) -> None:
    from llmflow.cli.terminal import color_for

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert color_for(_Terminal()) is expected  # type: ignore[arg-type]


def test_text_format_in_colour() -> None:
    from llmflow.cli.formats import as_text
    from llmflow.diagnostics import Diagnostic

    diagnostic = Diagnostic("bad-value", "nope", "f.yaml", 1, 3)
    coloured = as_text([diagnostic], lambda file, line: "a: b", color=True)
    assert coloured == (
        "\033[1mf.yaml:1:3:\033[0m \033[31merror[bad-value]\033[0m: nope\n"
        "\033[2m    1 | \033[0ma: b\n"
        "\033[2m      | \033[0m  \033[31m^\033[0m"
    )


def test_valid_file_prints_nothing_on_stdout_and_works_offline_without_secrets(files: Path) -> None:
    done = llmflow_cli(files, "validate", "good.yaml")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "1 file valid\n")


def test_json_format(files: Path) -> None:
    done = llmflow_cli(files, "validate", "--format", "json", "bad.yaml", "good.yaml")
    assert done.returncode == 1
    assert json.loads(done.stdout) == [
        {
            "file": "bad.yaml",
            "line": 6,
            "column": 12,
            "code": "bad-value",
            "severity": "error",
            "message": BAD_MESSAGE,
            "hint": None,
            "path": "steps[0].parse",
        }
    ]
    assert done.stderr == ""


def test_json_format_of_valid_files_is_an_empty_list(files: Path) -> None:
    done = llmflow_cli(files, "validate", "-f", "json", "good.yaml")
    assert (done.returncode, done.stdout) == (0, "[]\n")


def test_github_format(files: Path) -> None:
    (files / "typo.yaml").write_text("version: 1\nname: t\nstepz:\n  - run: echo\n", encoding="utf-8")
    done = llmflow_cli(files, "validate", "--format", "github", "bad.yaml", "typo.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        f"::error file=bad.yaml,line=6,col=12,title=bad-value::{BAD_MESSAGE}\n"
        "::error file=typo.yaml,line=3,col=1,title=unknown-key::unknown key 'stepz' at the top level "
        "(did you mean 'steps'?)\n"
    )


def test_github_format_escapes_properties_and_data(tmp_path: Path) -> None:
    from llmflow.cli.formats import as_github
    from llmflow.diagnostics import Diagnostic

    diagnostic = Diagnostic("bad-value", "50% of\nthis", "a,b:c.yaml", 2, 3, severity="warning")
    assert as_github([diagnostic]) == "::warning file=a%2Cb%3Ac.yaml,line=2,col=3,title=bad-value::50%25 of%0Athis"
    hostile = Diagnostic("bad-value", "x\x1b]0;owned\x07 \x9b2J", "f\x1b[2J.yaml", 1, 1)
    line = as_github([hostile])
    assert line == "::error file=f\\x1b[2J.yaml,line=1,col=1,title=bad-value::x\\x1b]0;owned\\x07 \\x9b2J"


def test_sarif_format(files: Path) -> None:
    done = llmflow_cli(files, "validate", "--format", "sarif", "bad.yaml", "warns.yaml", "good.yaml")
    assert done.returncode == 1
    log = json.loads(done.stdout)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("llmflow", llmflow.__version__)
    assert [rule["id"] for rule in driver["rules"]] == ["bad-value", "unused-input"]
    assert run["results"] == [
        {
            "ruleId": "bad-value",
            "ruleIndex": 0,
            "level": "error",
            "message": {"text": BAD_MESSAGE},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "bad.yaml"},
                        "region": {"startLine": 6, "startColumn": 12},
                    }
                }
            ],
        },
        {
            "ruleId": "unused-input",
            "ruleIndex": 1,
            "level": "warning",
            "message": {"text": "input 'leftover' is declared but never used"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "warns.yaml"},
                        "region": {"startLine": 5, "startColumn": 3},
                    }
                }
            ],
        },
    ]


def test_sarif_uris_are_uris() -> None:
    from llmflow.cli.formats import as_sarif
    from llmflow.diagnostics import Diagnostic

    log = json.loads(as_sarif([Diagnostic("x", "m", "my flows/a.yaml"), Diagnostic("x", "m", "/abs/b c.yaml")]))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]]
    assert uris == ["my%20flows/a.yaml", "file:///abs/b%20c.yaml"]


def test_several_files_in_one_process(files: Path) -> None:
    done = llmflow_cli(files, "validate", "good.yaml", "bad.yaml", "warns.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        f"bad.yaml:6:12: error[bad-value]: {BAD_MESSAGE}\n"
        "    6 |     parse: jsn\n"
        "      |            ^\n"
        "warns.yaml:5:3: warning[unused-input]: input 'leftover' is declared but never used\n"
        "    5 |   leftover: {type: integer, default: 1}\n"
        "      |   ^\n"
    )
    assert done.stderr == "1 of 3 files invalid: 1 error, 1 warning\n"


def test_warnings_fail_only_with_strict(files: Path) -> None:
    relaxed = llmflow_cli(files, "validate", "warns.yaml", "good.yaml")
    assert relaxed.returncode == 0
    assert relaxed.stderr == "2 files valid: 1 warning\n"
    strict = llmflow_cli(files, "validate", "--strict", "warns.yaml", "good.yaml")
    assert strict.returncode == 1
    assert strict.stdout == relaxed.stdout
    assert strict.stderr == "1 of 2 files invalid: 0 errors, 1 warning\n"


def test_sub_workflow_problems_name_their_own_file(files: Path) -> None:
    (files / "lib").mkdir()
    (files / "lib" / "child.yaml").write_text(
        "version: 1\nname: child\nsteps:\n  - run: echo {{ steps.nope.output }}\n", encoding="utf-8"
    )
    (files / "parent.yaml").write_text("version: 1\nname: parent\nsteps:\n  - workflow: lib/child.yaml\n")
    done = llmflow_cli(files, "validate", "parent.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        "lib/child.yaml:4:18: error[unknown-step]: unknown step 'nope'\n"
        "    4 |   - run: echo {{ steps.nope.output }}\n"
        "      |                  ^\n"
        "parent.yaml:4:15: error[invalid-workflow]: sub-workflow 'lib/child.yaml' is not valid (1 problem)\n"
        "    4 |   - workflow: lib/child.yaml\n"
        "      |               ^\n"
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("validate", "--format", "xml", "good.yaml"), "'xml' is not one of"),
        (("validate",), "missing argument 'PATH...'"),
        (("validate", "--no-such-option", "good.yaml"), "no such option: --no-such-option"),
    ],
    ids=["bad-format", "no-file", "unknown-option"],
)
def test_usage_errors_exit_2(files: Path, args: tuple[str, ...], complaint: str) -> None:
    done = llmflow_cli(files, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert complaint in done.stderr
    assert done.stderr.startswith("error: python -m llmflow validate: ") and done.stderr.count("\n") == 1


def test_schema_prints_the_schema_file(tmp_path: Path) -> None:
    done = llmflow_cli(tmp_path, "schema")
    assert done.returncode == 0
    assert done.stdout == schema_path().read_text(encoding="utf-8")
    assert json.loads(done.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_version(tmp_path: Path) -> None:
    done = llmflow_cli(tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, f"llmflow {llmflow.__version__}\n")


SMALL = """\
version: 1
name: small
steps:
  - id: fetch
    run: echo '[1, 2]'
    parse: json
  - id: label
    map:
      items: "{{ steps.fetch.output }}"
      as: issue
      steps:
        - id: classify
          run: echo {{ issue }}
  - id: reviews
    parallel:
      branches:
        security:
          - {id: sec, run: echo sec}
        style:
          - {id: sty, run: echo style}
  - id: report
    write: {path: out.md, content: "{{ steps.label.output }} {{ steps.reviews.output }}"}
"""

DRAWINGS = {
    "text": """\
small (small.yaml)
├── fetch  [run]
├── label  [map as issue]
│   └── classify  [run]
├── reviews  [parallel]
│   ├── security:
│   │   └── sec  [run]
│   └── style:
│       └── sty  [run]
└── report  [write]
""",
    "mermaid": """\
flowchart TD
  n_fetch["fetch<br/><i>run</i>"]
  subgraph n_label["label: map as issue"]
    direction TB
    n_label_sclassify["classify<br/><i>run</i>"]
  end
  subgraph n_reviews["reviews: parallel"]
    direction TB
    subgraph n_reviews_bsecurity["security"]
      n_reviews_ssecurity_ssec["sec<br/><i>run</i>"]
    end
    subgraph n_reviews_bstyle["style"]
      n_reviews_sstyle_ssty["sty<br/><i>run</i>"]
    end
  end
  n_report["report<br/><i>write</i>"]
  n_fetch --> n_label
  n_label --> n_reviews
  n_reviews --> n_report
""",
    "dot": """\
digraph "small" {
  rankdir=TB;
  compound=true;
  node [shape=box, style=rounded, fontname="Helvetica"];
  n_fetch [label="fetch\\n(run)"];
  subgraph cluster_n_label {
    label="label: map as issue";
    n_label_sclassify [label="classify\\n(run)"];
  }
  subgraph cluster_n_reviews {
    label="reviews: parallel";
    subgraph cluster_n_reviews_bsecurity {
      label="security";
      n_reviews_ssecurity_ssec [label="sec\\n(run)"];
    }
    subgraph cluster_n_reviews_bstyle {
      label="style";
      n_reviews_sstyle_ssty [label="sty\\n(run)"];
    }
  }
  n_report [label="report\\n(write)"];
  n_fetch -> n_label_sclassify [lhead=cluster_n_label];
  n_label_sclassify -> n_reviews_ssecurity_ssec [ltail=cluster_n_label, lhead=cluster_n_reviews];
  n_reviews_ssecurity_ssec -> n_report [ltail=cluster_n_reviews];
}
""",
}


@pytest.mark.parametrize("style", DRAWINGS)
def test_graph_draws_patterns_as_subgraphs(tmp_path: Path, style: str) -> None:
    (tmp_path / "small.yaml").write_text(SMALL, encoding="utf-8")
    done = llmflow_cli(tmp_path, "graph", "small.yaml", "--format", style)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == DRAWINGS[style]


def test_mermaid_labels_keep_hashes_quotes_and_brackets_literal(tmp_path: Path) -> None:
    # Mermaid decodes '#word;' anywhere in a diagram as an entity code ('#42;' is '*').
    (tmp_path / "names.yaml").write_text(
        "version: 1\nname: names\nsteps:\n  - {id: a, name: 'issue #42; <b>\"#amp;\"</b>', run: echo a}\n",
        encoding="utf-8",
    )
    done = llmflow_cli(tmp_path, "graph", "names.yaml", "--format", "mermaid")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        'flowchart TD\n  n_a["issue #35;42; #lt;b#gt;#quot;#35;amp;#quot;#lt;/b#gt;<br/><i>run</i>"]\n'
    )


def test_graph_of_an_invalid_file_exits_2_with_the_diagnostics(files: Path) -> None:
    done = llmflow_cli(files, "graph", "bad.yaml")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"bad.yaml:6:12: error[bad-value]: {BAD_MESSAGE}\n")


def test_graph_identifiers_never_collide() -> None:
    from llmflow.diagrams import _ident, _section_ident

    paths = ["a-b", "a_b", "a/b", "a__b", "a_s", "a/s", "a_h", "a-h", "a.b"]
    idents = [_ident(path) for path in paths]
    assert len(set(idents)) == len(paths)
    assert _section_ident(_ident("a"), "b") not in [*idents, _ident("a_b"), _ident("a/b")]


def test_help_works_for_every_command() -> None:
    import typer.main
    from typer.testing import CliRunner

    from llmflow.cli.app import app

    root = typer.main.get_command(app)
    runner = CliRunner()
    commands: list[list[str]] = [[]]
    stack: list[tuple[list[str], object]] = [([], root)]
    while stack:
        prefix, group = stack.pop()
        for name, command in getattr(group, "commands", {}).items():
            commands.append([*prefix, name])
            stack.append(([*prefix, name], command))
    assert ["validate"] in commands and ["schema"] in commands and ["graph"] in commands
    for words in commands:
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (words, result.output)
        assert "Usage:" in result.output, words


def test_help_through_the_real_cli(tmp_path: Path) -> None:
    done = llmflow_cli(tmp_path, "validate", "--help")
    assert done.returncode == 0
    assert "--format" in done.stdout and "--strict" in done.stdout


def test_sarif_uri_of_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9 flow.yaml")  # Latin-1 bytes: what a command line brings as surrogate escapes
    (tmp_path / name).write_text(BAD, encoding="utf-8")
    done = llmflow_cli(tmp_path, "validate", "--format", "sarif", name)
    assert (done.returncode, done.stderr) == (1, "")
    [result] = json.loads(done.stdout)["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "caf%E9%20flow.yaml"


def test_a_sub_workflow_shared_by_several_files_is_reported_once(files: Path) -> None:
    (files / "lib").mkdir()
    (files / "lib" / "child.yaml").write_text(
        "version: 1\nname: child\nsteps:\n  - run: echo {{ steps.nope.output }}\n", encoding="utf-8"
    )
    for name in ("one", "two"):
        (files / f"{name}.yaml").write_text(f"version: 1\nname: {name}\nsteps:\n  - workflow: lib/child.yaml\n")
    done = llmflow_cli(files, "validate", "--format", "github", "one.yaml", "two.yaml", "lib/child.yaml", "./one.yaml")
    assert done.returncode == 1
    assert done.stdout == (
        "::error file=lib/child.yaml,line=4,col=18,title=unknown-step::unknown step 'nope'\n"
        "::error file=one.yaml,line=4,col=15,title=invalid-workflow::sub-workflow 'lib/child.yaml' is not valid "
        "(1 problem)\n"
        "::error file=two.yaml,line=4,col=15,title=invalid-workflow::sub-workflow 'lib/child.yaml' is not valid "
        "(1 problem)\n"
    )
    text = llmflow_cli(files, "validate", "one.yaml", "two.yaml", "lib/child.yaml", "./one.yaml")
    assert text.stderr == "3 of 3 files invalid: 3 errors\n"


def test_a_sub_workflow_in_a_sibling_folder_is_named_without_dot_dot(files: Path) -> None:
    (files / "flows").mkdir()
    (files / "shared").mkdir()
    (files / "shared" / "child.yaml").write_text(
        "version: 1\nname: child\nsteps:\n  - run: echo {{ steps.nope.output }}\n", encoding="utf-8"
    )
    (files / "flows" / "main.yaml").write_text("version: 1\nname: main\nsteps:\n  - workflow: ../shared/child.yaml\n")
    done = llmflow_cli(files, "validate", "--format", "sarif", "flows/main.yaml", "shared/child.yaml")
    results = json.loads(done.stdout)["runs"][0]["results"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris == ["flows/main.yaml", "shared/child.yaml"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    "args",
    [
        ("validate", "--format", "sarif", "bad.yaml"),
        ("schema",),
        ("graph", "good.yaml"),
        ("templates", "show", "starter"),
    ],
    ids=["validate", "schema", "graph", "templates-show"],
)
def test_output_that_cannot_be_written_is_one_line_not_a_traceback(files: Path, args: tuple[str, ...]) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "llmflow", *args], cwd=files, env=env, stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert (done.returncode, done.stderr) == (1, "error: No space left on device\n")


MULTI_LINE = """\
version: 1
name: lines
steps:
  - id: a
    name: "first\\nsecond"
    run: echo a
  - id: again
    loop:
      while: |
        loop.iteration < 2
          and true
      steps:
        - run: echo b
"""


def test_graph_draws_names_and_conditions_written_over_several_lines_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "lines.yaml").write_text(MULTI_LINE, encoding="utf-8")
    text = llmflow_cli(tmp_path, "graph", "lines.yaml")
    assert (text.returncode, text.stderr) == (0, "")
    assert text.stdout == (
        "lines (lines.yaml)\n"
        "├── first second  [run]\n"
        "└── again  [loop while loop.iteration < 2 and true (max 100)]\n"
        "    └── run-1  [run]\n"
    )
    mermaid = llmflow_cli(tmp_path, "graph", "lines.yaml", "--format", "mermaid")
    assert mermaid.returncode == 0
    assert '  n_a["first second<br/><i>run</i>"]\n' in mermaid.stdout
    assert '  subgraph n_again["again: loop while loop.iteration #lt; 2 and true (max 100)"]\n' in mermaid.stdout


@pytest.mark.parametrize("style", ["json", "sarif"])
def test_json_formats_escape_terminal_controls(tmp_path: Path, style: str) -> None:
    # A C1 control in the file name, a right-to-left override in a message (quoting the sub-workflow path).
    name = "c1\x9b2J.yaml"
    (tmp_path / name).write_text('version: 1\nname: x\nsteps:\n  - workflow: "lib/\\u202e.yaml"\n', encoding="utf-8")
    done = llmflow_cli(tmp_path, "validate", "--format", style, name)
    assert done.returncode == 1
    assert "\x9b" not in done.stdout and "\u202e" not in done.stdout
    assert "sub-workflow file 'lib/\\u202e.yaml' does not exist" in done.stdout
    assert "lib/\u202e.yaml" in json.dumps(json.loads(done.stdout), ensure_ascii=False)  # the same JSON value


def test_the_caret_stands_under_the_column_after_wide_characters(tmp_path: Path) -> None:
    # Columns count characters (the key is column 33 in every format); the caret counts terminal cells, and
    # 日, 本, 語 and 😀 take two each.
    (tmp_path / "wide.yaml").write_text(
        'version: 1\nname: x\nsteps:\n  - {id: a, run: "echo 日本語 é😀", bogus: 1}\n', encoding="utf-8"
    )
    done = llmflow_cli(tmp_path, "validate", "wide.yaml")
    assert done.stdout.splitlines()[1:] == [
        '    4 |   - {id: a, run: "echo 日本語 é😀", bogus: 1}',
        "      |                                     ^",
    ]
    assert done.stdout.startswith("wide.yaml:4:33: error[unknown-key]")
    github = llmflow_cli(tmp_path, "validate", "--format", "github", "wide.yaml")
    assert github.stdout.startswith("::error file=wide.yaml,line=4,col=33,")
