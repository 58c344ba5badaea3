"""``llmflow validate`` and the shared "load a workflow or exit with its diagnostics" helper."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from llmflow.cli import exits

if TYPE_CHECKING:
    from llmflow.cli.formats import SourceLines
    from llmflow.compiler.graph import Workflow
    from llmflow.diagnostics import Diagnostic


@lru_cache(maxsize=64)
def _file_lines(file: str) -> tuple[str, ...]:
    """The lines of ``file`` to quote under its diagnostics: none for a FIFO or a device (read once already, or
    endless like ``/dev/zero``), and no more of a file than the loader reads."""
    from llmflow.spec.loader import LoadLimits

    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            return ()
        with open(file, "rb") as handle:
            data = handle.read(LoadLimits().max_bytes)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return ()
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return tuple(text.split("\n"))


def source_line(file: str, line: int) -> str:
    """Line ``line`` (1-based) of ``file``, or an empty string."""
    lines = _file_lines(file)
    return lines[line - 1] if 0 < line <= len(lines) else ""


def render(
    diagnostics: Sequence[Diagnostic], output_format: str, *, color: bool, lines: SourceLines = source_line
) -> str:
    """Diagnostics in one of the ``--format`` styles; ``lines`` gives the source lines the text style quotes."""
    from llmflow.cli import formats

    if output_format == "json":
        return formats.as_json(diagnostics)
    if output_format == "github":
        return formats.as_github(diagnostics)
    if output_format == "sarif":
        return formats.as_sarif(diagnostics)
    return formats.as_text(diagnostics, lines, color=color)


def validate_files(arguments: Sequence[str], output_format: str, *, strict: bool = False) -> int:
    """Validate every file named, every workflow file under the folders named, and standard input for ``-``,
    in one process; print the problems; return the exit code.

    A file is invalid when it has an error, or, with ``strict``, a warning. A path that cannot be read, and a
    folder holding no workflow file, are errors too (exit status 1), reported like the problems of a file.
    """
    from llmflow.cli.discovery import STDIN_NAME, collect
    from llmflow.frontend import validate_workflow

    # One file named twice (``a.yaml ./a.yaml``, overlapping globs or folders) is checked once, and a
    # sub-workflow that several of the files include has its problems shown once, not once per file.
    targets = collect(arguments)
    stdin_text: list[str] = []
    everything: list[Diagnostic] = list(targets.problems)
    shown: set[Diagnostic] = set(targets.problems)
    invalid = 0
    for file in targets.files:
        if file is None:
            problems, text = _validate_stdin()
            stdin_text.append(text)
        else:
            problems = validate_workflow(file)
        if any(p.severity == "error" or strict for p in problems):
            invalid += 1
        everything.extend(p for p in problems if p not in shown)
        shown.update(problems)
    from llmflow.cli.terminal import color_for

    def lines(file: str, line: int) -> str:
        if file == STDIN_NAME and stdin_text:
            numbered = stdin_text[0].split("\n")
            return numbered[line - 1] if 0 < line <= len(numbered) else ""
        return source_line(file, line)

    color = output_format == "text" and color_for(sys.stdout)
    if everything or output_format != "text":
        text = render(everything, output_format, color=color, lines=lines)
        if text:
            sys.stdout.write(text + "\n")
    if output_format == "text":
        sys.stdout.flush()  # the summary after the diagnostics, also when both streams go to one pipe
        sys.stderr.write(_summary(everything, len(targets.files), invalid, targets.empty_folders) + "\n")
    failed = invalid or any(p.severity == "error" for p in targets.problems)
    return exits.FAILED if failed else exits.SUCCEEDED


def _validate_stdin() -> tuple[list[Diagnostic], str]:
    """The diagnostics of the workflow on standard input (its sub-workflows found from the current folder),
    and its text, to quote under them."""
    from llmflow.cli.discovery import STDIN_NAME
    from llmflow.diagnostics import Diagnostic
    from llmflow.frontend import check_text
    from llmflow.spec.loader import LoadLimits

    limit = LoadLimits().max_bytes
    try:
        if sys.stdin is None:
            raise OSError("standard input is closed")
        data = sys.stdin.buffer.read(limit + 1)  # the loader refuses more than the limit
    except (OSError, ValueError) as error:  # ValueError: a closed file
        reason = str(error).lower() or "it is closed"
        return [Diagnostic("file-unreadable", f"cannot read standard input: {reason}", STDIN_NAME)], ""
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return check_text(data, STDIN_NAME, directory=os.getcwd())[1], text


def _summary(diagnostics: Sequence[Diagnostic], files: int, invalid: int, empty_folders: int = 0) -> str:
    errors = sum(1 for p in diagnostics if p.severity == "error")
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    counts = [f"{errors} error{'s' * (errors != 1)}"] if errors or invalid else []
    if warnings:
        counts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    if not files:
        head = "no workflow files checked"
    elif invalid:
        head = f"{invalid} of {files} {noun} invalid"
    else:
        head = f"{files} {noun} valid"
    if files and empty_folders:
        head += f", {empty_folders} folder{'s' * (empty_folders != 1)} without workflow files"
    return head + (": " + ", ".join(counts) if counts else "")


def load_or_exit(file: Path) -> Workflow:
    """Compile ``file`` or print its diagnostics to stderr and exit with status 2."""
    from llmflow.errors import WorkflowError
    from llmflow.frontend import load_workflow

    try:
        return load_workflow(file)
    except WorkflowError as error:
        _exit_with(error.diagnostics)


def _exit_with(diagnostics: Sequence[Diagnostic]) -> NoReturn:
    from llmflow.cli.terminal import color_for

    color = color_for(sys.stderr)
    sys.stderr.write(render(diagnostics, "text", color=color) + "\n")
    raise SystemExit(exits.USAGE)  # not typer.Exit: ``run`` may not have imported typer (cli/fastpath.py)
