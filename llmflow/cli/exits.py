"""Exit codes, and the one place that maps error classes to them."""

from __future__ import annotations

from llmflow import errors

SUCCEEDED = 0
FAILED = 1
USAGE = 2
WAITING = 3
INTERRUPTED = 130

_BY_CLASS: tuple[tuple[type[BaseException], int], ...] = (
    (errors.WorkflowError, USAGE),
    (errors.UsageError, USAGE),
    (errors.StoreError, USAGE),
    (errors.ExpressionError, FAILED),
    (errors.StepError, FAILED),
    (errors.RunError, FAILED),
    (errors.LlmflowError, FAILED),
)


def exit_code_for(error: BaseException) -> int:
    """The process exit code for an error that ends a command."""
    for cls, code in _BY_CLASS:
        if isinstance(error, cls):
            return code
    return FAILED
