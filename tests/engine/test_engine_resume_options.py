"""Resume edge cases: torn and corrupt journals, the lock, ``--from``, ``--workflow``, the frozen source, limits."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from engine_helpers import Flow, wait_until

import llmflow
from llmflow.engine.actions import ActionRegistry, ActionResult
from llmflow.engine.events import EventBus
from llmflow.errors import JournalCorrupt, RunLocked, UsageError
from llmflow.runtime import ResumeRequest, resume_run, start_run

THREE = """
steps:
  - {id: a, run: 'echo a >> log; echo A'}
  - id: g
    steps:
      - {id: b, run: 'echo b >> log; echo B'}
      - {id: c, run: 'echo c >> log; echo C'}
  - {id: gate, run: 'echo gate >> log; test -f marker'}
  - {id: d, run: 'echo d >> log; echo "{{ steps.a.output }}{{ steps.c.output }}"'}
outputs: {d: "{{ steps.d.output }}"}
"""


def _failed(flow: Flow, body: str = THREE) -> str:
    summary = flow.run(body)
    assert summary.status == "failed"
    return summary.run_id


def test_a_torn_last_journal_line_is_ignored(flow: Flow) -> None:
    run_id = _failed(flow)
    journal = flow.run_dir(run_id) / "journal.jsonl"
    with journal.open("ab") as stream:
        stream.write(b'{"p":"gate","s":"succ')
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"d": "AC"}
    assert flow.log() == {"a": 1, "b": 1, "c": 1, "gate": 2, "d": 1}
    assert b'"succ{' not in journal.read_bytes()


def test_a_corrupt_middle_line_is_reported_and_the_run_is_not_touched(flow: Flow) -> None:
    run_id = _failed(flow)
    folder = flow.run_dir(run_id)
    journal = folder / "journal.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"B"', b'"X"')
    journal.write_bytes(b"\n".join(lines))
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    flow.touch("marker")
    with pytest.raises(JournalCorrupt, match=r"journal.jsonl:2: journal record fails its checksum"):
        flow.resume(run_id)
    after = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert {name: data for name, data in after.items() if name != "lock"} == {
        name: data for name, data in before.items() if name != "lock"
    }
    assert flow.log() == {"a": 1, "b": 1, "c": 1, "gate": 1}


def test_a_second_driver_is_refused_naming_the_holder(flow: Flow) -> None:
    path = flow.workflow("steps: [{id: slow, run: 'touch started; test -f marker || sleep 30'}]")

    async def both() -> None:
        first = asyncio.ensure_future(start_run(llmflow.load(path), {}, flow.options()))
        await wait_until(lambda: (flow.root / "started").exists())
        with pytest.raises(RunLocked, match=rf"is being driven by pid {os.getpid()} on "):
            await resume_run(ResumeRequest(selector=flow.only_run()), flow.options())
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(both())
    assert flow.meta(flow.only_run())["status"] == "interrupted"


def test_from_step_reruns_it_and_everything_after(flow: Flow) -> None:
    flow.touch("marker")
    summary = flow.run(THREE)
    assert summary.status == "succeeded"
    again = flow.resume(summary.run_id, from_step="c")
    assert again.status == "succeeded", again.error
    assert again.outputs == {"d": "AC"}
    assert flow.log() == {"a": 1, "b": 1, "c": 2, "gate": 2, "d": 2}
    third = flow.resume(summary.run_id, from_step="gate")
    assert third.status == "succeeded"
    assert flow.log() == {"a": 1, "b": 1, "c": 2, "gate": 3, "d": 3}


def test_from_step_inside_a_loop_reruns_it_in_every_iteration(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: l
            loop:
              for_each: [1, 2]
              steps:
                - {id: x, run: 'echo x{{ item }} >> log'}
                - {id: y, run: 'echo y{{ item }} >> log'}
          - {id: z, run: 'echo z >> log'}
        """
    )
    again = flow.resume(summary.run_id, from_step="y")
    assert again.status == "succeeded"
    assert flow.log() == {"x1": 1, "x2": 1, "y1": 2, "y2": 2, "z": 2}


