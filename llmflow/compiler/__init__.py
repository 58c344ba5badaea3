"""Stage three: compile a checked document into an immutable graph of nodes.

The names below are imported on first use: running a workflow whose graph comes from the cache needs the
graph classes (``llmflow.compiler.graph``) but not the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmflow.compiler.core import compile_document
    from llmflow.compiler.graph import Node, Workflow
    from llmflow.compiler.subworkflows import CompileSession

__all__ = ["CompileSession", "Node", "Workflow", "compile_document"]

_HOMES = {
    "CompileSession": "llmflow.compiler.subworkflows",
    "Node": "llmflow.compiler.graph",
    "Workflow": "llmflow.compiler.graph",
    "compile_document": "llmflow.compiler.core",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'llmflow.compiler' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
