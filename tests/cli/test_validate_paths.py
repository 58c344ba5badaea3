"""``llmflow validate`` given folders, missing files, standard input and hostile trees: whole outputs."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result, command, environment

GOOD = "version: 1\nname: good\nsteps:\n  - run: echo hi\n"
BAD = "version: 1\nname: bad\nsteps:\n  - run: echo hi\n    parse: jsn\n"
BAD_LINE = (
    "error[bad-value]: 'parse' must be one of text, json, lines, yaml, not 'jsn' (did you mean 'json'?)\n"
    "    5 |     parse: jsn\n"
    "      |            ^\n"
)
CHILD = "version: 1\nname: child\nsteps:\n  - run: echo {{ steps.nope.output }}\n"
PARENT = "version: 1\nname: parent\nsteps:\n  - workflow: lib/child.yaml\n"
RULE = (
    "a .yaml or .yml file with a top-level 'steps:' key or 'version: 1'; hidden folders, node_modules and "
    "template folders are skipped"
)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def piped(cwd: Path, data: bytes, *args: str) -> Result:
    """Run the real CLI in ``cwd`` with ``data`` on its standard input."""
    done = subprocess.run(command(*args), cwd=cwd, env=environment(), input=data, capture_output=True, timeout=60)
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


# Missing files


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("text", "missing.yaml:1:1: error[file-not-found]: file not found: missing.yaml\n"),
        ("github", "::error file=missing.yaml,line=1,col=1,title=file-not-found::file not found: missing.yaml\n"),
    ],
)
def test_a_missing_file_is_a_diagnostic_in_the_line_formats(
    cli: Callable[..., Result], workflow: Callable[..., Path], style: str, expected: str
) -> None:
    workflow(GOOD, "good.yaml")
    result = cli("validate", "--format", style, "good.yaml", "missing.yaml")
    assert (result.code, result.stdout) == (1, expected)
    assert result.stderr == ("1 of 2 files invalid: 1 error\n" if style == "text" else "")


def test_a_missing_file_is_a_diagnostic_in_json(cli: Callable[..., Result]) -> None:
    result = cli("validate", "--format", "json", "missing.yaml")
    assert (result.code, result.stderr) == (1, "")
    assert result.json() == [
        {
            "file": "missing.yaml",
            "line": 1,
            "column": 1,
            "code": "file-not-found",
            "severity": "error",
            "message": "file not found: missing.yaml",
            "hint": None,
            "path": "",
        }
    ]


def test_a_missing_file_is_a_result_in_sarif(cli: Callable[..., Result]) -> None:
    result = cli("validate", "--format", "sarif", "nowhere/missing.yaml")
    assert (result.code, result.stderr) == (1, "")
    run = result.json()["runs"][0]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["file-not-found"]
    assert run["results"] == [
        {
            "ruleId": "file-not-found",
            "ruleIndex": 0,
            "level": "error",
            "message": {"text": "file not found: nowhere/missing.yaml"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "nowhere/missing.yaml"},
                        "region": {"startLine": 1, "startColumn": 1},
                    }
                }
            ],
        }
    ]


def test_a_file_named_on_the_command_line_is_checked_whatever_it_holds(
    cli: Callable[..., Result], workflow: Callable[..., Path]
) -> None:
    workflow("version: '3.8'\nservices: {}\n", "compose.yaml")
    result = cli("validate", "--format", "github", "compose.yaml")
    assert result.code == 1
    assert "::error file=compose.yaml,line=2,col=1,title=unknown-key::unknown key 'services'" in result.stdout


def test_a_binary_file_is_one_line_not_a_traceback(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"image.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"})
    result = cli("validate", "--format", "github", "image.yaml")
    assert result.code == 1
    assert result.stdout == (
        "::error file=image.yaml,line=1,col=1,title=invalid-utf8::the file is not valid UTF-8: byte 0x89 cannot be "
        "decoded (save the file as UTF-8)\n"
    )
    write(tmp_path, {"zeros.yaml": b"version: 1\n\x00\x00\x00"})
    result = cli("validate", "--format", "github", "zeros.yaml")
    assert result.code == 1
    assert result.stdout == (
        "::error file=zeros.yaml,line=2,col=1,title=nul-byte::the text contains a NUL byte; is this a binary file?\n"
    )


# Folders


TREE: dict[str, str | bytes] = {
    "flows/good.yaml": GOOD,
    "flows/deep/er/bad.yml": BAD,
    "flows/broken.yaml": "version: 1\nname: broken\nsteps:\n  - run: [unclosed\n",  # still a workflow
    "flows/notes.txt": BAD,  # not .yaml
    "compose.yaml": "version: '3.8'\nservices:\n  web: {image: nginx}\n",
    "data.yaml": "- 1\n- 2\n",
    "config.yml": "name: settings\nversion: 2\n",
    "image.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ".git/x.yaml": BAD,
    ".llmflow/runs/x/workflow.yaml": BAD,
    ".venv/lib/x.yaml": BAD,
    ".hidden.yaml": BAD,
    "node_modules/pkg/x.yaml": BAD,
    "__pycache__/x.yaml": BAD,
    "my-template/template.yaml": "name: my-template\ntitle: Mine\n",  # a template of `llmflow new`:
    "my-template/workflow.yaml": BAD,  # its placeholders are filled in only when it is used
    "my-template/parts/x.yaml": BAD,
}


def test_a_folder_is_searched_for_workflow_files(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, TREE)
    result = cli("validate", ".")
    assert result.code == 1
    assert result.stdout == (
        "flows/broken.yaml:5:1: error[yaml-syntax]: did not find expected ',' or ']' while parsing a flow sequence "
        "started at line 4\n"
        "flows/deep/er/bad.yml:5:12: " + BAD_LINE
    )
    assert result.stderr == "2 of 3 files invalid: 2 errors\n"


def test_a_named_folder_keeps_its_name_in_the_paths(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, TREE)
    result = cli("validate", "--format", "json", "flows/deep/")
    assert result.code == 1
    assert [(d["file"], d["line"], d["code"]) for d in result.json()] == [("flows/deep/er/bad.yml", 5, "bad-value")]


def test_a_hidden_folder_named_on_the_command_line_is_searched(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, TREE)
    result = cli("validate", ".git")
    assert result.code == 1
    assert result.stdout == ".git/x.yaml:5:12: " + BAD_LINE
    assert result.stderr == "1 of 1 file invalid: 1 error\n"


def test_a_folder_of_valid_workflows_says_how_many_were_checked(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"a.yaml": GOOD, "b/c.yml": GOOD, "b/d.yaml": GOOD, "b/e.yaml": "x: 1\n"})
    result = cli("validate", ".")
    assert (result.code, result.stdout, result.stderr) == (0, "", "3 files valid\n")


@pytest.mark.parametrize("contents", [{}, {"compose.yaml": "version: '3'\nservices: {}\n", "a.txt": GOOD}])
def test_a_folder_without_workflow_files_is_an_error(
    tmp_path: Path, cli: Callable[..., Result], contents: dict[str, str | bytes]
) -> None:
    (tmp_path / "flows").mkdir()
    write(tmp_path / "flows", contents)
    result = cli("validate", "flows")
    assert result.code == 1
    assert result.stdout == f"flows:1:1: error[no-workflows]: no workflow files in flows\n      = hint: {RULE}\n"
    assert result.stderr == "no workflow files checked: 1 error\n"
    github = cli("validate", "--format", "github", "flows")
    assert github.code == 1
    assert github.stdout == f"::error file=flows,line=1,col=1,title=no-workflows::no workflow files in flows ({RULE})\n"


def test_an_empty_folder_beside_valid_files_still_fails(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"good.yaml": GOOD})
    (tmp_path / "empty").mkdir()
    result = cli("validate", "good.yaml", "empty")
    assert result.code == 1
    assert result.stderr == "1 file valid, 1 folder without workflow files: 1 error\n"


def test_the_current_folder_without_workflows_is_named_so(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("validate", "--format", "json", ".")
    assert result.code == 1
    assert [(d["file"], d["code"], d["message"]) for d in result.json()] == [
        (".", "no-workflows", "no workflow files in the current folder")
    ]


def test_a_sub_workflow_in_the_folder_is_checked_standalone_and_reported_once(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    write(tmp_path, {"lib/child.yaml": CHILD, "one.yaml": PARENT, "two.yaml": PARENT.replace("parent", "two")})
    result = cli("validate", "--format", "github", ".")
    assert result.code == 1
    assert result.stdout == (
        "::error file=lib/child.yaml,line=4,col=18,title=unknown-step::unknown step 'nope'\n"
        "::error file=one.yaml,line=4,col=15,title=invalid-workflow::sub-workflow 'lib/child.yaml' is not valid "
        "(1 problem)\n"
        "::error file=two.yaml,line=4,col=15,title=invalid-workflow::sub-workflow 'lib/child.yaml' is not valid "
        "(1 problem)\n"
    )
    assert cli("validate", ".").stderr == "3 of 3 files invalid: 3 errors\n"


def test_a_file_reached_twice_is_checked_once(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"flows/a.yaml": BAD, "flows/b.yaml": GOOD})
    result = cli("validate", "flows/a.yaml", "flows", ".", "./flows/", "flows/../flows/a.yaml")
    assert result.code == 1
    assert result.stdout == "flows/a.yaml:5:12: " + BAD_LINE
    assert result.stderr == "1 of 2 files invalid: 1 error\n"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symbolic_link_loop_is_one_error_and_the_rest_is_checked(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"flows/a.yaml": GOOD, "flows/lib/b.yaml": GOOD})
    (tmp_path / "flows" / "lib" / "up").symlink_to("..")
    (tmp_path / "flows" / "same").symlink_to("lib")  # a second way to a folder: searched once, no error
    result = cli("validate", "flows")
    assert result.code == 1
    assert result.stdout == (
        "flows/lib/up:1:1: error[symlink-loop]: the symbolic link flows/lib/up loops back to the folder it is in "
        "(flows/lib)\n"
        "      = hint: remove or change the link\n"
    )
    assert result.stderr == "2 files valid: 1 error\n"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_dangling_link_to_a_workflow_file_is_reported(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"flows/a.yaml": GOOD})
    (tmp_path / "flows" / "gone.yaml").symlink_to("nowhere.yaml")
    result = cli("validate", "flows")
    assert result.code == 1
    assert result.stdout == "flows/gone.yaml:1:1: error[file-not-found]: file not found: flows/gone.yaml\n"


def test_a_huge_workflow_file_in_a_folder_is_refused_in_one_line(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"big.yaml": GOOD + "# " + "x" * (5 * 1024 * 1024) + "\n"})
    result = cli("validate", "--format", "github", ".")
    assert result.code == 1
    size = (tmp_path / "big.yaml").stat().st_size
    assert result.stdout == (
        f"::error file=big.yaml,line=1,col=1,title=file-too-large::the file is {size} bytes; "
        "the limit is 5242880 bytes (move groups of steps into sub-workflow files (workflow: part.yaml), "
        "or data into a file a step reads)\n"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_in_a_folder_is_passed_over_not_waited_on(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"a.yaml": GOOD})
    os.mkfifo(tmp_path / "pipe.yaml")
    result = cli("validate", ".", timeout=30)
    assert (result.code, result.stdout, result.stderr) == (0, "", "1 file valid\n")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any folder")
def test_a_folder_that_cannot_be_read_is_an_error(tmp_path: Path, cli: Callable[..., Result]) -> None:
    write(tmp_path, {"a.yaml": GOOD, "locked/b.yaml": BAD})
    (tmp_path / "locked").chmod(0)
    try:
        result = cli("validate", ".")
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert result.code == 1
    assert result.stdout == "locked:1:1: error[folder-unreadable]: cannot read the folder locked: permission denied\n"


# Standard input


def test_standard_input_is_shown_as_stdin(tmp_path: Path) -> None:
    result = piped(tmp_path, BAD.encode(), "validate", "-")
    assert result.code == 1
    assert result.stdout == "<stdin>:5:12: " + BAD_LINE
    assert result.stderr == "1 of 1 file invalid: 1 error\n"


def test_a_valid_workflow_on_standard_input(tmp_path: Path) -> None:
    result = piped(tmp_path, GOOD.encode(), "validate", "-", "-")  # read once
    assert (result.code, result.stdout, result.stderr) == (0, "", "1 file valid\n")


def test_standard_input_finds_sub_workflows_from_the_current_folder(tmp_path: Path) -> None:
    write(tmp_path, {"lib/child.yaml": CHILD})
    result = piped(tmp_path, PARENT.encode(), "validate", "--format", "json", "-")
    assert result.code == 1
    assert [(d["file"], d["line"], d["code"]) for d in json.loads(result.stdout)] == [
        ("<stdin>", 4, "invalid-workflow"),
        ("lib/child.yaml", 4, "unknown-step"),
    ]


def test_standard_input_beside_files(tmp_path: Path) -> None:
    write(tmp_path, {"good.yaml": GOOD})
    result = piped(tmp_path, b"", "validate", "good.yaml", "-")
    assert result.code == 1
    assert result.stdout == (
        "<stdin>:1:1: error[empty-file]: the file is empty\n"
        "      = hint: a workflow needs at least version, name and steps; "
        "`llmflow new NAME` writes one to start from\n"
    )
    assert result.stderr == "1 of 2 files invalid: 1 error\n"


def test_endless_standard_input_stops_at_the_size_limit(tmp_path: Path) -> None:
    feeder = subprocess.Popen(["sh", "-c", "yes '# filler'"], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            command("validate", "-"), cwd=tmp_path, env=environment(), stdin=feeder.stdout, capture_output=True
        )
    finally:
        feeder.kill()
        feeder.wait()
    assert done.returncode == 1
    assert done.stdout.decode() == (
        "<stdin>:1:1: error[file-too-large]: the file is 5242881 bytes; the limit is 5242880 bytes\n"
        "    1 | # filler\n"
        "      | ^\n"
        "      = hint: move groups of steps into sub-workflow files (workflow: part.yaml), "
        "or data into a file a step reads\n"
    )


def test_a_file_named_dash_is_read_as_dot_slash_dash(tmp_path: Path) -> None:
    write(tmp_path, {"-": BAD})
    result = piped(tmp_path, GOOD.encode(), "validate", "./-", "-")
    assert result.code == 1
    assert result.stdout == "-:5:12: " + BAD_LINE
    assert result.stderr == "1 of 2 files invalid: 1 error\n"