def test_from_an_unknown_step_is_refused_with_a_suggestion(flow: Flow) -> None:
    flow.touch("marker")
    summary = flow.run(THREE)
    with pytest.raises(UsageError, match=r"no step 'gat' \(did you mean 'gate'\?\)"):
        flow.resume(summary.run_id, from_step="gat")
    assert "rewind" not in (flow.run_dir(summary.run_id) / "journal.jsonl").read_text()


def test_resuming_a_succeeded_run_without_from_is_refused(flow: Flow) -> None:
    flow.touch("marker")
    summary = flow.run(THREE)
    with pytest.raises(UsageError, match="already succeeded; use --from STEP"):
        flow.resume(summary.run_id)


def test_the_frozen_source_is_used_even_when_the_file_changed(flow: Flow) -> None:
    run_id = _failed(flow)
    flow.workflow(THREE.replace("echo d >> log", "echo edited >> log"))
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.status == "succeeded"
    assert flow.log()["d"] == 1 and "edited" not in flow.log()


def test_an_edited_workflow_that_keeps_the_completed_steps_is_used(flow: Flow) -> None:
    run_id = _failed(flow)
    edited = flow.workflow(THREE.replace("echo d >> log", "echo edited >> log"), name="edited.yaml")
    flow.touch("marker")
    summary = flow.resume(run_id, workflow_file=edited)
    assert summary.status == "succeeded", summary.error
    assert flow.log() == {"a": 1, "b": 1, "c": 1, "gate": 2, "edited": 1}
    assert flow.meta(run_id)["edited_workflow"] == str(edited.resolve())


def test_a_plain_resume_after_a_resume_with_an_edited_workflow_goes_on_with_the_edit(flow: Flow) -> None:
    run_id = _failed(flow)
    gated = THREE.replace("echo d >> log; echo", "echo edited >> log; test -f second && echo E")
    edited = flow.workflow(gated, name="edited.yaml")
    flow.touch("marker")
    again = flow.resume(run_id, workflow_file=edited)
    assert again.status == "failed" and again.failed_step == "d"
    meta = flow.meta(run_id)
    assert meta["source_dir"] == "source-2" and meta["source_main"] == "edited.yaml"
    assert (flow.run_dir(run_id) / "source-2" / "edited.yaml").read_text() == edited.read_text()
    edited.unlink()  # the run keeps its own copy of the edit, as it does of the workflow it started with
    flow.touch("second")
    summary = flow.resume(run_id)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"d": "E AC"}
    assert flow.log() == {"a": 1, "b": 1, "c": 1, "gate": 2, "edited": 2}


def test_a_plain_resume_after_a_resume_with_new_inputs_goes_on_with_them(flow: Flow) -> None:
    body = """
    inputs: {mode: {type: string}}
    steps:
      - {id: a, run: 'echo a-{{ inputs.mode }} >> log'}
      - {id: b, run: 'echo b-{{ inputs.mode }} >> log; test {{ inputs.mode }} = good'}
      - {id: c, run: 'echo c-{{ inputs.mode }} >> log; test -f marker && echo C-{{ inputs.mode }}'}
    outputs: {c: "{{ steps.c.output }}"}
    """
    run_id = flow.run(body, {"mode": "bad"}).run_id
    again = flow.resume(run_id, inputs={"mode": "good"})
    assert again.status == "failed" and again.failed_step == "c"
    assert flow.meta(run_id)["inputs"] == {"mode": "good"}  # b succeeded only because of the new value
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"c": "C-good"}
    assert flow.log() == {"a-bad": 1, "b-bad": 1, "b-good": 1, "c-good": 2}


