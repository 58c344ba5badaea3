"""SIGINT and SIGTERM as callbacks on the event loop, for as long as a run is driven.

``loop.add_signal_handler`` does this too, but checks each signal against ``signal.valid_signals()``, which
builds a set of ~60 enum members on every call: adding and removing two handlers cost ~0.35 ms of every run
and resume. Here the signal module's wakeup fd is a socket pair whose reading end the loop watches, which is
what asyncio does underneath, at a tenth of the cost. When a wakeup fd is set already (someone added asyncio
signal handlers, which read it), the handlers go through asyncio instead, so neither misses a signal.
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


def catch_signals(loop: AbstractEventLoop, handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    """Call ``handlers[sig]()`` on ``loop`` (between its callbacks, never inside running code) when ``sig``
    arrives; return the function that puts the previous handlers back. Where signals cannot be caught (not
    the main thread, a platform without them) nothing is installed."""
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
    previous: dict[int, Any] = {}

    def deliver() -> None:
        try:
            received = reader.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        for number in received:
            callback = handlers.get(number)
            if callback is not None:
                callback()

    def restore() -> None:
        with contextlib.suppress(Exception):  # the loop may be closing
            loop.remove_reader(reader.fileno())
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        reader.close()
        writer.close()

    try:
        for number in handlers:
            previous[number] = signal.signal(number, _ignore)
        loop.add_reader(reader.fileno(), deliver)
    except (OSError, ValueError, RuntimeError, NotImplementedError):
        restore()
        return _nothing
    return restore


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
