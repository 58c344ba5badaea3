"""A function on a bare thread of its own, started without waiting for the thread to run."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any


class Background:
    """Runs ``target(*args)`` on a new thread; ``join`` waits for it to return.

    ``threading.Thread.start`` waits until the new thread is running, ~0.1 ms each time on a small VM, and a
    run starts two or three threads before its first step. These threads are never waited for at exit (as
    daemon threads), so whoever starts one joins it. ``target`` handles its own errors.
    """

    __slots__ = ("_done",)

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()
        _thread.start_new_thread(self._run, (target, args))

    def _run(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            target(*args)
        finally:
            self._done.release()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` seconds) for ``target`` to return; whether it did."""
        if self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._done.release()  # so that a later join returns at once
            return True
        return False
