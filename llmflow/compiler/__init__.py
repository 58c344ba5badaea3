"""Stage three: compile a checked document into an immutable graph of nodes."""

from llmflow.compiler.core import CompileSession, compile_document
from llmflow.compiler.graph import Node, Workflow

__all__ = ["CompileSession", "Node", "Workflow", "compile_document"]
