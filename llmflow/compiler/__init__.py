"""Stage three: compile a checked document into an immutable graph of nodes."""

from llmflow.compiler.core import compile_document
from llmflow.compiler.graph import Node, Workflow
from llmflow.compiler.subworkflows import CompileSession

__all__ = ["CompileSession", "Node", "Workflow", "compile_document"]
