"""The ``write`` action: write a file inside the project folder or the run's artifacts."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError


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
    content = ctx.config.get("content", "")
    text = content if isinstance(content, str) else stringify(content)
    data = _encoded(text, node.id)
    mode = "ab" if ctx.config.get("append") else "wb"
    _write(target, data, mode)
    extra: dict[str, object] = {"bytes": len(data)}
    if ctx.config.get("artifact"):
        artifacts = ctx.services.artifacts_dir().resolve()
        kept = confined(artifacts, artifacts, str(target.relative_to(root)), node.id)
        _write(kept, target.read_bytes(), "wb")
        extra["artifact"] = str(kept)
    shown = str(target.relative_to(project)) if _inside(target, project) else str(target)
    return ActionResult(output=shown, extra=extra)


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


def _write(target: Path, data: bytes, mode: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open(mode) as handle:
        handle.write(data)
