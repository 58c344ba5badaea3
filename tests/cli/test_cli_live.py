"""Runs in flight: `cancel` of a running run, `logs --follow` until a run ends, Ctrl-C then resume."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cli_helpers import Result, command, environment, step_started, wait_for

Cli = Callable[..., Result]
Write = Callable[..., Path]

# `hold` waits until the test creates the file `go`: the test decides when the run moves on.
HELD = """\
version: 1
name: held
steps:
  - id: first
    run: echo first >> first.txt
  - id: hold
    run: while [ ! -f go ]; do sleep 0.02; done; echo released
  - id: last
    run: echo last
outputs:
  released: "{{ steps.hold.output }}"
"""


@contextmanager
def background(cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """The CLI running in the background; killed if the test leaves it running."""
    process = subprocess.Popen(
        command(*args), cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=20)


def test_cancel_stops_a_running_run(cli: Cli, workflow: Write, tmp_path: Path, runs_dir: Path) -> None:
    workflow(HELD)
    with background(tmp_path, "run", "flow.yaml", "--json") as process:
        wait_for(step_started(runs_dir, "hold"), "the run to reach 'hold'")
        (run_id,) = [path.name for path in runs_dir.iterdir()]
        cancelled = cli("cancel", "--last")
        assert cancelled.code == 0, cancelled.stderr
        assert cancelled.stderr.startswith(f"cancelled run {run_id} (stopped pid ")
        stdout, stderr = process.communicate(timeout=20)
        assert process.returncode == 1
        assert json.loads(stdout)["status"] == "cancelled"
        assert "⊘ hold cancelled" in stderr
    assert cli("runs", "--json").json()[0]["status"] == "cancelled"


def test_logs_follow_prints_events_until_the_run_ends(
    cli: Cli, workflow: Write, tmp_path: Path, runs_dir: Path
) -> None:
    workflow(HELD)
    with background(tmp_path, "run", "flow.yaml", "-q") as run:
        wait_for(step_started(runs_dir, "hold"), "the run to reach 'hold'")
        with background(tmp_path, "logs", "--last", "--follow", "--json") as follower:
            assert follower.stdout is not None
            first = follower.stdout.readline()  # the follower is reading while the run still holds
            assert follower.poll() is None
            (tmp_path / "go").write_text("", encoding="utf-8")
            rest = follower.stdout.read()  # to the end: the follower exits once the run has ended
            assert follower.wait(timeout=20) == 0
            stdout = first + rest
        assert run.wait(timeout=20) == 0
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.completed"
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1))


def test_ctrl_c_interrupts_and_resume_continues(cli: Cli, workflow: Write, tmp_path: Path, runs_dir: Path) -> None:
    workflow(HELD)
    with background(tmp_path, "run", "flow.yaml") as process:
        wait_for(step_started(runs_dir, "hold"), "the run to reach 'hold'")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 130
    (run_id,) = [path.name for path in runs_dir.iterdir()]
    assert stderr.endswith(f"interrupted — resume with: llmflow resume {run_id}\n")
    assert cli("runs", "--json").json()[0]["status"] == "interrupted"

    (tmp_path / "go").write_text("", encoding="utf-8")
    resumed = cli("resume", run_id, "--json", "-q")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == {"released": "released"}
    assert (tmp_path / "first.txt").read_text(encoding="utf-8") == "first\n"
