"""The per-run lock: an ``flock`` on ``runs/<id>/lock`` that says who drives the run and dies with them."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from llmflow.errors import RunLocked, StoreError
from llmflow.store.ids import format_timestamp

#: ``holder()`` probes take a shared lock for a few microseconds; an exclusive ``acquire`` that collides
#: with such a probe retries this many times (one millisecond apart) before it believes the run is held.
_PROBE_RETRIES = 10
_PROBE_RETRY_DELAY = 0.001
_HOLDER_READ_LIMIT = 4096


class RunLock:
    """An exclusive, non-blocking ``flock`` on one file, held through a descriptor kept open.

    The operating system drops the lock when that descriptor closes, including when the process is
    killed (``kill -9``), so a crashed run never stays locked. The file's text is only information:
    ``{"pid", "host", "since"}`` of the current holder, for error messages and ``holder()``.
    """

    def __init__(self, path: Path, run_id: str | None = None) -> None:
        self.path = path
        self.run_id = run_id if run_id is not None else path.parent.name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise ``RunLocked`` naming the process that has it. Re-acquiring is a no-op."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot open the lock file {self.path}: {error.strerror}") from None
        try:
            if not _try_flock(fd, fcntl.LOCK_EX, self.path, retries=_PROBE_RETRIES):
                holder = _parse_holder(os.pread(fd, _HOLDER_READ_LIMIT, 0))
                raise RunLocked(self.describe_holder(holder))
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": format_timestamp()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (clearing the holder information first). Releasing an unheld lock is a no-op."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # Only the information is lost; closing below still drops the lock.
        finally:
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """``{pid, host, since}`` of whoever holds the lock (this process included), or ``None``.

        Probes through a separate descriptor with a shared non-blocking lock: if that cannot be had,
        someone holds the exclusive lock and the file says who.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot open the lock file {self.path}: {error.strerror}") from None
        try:
            if _try_flock(fd, fcntl.LOCK_SH, self.path, retries=0):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            return _parse_holder(os.pread(fd, _HOLDER_READ_LIMIT, 0))
        finally:
            os.close(fd)

    def describe_holder(self, holder: dict[str, Any] | None) -> str:
        """The one-line ``RunLocked`` message for ``holder``."""
        info = holder or {}
        pid = info.get("pid") or "?"
        host = info.get("host") or "?"
        since = info.get("since") or "?"
        return f"run {self.run_id} is being driven by pid {pid} on {host} since {since}"

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _try_flock(fd: int, mode: int, path: Path, *, retries: int) -> bool:
    for attempt in range(retries + 1):
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {path}: {error.strerror}") from None
            if attempt < retries:
                time.sleep(_PROBE_RETRY_DELAY)
            continue
        return True
    return False


def _parse_holder(raw: bytes) -> dict[str, Any]:
    # The holder writes its information right after taking the lock; a probe can land in between.
    try:
        info = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        info = None
    if not isinstance(info, dict):
        return {"pid": None, "host": None, "since": None}
    return info
