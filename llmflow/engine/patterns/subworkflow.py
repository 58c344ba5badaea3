"""Sub-workflows: another workflow file run with inputs; its ``outputs`` become the node's output."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llmflow.engine.frame import Frame, StepsView
from llmflow.engine.inputs import resolve_inputs
from llmflow.engine.outcome import SUCCEEDED, Outcome
from llmflow.errors import ActionError, ExpressionError, InputError

if TYPE_CHECKING:
    from llmflow.compiler.graph import WorkflowNode
    from llmflow.engine.runner import Engine


async def execute_workflow(engine: Engine, node: WorkflowNode, frame: Frame, path: str) -> Outcome:
    """Run the sub-workflow in a frame of its own; nested instance paths start with this node's path."""
    sub = node.workflow
    arguments = engine.render(node.arguments, frame, node, "with")
    try:
        inputs = resolve_inputs(sub.inputs, arguments)
    except InputError as error:
        raise ActionError(f"sub-workflow '{node.id}': {error}", path=path) from None
    known = frozenset(child.id for child in sub.walk() if child.named)
    child = Frame(
        inputs=inputs,
        vars=dict(sub.variables),
        steps=StepsView(None, known),
        static_base="",
        instance_base=path + "/",
        workflow_dir=str(engine.state.source_dir_for(sub)),
        env=frame.env,
    )
    if sub.env is not None:
        try:
            rendered = sub.env.render(engine.context(child))
        except ExpressionError as error:
            raise ActionError(f"sub-workflow '{node.id}', env: {error.message}", path=path) from None
        base = frame.env if frame.env is not None else engine.env_base
        child.env = {**base, **{str(key): str(value) for key, value in rendered.items()}}
    if not sub.hooks:
        return Outcome(SUCCEEDED, output=await engine.run_workflow(sub, child))
    outputs = await _with_hooks(engine, node, child, path)
    return Outcome(SUCCEEDED, output=outputs)


async def _with_hooks(engine: Engine, node: WorkflowNode, child: Frame, path: str) -> Any:
    """Run the sub-workflow with its own ``hooks:`` listening to the events of its steps (and only those).

    The node completes once the hooks its steps started have finished; a ``required`` hook that failed
    fails the node. Hooks still run for the steps of a sub-workflow that failed, and are cancelled with it.
    """
    from llmflow.engine.hooks import HookRunner

    hooks = HookRunner(engine, child, node.workflow.hooks, scope=path + "/")
    hooks.attach()
    try:
        outputs = await engine.run_workflow(node.workflow, child)
    except asyncio.CancelledError:
        hooks.detach()
        await hooks.cancel()
        raise
    except BaseException:
        hooks.detach()
        await hooks.drain()
        raise
    hooks.detach()
    await hooks.drain()
    if hooks.failure is not None:
        raise ActionError(f"sub-workflow '{node.id}': {hooks.failure}", path=path)
    return outputs
