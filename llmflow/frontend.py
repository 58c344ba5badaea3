"""The front end in one call: load → validate → compile a workflow file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmflow.compiler.graph import Workflow
from llmflow.errors import WorkflowError

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmflow.diagnostics import Diagnostic
    from llmflow.spec.document import Document


def check_workflow(path: str | Path, *, display_name: str | None = None) -> tuple[Workflow | None, list[Diagnostic]]:
    """Load, validate and compile ``path``: the workflow (None when there is an error) and every diagnostic.

    The diagnostics are sorted by position and include warnings, which do not stop compiling. A file compiled
    before with the same content (and the same included files) comes from the graph cache.
    """
    from llmflow import graphcache

    entry = graphcache.entry(path, display_name if display_name is not None else str(path))
    if entry is not None:
        remembered = graphcache.recall(entry)
        if remembered is not None:
            return remembered[0], list(remembered[1])
    workflow, diagnostics = _compile_file(path, display_name)
    if workflow is not None and entry is not None:
        graphcache.remember(entry, workflow, diagnostics)
    return workflow, diagnostics


def check_text(source: bytes, display_name: str, *, directory: str) -> tuple[Workflow | None, list[Diagnostic]]:
    """As :func:`check_workflow`, for a workflow that is not a file (standard input): shown as ``display_name``,
    its sub-workflow paths resolved against ``directory``, and never cached."""
    from llmflow.spec.loader import load_text

    return _compile(lambda: load_text(source, display_name, directory=directory))


def _compile_file(path: str | Path, display_name: str | None) -> tuple[Workflow | None, list[Diagnostic]]:
    from llmflow.spec.loader import load_file

    return _compile(lambda: load_file(path, display_name=display_name))


def _compile(load: Callable[[], Document]) -> tuple[Workflow | None, list[Diagnostic]]:
    from llmflow.compiler.core import Compiler
    from llmflow.compiler.subworkflows import CompileSession
    from llmflow.diagnostics import sort_key
    from llmflow.spec.validator import validate_document

    try:
        doc = load()
    except WorkflowError as error:
        return None, sorted(error.diagnostics, key=sort_key)
    problems = validate_document(doc)
    if any(problem.severity == "error" for problem in problems):
        return None, sorted(problems, key=sort_key)
    compiler = Compiler(doc, CompileSession())
    try:
        workflow = compiler.compile()
    except WorkflowError as error:
        return None, sorted([*problems, *error.diagnostics], key=sort_key)
    return workflow, sorted([*problems, *compiler.diagnostics], key=sort_key)


def load_workflow(path: str | Path, *, display_name: str | None = None) -> Workflow:
    """Load, validate and compile ``path``; raise WorkflowError carrying every diagnostic on an error."""
    workflow, diagnostics = check_workflow(path, display_name=display_name)
    if workflow is None:
        raise WorkflowError(diagnostics)
    return workflow


def validate_workflow(path: str | Path, *, display_name: str | None = None) -> list[Diagnostic]:
    """Every diagnostic for ``path`` (errors and warnings), sorted by position; empty when all is well."""
    return check_workflow(path, display_name=display_name)[1]
