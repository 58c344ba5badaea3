"""Loops: ``for_each``, ``times``, ``while`` (checked before) and ``until`` (checked after); plugins may break."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.engine.interception import IterationGate
from llmflow.engine.outcome import SUCCEEDED, Outcome, jsonable
from llmflow.errors import ActionError
from llmflow.expressions.values import a_type, whole_number

if TYPE_CHECKING:
    from llmflow.compiler.graph import LoopNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine


def _as_list(value: Any, node: LoopNode, path: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [{"key": key, "value": item} for key, item in value.items()]
    if isinstance(value, str):
        return value.splitlines()
    raise ActionError(f"loop '{node.id}': for_each must give a list, not {a_type(value)}", path=path)


def _count(value: Any, node: LoopNode, path: str) -> int:
    count = whole_number(value)
    if count is None:
        raise ActionError(f"loop '{node.id}': times must be a whole number, not {value!r}", path=path)
    if count < 0:
        raise ActionError(f"loop '{node.id}': times cannot be negative ({count})", path=path)
    return count


async def execute_loop(engine: Engine, node: LoopNode, frame: Frame, path: str) -> Outcome:
    """Iterations share the run variables; each has its own step results; output lists iteration outputs."""
    items = None
    if node.for_each is not None:
        rendered = engine.render(node.for_each, frame, node, "for_each")
        items = _as_list(jsonable(rendered, f"for_each of loop '{node.id}'", path), node, path)
    total = len(items) if items is not None else None
    if node.times is not None:
        total = _count(engine.render(node.times, frame, node, "times"), node, path)
    if total is not None and total > node.max_iterations:
        message = f"loop '{node.id}' would run {total} iterations, over its max_iterations ({node.max_iterations})"
        raise ActionError(message, path=path)
    outputs: list[Any] = []
    writes: dict[str, Any] = {}
    index = 0
    static_base = node.path + "/"
    gate = IterationGate(engine, node, path) if engine.state.interceptor is not None else None
    while total is None or index < total:
        item = items[index] if items is not None else index
        names = {node.variable: item, "index": index, "loop": {"iteration": index + 1, "index": index}}
        child = frame.nested(static_base, f"{path}[{index}]/", locals=names)
        if node.while_ is not None and not engine.check(node.while_, child, node, "while", path):
            break
        # Only an iteration that would run counts: a `while` false right after the last allowed one is done.
        if index >= node.max_iterations:
            message = f"loop '{node.id}' stopped after max_iterations ({node.max_iterations}) without finishing"
            raise ActionError(message, path=path)
        if gate is not None and gate.stops(child, index):
            break
        engine.state.emit("loop.iteration", path, {"id": node.id, "iteration": index + 1})
        output, written = await engine.sequence(node.steps, child)
        outputs.append(output)
        writes.update(written)
        index += 1
        if node.until is not None and engine.check(node.until, child, node, "until", path):
            break
    extra: dict[str, Any] = {"iterations": index}
    if gate is not None and gate.decisions:
        extra["decisions"] = gate.decisions
    return Outcome(SUCCEEDED, output=outputs, writes=writes, extra=extra)
