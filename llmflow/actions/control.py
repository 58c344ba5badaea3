"""Control actions: ``wait``, ``fail``, ``emit`` and the ``approval`` gate."""

from __future__ import annotations

import asyncio
import time

from llmflow.durations import format_duration, format_moment
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.engine.outcome import PauseRun
from llmflow.errors import ActionError, StepTimeout
from llmflow.event_types import RESERVED_PREFIXES


async def wait(ctx: ActionContext) -> ActionResult:
    """Sleep for the duration."""
    await asyncio.sleep(float(ctx.node.options.get("seconds", 0)))
    return ActionResult()


async def fail(ctx: ActionContext) -> ActionResult:
    """Fail with the message."""
    raise ActionError(str(ctx.config.get("message") or "failed"), path=ctx.path)


async def emit(ctx: ActionContext) -> ActionResult:
    """Emit a custom event."""
    event = str(ctx.config.get("event", ""))
    if event.startswith(RESERVED_PREFIXES):
        raise ActionError(f"step '{ctx.node.id}': event name {event!r} is reserved for llmflow's own events")
    data = ctx.config.get("data")
    ctx.services.emit(event, ctx.path, {"data": data} if not isinstance(data, dict) else dict(data), ctx.attempt)
    return ActionResult()


async def approval(ctx: ActionContext) -> ActionResult:
    """Pause the run for a person; on resume, the decision given with --approve/--reject."""
    decision = ctx.services.approval_decision(ctx.path)
    message = str(ctx.config.get("message") or "approve to continue")
    timeout = ctx.node.options.get("timeout")
    asked = ctx.services.approval_asked(ctx.path)
    if timeout is not None and time.time() > asked + float(timeout):
        # A decision given too late never counts (``resume`` refuses one): the step fails as timed out.
        raise StepTimeout(
            f"step '{ctx.node.id}': no decision within the approval's timeout of {format_duration(float(timeout))}"
            f" (asked {format_moment(asked)})",
            path=ctx.path,
        )
    if decision is None:
        raise PauseRun(ctx.path, message)
    output = {"approved": bool(decision.get("approved")), "comment": decision.get("comment")}
    if not output["approved"]:
        comment = f": {output['comment']}" if output["comment"] else ""
        raise ActionError(f"step '{ctx.node.id}' was rejected{comment}", path=ctx.path, data={"output": output})
    return ActionResult(output=output)
