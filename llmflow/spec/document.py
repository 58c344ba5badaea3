"""The positioned document: plain YAML data plus the line and column of every node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmflow.diagnostics import Diagnostic, Severity, format_path

DocPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in the source text."""

    line: int
    column: int


@dataclass(slots=True)
class Document:
    """A loaded workflow file.

    ``data`` holds only plain values (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``).
    ``positions`` maps a path to where its value starts; ``key_positions`` maps the path of a mapping
    entry to where its key starts. Paths under an alias are not recorded: :meth:`position` falls back to
    the nearest recorded ancestor.
    """

    file: str
    text: str
    data: Any
    positions: dict[DocPath, Position] = field(default_factory=dict)
    key_positions: dict[DocPath, Position] = field(default_factory=dict)
    directory: str = "."

    def position(self, path: DocPath, *, key: bool = False) -> Position:
        """Where the value (or, with ``key=True``, the key) at ``path`` starts; nearest ancestor otherwise."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        probe = tuple(path)
        while probe:
            found = self.positions.get(probe)
            if found is not None:
                return found
            probe = probe[:-1]
        return self.positions.get((), Position(1, 1))

    def diagnostic(
        self,
        code: str,
        message: str,
        path: DocPath = (),
        *,
        key: bool = False,
        hint: str | None = None,
        severity: Severity = "error",
        offset: Position | None = None,
    ) -> Diagnostic:
        """Build a diagnostic located at ``path`` (its key with ``key=True``).

        ``offset`` moves the location inside the value (line delta, column delta on the first line).
        """
        pos = self.position(path, key=key)
        line, column = pos.line, pos.column
        if offset is not None:
            if offset.line > 0:
                line, column = line + offset.line, offset.column
            else:
                column += offset.column
        return Diagnostic(
            code=code,
            message=message,
            file=self.file,
            line=line,
            column=column,
            path=format_path(path),
            severity=severity,
            hint=hint,
        )

    def source_line(self, line: int) -> str:
        """The text of a 1-based line, for carets under diagnostics."""
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""
