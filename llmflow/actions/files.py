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
    mode = "a" if ctx.config.get("append") else "w"
    _write(target, text, mode)
    extra: dict[str, object] = {"bytes": len(text.encode())}
    if ctx.config.get("artifact"):
        artifacts = ctx.services.artifacts_dir().resolve()
        kept = confined(artifacts, artifacts, str(target.relative_to(root)), node.id)
        _write(kept, target.read_text(encoding="utf-8"), "w")
        extra["artifact"] = str(kept)
    shown = str(target.relative_to(project)) if _inside(target, project) else str(target)
    return ActionResult(output=shown, extra=extra)


def _write(target: Path, text: str, mode: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open(mode, encoding="utf-8") as handle:
        handle.write(text)
