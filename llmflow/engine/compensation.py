"""Compensation: when a run fails, the ``compensate`` steps of completed nodes undo them, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.engine.frame import Frame, StepsView
from llmflow.engine.outcome import SUCCEEDED, Outcome, PauseRun
from llmflow.engine.resume import node_at, replay_index, static_path
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


async def compensate(engine: Engine, frame: Frame) -> list[str]:
    """Run the ``compensate`` steps of every completed node instance that has them; return the paths undone.

    Each compensation sees the run as it ended (``frame``) plus ``steps.<id>`` of the node it undoes. A
    compensated instance gets a ``compensated`` record: it (and the composites around it) counts as not
    done, so a resume runs it again. A compensation that fails is reported by its own ``step.failed`` and
    the others still run; the run stays failed either way.
    """
    state = engine.state
    undone: list[str] = []
    for path, record in _to_compensate(state.handle.records()):
        node = node_at(state.workflow, static_path(path))
        if node is None or not node.compensate:
            continue
        steps = StepsView(frame.steps, frame.steps.known)
        if node.named:
            steps.record(node.id, Outcome.from_record(record).view())
        child = Frame(
            inputs=frame.inputs,
            vars=frame.vars,
            steps=steps,
            static_base=node.path + "/",
            instance_base=path + "/",
            workflow_dir=frame.workflow_dir,
            env=frame.env,
        )
        state.emit("step.compensating", path, {"id": node.id})
        try:
            await engine.sequence(node.compensate, child)
        except (StepError, RunError, PauseRun) as error:
            reason = getattr(error, "message", None) or str(error)
            state.emit("step.compensated", path, {"id": node.id, "ok": False, "error": reason})
            continue
        state.handle.append({"p": path, "s": "compensated"})
        state.emit("step.compensated", path, {"id": node.id, "ok": True})
        undone.append(path)
    return undone
