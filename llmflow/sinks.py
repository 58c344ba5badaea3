"""Event sinks that write somewhere: the run's ``events.jsonl`` and a JSON-lines stream (stdout)."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from llmflow.engine.outcome import json_encoder
from llmflow.threads import Background

Event = dict[str, Any]
#: At most this many queued events are written with one call.
_BATCH = 1024
#: How long the writer waits after the first event of a busy moment, so that the events that follow it are
#: written with it: one thread wake-up and one write for many events, and the engine's thread is not made
#: to wait for the interpreter lock after every event. Events reach the stream at most this much later.
LINGER = 0.02


class ThreadedSink:
    """Takes events without blocking and writes them as JSON lines from a thread of its own, so a slow disk
    never stalls the engine.

    ``put`` only appends to a queue; the writer thread sleeps until an event arrives, lingers ``LINGER``
    seconds, then writes everything queued. At most ``capacity`` events wait; beyond that they are dropped
    and counted in ``dropped``. ``close`` writes what is queued and stops the thread.
    """

    def __init__(
        self, stream: IO[str], *, capacity: int = 100_000, close_stream: bool = True, linger: float = LINGER
    ) -> None:
        self._pending: deque[Event] = deque()
        self._wake = threading.Event()
        self._idle = False  # the writer is about to wait, or waits, for events (written by the writer only)
        self._signalled = False  # a ``put`` woke the idle writer already: the others need not
        self._closing = False
        self._stream = stream
        self._close_stream = close_stream
        self.capacity = capacity
        self.linger = linger
        self.dropped = 0
        self.written = 0
        self._encode = json_encoder(",", ":", default=str, check_circular=True)  # used by the writer only
        self._thread = Background(self._drain)

    def put(self, event: Event) -> None:
        """Queue one event (never blocks)."""
        pending = self._pending
        if len(pending) >= self.capacity:
            self.dropped += 1
            return
        pending.append(event)
        if self._idle and not self._signalled:
            self._signalled = True
            self._wake.set()

    def close(self) -> None:
        """Write what is queued, stop the writer and close the stream (when the sink owns it)."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=10)
        if self._close_stream:
            self._stream.close()

    def _drain(self) -> None:
        pending, encode = self._pending, self._encode
        while True:
            if not pending:
                if self._closing:
                    break
                self._idle = True
                # Checked again after saying so: an event queued before ``_idle`` was seen is not missed.
                if not pending and not self._closing:
                    self._wake.wait()
                self._wake.clear()
                self._signalled = False
                self._idle = False
                if not self._closing:
                    self._wake.wait(self.linger)  # ``close`` cuts it short
            batch: list[str] = []
            while pending and len(batch) < _BATCH:
                event = pending.popleft()
                try:
                    batch.append(encode(event) + "\n")
                except (ValueError, TypeError, RecursionError):
                    self.dropped += 1
            self._write(batch)
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._stream.write("".join(lines))
        except (OSError, ValueError):  # e.g. a lone surrogate the stream cannot encode: find the culprit
            for line in lines:
                try:
                    try:
                        self._stream.write(line)
                    except UnicodeEncodeError:
                        # A lone surrogate (a model's text, a Python step's value) can only sit inside a JSON
                        # string: written as its \u escape, the line reads back as the same event, and the
                        # file keeps every seq instead of a gap.
                        self._stream.write(_escape_surrogates(line))
                except (OSError, ValueError):
                    self.dropped += 1
                else:
                    self.written += 1
        else:
            self.written += len(lines)
        if not self._pending:
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()


def _escape_surrogates(line: str) -> str:
    """``line`` with each surrogate code point written as a JSON ``\\uXXXX`` escape."""
    import re  # here: only a line that cannot be encoded needs it

    return re.sub("[\ud800-\udfff]", lambda match: f"\\u{ord(match.group()):04x}", line)


class FileEventSink(ThreadedSink):
    """Appends events to a run's ``events.jsonl``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.open("a", encoding="utf-8"))


class StreamEventSink(ThreadedSink):
    """Writes events as JSON lines to a stream such as stdout (``--events jsonl``); ``shown``, when given,
    turns each line into what the stream gets (the CLI escapes terminal controls in it)."""

    def __init__(self, stream: IO[str], *, shown: Callable[[str], str] | None = None) -> None:
        self._shown = shown  # before the writer thread starts
        super().__init__(stream, close_stream=False)

    def _write(self, lines: list[str]) -> None:
        super()._write(lines if self._shown is None else [self._shown(line) for line in lines])
