"""Approval gates through the CLI: exit 3 while waiting, then `resume --approve` (0) or `--reject` (1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result, command, environment, wait_for

Cli = Callable[..., Result]
Write = Callable[..., Path]

GATED = """\
version: 1
name: gated
steps:
  - id: build
    run: echo built >> builds.txt
  - id: gate
    approval: Ship it?
  - id: ship
    run: echo "shipped, approved={{ steps.gate.output.approved }}"
outputs:
  result: "{{ steps.ship.output }}"
  comment: "{{ steps.gate.output.comment }}"
"""


def test_waiting_run_exits_3_and_approve_finishes_it(cli: Cli, workflow: Write, tmp_path: Path) -> None:
    workflow(GATED)
    waiting = cli("run", "flow.yaml", "--json")
    assert waiting.code == 3
    document = json.loads(waiting.stdout)
    run_id = document["run_id"]
    assert document["status"] == "waiting" and document["waiting_for"] == ["gate"]
    assert "⏸ gate waiting for approval: Ship it?" in waiting.stderr
    assert f"approve: llmflow resume {run_id} --approve" in waiting.stderr
    assert f"reject:  llmflow resume {run_id} --reject" in waiting.stderr

    not_decided = cli("resume", run_id[:15])
    assert not_decided.code == 2
    assert not_decided.stderr.startswith(f"error: run {run_id} is waiting for approval at gate")

    approved = cli("resume", run_id[:17], "--approve", "--comment", "looks good", "--json", "-q")
    assert approved.code == 0, approved.stderr
    assert json.loads(approved.stdout)["outputs"] == {"result": "shipped, approved=true", "comment": "looks good"}
    assert (tmp_path / "builds.txt").read_text(encoding="utf-8") == "built\n"

    again = cli("resume", run_id)
    assert again.code == 2
    assert "already succeeded" in again.stderr


def test_reject_fails_the_run(cli: Cli, workflow: Write) -> None:
    workflow(GATED)
    assert cli("run", "flow.yaml", "-q").code == 3
    rejected = cli("resume", "--last", "--reject", "--comment", "not today")
    assert rejected.code == 1
    assert "✗ gate: step 'gate' was rejected: not today" in rejected.stderr
    assert cli("runs", "--json").json()[0]["status"] == "failed"


def test_resume_of_an_unknown_run_is_one_line_naming_the_store_it_searched(cli: Cli, runs_dir: Path) -> None:
    result = cli("resume", "nosuchrun")
    assert result.code == 2
    store = runs_dir.parent
    assert result.stderr == f"error: no run matches 'nosuchrun' in {store} (`llmflow runs` lists the runs there)\n"
    given = cli("resume", "--last", "n=2")
    assert given.stderr == (
        f"error: no run matches 'n=2' in {store} (`llmflow runs` lists the runs there); an input is given with -i: "
        "-i n=2\n"
    )


TIMED = """\
version: 1
name: timed
steps:
  - id: guarded
    try:
      - id: gate
        approval: {message: 'Ship it?', timeout: 1s}
      - id: ship
        run: echo shipped
    catch:
      - id: fallback
        run: echo "not shipped ({{ error.kind }})"
outputs:
  result: "{{ steps.guarded.output }}"
"""


def _past_the_deadline() -> None:
    """Let the approval's 1s timeout pass (real time: the deadline is checked against the clock)."""
    time.sleep(1.2)


def test_an_approval_decided_in_time_goes_on(cli: Cli, workflow: Write, runs_dir: Path) -> None:
    workflow(TIMED.replace("timeout: 1s", "timeout: 1h"))  # in time however slow the machine
    waiting = cli("run", "flow.yaml", "--json")
    assert waiting.code == 3
    run_id = waiting.json()["run_id"]
    meta = json.loads((runs_dir / run_id / "run.json").read_text(encoding="utf-8"))
    assert list(meta["approvals_asked"]) == ["guarded/try/gate"]
    early = cli("resume", run_id)
    assert early.code == 2
    assert "is waiting for approval at guarded/try/gate (it times out at " in early.stderr
    approved = cli("resume", run_id, "--approve", "--json", "-q")
    assert approved.code == 0, approved.stderr
    assert approved.json()["outputs"] == {"result": "shipped"}


