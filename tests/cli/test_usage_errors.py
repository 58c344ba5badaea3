"""Command-line mistakes (an unknown option or command, a missing argument, a bad choice) through the real
CLI: one line on stderr naming the command and where its help is, exit 2, nothing on stdout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_helpers import command, environment
from test_validate_cli import llmflow_cli


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("nosuchcmd",), "error: python -m llmflow: no such command 'nosuchcmd' (see 'python -m llmflow --help')"),
        (
            ("templates", "show"),
            "error: python -m llmflow templates show: missing argument 'NAME' "
            "(see 'python -m llmflow templates show --help')",
        ),
        (
            ("runs", "--format", "x"),
            "error: python -m llmflow runs: no such option: --format (see 'python -m llmflow runs --help')",
        ),
        (
            ("gc", "--older-than"),
            "error: python -m llmflow gc: option '--older-than' requires an argument "
            "(see 'python -m llmflow gc --help')",
        ),
        (  # the fast path hands it to typer
            ("run", "flow.yaml", "-i"),
            "error: python -m llmflow run: option '-i' requires an argument (see 'python -m llmflow run --help')",
        ),
        (
            ("templates", "search", "--json", "x", "--bogus"),
            "error: python -m llmflow templates search: no such option: --bogus "
            "(see 'python -m llmflow templates search --help')",
        ),
        (
            ("-i", "name=Ada", "run", "flow.yaml"),
            "error: python -m llmflow: no such option: -i; it is an option of run, resume: write it after the command, "
            "e.g. python -m llmflow run ... -i (see 'python -m llmflow --help')",
        ),
        (
            ("templates", "--json", "list"),
            "error: python -m llmflow templates: no such option: --json; it is an option of list, search: write it "
            "after the command, e.g. python -m llmflow templates list ... --json "
            "(see 'python -m llmflow templates --help')",
        ),
        (("--bogus", "runs"), "error: python -m llmflow: no such option: --bogus (see 'python -m llmflow --help')"),
        (
            ("run", "flow.yaml", "name=Ada"),
            "error: python -m llmflow run: got unexpected extra argument(s) (name=Ada); an input is given with -i: "
            "-i name=Ada (see 'python -m llmflow run --help')",
        ),
        (
            ("run", "flow.yaml", "other.yaml"),
            "error: python -m llmflow run: got unexpected extra argument(s) (other.yaml) "
            "(see 'python -m llmflow run --help')",
        ),
    ],
    ids=[
        "unknown-command",
        "missing-argument",
        "unknown-option",
        "option-without-value",
        "run-i-without-value",
        "subcommand-unknown-option",
        "option-before-its-command",
        "option-before-its-subcommand",
        "option-of-no-command",
        "input-without-dash-i",
        "extra-file",
    ],
)
def test_a_command_line_mistake_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    done = llmflow_cli(tmp_path, *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")


def test_no_command_shows_the_help_and_exits_2(tmp_path: Path) -> None:
    done = llmflow_cli(tmp_path)
    assert done.returncode == 2
    assert "Usage: python -m llmflow [OPTIONS] COMMAND" in done.stdout + done.stderr
    assert "error:" not in done.stderr


@pytest.mark.parametrize(
    ("args", "paragraph"),
    [
        (
            ("run", "--help"),
            "Exit status: 0 succeeded, 1 failed or cancelled, 2 usage error or invalid workflow, 3 waiting",
        ),
        (("new", "--help"), "Exit status: 0 written and valid; 1 a file already exists (nothing is written) or the"),
    ],
    ids=["run", "new"],
)
def test_help_paragraphs_are_wrapped_to_a_narrow_terminal(
    tmp_path: Path, args: tuple[str, ...], paragraph: str
) -> None:
    env = dict(environment(), COLUMNS="80")
    done = subprocess.run(command(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    lines = [line.strip() for line in done.stdout.splitlines()]
    start = next(index for index, line in enumerate(lines) if line.startswith("Exit status:"))
    text = []
    for line in lines[start:]:
        if not line:
            break
        text.append(line)
    # Wrapped by the terminal's width only: every line but the last of the paragraph is nearly full.
    assert " ".join(text).startswith(paragraph)
    assert all(len(line) > 60 for line in text[:-1]), text
