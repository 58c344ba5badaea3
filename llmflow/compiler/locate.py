"""Where inside a value a problem is: the column of a reference or of an expression error in the file."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from llmflow.diagnostics import Diagnostic
from llmflow.spec.document import DocPath, Document
from llmflow.spec.validator import value_at

_MAX_SEARCH_LINES = 500  # how far into a block scalar a problem is looked for


def point_into(
    doc: Document, diagnostic: Diagnostic, path: DocPath, *, offset: int | None = None, needle: str = ""
) -> Diagnostic:
    """``diagnostic`` (located at the value at ``path``) moved onto the problem inside the value when found.

    ``offset`` is a character offset inside the value's text (exact when the text stands verbatim in the
    file); ``needle`` is the text of a reference, searched as a whole word. Both are looked for on the
    value's lines only (block scalars span several); when neither is found the diagnostic is left as it is.
    """
    raw: Any = value_at(doc.data, path)
    if not isinstance(raw, str):
        return diagnostic
    first, start = diagnostic.line, diagnostic.column - 1
    span = min(raw.count("\n") + 2, _MAX_SEARCH_LINES)
    lines = [(number, doc.source_line(number)) for number in range(first, first + span)]
    if offset is not None and 0 <= offset <= len(raw):
        line_start = raw.rfind("\n", 0, offset) + 1
        line_end = raw.find("\n", offset)
        text = raw[line_start : len(raw) if line_end < 0 else line_end]
        if text.strip():
            for number, line in lines:
                found = line.find(text, start if number == first else 0)
                if found >= 0:
                    return replace(diagnostic, line=number, column=found + offset - line_start + 1)
    if needle:
        pattern = re.compile(r"(?<![\w.])" + re.escape(needle) + r"(?!\w)")
        for number, line in lines:
            match = pattern.search(line, start if number == first else 0)
            if match:
                return replace(diagnostic, line=number, column=match.start() + 1)
    return diagnostic
