"""Group, if/else and switch: run one nested sequence, chosen by conditions (or by a plugin's decision)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.engine.interception import choose_branch
from llmflow.engine.outcome import SUCCEEDED, Outcome

if TYPE_CHECKING:
    from llmflow.compiler.graph import GroupNode, IfNode, Node, SwitchNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine


async def execute_group(engine: Engine, node: GroupNode, frame: Frame, path: str) -> Outcome:
    """A nested sequence; its output is its last step's."""
    output, writes = await engine.sequence(node.steps, frame)
    return Outcome(SUCCEEDED, output=output, writes=writes)


async def _branch(
    engine: Engine,
    node: Node,
    frame: Frame,
    path: str,
    name: str | None,
    steps: tuple[Node, ...],
    decisions: list[dict[str, Any]] | None = None,
) -> Outcome:
    engine.state.emit("branch.selected", path, {"id": node.id, "branch": name})
    output, writes = await engine.sequence(steps, frame)
    extra: dict[str, Any] = {"branch": name}
    if decisions:
        extra["decisions"] = decisions
    return Outcome(SUCCEEDED, output=output, writes=writes, extra=extra)


async def execute_if(engine: Engine, node: IfNode, frame: Frame, path: str) -> Outcome:
    """``then`` when the test holds, else ``else`` (or nothing)."""
    if engine.state.interceptor is None:
        if engine.check(node.test, frame, node, "if"):
            return await _branch(engine, node, frame, path, "then", node.then)
        return await _branch(engine, node, frame, path, "else", node.otherwise)

    def natural() -> str:
        return "then" if engine.check(node.test, frame, node, "if") else "else"

    decisions: list[dict[str, Any]] = []
    name = choose_branch(engine, node, frame, path, natural, ("then", "else"), decisions)
    return await _branch(engine, node, frame, path, name, node.then if name == "then" else node.otherwise, decisions)


def _case(engine: Engine, node: SwitchNode, frame: Frame) -> str | None:
    """The branch the conditions choose: the first case whose ``when`` holds, else ``default`` (or none)."""
    for case in node.cases:
        if engine.check(case.when, frame, node, f"{case.name}.when"):
            return case.name
    return "default" if node.default is not None else None


async def execute_switch(engine: Engine, node: SwitchNode, frame: Frame, path: str) -> Outcome:
    """The first case whose ``when`` holds, else ``default``, else nothing."""
    decisions: list[dict[str, Any]] = []
    if engine.state.interceptor is None:
        name = _case(engine, node, frame)
    else:
        names = tuple(case.name for case in node.cases) + (("default",) if node.default is not None else ())
        name = choose_branch(engine, node, frame, path, lambda: _case(engine, node, frame), names, decisions)
    if name is None:
        engine.state.emit("branch.selected", path, {"id": node.id, "branch": None})
        return Outcome(SUCCEEDED, output=None, extra={"branch": None})
    steps = next((case.steps for case in node.cases if case.name == name), None)
    return await _branch(engine, node, frame, path, name, steps if steps is not None else node.default or (), decisions)