def test_an_approval_not_decided_in_time_fails_as_a_timeout(cli: Cli, workflow: Write) -> None:
    workflow(TIMED)
    run_id = cli("run", "flow.yaml", "--json").json()["run_id"]
    _past_the_deadline()
    resumed = cli("resume", run_id, "--json", "-q")  # no decision needed any more: the step times out
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["outputs"] == {"result": "not shipped (timeout)"}
    shown = cli("show", run_id, "--json").json()
    errors = json.dumps(shown)
    assert "no decision within the approval's timeout of 1.0s" in errors


def test_a_decision_after_the_timeout_is_refused_and_changes_nothing(cli: Cli, workflow: Write, runs_dir: Path) -> None:
    workflow(TIMED)
    run_id = cli("run", "flow.yaml", "--json").json()["run_id"]
    _past_the_deadline()
    before = (runs_dir / run_id / "run.json").read_bytes()
    late = cli("resume", run_id, "--approve")
    assert late.code == 2
    assert late.stderr.startswith(f"error: the approval at guarded/try/gate of run {run_id} timed out at ")
    assert late.stderr.rstrip().endswith(
        "resume without --approve/--reject to let it fail, or with --from gate to ask again"
    )
    assert (runs_dir / run_id / "run.json").read_bytes() == before


def test_from_the_gate_asks_a_timed_out_approval_again(cli: Cli, workflow: Write, runs_dir: Path) -> None:
    workflow(TIMED)
    run_id = cli("run", "flow.yaml", "--json").json()["run_id"]
    first = json.loads((runs_dir / run_id / "run.json").read_text(encoding="utf-8"))["approvals_asked"]
    _past_the_deadline()
    asked_again = cli("resume", run_id, "--from", "gate", "-q")
    assert asked_again.code == 3, asked_again.stderr
    second = json.loads((runs_dir / run_id / "run.json").read_text(encoding="utf-8"))["approvals_asked"]
    assert second["guarded/try/gate"] > first["guarded/try/gate"] + 1  # a new deadline counts from now


def test_approvals_waiting_at_once_are_each_shown_with_their_own_message(cli: Cli, workflow: Write) -> None:
    workflow(
        """\
version: 1
name: two-gates
steps:
  - id: checks
    map:
      items: [alpha, beta]
      steps:
        - id: ok
          approval: "Ship {{ item }}?"
"""
    )
    waiting = cli("run", "flow.yaml", "-q")
    assert waiting.code == 3
    assert "  checks[0]/ok: Ship alpha?\n  checks[1]/ok: Ship beta?\n" in waiting.stderr
    shown = cli("show", "--last").stdout.splitlines()
    assert "waiting:  checks[0]/ok: Ship alpha?" in shown
    assert "waiting:  checks[1]/ok: Ship beta?" in shown


def test_an_approval_asked_before_a_kill_keeps_its_time_on_resume(
    workflow: Write, runs_dir: Path, tmp_path: Path, cli: Cli
) -> None:
    workflow(
        """\
version: 1
name: killed-while-waiting
steps:
  - id: both
    parallel:
      fail_fast: false
      branches:
        ask: [{id: gate, approval: {message: "Ship it?", timeout: 1h}}]
        work: [{id: slow, run: "touch started; if [ ! -e go ]; then sleep 30; fi"}]
"""
    )
    driver = subprocess.Popen(command("run", "flow.yaml", "-q"), cwd=tmp_path, env=environment())
    try:
        wait_for(lambda: (tmp_path / "started").exists() and _asked(runs_dir) is not None, "the approval asked")
        first = _asked(runs_dir)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    (tmp_path / "go").touch()  # the branch in flight at the kill runs again, at once this time
    resumed = cli("resume", "--last", "-q")
    assert resumed.code == 3, resumed.stderr  # still waiting, and the slow branch ran to its end
    assert _asked(runs_dir) == first


def _asked(runs_dir: Path) -> float | None:
    """When the run's approval was first asked, as its ``run.json`` says (None before it says so)."""
    for meta_file in runs_dir.glob("*/run.json"):
        asked = json.loads(meta_file.read_text(encoding="utf-8")).get("approvals_asked") or {}
        return asked.get("both/ask/gate")
    return None
