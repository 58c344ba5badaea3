"""Ctrl-C and SIGTERM to a running ``llmflow run`` or ``llmflow resume``: the steps in flight are stopped, the
run ends ``interrupted`` (exit 130) or ``cancelled`` (exit 1) with a consistent journal, and resume finishes it.

Two parallel branches block on a gate file and write their shell's pid to a file; a third branch completes.
The signal is sent once both shells have started and the third branch's record is in the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmflow.store import FileRunStore

TIMEOUT = 30.0
BLOCK = 'while [ ! -e "{{ inputs.gate }}" ]; do sleep 0.05; done'
WORKFLOW = """\
version: 1
name: interrupt
inputs:
  log: {type: string}
  gate: {type: string}
  pids: {type: string}
steps:
  - id: a
    run: echo "a -" >> "{{ inputs.log }}"; echo A
  - id: lanes
    parallel:
      branches:
        x:
          - id: x
            run: echo "x -" >> "{{ inputs.log }}"; echo $$ >> "{{ inputs.pids }}"; BLOCK; echo X
        y:
          - id: y
            run: echo "y -" >> "{{ inputs.log }}"; echo $$ >> "{{ inputs.pids }}"; BLOCK; echo Y
        z:
          - id: z
            run: echo "z -" >> "{{ inputs.log }}"; echo Z
  - id: b
    run: echo "b -" >> "{{ inputs.log }}"; echo "{{ steps.x.output }}{{ steps.y.output }}{{ steps.z.output }}"
outputs:
  b: "{{ steps.b.output }}"
