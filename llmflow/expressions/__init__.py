"""Safe conditions, sandboxed templates and the shell rule: everything that evaluates workflow expressions.

The names below are imported on first use, so that reading a compiled graph (from the graph cache) loads
only the expression kinds it holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmflow.expressions.conditions import FUNCTIONS, Condition, compile_condition
    from llmflow.expressions.references import Reference
    from llmflow.expressions.shell import ShellCommand, ShellTemplate, compile_shell
    from llmflow.expressions.templates import (
        Template,
        ValueTemplate,
        compile_template,
        compile_value,
        is_template,
        stringify,
    )

__all__ = [
    "FUNCTIONS",
    "Condition",
    "Reference",
    "ShellCommand",
    "ShellTemplate",
    "Template",
    "ValueTemplate",
    "compile_condition",
    "compile_shell",
    "compile_template",
    "compile_value",
    "is_template",
    "stringify",
]

_HOMES = {
    "FUNCTIONS": "conditions",
    "Condition": "conditions",
    "compile_condition": "conditions",
    "Reference": "references",
    "ShellCommand": "shell",
    "ShellTemplate": "shell",
    "compile_shell": "shell",
    "Template": "templates",
    "ValueTemplate": "templates",
    "compile_template": "templates",
    "compile_value": "templates",
    "is_template": "templates",
    "stringify": "templates",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'llmflow.expressions' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"llmflow.expressions.{_HOMES[name]}"), name)
