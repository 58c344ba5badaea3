"""Control actions: ``wait``, ``fail``, ``emit`` and the ``approval`` gate."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.engine.outcome import PauseRun
from llmflow.errors import ActionError, StepTimeout

_RESERVED = (
    "run.",
    "step.",
    "branch.",
    "loop.",
    "map.",
    "parallel.",
    "stream.",
    "llm.",
    "checkpoint.",
    "hook.",
)


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
    if event.startswith(_RESERVED):
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
        since = datetime.fromtimestamp(asked, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise StepTimeout(
            f"step '{ctx.node.id}': no decision within the approval's timeout of {_span(float(timeout))} "
            f"(asked {since})",
            path=ctx.path,
        )
    if decision is None:
        raise PauseRun(ctx.path, message)
    output = {"approved": bool(decision.get("approved")), "comment": decision.get("comment")}
    if not output["approved"]:
        comment = f": {output['comment']}" if output["comment"] else ""
        raise ActionError(f"step '{ctx.node.id}' was rejected{comment}", path=ctx.path, data={"output": output})
    return ActionResult(output=output)


def _span(seconds: float) -> str:
    """``90`` → ``1m30s``: a duration as people write it."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g}s"
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{count}{unit}" for count, unit in parts if count)
