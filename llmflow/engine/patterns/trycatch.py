"""try / catch / finally: a failed body's variable writes are rolled back before ``catch`` runs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from llmflow.engine.outcome import SUCCEEDED, NodeFailed, Outcome, PauseRun, failed_records
from llmflow.engine.resume import CAUGHT, UNFINISHED
from llmflow.errors import RunError, StepError

if TYPE_CHECKING:
    from llmflow.compiler.graph import TryNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine


class _AlreadyCaught(Exception):
    """The journal says this try's body failed before: go to ``catch``."""


def _caught(failure: StepError) -> dict[str, Any]:
    """``error`` inside ``catch``: ``message``, ``kind``, ``step`` and the failure's own data."""
    info = dict(failure.info) if isinstance(failure, NodeFailed) else {"message": failure.message}
    info.setdefault("kind", failure.kind)
    info.setdefault("step", failure.path)
    info.pop("output", None)
    return info


async def _finally_of_unfinished(engine: Engine, node: TryNode, frame: Frame, path: str) -> None:
    """Run ``finally`` for a try that failed or was stopped. The journal says so first: a resume that runs the
    try again runs the whole of its ``finally`` after it (``execute_try``), even if this one is cut short."""
    engine.state.handle.append({"p": path, "s": "unfinished"})
    await engine.sequence(node.finally_, frame)


async def execute_try(engine: Engine, node: TryNode, frame: Frame, path: str) -> Outcome:
    """Run the body; on failure restore the variables and run ``catch`` (which sees ``error``).

    ``finally`` runs after the body or catch however they ended, a pause aside (the try goes on when the run
    resumes): also when they were cancelled (the try's or an enclosing ``timeout``, a ``fail_fast``
    sibling's failure, Ctrl-C, the run's timeout), before the cancellation goes on. When the try fails or
    is cancelled, the journal marks it ``unfinished`` before its ``finally`` runs, so that a resume, which
    runs the try again, runs the whole of its ``finally`` again too (whether or not it failed as well).
    """
    if node.finally_ and path + UNFINISHED in engine.state.replay:
        # The try failed or was stopped before, and its finally began: now it runs again, and so does the
        # whole of its finally (its records were kept until now for the steps that read their results).
        engine.reset(f"{path}/finally")
    snapshot = dict(frame.vars)
    writes: dict[str, Any] = {}
    earlier = engine.state.replay.get(path + CAUGHT)
    caught: dict[str, Any] | None = dict(earlier["e"]) if earlier is not None else None
    try:
        try:
            if caught is not None:  # a resume: the body failed before and catch had begun
                raise _AlreadyCaught
            output, writes = await engine.sequence(node.body, frame)
        except (StepError, _AlreadyCaught) as failure:
            if node.catch is None:
                raise
            frame.vars.clear()
            frame.vars.update(snapshot)
            if caught is None:
                assert isinstance(failure, StepError)
                caught = _caught(failure)
                record: dict[str, Any] = {"p": path, "s": "caught", "e": caught}
                failed = failed_records(failure, frame.steps)
                if failed:
                    record["f"] = failed
                engine.state.handle.append(record)
            else:
                # A resume inside catch: the body's results as catch saw them.
                engine.restore_results(node.body, frame)
                engine.restore_failed(frame, earlier)
            engine.state.emit("branch.selected", path, {"id": node.id, "branch": "catch", "error": caught})
            output, writes = await engine.sequence(node.catch, frame.with_locals(error=caught))
    except (StepError, RunError):
        if node.finally_:
            await _finally_of_unfinished(engine, node, frame, path)
        raise
    except asyncio.CancelledError:
        if node.finally_:
            # The try was stopped, and says so: a failure (or an approval) in its finally does not replace the
            # cancellation. A second Ctrl-C does not wait for the finally.
            with contextlib.suppress(StepError, RunError, PauseRun):
                await _finally_of_unfinished(engine, node, frame, path)
        raise
    if node.finally_:
        _, finally_writes = await engine.sequence(node.finally_, frame)
        writes.update(finally_writes)
    extra: dict[str, Any] = {"branch": "catch" if caught is not None else "try"}
    if caught is not None:
        extra["caught"] = caught
    return Outcome(SUCCEEDED, output=output, writes=writes, extra=extra)
