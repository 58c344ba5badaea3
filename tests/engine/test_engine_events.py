"""Events (ordering and lifecycle types) and the journal's shape: lean, JSON only, one record per instance."""

from __future__ import annotations

import json
from typing import Any

from engine_helpers import Flow

EVERYTHING = """
steps:
  - {id: flaky, retry: {attempts: 2, delay: 1ms}, run: 'echo x >> log; test $(wc -l < log) -ge 2'}
  - {id: skipped, if: "False", run: echo no}
  - id: choose
    if: "True"
    then: [{id: yes, run: echo yes}]
  - id: l
    loop:
      times: 2
      steps: [{id: li, run: "true"}]
  - id: m
    map:
      items: [1, 2]
      steps: [{id: mi, run: "true"}]
  - id: p
    parallel:
      branches:
        a: [{id: pa, run: "true"}]
        b: [{id: pb, fail: tolerated, continue_on_error: true}]
"""


def _strict_json(line: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


def test_every_lifecycle_event_is_emitted_in_seq_order(flow: Flow) -> None:
    done = flow.run(EVERYTHING)
    assert done.status == "succeeded", done.error
    types = {event["type"] for event in flow.events(done.run_id)}
    assert {
        "run.started",
        "step.started",
        "step.completed",
        "step.failed",
        "step.skipped",
        "step.retrying",
        "branch.selected",
        "loop.iteration",
        "map.item",
        "parallel.branch",
        "run.completed",
    } <= types
    failed = flow.run("steps: [{id: f, fail: no}]")
    assert flow.events(failed.run_id)[-1]["type"] == "run.failed"
    paused = flow.run("steps: [{id: a, approval: 'ok?'}]")
    assert flow.events(paused.run_id)[-1]["type"] == "run.paused"
    assert flow.events(paused.run_id)[-1]["data"] == {"status": "waiting", "error": "ok?", "waiting_for": ["a"]}
    for run_id in (done.run_id, failed.run_id, paused.run_id):
        seqs = [event["seq"] for event in flow.events(run_id)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_events_have_the_documented_shape(flow: Flow) -> None:
    summary = flow.run("steps: [{id: a, name: First, run: echo hi}]")
    started = flow.events(summary.run_id, "step.started")[0]
    assert set(started) == {"v", "seq", "ts", "run_id", "type", "path", "attempt", "data"}
    assert started["run_id"] == summary.run_id and started["path"] == "a" and started["attempt"] == 1
    assert started["data"] == {"id": "a", "kind": "run", "name": "First"}
    completed = flow.events(summary.run_id, "step.completed")[0]
    assert completed["data"]["preview"] == "hi"


def test_seq_keeps_increasing_across_a_resume_even_when_run_json_lost_it(flow: Flow) -> None:
    summary = flow.run("steps: [{id: gate, run: test -f marker}]")
    events_file = flow.run_dir(summary.run_id) / "events.jsonl"
    last = flow.events(summary.run_id)[-1]["seq"]
    meta_file = flow.run_dir(summary.run_id) / "run.json"
    meta = json.loads(meta_file.read_text())
    meta["last_seq"] = 1  # as after a crash: run.json was written long before the last events
    meta_file.write_text(json.dumps(meta))
    with events_file.open("a") as stream:
        stream.write('{"v":1,"seq":')  # a torn last event
    flow.touch("marker")
    flow.resume(summary.run_id)
    text = events_file.read_text().replace('{"v":1,"seq":{', "{")
    seqs = [json.loads(line)["seq"] for line in text.splitlines() if line.endswith("}") and '"seq":' in line]
    assert seqs[:last] == list(range(1, last + 1))
    assert seqs[last:] == list(range(last + 1, len(seqs) + 1))


def test_an_event_holding_a_lone_surrogate_is_written_so_no_seq_is_missing(flow: Flow) -> None:
    flow.write("helpers.py", 'def broken():\n    return "half \\ud83d of an emoji"\n')  # as a model may send
    summary = flow.run("steps:\n  - {id: a, python: 'helpers:broken'}\n  - {id: b, run: echo B}\n")
    assert summary.status == "succeeded", summary.error
    events = flow.events(summary.run_id)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    (completed,) = [event for event in events if event["type"] == "step.completed" and event["path"] == "a"]
    assert completed["data"]["preview"] == "half \ud83d of an emoji"


def test_journal_of_200_steps_is_lean(flow: Flow) -> None:
    steps = "\n".join(f"  - {{id: s{i}, set: {{v{i % 5}: {i}}}}}" for i in range(150))
    steps += "\n" + "\n".join(f"  - {{id: k{i}, if: 'False', run: echo no}}" for i in range(50))
    summary = flow.run("steps:\n" + steps + "\n")
    assert summary.status == "succeeded", summary.error
    journal = flow.run_dir(summary.run_id) / "journal.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == 200
    assert journal.stat().st_size < 200 * 110
    skipped = [_strict_json(line) for line in lines if '"skipped"' in line]
    assert len(skipped) == 50
    assert all(set(record) == {"p", "s", "c"} for record in skipped)


def test_journal_records_hold_only_json_and_omit_empty_fields(flow: Flow) -> None:
    flow.run(EVERYTHING)
    run_id = flow.only_run()
    every = (flow.run_dir(run_id) / "journal.jsonl").read_text().splitlines()
    for line in every:
        record = _strict_json(line)
        for key in ("output", "w", "e", "x", "a"):
            assert record.get(key, "absent") not in (None, {}, [], 1 if key == "a" else "-")
    # besides completions, only the later attempts of the retried step, each with its number
    retries = [_strict_json(line) for line in every if _strict_json(line)["s"] == "retry"]
    assert [(record["p"], record["a"]) for record in retries] == [("flaky", 2)]
    lines = [line for line in every if _strict_json(line)["s"] != "retry"]
    for line in lines:
        assert _strict_json(line)["s"] in ("succeeded", "skipped", "failed")
    composite = next(_strict_json(line) for line in lines if _strict_json(line)["p"] == "p")
    assert composite["output"] == {"a": "", "b": None}
    paths = [_strict_json(line)["p"] for line in lines]
    assert len(paths) == len(set(paths)), "one record per node instance"


def test_composite_records_store_their_output_so_a_resume_does_not_walk_inside(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: l
            loop:
              for_each: [1, 2, 3]
              steps: [{id: x, run: "echo {{ item }}"}]
          - {id: gate, run: test -f marker}
        """
    )
    loop = next(record for record in flow.journal(summary.run_id) if record["p"] == "l")
    assert loop["output"] == ["1", "2", "3"] and loop["x"] == {"iterations": 3}
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded"
    assert flow.events(resumed.run_id, "loop.iteration")[3:] == []