def test_new_inputs_given_with_from_are_kept_for_the_resumes_after(flow: Flow) -> None:
    body = """
    inputs: {mode: {type: string}}
    steps:
      - {id: a, run: 'echo a-{{ inputs.mode }} >> log'}
      - {id: b, run: 'echo b-{{ inputs.mode }} >> log; test -f marker && echo B-{{ inputs.mode }}'}
    outputs: {b: "{{ steps.b.output }}"}
    """
    run_id = flow.run(body, {"mode": "old"}).run_id
    again = flow.resume(run_id, from_step="a", inputs={"mode": "new"})
    assert again.status == "failed" and again.failed_step == "b"
    assert flow.meta(run_id)["inputs"] == {"mode": "new"}
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"b": "B-new"}
    assert flow.log() == {"a-old": 1, "b-old": 1, "a-new": 1, "b-new": 2}


def test_an_edited_workflow_that_lost_a_completed_step_is_refused(flow: Flow) -> None:
    run_id = _failed(flow)
    edited = flow.workflow(THREE.replace("      - {id: b, run: 'echo b >> log; echo B'}\n", ""), name="edited.yaml")
    meta_before = (flow.run_dir(run_id) / "run.json").read_text()
    with pytest.raises(
        UsageError,
        match=r"no longer has these completed steps: g/b; keep them \(with the same ids\) to resume, "
        r"or start a new run with `llmflow run`$",
    ):
        flow.resume(run_id, workflow_file=edited)
    assert (flow.run_dir(run_id) / "run.json").read_text() == meta_before


def test_variables_are_restored_without_rerunning_the_set(flow: Flow) -> None:
    run_id = _failed(
        flow,
        """
        steps:
          - {id: v, set: {x: "{{ 40 + 2 }}"}}
          - {id: gate, run: 'test -f marker'}
          - {id: show, run: 'echo "{{ vars.x }}"'}
        outputs: {show: "{{ steps.show.output }}"}
        """,
    )
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.outputs == {"show": "42"}
    assert [event["path"] for event in flow.events(run_id, "step.started")].count("v") == 1


def _usage_registry() -> ActionRegistry:
    from llmflow.actions import builtin_actions

    async def metered(ctx: object) -> ActionResult:
        return ActionResult(output="spent", usage={"input_tokens": 40, "output_tokens": 20, "cost": 0.01})

    actions = dict(builtin_actions())
    actions["python"] = metered
    return ActionRegistry(actions)


def test_a_token_limit_stops_the_run_after_journaling_the_step(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmflow.runtime.registry", _usage_registry)
    body = """
        limits: {max_tokens: LIMIT}
        steps:
          - id: cleanup-test
            run: echo one >> log
            compensate: [{id: undo, run: echo undo >> log}]
          - {id: p1, python: "x:y"}
          - {id: p2, python: "x:y"}
          - {id: p3, python: "x:y"}
        """
    summary = flow.run(body.replace("LIMIT", "100"))
    assert summary.status == "failed"
    assert summary.error == "the run used 120 tokens, over limits.max_tokens (100)"
    assert summary.compensated == []
    assert [record["p"] for record in flow.journal(summary.run_id)] == ["cleanup-test", "p1", "p2"]
    assert flow.meta(summary.run_id)["usage"]["input_tokens"] == 80
    edited = flow.workflow(body.replace("LIMIT", "1000"), name="more.yaml")
    resumed = flow.resume(summary.run_id, workflow_file=edited)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.usage["input_tokens"] == 120
    assert flow.log() == {"one": 1}


def test_resume_inside_a_retried_group_runs_it_afresh(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: g
            retry: {attempts: 2, delay: 1ms}
            steps:
              - {id: one, run: 'echo one >> log'}
              - {id: two, run: 'echo two >> log; test -f marker'}
        """
    )
    assert summary.status == "failed"
    assert flow.log() == {"one": 2, "two": 2}
    flow.touch("marker")
    assert flow.resume(summary.run_id).status == "succeeded"
    assert flow.log() == {"one": 2, "two": 3}


def test_resume_tries_again_the_failed_items_of_a_map_that_failed_beyond_its_tolerance(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [1, 2, 3]
              tolerated_failures: 1
              fail_fast: false
              steps:
                - {id: w, run: 'echo "w{{ item }}" >> log; test "{{ item }}" = 1 || test -f marker'}
        outputs: {n: "{{ steps.m.errors | length }}"}
        """
    )
    assert summary.status == "failed"
    assert [record["s"] for record in flow.journal(summary.run_id)].count("tolerated") == 2
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert (resumed.status, resumed.outputs) == ("succeeded", {"n": 0})
    assert flow.log() == {"w1": 1, "w2": 2, "w3": 2}


def test_interrupting_a_run_leaves_a_consistent_journal(flow: Flow) -> None:
    path = flow.workflow(
        """
        steps:
          - {id: a, run: 'echo a >> log'}
          - {id: p, parallel: {branches: {x: [{id: slow, run: 'touch started; sleep 30'}], y: [{id: nap, wait: 20s}]}}}
        """
    )

    async def interrupt() -> None:
        task = asyncio.ensure_future(start_run(llmflow.load(path), {}, flow.options()))
        await wait_until(lambda: (flow.root / "started").exists())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupt())
    run_id = flow.only_run()
    assert [record["p"] for record in flow.journal(run_id)] == ["a"]
    cancelled = sorted(event["path"] for event in flow.events(run_id, "step.cancelled"))
    assert cancelled == ["p", "p/x/slow", "p/y/nap"]
    assert flow.events(run_id)[-1]["type"] == "run.interrupted"
    assert flow.meta(run_id)["status"] == "interrupted"


