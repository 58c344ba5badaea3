"""Diagnostics rendered for people (text with carets) and for tools (json, GitHub annotations, SARIF)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import quote

from llmflow import __version__
from llmflow.diagnostics import Diagnostic

SourceLines = Callable[[str, int], str]

#: The most characters of a source line quoted under a diagnostic.
EXCERPT_WIDTH = 160


def as_text(diagnostics: Sequence[Diagnostic], source_line: SourceLines, *, color: bool = False) -> str:
    """``path:line:col: error[code]: message``, the source line and a caret under the column."""
    from llmflow.cli.terminal import terminal_text

    red, yellow, bold, dim, reset = ("\033[31m", "\033[33m", "\033[1m", "\033[2m", "\033[0m") if color else ("",) * 5
    lines = []
    for d in diagnostics:
        tone = red if d.severity == "error" else yellow
        where = terminal_text(f"{d.file}:{d.line}:{d.column}:")  # a file name may hold an escape sequence
        lines.append(f"{bold}{where}{reset} {tone}{d.severity}[{d.code}]{reset}: {terminal_text(d.message)}")
        text = source_line(d.file, d.line)
        if text.strip():
            # The line may hold the very control character the diagnostic is about: shown escaped, with the
            # caret moved past the escapes before the column.
            gutter = f"{d.line:>5} | "
            shown, caret = _excerpt(text.expandtabs(1), d.column)
            lines.append(f"{dim}{gutter}{reset}{terminal_text(shown)}")
            offset = _cells(terminal_text(shown[:caret]))
            lines.append(f"{dim}{' ' * (len(gutter) - 2)}| {reset}{' ' * offset}{tone}^{reset}")
        if d.hint:  # the '=' under the gutter's '|', however many digits the line number has
            lines.append(f"{' ' * (len(f'{d.line:>5}') + 1)}= hint: {terminal_text(d.hint)}")
    return "\n".join(lines)


def _cells(text: str) -> int:
    """How many terminal cells ``text`` takes: two for a wide character (CJK, most emoji), none for a combining
    mark. Columns count characters; the caret has to count cells to stand under the right one."""
    import unicodedata

    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def _excerpt(text: str, column: int) -> tuple[str, int]:
    """At most ``EXCERPT_WIDTH`` characters of a source line around ``column`` (1-based), with ``…`` where it is
    cut (a minified or generated file can be one line of megabytes), and the caret's index in the excerpt."""
    if len(text) <= EXCERPT_WIDTH:
        return text, column - 1
    start = max(0, min(column - 1 - EXCERPT_WIDTH // 2, len(text) - EXCERPT_WIDTH))
    end = start + EXCERPT_WIDTH
    head, tail = ("…" if start else ""), ("…" if end < len(text) else "")
    return head + text[start:end] + tail, len(head) + column - 1 - start


def as_json(diagnostics: Sequence[Diagnostic]) -> str:
    """A JSON list of ``{file, line, column, code, severity, message, hint, path}``."""
    from llmflow.cli.terminal import terminal_json

    # A file name may hold a C1 control or a bidirectional override: written as a \u escape, the same JSON.
    return terminal_json(json.dumps([d.as_dict() for d in diagnostics], indent=2, ensure_ascii=False))


def _escape_data(text: str) -> str:
    from llmflow.cli.terminal import terminal_text

    # Control characters other than line breaks would reach the CI log as they are: shown as escapes.
    return terminal_text(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def as_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: ``::error file=…,line=…,col=…,title=…::message``."""
    lines = []
    for d in diagnostics:
        message = d.message + (f" ({d.hint})" if d.hint else "")
        props = f"file={_escape_property(d.file)},line={d.line},col={d.column},title={_escape_property(d.code)}"
        lines.append(f"::{d.severity} {props}::{_escape_data(message)}")
    return "\n".join(lines)


def _uri(file: str) -> str:
    """A SARIF artifact URI: ``file:`` for an absolute path, else a relative reference, percent-encoded."""
    path: PurePath = PureWindowsPath(file) if "\\" in file or file[1:3] == ":\\" else PurePosixPath(file)
    if path.is_absolute():
        return path.as_uri()
    # A name that is not UTF-8 (bytes a command line brings as surrogate escapes) is percent-encoded byte by
    # byte, as ``as_uri`` does for an absolute path.
    return quote(os.fsencode(path.as_posix()))


def as_sarif(diagnostics: Sequence[Diagnostic]) -> str:
    """A SARIF 2.1.0 log with one run of the ``llmflow`` tool."""
    codes = sorted({d.code for d in diagnostics})
    rules = [{"id": code, "name": code, "shortDescription": {"text": code.replace("-", " ")}} for code in codes]
    results = []
    for d in diagnostics:
        text = d.message + (f" ({d.hint})" if d.hint else "")
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": codes.index(d.code),
                "level": "error" if d.severity == "error" else "warning",
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(d.file)},
                            "region": {"startLine": d.line, "startColumn": d.column},
                        }
                    }
                ],
            }
        )
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "llmflow",
                        "version": __version__,
                        "informationUri": "https://github.com/llmflow/llmflow",
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    from llmflow.cli.terminal import terminal_json

    return terminal_json(json.dumps(log, indent=2, ensure_ascii=False))
