"""Durable completions (``strict``): a step's record is on disk before anything after it starts; steps that end
together share one fsync (group commit); a real crash after a step started its successor finds the record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from engine_helpers import Flow, process_gone


class DurableJournal:
    """Watches fsyncs of every ``journal.jsonl`` (the size each had when it was last fsynced) and checks, as a
    sink the bus calls at the moment of each event, what of the journal was on disk then."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, flow: Flow, *, sequential: bool = False) -> None:
        self.flow = flow
        self.sequential = sequential  # no lanes: nothing may ever wait for its fsync when a step starts
        self.synced: dict[int, int] = {}  # inode -> size at the last fsync
        self.fsyncs = 0
        self.checked: list[str] = []
        self.problems: list[str] = []
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self.fsync)

    def fsync(self, fd: int) -> None:
        self._real(fd)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/journal.jsonl"):
            status = os.fstat(fd)
            self.synced[status.st_ino] = status.st_size
            self.fsyncs += 1

    def on_disk(self, run_id: str) -> tuple[bytes, bytes]:
        """The journal's bytes, and the part of them that had been fsynced."""
        path = self.flow.run_dir(run_id) / "journal.jsonl"
        if not path.exists():
            return b"", b""
        data = path.read_bytes()
        return data, data[: self.synced.get(path.stat().st_ino, 0)]

    def put(self, event: dict[str, Any]) -> None:
        kind, path = event["type"], event["path"]
        data, durable = self.on_disk(event["run_id"])
        if kind == "step.started":
            # Records not on disk yet may only be those of other lanes, never of a step before this one in
            # its own sequence (the same parent); steps before the composite were checked when it started.
            pending = [json.loads(line)["p"] for line in data[len(durable) :].splitlines()]
            for other in pending:
                if self.sequential or _parent(other) == _parent(path):
                    self.problems.append(f"{path} started before the record of {other} was on disk")
        if kind in ("step.completed", "step.skipped"):
            if b'"p":%s,' % json.dumps(path).encode() not in durable:
                self.problems.append(f"{kind} of {path} before its record was on disk")
            self.checked.append(path)
        if kind.startswith("run.") and kind != "run.started" and data != durable:
            self.problems.append(f"{kind} while journal bytes were not on disk")

    def close(self) -> None:
        pass


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


SEQUENCE = """
steps:
  - {id: a, set: {x: 1}}
  - {id: b, run: "echo {{ vars.x }}"}
  - id: g
    steps:
      - {id: c, set: {y: 2}}
      - {id: d, if: "False", set: {z: 3}}
  - id: l
    loop:
      times: 2
      steps: [{id: li, set: {n: "{{ index }}"}}]
  - {id: e, set: {w: 4}}
"""


