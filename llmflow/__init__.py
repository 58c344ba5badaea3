"""llmflow: run LLM pipelines written as declarative YAML."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from llmflow.compiler.graph import Workflow
    from llmflow.diagnostics import Diagnostic

__all__ = ["__version__", "load", "validate"]


def load(path: str | Path, **options: Any) -> Workflow:
    """Load, validate and compile the workflow at ``path``.

    Raises :class:`llmflow.errors.WorkflowError` carrying every diagnostic when the file is not valid.
    """
    from llmflow.frontend import load_workflow

    return load_workflow(path, **options)


def validate(path: str | Path, **options: Any) -> list[Diagnostic]:
    """Return every diagnostic for the workflow at ``path`` (an empty list when it is valid)."""
    from llmflow.frontend import validate_workflow

    return validate_workflow(path, **options)