def test_restored_steps_are_announced_together_before_the_next_event(flow: Flow) -> None:
    run_id = _failed(flow)
    assert flow.events(run_id, "steps.restored") == []
    flow.touch("marker")
    flow.resume(run_id)
    events = flow.events(run_id)
    start = next(index for index, event in enumerate(events) if event["type"] == "run.resumed")
    announced, following = events[start + 1], events[start + 2]
    assert announced["type"] == "steps.restored"
    assert announced["path"] == ""
    assert announced["data"]["steps"] == [
        {"path": "a", "id": "a", "kind": "run", "status": "succeeded"},
        {"path": "g", "id": "g", "kind": "group", "status": "succeeded"},
    ]
    assert (following["type"], following["path"]) == ("step.started", "gate")
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert len(flow.events(run_id, "steps.restored")) == 1


def test_the_event_bus_announces_noted_restorations_before_the_next_event_or_at_close() -> None:
    bus = EventBus("r1")
    seen: list[dict[str, Any]] = []
    bus.listeners.append(seen.append)
    bus.restored("a", "a", "run", "succeeded")
    bus.restored("l[0]/x", "x", "set", "skipped")
    bus.emit("step.started", "b", {"id": "b"})
    bus.restored("c", "c", "set", "succeeded")
    bus.close()
    assert [(event["seq"], event["type"], event["path"]) for event in seen] == [
        (1, "steps.restored", ""),
        (2, "step.started", "b"),
        (3, "steps.restored", ""),
    ]
    assert [step["path"] for step in seen[0]["data"]["steps"]] == ["a", "l[0]/x"]
    assert seen[0]["data"]["steps"][1] == {"path": "l[0]/x", "id": "x", "kind": "set", "status": "skipped"}
    assert [step["path"] for step in seen[2]["data"]["steps"]] == ["c"]
    bus.close()
    assert len(seen) == 3


def test_steps_inside_a_continued_failed_composite_stay_visible_after_resume(flow: Flow) -> None:
    run_id = _failed(
        flow,
        """
        steps:
          - id: choose
            if: "True"
            continue_on_error: true
            then:
              - {id: inside, run: 'echo inside >> log; echo IN'}
              - {id: bad, fail: nope}
          - {id: gate, run: 'test -f marker'}
          - {id: show, run: 'echo "{{ steps.inside.output }} {{ steps.choose.status }}"'}
        outputs: {show: "{{ steps.show.output }}"}
        """,
    )
    flow.touch("marker")
    summary = flow.resume(run_id)
    assert summary.outputs == {"show": "IN failed"}
    assert flow.log() == {"inside": 1}
