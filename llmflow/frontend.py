"""The front end in one call: load → validate → compile a workflow file."""

from __future__ import annotations

from pathlib import Path

from llmflow.compiler.graph import Workflow
from llmflow.diagnostics import Diagnostic, sort_key
from llmflow.errors import WorkflowError


def load_workflow(path: str | Path, *, display_name: str | None = None) -> Workflow:
    """Load, validate and compile ``path``; raise WorkflowError carrying every diagnostic."""
    from llmflow.compiler.core import Compiler, CompileSession
    from llmflow.spec.loader import load_file
    from llmflow.spec.validator import validate_document

    doc = load_file(path, display_name=display_name)
    problems = validate_document(doc)
    if any(problem.severity == "error" for problem in problems):
        raise WorkflowError(sorted(problems, key=sort_key))
    try:
        return Compiler(doc, CompileSession()).compile()
    except WorkflowError as error:
        raise WorkflowError(sorted(error.diagnostics, key=sort_key)) from None


def validate_workflow(path: str | Path, *, display_name: str | None = None) -> list[Diagnostic]:
    """Every diagnostic for ``path``, sorted by position; an empty list means the workflow is valid."""
    try:
        load_workflow(path, display_name=display_name)
    except WorkflowError as error:
        return error.diagnostics
    return []