def test_every_step_is_on_disk_before_the_next_one_starts(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = DurableJournal(monkeypatch, flow, sequential=True)
    summary = flow.run(SEQUENCE, sinks=[probe])
    assert summary.status == "succeeded", summary.error
    assert probe.problems == []
    assert probe.checked == ["a", "b", "g/c", "g/d", "g", "l[0]/li", "l[1]/li", "l", "e"]
    assert probe.fsyncs == len(flow.journal(summary.run_id)) == 9  # one each: nothing ran concurrently


def test_branches_that_end_together_share_one_fsync(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = DurableJournal(monkeypatch, flow)
    branches = "\n".join(f"        b{i}: [{{id: s{i}, set: {{v{i}: {i}}}}}]" for i in range(10))
    text = f"steps:\n  - id: p\n    parallel:\n      branches:\n{branches}\n  - {{id: after, set: {{z: 1}}}}\n"
    summary = flow.run(text, sinks=[probe])
    assert summary.status == "succeeded", summary.error
    assert probe.problems == []
    assert len(flow.journal(summary.run_id)) == 12
    # The ten branch steps end in the same moment: one fsync for all of them, then one for `p`, one for `after`.
    assert probe.fsyncs == 3


def test_map_items_are_each_on_disk_before_the_map_reports_them(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = DurableJournal(monkeypatch, flow)
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4, 5, 6]
              concurrency: 2
              merge: last
              steps:
                - {id: double, set: {d: "{{ item * 2 }}"}}
                - {id: nap, wait: 10ms}
        """,
        sinks=[probe],
    )
    assert summary.status == "succeeded", summary.error
    assert probe.problems == []
    assert len(probe.checked) == 6 * 2 + 1
    assert probe.fsyncs < len(flow.journal(summary.run_id))


def test_map_items_ending_together_share_fsyncs_under_a_concurrency_limit(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = DurableJournal(monkeypatch, flow)
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: "{{ range(100) | list }}"
              concurrency: 10
              merge: last
              steps:
                - {id: double, set: {d: "{{ item * 2 }}"}}
        """,
        sinks=[probe],
    )
    assert summary.status == "succeeded", summary.error
    assert probe.problems == []
    assert len(flow.journal(summary.run_id)) == 101
    # Ten items end in each moment and share one fsync: not one fsync per item.
    assert probe.fsyncs <= 20


@pytest.mark.parametrize("durability", ["batch", "none"])
def test_other_durabilities_journal_the_same_records(flow: Flow, durability: str) -> None:
    strict = flow.run(SEQUENCE)
    other = flow.run(SEQUENCE, durability=durability)
    assert other.status == "succeeded", other.error

    def shape(run_id: str) -> list[tuple[str, str, Any]]:
        return [(r["p"], r["s"], r.get("output")) for r in flow.journal(run_id)]

    assert shape(other.run_id) == shape(strict.run_id)


DRIVER = """
import asyncio, sys
import llmflow
from llmflow.runtime import RunOptions, start_run
asyncio.run(start_run(llmflow.load(sys.argv[1]), {}, RunOptions(state_dir=sys.argv[2], handle_signals=False)))
"""


def test_a_crash_after_a_step_started_its_successor_finds_the_step_in_the_journal(flow: Flow) -> None:
    marker, gate = flow.root / "successor-started", flow.root / "gate"
    path = flow.workflow(
        f"""
        steps:
          - {{id: before, set: {{x: 1}}}}
          - {{id: producer, python: "json:dumps", with: {{obj: [1, 2, 3]}}}}
          - id: successor
            run: touch '{marker}'; while [ ! -e '{gate}' ]; do sleep 0.05; done; echo done
        """
    )
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(path), str(flow.state)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():  # the successor runs: its side effect can be seen
            assert process.poll() is None, "the run ended before the successor started"
            assert time.monotonic() < deadline, "the successor did not start in time"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process_gone(process.pid)
    run_id = flow.only_run()
    records = {record["p"]: record for record in flow.journal(run_id)}
    assert set(records) == {"before", "producer"}
    assert records["producer"]["output"] == "[1, 2, 3]"
    gate.touch()
    resumed = flow.resume(run_id)  # the successor runs again (at-least-once); the others are restored
    assert resumed.status == "succeeded", resumed.error
    restored = [step["path"] for event in flow.events(run_id, "steps.restored") for step in event["data"]["steps"]]
    assert restored == ["before", "producer"]


def test_a_record_whose_output_is_its_variables_stores_them_once(flow: Flow) -> None:
    summary = flow.run("steps:\n  - {id: a, set: {text: hello}}\n  - {id: b, run: 'echo {{ vars.text }}'}")
    assert summary.status == "succeeded", summary.error
    first = flow.journal(summary.run_id)[0]
    assert first["output"] == {"text": "hello"} and first["wo"] == 1 and "w" not in first
    first_line = (flow.run_dir(summary.run_id) / "journal.jsonl").read_text().splitlines()[0]
    assert first_line.count("hello") == 1


def test_a_restored_set_step_leaves_its_variables_again(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: a, set: {text: hello}}
          - {id: gate, run: "test -f marker && echo {{ vars.text }}"}
        """
    )
    assert summary.status == "failed"
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    gate = next(record for record in flow.journal(summary.run_id) if record["p"] == "gate")
    assert gate["output"] == "hello"


def test_a_sizeable_output_is_journaled_compressed_and_restored_exactly(flow: Flow) -> None:
    prose = " ".join(f"Sentence {i} of a long answer, the kind a model writes; café ☕." for i in range(60))
    flow.write("texts.py", f"def answer():\n    return {prose!r}\n")
    summary = flow.run(
        """
        steps:
          - {id: answer, python: 'texts:answer'}
          - {id: gate, run: "test -f marker && printf %s '{{ steps.answer.output | length }}'"}
        """
    )
    assert summary.status == "failed"
    line = next(
        line for line in (flow.run_dir(summary.run_id) / "journal.jsonl").read_text().splitlines() if "answer" in line
    )
    size = len(json.dumps(prose, ensure_ascii=False).encode())
    assert '"oz":' in line and "Sentence" not in line and len(line) < size * 7 / 8
    [completed] = [event for event in flow.events(summary.run_id, "step.completed") if event["path"] == "answer"]
    assert completed["data"]["bytes"] == size and completed["data"]["preview"].startswith("Sentence 0 of")
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    records = {record["p"]: record for record in flow.journal(summary.run_id)}
    assert records["answer"]["output"] == prose and records["gate"]["output"] == str(len(prose))
