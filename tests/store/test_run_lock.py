"""The run lock: exclusive, names its holder, and is released by the OS when the holder is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llmflow.errors import RunLocked
from llmflow.store import FileRunStore
from llmflow.store.locking import RunLock

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from llmflow.store import FileRunStore
handle = FileRunStore(Path(sys.argv[1])).open_run(sys.argv[2], durability="none")
handle.lock()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_lock_killed_with_its_process_can_be_taken_again(tmp_path: Path) -> None:
    store = FileRunStore(tmp_path)
    run_id = store.create_run({"status": "running"}, {}, durability="none").run_id
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(tmp_path), run_id], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "locked\n"  # state, not a guessed sleep, says the lock is held
        handle = store.open_run(run_id)
        with pytest.raises(RunLocked, match=rf"^run {run_id} is being driven by pid {child.pid} on "):
            handle.lock()
        assert handle.lock_holder() == json.loads((handle.directory / "lock").read_text())
        assert store.list_runs()[0]["status"] == "running"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert handle.lock_holder() is None
        assert store.list_runs()[0]["stale"] is True
        handle.lock()
        holder = handle.lock_holder()
        assert holder is not None and holder["pid"] == os.getpid()
        handle.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_acquire_writes_the_holder_and_release_clears_it(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "lock", "run-1")
    assert lock.holder() is None
    lock.acquire()
    lock.acquire()  # taking a lock this object already holds is a no-op
    holder = lock.holder()
    assert holder is not None and holder["pid"] == os.getpid() and holder["since"].endswith("Z")
    lock.release()
    lock.release()
    assert lock.holder() is None
    assert not lock.held
    assert (tmp_path / "lock").read_text() == ""


def test_a_second_lock_on_the_same_file_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path / "lock", "run-1"):
        other = RunLock(tmp_path / "lock", "run-1")
        with pytest.raises(RunLocked) as caught:
            other.acquire()
        assert not other.held
    message = str(caught.value)
    assert message.startswith(f"run run-1 is being driven by pid {os.getpid()} on ")
    assert "\n" not in message
    other.acquire()
    other.release()


def test_a_holder_that_has_not_written_yet_is_described_without_crashing(tmp_path: Path) -> None:
    lock = RunLock(tmp_path / "lock")
    assert lock.run_id == tmp_path.name
    assert lock.describe_holder({"pid": None}) == f"run {tmp_path.name} is being driven by pid ? on ? since ?"


def test_probing_the_holder_does_not_create_the_lock_file(tmp_path: Path) -> None:
    assert RunLock(tmp_path / "lock").holder() is None
    assert not (tmp_path / "lock").exists()
