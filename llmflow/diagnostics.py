"""Diagnostics: one problem found in a workflow file, with its location."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a workflow file.

    ``line`` and ``column`` are 1-based; ``path`` is the location inside the document in dotted form
    (``steps[2].run``), empty for problems that concern the whole file.
    """

    code: str
    message: str
    file: str
    line: int = 1
    column: int = 1
    path: str = ""
    severity: Severity = "error"
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.severity}[{self.code}]: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        """The JSON form used by ``llmflow validate --format json``."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "path": self.path,
        }


def format_path(parts: tuple[str | int, ...] | list[str | int]) -> str:
    """Render a document path as ``steps[2].llm.prompt``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    """Order diagnostics by file, then position, then code."""
    return (diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.code)
