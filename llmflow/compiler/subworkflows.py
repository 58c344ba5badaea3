"""Stage three, sub-workflows: each file loaded, validated and compiled once per session, cycles refused."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.compiler.graph import Workflow
from llmflow.compiler.inputs import value_problem
from llmflow.diagnostics import Diagnostic, sort_key
from llmflow.errors import WorkflowError
from llmflow.spec.document import Document
from llmflow.spec.validator import suggest

if TYPE_CHECKING:
    from llmflow.compiler.core import Compiler, NodeFrame


@dataclass(slots=True)
class CompileSession:
    """State shared by the compilers of one workflow and its sub-workflows."""

    compiled: dict[str, Workflow] = field(default_factory=dict)
    failed: dict[str, WorkflowError] = field(default_factory=dict)
    warnings: dict[str, list[Diagnostic]] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # files whose diagnostics were passed on to a parent
    user_ids: dict[str, frozenset[str]] = field(default_factory=dict)

    def compile_file(self, file: Path, display: str, chain: tuple[str, ...]) -> Workflow:
        """Load, validate and compile ``file`` once (a failure is remembered and raised again)."""
        key = str(file)
        if key in self.failed:
            raise self.failed[key]
        if key not in self.compiled:
            from llmflow.compiler.core import Compiler  # core imports this module: import it when needed
            from llmflow.spec.loader import load_file
            from llmflow.spec.validator import validate_document

            try:
                doc = load_file(file, display_name=display)
                problems = validate_document(doc)
                if any(problem.severity == "error" for problem in problems):
                    raise WorkflowError(sorted(problems, key=sort_key))
                compiler = Compiler(doc, self, include_chain=chain)
                self.compiled[key] = compiler.compile()
                self.warnings[key] = [*problems, *compiler.diagnostics]
            except WorkflowError as error:
                self.failed[key] = error
                raise
        return self.compiled[key]


def compile_sub_workflow(compiler: Compiler, target: str, arguments: dict[str, Any], frame: NodeFrame) -> Workflow:
    """The workflow a ``workflow:`` node runs, its own problems passed on once and its inputs checked."""
    path = (*frame.doc_path, "workflow")
    if "{{" in target or "{%" in target:
        compiler.error_at("bad-workflow-path", "a sub-workflow path must be a plain path, not a template", path)
        return _empty_workflow(target)
    file = (Path(compiler.doc.directory) / target).resolve()
    chain = (*compiler.include_chain, str(Path(compiler.doc.directory, Path(compiler.doc.file).name).resolve()))
    if str(file) in chain:
        root = Path(chain[0]).parent
        names = " -> ".join(_relative(Path(item), root) for item in (*chain, str(file)))
        compiler.error_at("include-cycle", f"sub-workflows include each other in a cycle: {names}", path)
        return _empty_workflow(target)
    if not file.is_file():
        compiler.error_at("workflow-not-found", f"sub-workflow file '{target}' does not exist", path)
        return _empty_workflow(target)
    try:
        sub = compiler.session.compile_file(file, _display(target, compiler.doc, file), chain)
        if str(file) not in compiler.session.reported:
            compiler.session.reported.add(str(file))
            compiler.diagnostics.extend(compiler.session.warnings.get(str(file), ()))
    except WorkflowError as error:
        if str(file) not in compiler.session.reported:  # a file used twice shows its own problems once
            compiler.session.reported.add(str(file))
            compiler.diagnostics.extend(error.diagnostics)
        count = len(error.diagnostics)
        message = f"sub-workflow '{target}' is not valid ({count} problem{'s' * (count != 1)})"
        compiler.error_at("invalid-workflow", message, path)
        return _empty_workflow(target)
    for name in arguments:
        if name not in sub.inputs:
            match = suggest(name, sub.inputs)
            hint = f"did you mean '{match}'?" if match else None
            message = f"sub-workflow '{target}' has no input '{name}'"
            compiler.error_at("unknown-input", message, (*frame.doc_path, "with", name), key=True, hint=hint)
        elif _literal(value := arguments[name]) and not (value is None and not sub.inputs[name].required):
            spec = sub.inputs[name]
            problem = value_problem(value, spec.type, dict(spec.constraints))
            if problem:
                shown = json.dumps(value)[:80]
                message = f"sub-workflow '{target}': the input '{name}' is {shown}, {problem}"
                compiler.error_at("bad-input", message, (*frame.doc_path, "with", name))
    for name, spec in sub.inputs.items():
        if spec.required and not spec.has_default and name not in arguments:
            compiler.error_at("missing-input", f"sub-workflow '{target}' needs the input '{name}'", path)
    return sub


def _literal(value: Any) -> bool:
    """True for a value written as it is: not a text (a template, or parsed by the input's type when the
    step runs) and with no text inside."""
    if isinstance(value, str):
        return False
    if isinstance(value, list):
        return all(_literal(item) for item in value)
    if isinstance(value, dict):
        return all(_literal(item) for item in value.values())
    return True


def _display(target: str, doc: Document, file: Path) -> str:
    """The name diagnostics give the sub-workflow ``file``: ``target`` beside the parent's name, tidied
    (``flows/../lib/a.yaml`` is ``lib/a.yaml``, as CI annotations and SARIF need to find the file) unless a
    symbolic link makes the tidy name another file."""
    parent = Path(doc.file).parent
    shown = str(parent / target) if str(parent) not in ("", ".") else target
    tidy = os.path.normpath(shown)
    return tidy if tidy != shown and os.path.realpath(tidy) == str(file) else shown


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _empty_workflow(target: str) -> Workflow:
    return Workflow(name="invalid", file=target, path=Path(target))
