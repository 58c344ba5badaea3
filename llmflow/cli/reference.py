"""The command-line reference page (``docs/cli.md``), generated from every command's ``--help``.

Regenerate with ``python -m llmflow.cli.reference > docs/cli.md``; a test fails when the page is stale.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

_HEADER = """# Command-line reference

This page is generated from `llmflow --help` and the help of every command
(`python -m llmflow.cli.reference > docs/cli.md`); a test fails when it is out of date.

Exit codes: 0 succeeded; 1 the run failed (for `validate`: a file is invalid or cannot be read, or a folder
holds no workflow file); 2 usage error or invalid workflow; 3 the run is waiting for approval; 130
interrupted.

A mistake on the command line (an unknown option or command, a missing argument, a value that is not one of
the choices) is one line on stderr, `error: COMMAND: WHAT (see 'COMMAND --help')`, with exit code 2. Options
go after the command they belong to: `llmflow -i name=Ada run flow.yaml` is refused with the commands that
take `-i` (`run`, `resume`).

`llmflow validate` places each problem at `FILE:LINE:COLUMN`, both counted from 1, in every format. A column
counts characters (Unicode code points), not bytes, and a tab is one character: GitHub annotations (`col=`)
and SARIF (`columnKind: unicodeCodePoints`) get the same numbers. In the text format the caret under the
quoted line allows for wide characters (CJK, emoji), which take two cells of a terminal.

`llmflow validate` takes files, folders and `-`:

- A **file** named on the command line is always checked, whatever it holds.
- A **folder** is searched recursively, in name order, for workflow files: `.yaml` and `.yml` files with a
  line that starts with the top-level key `steps:` or is `version: 1` (a line test, so a workflow with a YAML
  syntax error is still checked). Hidden files and folders (`.git`, `.llmflow`, `.venv`, `.github` …),
  `node_modules`, `__pycache__` and template folders (a `template.yaml` beside a `workflow.yaml`, whose
  placeholders `llmflow new` fills in) are skipped, and so is anything that is not a regular file; links to
  folders are followed. Compose files, CI configurations and data files are passed over; to check one
  anyway, name it.
- `-` reads one workflow from standard input, shown as `<stdin>`; its `workflow:` paths are found from the
  current folder.

Each file is checked once, however many ways it is reached. What cannot be checked is reported like any
other problem, in every format, and makes the exit status 1: a file that does not exist (`file-not-found`) or
cannot be read (`file-unreadable`, `file-too-large`, `invalid-utf8`, `nul-byte`), a folder without workflow
files (`no-workflows`) or that cannot be read (`folder-unreadable`), a link that leads back to a folder it is
in (`symlink-loop`). The text format ends with a count on stderr: `3 files valid`, `1 of 3 files invalid: 2
errors`, `no workflow files checked: 1 error`.
"""


def _commands() -> Iterator[list[str]]:
    """Every command path, groups first and then their sub-commands, in registration order."""
    import typer

    from llmflow.cli.app import app

    group = typer.main.get_group(app)
    yield []
    for name, command in group.commands.items():
        yield [name]
        for sub in getattr(command, "commands", {}) or {}:
            yield [name, sub]


def _help(args: list[str]) -> str:
    from typer.testing import CliRunner

    from llmflow.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    return "\n".join(line.rstrip() for line in result.output.strip().splitlines())


def render() -> str:
    """The whole reference page."""
    os.environ.setdefault("COLUMNS", "100")
    parts = [_HEADER]
    for args in _commands():
        title = " ".join(["llmflow", *args])
        parts.append(f"## `{title}`\n\n```text\n{_help(args)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
