"""Child processes in groups of their own: start them safely, stop the whole group (children included)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

_KILL_GRACE = 2.0


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
