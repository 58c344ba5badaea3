"""SIGINT and SIGTERM as callbacks on the event loop, for as long as a run is driven.

``loop.add_signal_handler`` does this too, but checks each signal against ``signal.valid_signals()``, which
builds a set of ~60 enum members on every call: adding and removing two handlers cost ~0.35 ms of every run
and resume. Here the signal module's wakeup fd is a socket pair whose reading end the loop watches, which is
what asyncio does underneath, at a tenth of the cost. Runs driven at once on one loop share it, and each gets
the signal. When a wakeup fd is set already by someone else (asyncio signal handlers, which read it), the
handlers go through asyncio instead, so neither misses a signal.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from asyncio import AbstractEventLoop
from collections.abc import Callable, Mapping
from typing import Any


def _nothing() -> None:
    pass


def _ignore(signum: int, frame: Any) -> None:  # the byte in the wakeup fd delivers the signal
    pass


class _Catcher:
    """The wakeup-fd socket pair and the loop watching it, shared by every run driven on that loop: each run
    adds its handlers, a signal reaches them all (two runs gathered in one loop both stop on Ctrl-C), and the
    last run to end puts the previous handlers and wakeup fd back."""

    def __init__(self, loop: AbstractEventLoop, reader: socket.socket, writer: socket.socket) -> None:
        self.loop = loop
        self.reader = reader
        self.writer = writer
        self.previous: dict[int, Any] = {}  # the handler each caught signal had before
        self.subscribers: list[Mapping[int, Callable[[], None]]] = []

    def deliver(self) -> None:
        try:
            received = self.reader.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for number in received:
            for handlers in list(self.subscribers):
                callback = handlers.get(number)
                if callback is not None:
                    callback()

    def subscribe(self, handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
        for number in handlers:
            if number not in self.previous:
                self.previous[number] = signal.signal(number, _ignore)
        self.subscribers.append(handlers)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):  # released twice
                self.subscribers.remove(handlers)
            if not self.subscribers:
                self.close()

        return unsubscribe

    def close(self) -> None:
        global _catcher
        if _catcher is self:
            _catcher = None
        with contextlib.suppress(Exception):  # the loop may be closing
            self.loop.remove_reader(self.reader.fileno())
        for number, handler in self.previous.items():
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        with contextlib.suppress(OSError, ValueError):
            signal.set_wakeup_fd(-1)
        self.reader.close()
        self.writer.close()


#: The catcher of the runs being driven, if any (signals reach only the main thread, so there is one).
_catcher: _Catcher | None = None


def catch_signals(loop: AbstractEventLoop, handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    """Call ``handlers[sig]()`` on ``loop`` (between its callbacks, never inside running code) when ``sig``
    arrives; return the function that stops that and, after the last run on the loop, puts the previous handlers
    back. Where signals cannot be caught (not the main thread, a platform without them) nothing is installed."""
    global _catcher
    if _catcher is not None:
        if _catcher.loop is loop and not loop.is_closed():
            try:
                return _catcher.subscribe(handlers)
            except (OSError, ValueError):
                return _nothing
        _catcher.close()  # left behind by a loop that ended without its runs releasing it
    try:
        reader, writer = socket.socketpair()
    except OSError:
        return _nothing
    try:
        reader.setblocking(False)
        writer.setblocking(False)
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (OSError, ValueError):  # ValueError: not the main thread
        reader.close()
        writer.close()
        return _nothing
    if previous_fd != -1:
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()
        return _through_asyncio(loop, handlers)
    catcher = _Catcher(loop, reader, writer)
    try:
        release = catcher.subscribe(handlers)
        loop.add_reader(reader.fileno(), catcher.deliver)
    except (OSError, ValueError, RuntimeError, NotImplementedError):
        catcher.close()
        return _nothing
    _catcher = catcher
    return release


def _through_asyncio(loop: AbstractEventLoop, handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    # asyncio keeps one handler a signal, and removing ours would leave none: the host's own (say, its
    # SIGTERM handler) are put back afterwards. Their callbacks can only be read from the loop's internals.
    existing: Mapping[int, Any] = getattr(loop, "_signal_handlers", None) or {}
    replaced = {number: existing[number] for number in handlers if number in existing}
    added: list[int] = []
    for number, callback in handlers.items():
        try:
            loop.add_signal_handler(number, callback)
            added.append(number)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def restore() -> None:
        for number in added:
            loop.remove_signal_handler(number)
            before = replaced.get(number)
            callback = getattr(before, "_callback", None)
            if before is not None and callback is not None and not before.cancelled():
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(number, callback, *getattr(before, "_args", ()))

    return restore
