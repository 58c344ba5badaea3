"""One executor per pattern node, registered in the engine's dispatch table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any

Executor = Callable[..., Awaitable[Any]]

#: Pattern executors by node class name: their module here and function,
#: ``(engine, node, frame, instance path) -> Outcome``.
EXECUTORS: dict[str, tuple[str, str]] = {
    "GroupNode": ("branching", "execute_group"),
    "IfNode": ("branching", "execute_if"),
    "SwitchNode": ("branching", "execute_switch"),
    "LoopNode": ("loop", "execute_loop"),
    "ParallelNode": ("concurrent", "execute_parallel"),
    "MapNode": ("concurrent", "execute_map"),
    "TryNode": ("trycatch", "execute_try"),
    "StreamNode": ("stream", "execute_stream"),
    "WorkflowNode": ("subworkflow", "execute_workflow"),
}
_LOADED: dict[str, Executor] = {}


def executor_for(kind: str) -> Executor | None:
    """The executor of a pattern node class; its module is imported when a run first meets such a node (a run
    imports only the patterns it has)."""
    executor = _LOADED.get(kind)
    if executor is None and kind in EXECUTORS:
        module, name = EXECUTORS[kind]
        executor = _LOADED[kind] = getattr(import_module(f"{__name__}.{module}"), name)
    return executor
