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


def render(diagnostics: Sequence[Diagnostic], output_format: str, *, color: bool) -> str:
    """Diagnostics in one of the ``--format`` styles."""
    from llmflow.cli import formats

    if output_format == "json":
        return formats.as_json(diagnostics)
    if output_format == "github":
        return formats.as_github(diagnostics)
    if output_format == "sarif":
        return formats.as_sarif(diagnostics)
    return formats.as_text(diagnostics, source_line, color=color)


def validate_files(files: Sequence[Path], output_format: str, *, strict: bool = False) -> int:
    """Validate every file in one process; print the problems; return the exit code.

    A file is invalid when it has an error, or, with ``strict``, a warning.
    """
    from llmflow.frontend import validate_workflow

    # One file named twice (``a.yaml ./a.yaml``, overlapping globs) is checked once, and a sub-workflow that
    # several of the files include has its problems shown once, not once per file that includes it.
    unique: dict[str, Path] = {}
    for file in files:
        unique.setdefault(os.path.realpath(file), file)
    everything: list[Diagnostic] = []
    shown: set[Diagnostic] = set()
    invalid = 0
    for file in unique.values():
        problems = validate_workflow(file)
        if any(p.severity == "error" or strict for p in problems):
            invalid += 1
        everything.extend(p for p in problems if p not in shown)
        shown.update(problems)
    from llmflow.cli.terminal import color_for

    color = output_format == "text" and color_for(sys.stdout)
    if everything or output_format != "text":
        text = render(everything, output_format, color=color)
        if text:
            sys.stdout.write(text + "\n")
    if output_format == "text":
        sys.stdout.flush()  # the summary after the diagnostics, also when both streams go to one pipe
        sys.stderr.write(_summary(everything, len(unique), invalid) + "\n")
    return exits.FAILED if invalid else exits.SUCCEEDED


def _summary(diagnostics: Sequence[Diagnostic], files: int, invalid: int) -> str:
    errors = sum(1 for p in diagnostics if p.severity == "error")
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    counts = [f"{errors} error{'s' * (errors != 1)}"] if errors or invalid else []
    if warnings:
        counts.append(f"{warnings} warning{'s' * (warnings != 1)}")
    head = f"{invalid} of {files} {noun} invalid" if invalid else f"{files} {noun} valid"
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
