"""The exceptions llmflow raises, as one documented tree.

::

    LlmflowError                    base of everything below
    ├── WorkflowError               the workflow file is not valid; carries every Diagnostic   (exit 2)
    ├── UsageError                  a bad command-line argument, input value or option         (exit 2)
    │   ├── InputError              an input value does not match its declared type
    │   └── PluginError             a plugin could not be loaded, or no plugin registers a step's action
    ├── ExpressionError             a condition or template failed to compile or evaluate
    ├── StepError                   a step failed while running; carries the step path        (exit 1)
    │   ├── CommandError            a `run` step exited non-zero (exit code, stderr tail)
    │   ├── StepTimeout             a step ran past its `timeout`
    │   ├── ActionError             any other action failure (write refused, python raised, ...)
    │   └── ProviderError           a model or HTTP provider failed
    ├── RunError                    the run as a whole cannot go on                           (exit 1)
    │   ├── LimitExceeded           a run limit (timeout, tokens, cost, iterations) was hit
    │   ├── RunAborted              a plugin decided to abort the run
    │   └── RunCancelled            the run was cancelled from outside
    └── StoreError                  the run store refused an operation                        (exit 2)
        ├── RunNotFound             no run matches an id or prefix
        ├── RunLocked               another process drives the run (names the holder)
        └── JournalCorrupt          a journal record failed its checksum or does not parse

The command-line layer maps these classes to exit codes in one place (``llmflow.cli.exits``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmflow.diagnostics import Diagnostic


class LlmflowError(Exception):
    """Base class of every error llmflow raises on purpose."""


class WorkflowError(LlmflowError):
    """A workflow file failed to load, validate or compile; ``diagnostics`` lists every problem."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        first = str(self.diagnostics[0]) if self.diagnostics else "invalid workflow"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))


class UsageError(LlmflowError):
    """A command-line argument, option or input value is wrong."""


class InputError(UsageError):
    """An input value does not match its declared type or constraints."""


class ExpressionError(LlmflowError):
    """A condition or template could not be compiled or evaluated.

    ``offset`` is the 0-based character offset inside the expression source when known, so the compiler
    can point at the exact column of a problem.
    """

    def __init__(self, message: str, *, source: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset


class StepError(LlmflowError):
    """A step failed; ``kind`` is a short name used by ``retry.on`` (``command``, ``timeout`` ...)."""

    kind = "error"

    def __init__(self, message: str, *, path: str = "", data: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.data = dict(data or {})


class CommandError(StepError):
    """A shell command exited with a non-zero code."""

    kind = "command"


class StepTimeout(StepError):
    """A step ran longer than its timeout."""

    kind = "timeout"


class ActionError(StepError):
    """An action refused its input or failed for a reason of its own."""

    kind = "action"


class ProviderError(StepError):
    """A model or HTTP provider failed (``status`` holds the HTTP status when there is one)."""

    kind = "provider"

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, path=path, data={"status": status} if status else None)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class PluginError(UsageError):
    """A plugin could not be loaded or registered (the message names the file or entry point), or a step
    names an action no plugin registers (the message names the step and where it is written)."""


class RunError(LlmflowError):
    """The run as a whole cannot continue."""


class LimitExceeded(RunError):
    """A run limit was reached; the run stops cleanly and can be resumed."""


class RunAborted(RunError):
    """A plugin decided to abort the run."""


class RunCancelled(RunError):
    """The run was cancelled from outside (``llmflow cancel``)."""


class StoreError(LlmflowError):
    """The run store refused an operation."""


class UnstorableValue(StoreError):
    """A value the journal cannot hold as JSON (an integer too long to write, nesting too deep …); ``reason``
    says why in words for a step's error."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RunNotFound(StoreError):
    """No run matches the given id, prefix or selector."""


class RunLocked(StoreError):
    """Another process holds the run's lock."""


class JournalCorrupt(StoreError):
    """A journal record failed its checksum or could not be parsed."""
