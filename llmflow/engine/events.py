"""The event bus: typed run events with increasing ``seq``, fanned out to sinks without blocking."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from llmflow.event_types import EVENT_TYPES as EVENT_TYPES

#: Version of the event format.
EVENT_VERSION = 1


Event = dict[str, Any]


class Sink(Protocol):
    """Receives events. ``put`` must return at once: a sink that does real work queues it elsewhere."""

    def put(self, event: Event) -> None:
        """Take one event (never blocks, never raises)."""

    def close(self) -> None:
        """Flush what is queued and stop."""


class EventBus:
    """Numbers events and hands each to every sink; a failing sink is counted, never fatal.

    Node instances a resume takes from the journal are announced together: ``restored`` notes one, and the
    next event (or ``close``) is preceded by one ``steps.restored`` event listing every one noted since the
    last. A resume of a thousand completed steps so emits one event, not a thousand: encoding them one by one
    cost the event writer ~5 µs each, and it holds the interpreter while it works.
    """

    __slots__ = ("_restored", "_seq", "failures", "listeners", "run_id", "sinks")

    def __init__(self, run_id: str, start_seq: int = 0) -> None:
        self.run_id = run_id
        self._seq = start_seq
        self.sinks: list[Sink] = []
        self.listeners: list[Callable[[Event], None]] = []
        self.failures = 0
        self._restored: list[dict[str, str]] = []

    def restored(self, path: str, node_id: str, kind: str, status: str) -> None:
        """Note a node instance taken from the journal, for the next ``steps.restored`` event."""
        self._restored.append({"path": path, "id": node_id, "kind": kind, "status": status})

    def _announce_restored(self) -> None:
        steps, self._restored = self._restored, []
        self.emit("steps.restored", "", {"steps": steps})

    @property
    def seq(self) -> int:
        """The ``seq`` of the last event emitted."""
        return self._seq

    def add(self, sink: Sink) -> None:
        """Attach a sink."""
        self.sinks.append(sink)

    def emit(self, kind: str, path: str = "", data: dict[str, Any] | None = None, attempt: int = 0) -> Event:
        """Emit one event and return it."""
        if self._restored:
            self._announce_restored()
        self._seq += 1
        event: Event = {
            "v": EVENT_VERSION,
            "seq": self._seq,
            "ts": time.time_ns(),
            "run_id": self.run_id,
            "type": kind,
            "path": path,
            "attempt": attempt,
            "data": data if data is not None else {},
        }
        for sink in self.sinks:
            try:
                sink.put(event)
            except Exception:  # a sink must never take the run down
                self.failures += 1
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                self.failures += 1
        return event

    def close(self) -> None:
        """Close every sink (flushes queued events)."""
        if self._restored:
            self._announce_restored()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                self.failures += 1
