"""The built-in leaf actions, registered through the same door as plugin actions (``register_actions``)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from llmflow.plugins.manager import builtin_hook

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from llmflow.engine.actions import Action, ActionContext, ActionRegistry, ActionResult

#: Each built-in action: its kind, and the module and function that implement it.
_BUILTIN = {
    "run": ("shell", "run_command"),
    "llm": ("llm", "call_model"),
    "http": ("http", "send_request"),
    "memory": ("memory", "use_memory"),
    "python": ("python_call", "call_python"),
    "set": ("variables", "set_variables"),
    "write": ("files", "write_file"),
    "wait": ("control", "wait"),
    "fail": ("control", "fail"),
    "emit": ("control", "emit"),
    "approval": ("control", "approval"),
}


class DeferredAction:
    """A built-in action whose module is imported when a step first runs it, so that a run imports only the
    actions it uses (the ``llm`` action's module pulls in the providers' retry and rate-limit code).

    Attributes the engine looks for on an action (``cache_material``) are the function's.
    """

    __slots__ = ("_function", "_module", "_name")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name
        self._function: Action | None = None

    def load(self) -> Action:
        """The action's function (its module imported on first use)."""
        if self._function is None:
            self._function = getattr(import_module(f"{__name__}.{self._module}"), self._name)
        return self._function

    def __call__(self, ctx: ActionContext) -> Awaitable[ActionResult]:
        return self.load()(ctx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        return f"<built-in action {self._module}.{self._name}>"


def builtin_actions() -> dict[str, Action]:
    """Every built-in action by kind."""
    return {kind: DeferredAction(module, name) for kind, (module, name) in _BUILTIN.items()}


@builtin_hook  # before every other plugin, so that a plugin may replace a built-in action
def register_actions(registry: ActionRegistry) -> None:
    """Register the built-in actions."""
    for kind, action in builtin_actions().items():
        registry.register(kind, action)
