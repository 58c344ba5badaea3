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

    With ``artifact: true`` the file goes to the run's artifacts folder instead.
    """
    from llmflow.expressions import stringify

    node = ctx.node
    path = str(ctx.config.get("path", ""))
    project = ctx.services.project_dir.resolve()
    if ctx.config.get("artifact"):
        base = root = ctx.services.artifacts_dir()
    else:
        base = ctx.workflow_dir.resolve()
        root = project if _inside(base, project) else base
    target = confined(base, root, path, node.id)
    content = ctx.config.get("content", "")
    text = content if isinstance(content, str) else stringify(content)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if ctx.config.get("append") else "w", encoding="utf-8") as handle:
        handle.write(text)
    shown = str(target.relative_to(project)) if _inside(target, project) else str(target)
    return ActionResult(output=shown, extra={"bytes": len(text.encode())})
