"""The ``set`` action: assign run variables."""

from __future__ import annotations

from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError


async def set_variables(ctx: ActionContext) -> ActionResult:
    """The rendered mapping becomes ``vars.*`` (and the step's output)."""
    if ctx.node.options.get("scope") == "session":
        raise ActionError(
            f"step '{ctx.node.id}': scope: session is not available in this version of llmflow"
            " (sessions are not built yet); use scope: run"
        )
    values = dict(ctx.config)
    return ActionResult(output=values, writes=values)
