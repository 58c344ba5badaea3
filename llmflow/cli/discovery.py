"""Which files ``llmflow validate`` checks: the files it is given, and the workflow files under the folders.

A folder is searched recursively, in name order. Skipped: hidden files and folders (a name starting with
``.``: ``.git``, ``.llmflow``, ``.venv``, ``.github``), ``node_modules`` and ``__pycache__``, and anything that is
not a regular file (a FIFO would block). A ``.yaml`` or ``.yml`` file found there is a workflow when one of
its lines starts with the top-level key ``steps:``, or is ``version: 1``: what every workflow has, and what
Compose files, CI configurations or data files almost never have. A line test, not a parse, so that a
workflow with a YAML syntax error is still checked (and its error reported) instead of passed over. A
template folder (its ``template.yaml`` beside its ``workflow.yaml``) is skipped too: its workflow holds
``[[ placeholders ]]`` until ``llmflow new`` fills them in.

A path given on the command line is always checked, whatever it holds; ``-`` is standard input.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from llmflow.diagnostics import Diagnostic

#: The name standard input is shown under, and the argument that means it.
STDIN_NAME = "<stdin>"
STDIN_ARGUMENT = "-"
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__"})
EXTENSIONS = (".yaml", ".yml")
_WORKFLOW_LINE = re.compile(
    r"""^(?:(?:steps|"steps"|'steps')[ \t]*:(?:[ \t]|$)"""
    r"""|(?:version|"version"|'version')[ \t]*:[ \t]*(?:1|"1"|'1')[ \t]*(?:\#.*)?$)""",
    re.MULTILINE,
)
RULE = (
    "a .yaml or .yml file with a top-level 'steps:' key or 'version: 1'; hidden folders, node_modules and "
    "template folders are skipped"
)


@dataclass(slots=True)
class Targets:
    """What to check, in order and each once: file paths as they are shown, ``None`` for standard input; and
    the problems met finding them."""

    files: list[str | None] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    empty_folders: int = 0
    seen: set[str | None] = field(default_factory=set)

    def add(self, shown: str | None) -> None:
        """Add a file unless it was added already (under this name or another way to the same file)."""
        key = None if shown is None else os.path.realpath(shown)
        if key not in self.seen:
            self.seen.add(key)
            self.files.append(shown)


def collect(arguments: Sequence[str]) -> Targets:
    """The files to check for the command-line ``arguments``: files, folders (searched) and ``-``."""
    targets = Targets()
    folders: set[str] = set()
    for raw in arguments:
        if raw == STDIN_ARGUMENT:
            targets.add(None)
            continue
        argument = str(PurePath(raw)) if raw else raw  # ``./a.yaml`` is shown as ``a.yaml``, ``flows/`` as ``flows``
        if os.path.isdir(argument):
            real = os.path.realpath(argument)
            if real in folders:
                continue
            folders.add(real)
            found, problems = 0, len(targets.problems)
            for file in _search(argument, targets.problems):
                found += 1
                targets.add(file)
            if not found and len(targets.problems) == problems:  # a folder that could not be read says so
                targets.empty_folders += 1
                targets.problems.append(
                    Diagnostic("no-workflows", f"no workflow files in {_folder_name(argument)}", argument, hint=RULE)
                )
        else:
            targets.add(argument)
    return targets


def _folder_name(folder: str) -> str:
    return "the current folder" if os.path.normpath(folder) == "." else folder


def _join(folder: str, name: str) -> str:
    return name if os.path.normpath(folder) == "." else os.path.join(folder, name)


def _search(folder: str, problems: list[Diagnostic]) -> Iterator[str]:
    """The workflow files under ``folder``, following links to folders but never round a loop."""
    yield from _walk(folder, (os.path.realpath(folder),), set(), problems)


def _walk(folder: str, ancestors: tuple[str, ...], visited: set[str], problems: list[Diagnostic]) -> Iterator[str]:
    visited.add(ancestors[-1])
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        problems.append(Diagnostic("folder-unreadable", f"cannot read the folder {folder}: {reason}", folder))
        return
    if _is_template(entries):
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        shown = _join(folder, entry.name)
        try:
            is_folder = entry.is_dir()  # follows a symbolic link
        except OSError:
            is_folder = False
        if is_folder:
            if entry.name in SKIPPED_FOLDERS:
                continue
            real = os.path.realpath(shown)
            if real in ancestors:
                message = f"the symbolic link {shown} loops back to the folder it is in ({_folder_name(folder)})"
                problems.append(Diagnostic("symlink-loop", message, shown, hint="remove or change the link"))
            elif real not in visited:  # two links to one folder: searched once
                yield from _walk(shown, (*ancestors, real), visited, problems)
        elif entry.name.lower().endswith(EXTENSIONS) and _may_be_workflow(shown):
            yield shown


def _is_template(entries: list[os.DirEntry[str]]) -> bool:
    """Whether a folder holding ``entries`` is a template of ``llmflow new`` (what ``templating`` reads)."""
    from llmflow.templating import METADATA_FILE, WORKFLOW_FILE

    names = {entry.name for entry in entries}
    return METADATA_FILE in names and WORKFLOW_FILE in names


def _may_be_workflow(path: str) -> bool:
    """True for a regular file that looks like a workflow, and for a file that cannot be read (whether it is a
    workflow cannot be told, and the loader reports why it cannot be read)."""
    from llmflow.spec.loader import LoadLimits

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            data = handle.read(LoadLimits().max_bytes)  # what the loader would read
    except OSError:
        return True
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return _WORKFLOW_LINE.search(text.lstrip("\ufeff")) is not None
