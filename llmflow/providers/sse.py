"""Server-sent events (``text/event-stream``) read from raw bytes: lines, then events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

_CR, _LF = 13, 10
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its ``event:`` name (``message`` when there is none) and its ``data:`` lines joined.
    ``complete`` is false for the last one when the stream ended before the blank line that ends it."""

    name: str
    data: str
    complete: bool = True


async def sse_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Lines of text, split on CRLF, LF or CR only, as the SSE format says.

    The bytes are split before they are decoded: a line break is never part of a UTF-8 sequence, so a
    character cut between two network reads comes out whole, and the other line separators Unicode knows
    (U+2028, NEL …), which a model's text may hold unescaped inside a JSON string, stay inside their line
    (``str.splitlines``, used by httpx's ``aiter_lines``, cut the event in two there)."""
    pending = bytearray()
    searched = 0  # the bytes before this hold no line break
    started = False  # whether the stream's first bytes were looked at for a byte order mark
    async for chunk in chunks:
        pending += chunk
        if not started:
            if _BOM.startswith(pending):
                continue  # the mark, or a part of it: wait for what follows
            started = True
            if pending.startswith(_BOM):
                del pending[: len(_BOM)]  # one leading byte order mark is ignored, as the format says
        start = 0
        while True:
            end = _line_break(pending, max(start, searched))
            if end < 0:
                break
            if pending[end] == _CR and end + 1 == len(pending):
                break  # maybe the CR of a CRLF whose LF is in the next chunk
            yield pending[start:end].decode("utf-8", "replace")
            start = end + (2 if pending[end] == _CR and pending[end + 1] == _LF else 1)
        del pending[:start]
        searched = max(0, len(pending) - 1)  # a trailing CR is looked at again with what follows it
    if started and pending:  # (not started: nothing came but a byte order mark, or a part of one)
        yield pending.removesuffix(b"\r").decode("utf-8", "replace")


def _line_break(data: bytearray, start: int) -> int:
    """The index of the first CR or LF at or after ``start``, or -1."""
    cr, lf = data.find(b"\r", start), data.find(b"\n", start)
    return min(cr, lf) if cr >= 0 and lf >= 0 else max(cr, lf)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Events from ``sse_lines``: ``data:`` lines joined, comments skipped."""
    name = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:  # no blank line after it: a server that forgot it, or a stream cut short
        yield Event(name or "message", "\n".join(data), complete=False)