""".replace("BLOCK", BLOCK)
# What an unbroken run does: each step once.
ONCE = Counter({"a -": 1, "x -": 1, "y -": 1, "z -": 1, "b -": 1})


class Project:
    """A folder with the workflow, its side-effect log, the gate, the blocked shells' pids and a run store."""

    def __init__(self, root: Path, workflow: str = WORKFLOW) -> None:
        self.root = root
        (root / "flow.yaml").write_text(workflow, encoding="utf-8")
        self.log = root / "log"
        self.gate = root / "gate"
        self.pid_file = root / "pids"
        self.state = root / "state"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "llmflow", *args, "--state-dir", str(self.state)]

    def run_args(self) -> tuple[str, ...]:
        inputs = {"log": self.log, "gate": self.gate, "pids": self.pid_file}
        return ("run", "flow.yaml", *(part for name, path in inputs.items() for part in ("-i", f"{name}={path}")))

    @contextmanager
    def background(self, *args: str, name: str = "run") -> Iterator[subprocess.Popen[bytes]]:
        """The CLI in a session of its own, output to files (never a terminal); killed if still running."""
        with (self.root / f"{name}.out").open("wb") as out, (self.root / f"{name}.err").open("wb") as err:
            process = subprocess.Popen(
                self.command(*args), cwd=self.root, env=environment(), stdout=out, stderr=err, start_new_session=True
            )
            try:
                yield process
            finally:
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=TIMEOUT)
                for pid in self.pids():  # a failed test must not leave blocked shells behind
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)

    def stopped(self, process: subprocess.Popen[bytes], sig: signal.Signals, blocked: int) -> int:
        """Send ``sig`` once ``blocked`` shells have started in all and branch z completed; the exit code."""

        def ready() -> bool:
            return len(self.pids()) >= blocked and "lanes/z/z" in self.journaled()

        wait_for(ready, f"{blocked} blocked shells and branch z's record", process)
        os.killpg(process.pid, sig)  # as a terminal sends Ctrl-C to its foreground process group
        return process.wait(timeout=TIMEOUT)

    def output(self, name: str = "run") -> str:
        return (self.root / f"{name}.err").read_text(encoding="utf-8")

    def lines(self) -> Counter[str]:
        return Counter(self.log.read_text(encoding="utf-8").splitlines())

    def pids(self) -> list[int]:
        """The pids of the blocked shells started so far (whole lines only)."""
        text = self.pid_file.read_text(encoding="utf-8") if self.pid_file.exists() else ""
        return [int(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def run_id(self) -> str:
        (run,) = self.state.glob("runs/*/run.json")
        return run.parent.name

    def meta(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "runs" / self.run_id() / "run.json").read_text())
        return data

    def events(self) -> list[dict[str, Any]]:
        text = (self.state / "runs" / self.run_id() / "events.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    def journaled(self) -> list[str]:
        """Paths of the complete journal records, in journal order."""
        paths: list[str] = []
        for journal in self.state.glob("runs/*/journal.jsonl"):
            for line in journal.read_text(encoding="utf-8").splitlines(keepends=True):
                if line.endswith("\n"):
                    paths.append(json.loads(line)["p"])
        return paths

    def verified_records(self) -> list[str]:
        """Paths of the journal's records as the store reads them: checksums verified, no torn line."""
        with FileRunStore(self.state).open_run(self.run_id()) as handle:
            return [str(record["p"]) for record in handle.records()]

    def resume(self) -> dict[str, Any]:
        """Open the gate and resume the run to its end; the ``--json`` summary."""
        self.gate.touch()
        done = subprocess.run(
            self.command("resume", self.run_id(), "--json"),
            cwd=self.root,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        summary: dict[str, Any] = json.loads(done.stdout)
        return summary


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1")
    env.pop("FORCE_COLOR", None)
    return env


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll state until ``condition`` holds; fail at once if ``process`` ended meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def exited(pid: int) -> bool:
    """True when ``pid`` no longer exists (the CLI waited for its own child, so not even as a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    """True when no live process is left in process group ``pgid`` (a shell's ``sleep`` included)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return False
    return True


def assert_stopped_cleanly(project: Project, status: str, blocked: list[int]) -> None:
    """The shells in flight are gone, ``run.json`` says ``status``, the journal holds only finished steps."""
    for pid in blocked:
        assert exited(pid), f"the shell {pid} of a cancelled step still exists"
        wait_for(lambda pid=pid: group_gone(pid), f"the process group of shell {pid} to end")
    assert project.meta()["status"] == status
    assert sorted(project.verified_records()) == ["a", "lanes/z/z"]
    cancelled = {event["path"] for event in project.events() if event["type"] == "step.cancelled"}
    assert {"lanes/x/x", "lanes/y/y", "lanes"} <= cancelled


@pytest.mark.parametrize(
    ("sig", "code", "status", "last_event"),
    [
        (signal.SIGINT, 130, "interrupted", "run.interrupted"),
        (signal.SIGTERM, 1, "cancelled", "run.cancelled"),
        (signal.SIGHUP, 130, "interrupted", "run.interrupted"),  # the terminal went away: as Ctrl-C
    ],
    ids=["ctrl-c", "sigterm", "hangup"],
)
def test_a_signal_stops_the_steps_in_flight_and_resume_finishes_the_run(
    tmp_path: Path, sig: signal.Signals, code: int, status: str, last_event: str
) -> None:
    project = Project(tmp_path)
    with project.background(*project.run_args()) as process:
        assert project.stopped(process, sig, blocked=2) == code
    run_id = project.run_id()
    stderr = project.output()
    assert f"llmflow resume {run_id} --state-dir {project.state}" in stderr
    assert "\x1b[" not in stderr  # plain output: stderr is not a terminal
    assert project.events()[-1]["type"] == last_event
    assert_stopped_cleanly(project, status, project.pids())

    summary = project.resume()

    assert summary["outputs"] == {"b": "XYZ"}
    assert project.lines() == ONCE + Counter(["x -", "y -"])  # nothing that completed ran again
    assert project.meta()["status"] == "succeeded"


def test_ctrl_c_stops_a_resume_the_same_way(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with project.background(*project.run_args()) as process:
        assert project.stopped(process, signal.SIGINT, blocked=2) == 130
    run_id = project.run_id()
    with project.background("resume", run_id, name="resume") as process:
        assert project.stopped(process, signal.SIGINT, blocked=4) == 130
    assert f"interrupted — resume with: llmflow resume {run_id} --state-dir {project.state}" in project.output("resume")
    assert project.meta()["resumes"] == 1
    assert_stopped_cleanly(project, "interrupted", project.pids()[2:])

    summary = project.resume()

    assert summary["outputs"] == {"b": "XYZ"}
    assert project.lines() == ONCE + Counter(["x -", "y -"] * 2)
    assert project.meta()["status"] == "succeeded"


def test_a_second_ctrl_c_kills_the_commands_still_winding_down_and_exits_at_once(tmp_path: Path) -> None:
    # The blocked shells ignore SIGTERM: after the first Ctrl-C the run gives them 2 s before SIGKILL. A second
    # Ctrl-C meanwhile ends the process at once, and must not leave them running behind it.
    stubborn = WORKFLOW.replace('echo $$ >> "{{ inputs.pids }}";', "trap '' TERM; echo $$ >> \"{{ inputs.pids }}\";")
    assert stubborn.count("trap ''") == 2
    project = Project(tmp_path, stubborn)
    with project.background(*project.run_args()) as process:
        wait_for(lambda: len(project.pids()) >= 2 and "lanes/z/z" in project.journaled(), "both shells", process)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.2)
        assert process.poll() is None, "the first Ctrl-C did not wait for the shells that ignore SIGTERM"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 130
        for pid in project.pids():  # before the context's clean-up kills whatever is left
            wait_for(lambda pid=pid: group_gone(pid), f"the process group of shell {pid} to end")
    run_id = project.run_id()
    stderr = project.output()
    assert "interrupted: stopped at once by a second Ctrl-C" in stderr
    assert f"interrupted — resume with: llmflow resume {run_id} --state-dir {project.state}" in stderr
    meta = project.meta()
    assert meta["status"] == "interrupted" and "second Ctrl-C" in meta["error"] and meta["ended"]
    assert sorted(project.verified_records()) == ["a", "lanes/z/z"]

    summary = project.resume()

    assert summary["outputs"] == {"b": "XYZ"}
    assert project.lines() == ONCE + Counter(["x -", "y -"])
    assert project.meta()["status"] == "succeeded"


def test_a_run_started_under_nohup_keeps_ignoring_hangups(tmp_path: Path) -> None:
    project = Project(tmp_path)
    run = [
        sys.executable,
        "-c",
        "import signal, sys, runpy; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
        "sys.argv = ['llmflow', *sys.argv[1:]]; runpy.run_module('llmflow', run_name='__main__')",
    ]
    with (tmp_path / "run.err").open("wb") as err:
        process = subprocess.Popen(
            [*run, *project.run_args(), "--state-dir", str(project.state)],
            cwd=tmp_path,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            wait_for(lambda: len(project.pids()) >= 2 and "lanes/z/z" in project.journaled(), "both shells", process)
            os.killpg(process.pid, signal.SIGHUP)
            time.sleep(0.3)
            assert process.poll() is None, project.output()
            project.gate.touch()
            assert process.wait(timeout=TIMEOUT) == 0, project.output()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=TIMEOUT)
            for pid in project.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
    assert project.meta()["status"] == "succeeded"
    assert project.lines() == ONCE


def test_ctrl_c_runs_the_finally_of_a_try_it_stops_and_resume_runs_it_again(tmp_path: Path) -> None:
    guarded = """\
version: 1
name: interrupt-finally
inputs:
  log: {type: string}
  gate: {type: string}
  pids: {type: string}
steps:
  - id: t
    try:
      - id: x
        run: echo "x -" >> "{{ inputs.log }}"; echo $$ >> "{{ inputs.pids }}"; BLOCK; echo X
    finally:
      - id: cleanup
        run: echo "cleanup -" >> "{{ inputs.log }}"
outputs:
  t: "{{ steps.t.output }}"
""".replace("BLOCK", BLOCK)
    project = Project(tmp_path, guarded)
    with project.background(*project.run_args()) as process:
        wait_for(lambda: len(project.pids()) >= 1, "the blocked shell", process)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 130
    assert project.lines() == Counter({"x -": 1, "cleanup -": 1})
    assert project.meta()["status"] == "interrupted"

    summary = project.resume()

    assert summary["outputs"] == {"t": "X"}
    assert project.lines() == Counter({"x -": 2, "cleanup -": 2})
