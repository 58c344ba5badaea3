"""Child processes in groups of their own: start them safely, stop the whole group (children included)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

_KILL_GRACE = 2.0
_CHUNK = 1 << 16


def kill_group(process: asyncio.subprocess.Process, sig: int) -> None:
    """Send ``sig`` to the process's whole group (it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


async def stop_process_group(process: asyncio.subprocess.Process) -> None:
    """Terminate the whole process group, then kill it if it does not go."""
    kill_group(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _KILL_GRACE)
    except (asyncio.TimeoutError, TimeoutError):
        kill_group(process, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await process.wait()
    else:
        kill_group(process, signal.SIGKILL)


async def start_process_group(creation: asyncio.Future[asyncio.subprocess.Process]) -> asyncio.subprocess.Process:
    """The started process, stopping its whole group when the step is cancelled while it starts.

    Cancelled half-way, ``create_subprocess_exec`` kills only the direct child and then waits until its
    pipes close, which a background grandchild holding them delays for as long as it lives. Shielded, the
    start finishes and the whole process group is stopped instead.
    """
    try:
        return await asyncio.shield(creation)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await stop_process_group(await creation)
        raise


async def read_lines(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Each line of ``stream`` with its newline (the last may have none), however long it is: the reader's
    own ``readline`` fails on a line longer than its buffer limit (a minified JSON document, a model's reply
    on one line) and drops what it had read."""
    pending = bytearray()
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            if pending:
                yield bytes(pending)
            return
        scan = len(pending)  # the bytes before this chunk hold no newline
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", scan)) >= 0:
            yield bytes(pending[start : end + 1])
            start = scan = end + 1
        del pending[:start]


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot), to tell it from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


#: The process groups this process started and that still run (``ProcessRecord`` adds and removes them).
_LIVE_GROUPS: set[int] = set()


def kill_live_groups() -> None:
    """SIGKILL every process group this process started that still runs (before exiting at once)."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class ProcessRecord:
    """A marker file per running process group in a run's folder, so that a resume after ``kill -9`` can
    stop commands the dead driver left running (Linux: identified by pid and start time); and the group in
    ``_LIVE_GROUPS``, so that a process about to exit at once can stop it first."""

    def __init__(self, folder: Path, process: asyncio.subprocess.Process) -> None:
        self.path: Path | None = None
        self.pgid = process.pid
        _LIVE_GROUPS.add(process.pid)
        started = _start_time(process.pid)
        if started is None:
            return
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{process.pid}-{started}"
            path.touch()
            self.path = path

    def close(self) -> None:
        """The process ended: forget it."""
        _LIVE_GROUPS.discard(self.pgid)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


def stop_leftovers(folder: Path) -> list[int]:
    """Kill the process groups a dead driver left running (their markers are in ``folder``); return their pids.

    Call only while holding the run's lock: then no live driver owns these processes.
    """
    stopped: list[int] = []
    if not folder.is_dir():
        return stopped
    for marker in folder.iterdir():
        pid_text, _, started = marker.name.partition("-")
        with contextlib.suppress(OSError):
            marker.unlink()
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if _start_time(pid) == started:  # still the same process, not a new one that got its pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                stopped.append(pid)
    return stopped
