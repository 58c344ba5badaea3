"""SIGINT/SIGTERM caught for the length of a drive, and the previous handlers put back after it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmflow.engine.signals import catch_signals

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_a_signal_reaches_its_callback_on_the_loop_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def on_term() -> None:
            seen.append("term")
            arrived.set()

        release = catch_signals(loop, {signal.SIGTERM: on_term, signal.SIGINT: lambda: seen.append("int")})
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(arrived.wait(), 5)
        finally:
            release()

    asyncio.run(main())
    assert seen == ["term"]
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd is put back too


def test_handlers_of_two_drives_on_one_loop_each_get_the_signal_until_released() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def note(name: str) -> None:
            seen.append(name)
            arrived.set()

        first = catch_signals(loop, {signal.SIGTERM: lambda: note("first")})
        second = catch_signals(loop, {signal.SIGTERM: lambda: note("second")})
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(arrived.wait(), 5)
        await asyncio.sleep(0)
        assert sorted(seen) == ["first", "second"]
        first()
        seen.clear()
        arrived.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(arrived.wait(), 5)
        assert seen == ["second"]
        assert signal.getsignal(signal.SIGTERM) is not before  # still caught for the second
        second()

    asyncio.run(main())
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.set_wakeup_fd(-1) == -1


def test_beside_asyncio_signal_handlers_both_still_get_their_signals() -> None:
    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        usr1, term = asyncio.Event(), asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, usr1.set)  # asyncio's wakeup fd is now set
        try:
            release = catch_signals(loop, {signal.SIGTERM: lambda: (seen.append("term"), term.set())})
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.wait_for(term.wait(), 5)
                os.kill(os.getpid(), signal.SIGUSR1)
                await asyncio.wait_for(usr1.wait(), 5)
            finally:
                release()
            os.kill(os.getpid(), signal.SIGUSR1)  # asyncio's handler outlives ours
            usr1.clear()
            await asyncio.wait_for(usr1.wait(), 5)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    asyncio.run(main())
    assert seen == ["term"]


def test_outside_the_main_thread_nothing_is_installed() -> None:
    import threading

    result: list[object] = []

    def other() -> None:
        async def main() -> None:
            release = catch_signals(asyncio.get_running_loop(), {signal.SIGTERM: lambda: None})
            result.append(signal.getsignal(signal.SIGTERM))
            release()

        asyncio.run(main())

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert result == [before]


HOST = """\
import asyncio, os, signal, sys

import llmflow
from llmflow.runtime import start_run


async def main() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)  # the host's own handler, through asyncio
    summary = await start_run(llmflow.load(sys.argv[1]), {})
    print(summary.status, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(stopped.wait(), 30)
    print("host stopped by its own handler", flush=True)


asyncio.run(main())
"""


def test_a_hosts_asyncio_signal_handler_works_again_after_a_run(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("version: 1\nname: host\nsteps:\n  - id: a\n    run: echo A\n")
    host = tmp_path / "host.py"
    host.write_text(HOST)
    done = subprocess.run([sys.executable, str(host), str(flow)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "succeeded\nhost stopped by its own handler\n"), done.stderr


TWO_RUNS = """\
import asyncio, signal, sys
from pathlib import Path

import llmflow
from llmflow.runtime import RunOptions, start_run


async def main() -> None:
    folder = Path(sys.argv[1])
    before = signal.getsignal(signal.SIGINT)  # asyncio.run's own
    options = RunOptions(state_dir=str(folder / "state"))
    runs = [start_run(llmflow.load(folder / name), {}, options) for name in ("a.yaml", "b.yaml")]
    summaries = await asyncio.gather(*runs)
    print(" ".join(summary.status for summary in summaries), flush=True)
    print(signal.getsignal(signal.SIGINT) is before, signal.set_wakeup_fd(-1), flush=True)


asyncio.run(main())
"""


def test_two_runs_driven_in_one_loop_both_stop_on_one_ctrl_c(tmp_path: Path) -> None:
    for name in ("a", "b"):
        steps = f"  - id: {name}\n    run: touch {name}.started && sleep 30\n"
        (tmp_path / f"{name}.yaml").write_text(f"version: 1\nname: {name}\nsteps:\n{steps}")
    (tmp_path / "host.py").write_text(TWO_RUNS)
    host = subprocess.Popen(
        [sys.executable, str(tmp_path / "host.py"), str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"{name}.started").exists() for name in ("a", "b")):
            assert time.monotonic() < deadline and host.poll() is None, host.stderr.read() if host.stderr else ""
            time.sleep(0.02)
        host.send_signal(signal.SIGINT)
        out, err = host.communicate(timeout=30)
    finally:
        host.kill()
    assert (host.returncode, out) == (0, "interrupted interrupted\nTrue -1\n"), err
