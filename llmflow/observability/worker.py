"""A sink base whose ``put`` only queues: a thread of its own hands the events on in batches, bounded at close."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
#: Receives one line for people when a sink could not pass everything on (the CLI writes it to stderr).
Warn = Callable[[str], None]


class BackgroundSink:
    """Takes events without blocking and hands them to ``handle`` in batches, from a thread of its own.

    ``put`` appends to a queue and, only when the worker sleeps, wakes it; nothing else runs on the emitting
    thread, so a slow destination can never stall the engine. At most ``capacity`` events wait; beyond that
    they are counted in ``dropped``. ``close`` lets the worker finish for at most ``close_timeout`` seconds;
    events still queued (or in hand) then are counted in ``abandoned`` and the worker is left to die with the
    process (it is a daemon thread).

    Subclasses implement ``handle`` (and may override ``accepts``, ``open`` and ``finish``, all but
    ``accepts`` called on the worker thread).
    """

    thread_name = "llmflow-sink"

    def __init__(
        self, *, capacity: int = 10_000, batch: int = 100, linger: float = 0.05, close_timeout: float = 2.0
    ) -> None:
        self.capacity = capacity
        self.batch = max(1, batch)
        self.linger = linger
        self.close_timeout = close_timeout
        self.dropped = 0
        self.abandoned = 0
        self._pending: deque[Event] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # set by close: cuts lingering and retry pauses short
        self._idle = False  # the worker waits, or is about to wait, for events (written by the worker only)
        self._signalled = False  # a put woke the idle worker already: the others need not
        self._closed = False
        self._in_hand = 0  # events taken from the queue and not yet handled
        self._accounts = threading.Lock()  # close and the worker settle the counters one at a time
        self._given_up = False
        self.broken: str | None = None  # why the worker could not pass events on, when it could not
        self._thread = threading.Thread(target=self._work, name=self.thread_name, daemon=True)
        self._thread.start()

    # -- the emitting thread ---------------------------------------------------------------------------
    def accepts(self, event: Event) -> bool:
        """Whether to queue ``event`` at all (runs on the emitting thread: keep it cheap)."""
        return True

    def put(self, event: Event) -> None:
        """Queue one event (never blocks, never raises)."""
        if not self.accepts(event):
            return
        pending = self._pending
        if len(pending) >= self.capacity or self._closed:
            self.dropped += 1
            return
        pending.append(event)
        if self._idle and not self._signalled:
            self._signalled = True
            self._wake.set()

    def close(self) -> None:
        """Hand on what is queued, waiting at most ``close_timeout`` seconds; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._thread.join(self.close_timeout)
        with self._accounts:
            if self._thread.is_alive():
                self._given_up = True
                self.abandoned += len(self._pending) + self._in_hand
                self._pending.clear()
        self.closed()

    @property
    def undelivered(self) -> int:
        """Events this sink could not pass on: dropped when queued, abandoned at close (and, in subclasses,
        refused by the destination)."""
        return self.dropped + self.abandoned

    # -- the worker thread -----------------------------------------------------------------------------
    def open(self) -> None:
        """Set up on the worker thread before the first batch (a client, a connection …)."""

    def handle(self, events: list[Event]) -> None:
        """Pass a batch on (worker thread)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Tear down on the worker thread after the last batch."""

    def closed(self) -> None:
        """Called once by ``close`` after the worker finished or was given up on (the closing thread)."""

    def settle(self, update: Callable[[], None], handled: int = 0) -> bool:
        """Run ``update`` (a counter change for ``handled`` events of the batch in hand) unless ``close``
        gave up on the worker and counted the batch itself; whether it ran."""
        with self._accounts:
            if self._given_up:
                return False
            update()
            self._in_hand = max(0, self._in_hand - handled)
            return True

    def _work(self) -> None:
        pending = self._pending
        try:
            self.open()
        except Exception as error:  # e.g. a client that cannot be built: every event is lost, and counted
            self.broken = f"{type(error).__name__}: {error}"
        try:
            while True:
                if not pending:
                    if self._stopping.is_set():
                        break
                    self._idle = True
                    # Checked again after saying so: an event queued before ``_idle`` was seen is not missed.
                    if not pending and not self._stopping.is_set():
                        self._wake.wait()
                    self._wake.clear()
                    self._signalled = False
                    self._idle = False
                    if not self._stopping.is_set():
                        self._stopping.wait(self.linger)  # let a busy moment's events gather into one batch
                batch: list[Event] = []
                with self._accounts:  # taken and counted as in hand at once: close never misses them
                    while pending and len(batch) < self.batch:
                        batch.append(pending.popleft())
                    self._in_hand = len(batch)
                if not batch:
                    continue
                try:
                    if self.broken is None:
                        self.handle(batch)
                    else:
                        self._lose(len(batch))
                except Exception as error:  # a bug must not kill the worker: the batch is lost, and counted
                    self.broken = self.broken or f"{type(error).__name__}: {error}"
                    self._lose(len(batch))
                finally:
                    with self._accounts:
                        self._in_hand = 0
                if self._given_up:
                    return
        finally:
            try:
                self.finish()
            except Exception as error:
                self.broken = self.broken or f"{type(error).__name__}: {error}"

    def _lose(self, count: int) -> None:
        def lose() -> None:
            self.abandoned += count

        self.settle(lose, count)


class PluginSink(BackgroundSink):
    """A plugin's sink, handed its events from a thread of its own: one event at a time, in order, each
    ``put`` that raises counted in ``failed`` (the next event is still handed on); its ``close`` is called
    on that thread after the last event. ``close`` waits at most ``CLOSE_TIMEOUT`` seconds for it."""

    thread_name = "llmflow-plugin-sink"
    CLOSE_TIMEOUT = 5.0

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.failed = 0
        self.last_error: str | None = None
        super().__init__(linger=0.005, close_timeout=self.CLOSE_TIMEOUT)

    def put(self, event: Event) -> None:
        """Queue a copy of ``event`` (the plugin's sink may change what it gets; other sinks read it too)."""
        data = event.get("data")
        super().put({**event, "data": dict(data)} if isinstance(data, dict) else dict(event))

    def handle(self, events: list[Event]) -> None:
        put = self.sink.put
        for event in events:
            try:
                put(event)
            except (Exception, SystemExit) as error:  # SystemExit would end the worker thread silently
                self.failed += 1
                self.last_error = f"{type(error).__name__}: {error}"

    def finish(self) -> None:
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()

    @property
    def undelivered(self) -> int:
        """Events the plugin's sink did not take: dropped, abandoned at close, or refused by its ``put``."""
        return self.dropped + self.abandoned + self.failed

    def closed(self) -> None:
        """Say on stderr what the sink did not take, as the webhook and OpenTelemetry sinks do by default."""
        count = self.undelivered
        if not count:
            return
        why = self.last_error or self.broken or ("the queue was full" if self.dropped else "its close took too long")
        name = type(self.sink).__name__
        message = " ".join(f"plugin sink {name}: {count} event{'s' * (count != 1)} not delivered ({why})".split())
        from llmflow.observability import to_stderr

        to_stderr(message)
