"""Event sinks that write somewhere: the run's ``events.jsonl`` and a JSON-lines stream (stdout)."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from pathlib import Path
from typing import IO, Any

Event = dict[str, Any]
_STOP: Event = {}


class ThreadedSink:
    """Queues events and writes them from a thread of its own, so a slow disk never stalls the engine.

    At most ``capacity`` events wait; beyond that they are dropped and counted in ``dropped``.
    """

    def __init__(self, stream: IO[str], *, capacity: int = 100_000, close_stream: bool = True) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._stream = stream
        self._close_stream = close_stream
        self.capacity = capacity
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._drain, name="llmflow-events", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        if self._queue.qsize() >= self.capacity:
            self.dropped += 1
            return
        self._queue.put(event)

    def _drain(self) -> None:
        dumps = json.dumps
        stream = self._stream
        while True:
            event = self._queue.get()
            if event is _STOP:
                break
            try:
                stream.write(dumps(event, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
                self.written += 1
                if self._queue.empty():
                    stream.flush()
            except (OSError, ValueError, TypeError):
                self.dropped += 1
        with contextlib.suppress(OSError, ValueError):
            stream.flush()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        if self._close_stream:
            self._stream.close()


class FileEventSink(ThreadedSink):
    """Appends events to a run's ``events.jsonl``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.open("a", encoding="utf-8"))


class StreamEventSink(ThreadedSink):
    """Writes events as JSON lines to a stream such as stdout (``--events jsonl``)."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream, close_stream=False)
