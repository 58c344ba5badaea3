"""Group, if/else and switch: run one nested sequence, chosen by conditions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmflow.engine.outcome import SUCCEEDED, Outcome

if TYPE_CHECKING:
    from llmflow.compiler.graph import GroupNode, IfNode, Node, SwitchNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine


async def execute_group(engine: Engine, node: GroupNode, frame: Frame, path: str) -> Outcome:
    """A nested sequence; its output is its last step's."""
    output, writes = await engine.sequence(node.steps, frame)
    return Outcome(SUCCEEDED, output=output, writes=writes)


async def _branch(engine: Engine, node: Node, frame: Frame, path: str, name: str, steps: tuple[Node, ...]) -> Outcome:
    engine.state.emit("branch.selected", path, {"id": node.id, "branch": name})
    output, writes = await engine.sequence(steps, frame)
    return Outcome(SUCCEEDED, output=output, writes=writes, extra={"branch": name})


async def execute_if(engine: Engine, node: IfNode, frame: Frame, path: str) -> Outcome:
    """``then`` when the test holds, else ``else`` (or nothing)."""
    if engine.check(node.test, frame, node, "if"):
        return await _branch(engine, node, frame, path, "then", node.then)
    return await _branch(engine, node, frame, path, "else", node.otherwise)


async def execute_switch(engine: Engine, node: SwitchNode, frame: Frame, path: str) -> Outcome:
    """The first case whose ``when`` holds, else ``default``, else nothing."""
    for case in node.cases:
        if engine.check(case.when, frame, node, f"{case.name}.when"):
            return await _branch(engine, node, frame, path, case.name, case.steps)
    if node.default is not None:
        return await _branch(engine, node, frame, path, "default", node.default)
    engine.state.emit("branch.selected", path, {"id": node.id, "branch": None})
    return Outcome(SUCCEEDED, output=None, extra={"branch": None})
