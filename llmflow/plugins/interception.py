"""The engine's interception port answered by the plugins' hooks (the first plugin that decides wins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pluggy

    from llmflow.compiler.graph import Node
    from llmflow.engine.interception import Decision, StepContext


class PluginInterceptor:
    """Implements ``llmflow.engine.interception.Interceptor`` by calling the ``firstresult`` hooks."""

    __slots__ = ("_hook",)

    def __init__(self, hook: pluggy.HookRelay) -> None:
        self._hook = hook

    def before_step(self, step: Node, context: StepContext) -> Decision | None:
        """Ask ``before_step``."""
        return cast("Decision | None", self._hook.before_step(step=step, context=context))

    def after_step(self, step: Node, context: StepContext, result: Mapping[str, Any]) -> Decision | None:
        """Ask ``after_step``."""
        return cast("Decision | None", self._hook.after_step(step=step, context=context, result=result))

    def on_error(self, step: Node, context: StepContext, error: Mapping[str, Any]) -> Decision | None:
        """Ask ``on_error``."""
        return cast("Decision | None", self._hook.on_error(step=step, context=context, error=error))

    def on_branch(self, step: Node, context: StepContext, branch: str | None) -> Decision | None:
        """Ask ``on_branch``."""
        return cast("Decision | None", self._hook.on_branch(step=step, context=context, branch=branch))

    def before_iteration(self, step: Node, context: StepContext, iteration: int) -> Decision | None:
        """Ask ``before_iteration``."""
        return cast("Decision | None", self._hook.before_iteration(step=step, context=context, iteration=iteration))
