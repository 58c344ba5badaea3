"""The built-in leaf actions, registered through the same door as plugin actions (``register_actions``)."""

from __future__ import annotations

from llmflow.engine.actions import Action, ActionRegistry
from llmflow.plugins.manager import builtin_hook


def builtin_actions() -> dict[str, Action]:
    """Every built-in action by kind."""
    from llmflow.actions import control, files, http, llm, memory, python_call, shell, variables

    return {
        "run": shell.run_command,
        "llm": llm.call_model,
        "http": http.send_request,
        "memory": memory.use_memory,
        "python": python_call.call_python,
        "set": variables.set_variables,
        "write": files.write_file,
        "wait": control.wait,
        "fail": control.fail,
        "emit": control.emit,
        "approval": control.approval,
    }


@builtin_hook  # before every other plugin, so that a plugin may replace a built-in action
def register_actions(registry: ActionRegistry) -> None:
    """Register the built-in actions."""
    for kind, action in builtin_actions().items():
        registry.register(kind, action)
