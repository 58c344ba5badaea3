"""The ``write`` action: write a file inside the project folder or the run's artifacts."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath

from llmflow.config import PROJECT_FILE
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError
from llmflow.store.location import STORE_DIRNAME

#: The project's settings, read by every run: where providers send API keys, and the keys themselves.
_SETTINGS_FILES = (PROJECT_FILE, ".env")


def _protected(target: Path, project: Path, sources: frozenset[Path]) -> str | None:
    """What ``target`` is, when it is a file no step may write: a source file of the running workflow or one
    of the project's settings, by its path or as the same file (a hard link, another case of its name on a
    file system that ignores case)."""
    settings = {project / name: f"the project's {name}" for name in _SETTINGS_FILES}
    if target in settings:
        return settings[target]
    if target in sources:
        return "a source file of the running workflow"
    try:
        found = target.stat()
    except OSError:
        return None  # a new file is none of them
    for path, what in [*settings.items(), *((source, "a source file of the running workflow") for source in sources)]:
        with contextlib.suppress(OSError):
            if os.path.samestat(found, path.stat()):
                return what
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confined(base: Path, root: Path, relative: str, step_id: str) -> Path:
    """``base / relative`` resolved, refusing absolute paths and anything outside ``root``."""
    if not relative or PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
        raise ActionError(f"step '{step_id}': write path {relative!r} must be a relative path")
    if "\x00" in relative:
        raise ActionError(f"step '{step_id}': write path {relative!r} contains a NUL character")
    target = (base / relative).resolve()
    if not _inside(target, root.resolve()):
        raise ActionError(f"step '{step_id}': write path {relative!r} leaves the folder {root.resolve()}")
    return target


async def write_file(ctx: ActionContext) -> ActionResult:
    """Write (or append) ``content`` relative to the workflow's folder, never outside the project.

    With ``artifact: true`` the run keeps a copy too, at the same relative path under its artifacts folder
    (``steps.<id>.artifact`` says where).
    """
    from llmflow.expressions import stringify

    node = ctx.node
    path = str(ctx.config.get("path", ""))
    project = ctx.services.project_dir.resolve()
    base = ctx.workflow_dir.resolve()
    root = project if _inside(base, project) else base
    target = confined(base, root, path, node.id)
    state = ctx.services.state_dir()
    if state is not None and _inside(target, state.resolve()):
        # Run folders, journals and locks live there: a path from a model's output must not overwrite them.
        raise ActionError(
            f"step '{node.id}': write path {path!r} is inside the run store {state.resolve()}; "
            "use artifact: true to keep a copy with the run"
        )
    protected = _protected(target, project, ctx.services.source_files())
    if protected is not None:
        # A path from a model's output that rewrote the workflow, or the settings that say where API keys are
        # sent, would choose what the next run does.
        raise ActionError(f"step '{node.id}': write path {path!r} is {protected}, which a step may not overwrite")
    if any(part.casefold() == STORE_DIRNAME for part in target.relative_to(root).parts):
        # Another folder's run store, or a new one that commands run below it would take for theirs.
        raise ActionError(f"step '{node.id}': write path {path!r} is inside a {STORE_DIRNAME} folder (a run store)")
    if any(part.casefold() == ".git" for part in target.relative_to(root).parts):
        # git runs what its hooks and config name (core.fsmonitor, core.pager, hooks/pre-commit): a path from a
        # model's output must not plant a command the next git command runs.
        raise ActionError(f"step '{node.id}': write path {path!r} is inside a .git folder (git runs what it holds)")
    content = ctx.config.get("content", "")
    text = content if isinstance(content, str) else stringify(content)
    data = _encoded(text, node.id)
    write_inside(root, target, data, append=bool(ctx.config.get("append")), step_id=node.id)
    extra: dict[str, object] = {"bytes": len(data)}
    if ctx.config.get("artifact"):
        artifacts = ctx.services.artifacts_dir().resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        kept = confined(artifacts, artifacts, str(target.relative_to(root)), node.id)
        write_inside(artifacts, kept, target.read_bytes(), append=False, step_id=node.id)
        extra["artifact"] = str(kept)
    shown = str(target.relative_to(project)) if _inside(target, project) else str(target)
    return ActionResult(output=shown, extra=extra)


def _open_at(folder: int, name: str, flags: int, shown: str, step_id: str) -> int:
    """Open ``name`` in the folder open as ``folder``, never following a symbolic link."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW, 0o644, dir_fd=folder)
    except OSError as error:
        if error.errno == errno.EISDIR:
            raise ActionError(f"step '{step_id}': write path {shown!r} is a folder") from None
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        try:
            link = stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode)
        except OSError:
            link = False
        if link or error.errno == errno.ELOOP:
            raise ActionError(
                f"step '{step_id}': write path {shown!r} now leads through a symbolic link ({name!r}); "
                "nothing was written"
            ) from None
        raise ActionError(f"step '{step_id}': write path {shown!r}: {name!r} is not a folder") from None


def _encoded(text: str, step_id: str) -> bytes:
    """``text`` as UTF-8, encoded before the file is opened: opening truncates it, so a failure to encode
    afterwards would leave the file empty."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise ActionError(
            f"step '{step_id}': the content holds a lone surrogate (U+{code:04X} at character {error.start}), "
            "which UTF-8 cannot encode"
        ) from None


#: Whether folders can be opened relative to one another without following links (POSIX).
_WALKS = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")


def write_inside(root: Path, target: Path, data: bytes, *, append: bool, step_id: str) -> None:
    """Write ``data`` to ``target`` (a resolved path ``confined`` to ``root``), creating its folders.

    ``target`` was checked as it was on disk a moment ago. To write where it was checked, each folder below
    ``root`` is opened relative to the one before it and neither they nor the file are followed if they
    are symbolic links: a link swapped in meanwhile (by a command running beside this step) is refused
    instead of leading the write out of ``root``.
    """
    parts = target.relative_to(root).parts
    if not parts:
        raise ActionError(f"step '{step_id}': write path {str(target)!r} is a folder")
    if not _WALKS:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab" if append else "wb") as handle:
            handle.write(data)
        return
    shown = str(target.relative_to(root))
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=folder)
            inner = _open_at(folder, part, os.O_RDONLY | os.O_DIRECTORY, shown, step_id)
            os.close(folder)
            folder = inner
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        descriptor = _open_at(folder, parts[-1], flags, shown, step_id)
    finally:
        os.close(folder)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
