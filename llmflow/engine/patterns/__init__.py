"""One executor per pattern node, registered in the engine's dispatch table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from llmflow.engine.patterns import branching, concurrent, loop, stream, subworkflow, trycatch

#: Pattern executors by node class name: ``(engine, node, frame, instance path) -> Outcome``.
EXECUTORS: dict[str, Callable[..., Awaitable[Any]]] = dict(
    {
        "GroupNode": branching.execute_group,
        "IfNode": branching.execute_if,
        "SwitchNode": branching.execute_switch,
        "LoopNode": loop.execute_loop,
        "ParallelNode": concurrent.execute_parallel,
        "MapNode": concurrent.execute_map,
        "TryNode": trycatch.execute_try,
        "StreamNode": stream.execute_stream,
        "WorkflowNode": subworkflow.execute_workflow,
    }
)
