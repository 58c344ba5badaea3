"""Safe conditions, sandboxed templates and the shell rule: everything that evaluates workflow expressions."""

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
