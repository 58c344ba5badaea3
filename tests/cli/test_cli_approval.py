"""Approval gates through the CLI: exit 3 while waiting, then `resume --approve` (0) or `--reject` (1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result

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


def test_resume_of_an_unknown_run_is_one_line(cli: Cli) -> None:
    result = cli("resume", "nosuchrun")
    assert result.code == 2
    assert result.stderr == "error: no run matches 'nosuchrun'\n"
