"""Compensation: when a run fails, the ``compensate`` steps of completed nodes undo them, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.engine.frame import Frame, StepsView
from llmflow.engine.outcome import SUCCEEDED, Outcome, PauseRun
from llmflow.engine.resume import COMPENSATING, node_at, replay_index, static_path
from llmflow.errors import RunError, StepError

if TYPE_CHECKING:
    from llmflow.engine.runner import Engine


def _to_compensate(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Completed node instances, newest completion first (compensation steps themselves excluded).

    What completed in an earlier attempt of a retried composite is undone too: its effects happened.
    """
    done = replay_index(record for record in records if record.get("s") != "retry")
    return [
        (path, record)
        for path, record in reversed(done.items())
        if record.get("s") == SUCCEEDED and "/compensate/" not in f"/{static_path(path)}/"
    ]


async def compensate(engine: Engine, frame: Frame, error: str | None, failed_step: str | None) -> list[str]:
    """Run the ``compensate`` steps of every completed node instance that has them; return the paths undone.

    Each compensation sees the run as it ended (``frame``) plus ``steps.<id>`` of the node it undoes and the
    local names that node saw (the map item or loop variable, ``index``, ``loop``), kept in its record. A
    compensated instance gets a ``compensated`` record: it (and the composites around it) counts as not
    done, so a resume runs it again. A compensation that fails is reported by its own ``step.failed`` and
    the others still run; the run stays failed either way.

    Before the first compensation starts, the run's failure (``error``, ``failed_step``) is journaled: a
    process killed while compensating leaves a run whose resume finishes the compensation (the ones that
    completed are restored) and fails the same way, instead of running the workflow again, which would try
    the failed step once more and could go on past work already undone.
    """
    state = engine.state
    undone: list[str] = []
    todo = [
        (path, record, node)
        for path, record in _to_compensate(state.handle.records())
        if (node := node_at(state.workflow, static_path(path))) is not None and node.compensate
    ]
    if todo and COMPENSATING not in state.replay:
        state.handle.append({"p": "", "s": "compensating", "e": {"message": error, "step": failed_step}})
    for path, record, node in todo:
        steps = StepsView(frame.steps, frame.steps.known)
        if node.named:
            steps.record(node.id, Outcome.from_record(record).view())
        names = record.get("l")
        child = Frame(
            inputs=frame.inputs,
            vars=frame.vars,
            steps=steps,
            locals=dict(names) if isinstance(names, dict) else None,
            static_base=node.path + "/",
            instance_base=path + "/",
            workflow_dir=frame.workflow_dir,
            env=frame.env,
        )
        state.emit("step.compensating", path, {"id": node.id})
        try:
            await engine.sequence(node.compensate, child)
        except (StepError, RunError, PauseRun) as failure:
            reason = getattr(failure, "message", None) or str(failure)
            state.emit("step.compensated", path, {"id": node.id, "ok": False, "error": reason})
            continue
        state.handle.append({"p": path, "s": "compensated"})
        state.emit("step.compensated", path, {"id": node.id, "ok": True})
        undone.append(path)
    return undone
