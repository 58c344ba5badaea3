"""The command-line reference page (``docs/cli.md``), generated from every command's ``--help``.

Regenerate with ``python -m llmflow.cli.reference > docs/cli.md``; a test fails when the page is stale.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

_HEADER = """# Command-line reference

This page is generated from `llmflow --help` and the help of every command
(`python -m llmflow.cli.reference > docs/cli.md`); a test fails when it is out of date.

Exit codes: 0 succeeded; 1 the run failed (for `validate`: a file is invalid); 2 usage error or invalid
workflow; 3 the run is waiting for approval; 130 interrupted.

A mistake on the command line (an unknown option or command, a missing argument, a value that is not one of
the choices) is one line on stderr, `error: COMMAND: WHAT (see 'COMMAND --help')`, with exit code 2.

`llmflow validate` places each problem at `FILE:LINE:COLUMN`, both counted from 1, in every format. A column
counts characters (Unicode code points), not bytes, and a tab is one character: GitHub annotations (`col=`)
and SARIF (`columnKind: unicodeCodePoints`) get the same numbers. In the text format the caret under the
quoted line allows for wide characters (CJK, emoji), which take two cells of a terminal.
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
