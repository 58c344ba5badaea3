"""The resume promise for every end state and pattern: completed node instances never run again.

Each workflow logs a word per side effect (``echo word >> log``), so "never executed again" is a line count.
The gate step stops the first drive: it fails until a ``marker`` file exists (failed), waits for approval
(waiting), or blocks until the run is interrupted (task cancelled) or cancelled (SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import Flow, wait_until

import llmflow
from llmflow.runtime import start_run

GATES = {
    "failed": "{id: gate, IF run: 'echo gate >> log; test -f marker'}",
    "interrupted": "{id: gate, IF run: 'echo gate >> log; test -f marker || { touch started; sleep 30; }'}",
    "cancelled": "{id: gate, IF run: 'echo gate >> log; test -f marker || { touch started; sleep 30; }'}",
    "waiting": "{id: gate, IF approval: 'go on?'}",
}
GATE_RUNS = {"failed": 2, "interrupted": 2, "cancelled": 2, "waiting": 0}

SUB = """
version: 1
name: sub
inputs: {word: {type: string}}
steps:
  - {id: s1, run: 'echo s1 >> log; echo "S1{{ inputs.word }}"'}
  - GATE
  - {id: s2, run: 'echo s2 >> log; echo S2'}
outputs: {out: "{{ steps.s1.output }}+{{ steps.s2.output }}"}
"""

# name: (workflow body with GATE, gate condition, waiting path, expected outputs, side effects besides the gate)
PATTERNS: dict[str, tuple[str, str, str, dict[str, Any], dict[str, int]]] = {
    "sequence": (
        """
        steps:
          - {id: a, run: 'echo a >> log; echo A'}
          - {id: v, set: {x: 5}}
          - GATE
          - {id: b, run: 'echo b >> log; echo "B{{ vars.x }}{{ steps.a.output }}"'}
        outputs: {b: "{{ steps.b.output }}"}
        """,
        "",
        "gate",
        {"b": "B5A"},
        {"a": 1, "b": 1},
    ),
    "group": (
        """
        steps:
          - id: g
            steps:
              - {id: a, run: 'echo a >> log; echo A'}
              - GATE
              - {id: b, run: 'echo b >> log; echo B'}
          - {id: c, run: 'echo c >> log; echo "{{ steps.a.output }}{{ steps.g.output }}"'}
        outputs: {c: "{{ steps.c.output }}"}
        """,
        "",
        "g/gate",
        {"c": "AB"},
        {"a": 1, "b": 1, "c": 1},
    ),
    "loop": (
        """
        vars: {n: 0}
        steps:
          - id: l
            loop:
              for_each: [0, 1, 2, 3]
              steps:
                - {id: li, run: 'echo l{{ item }} >> log; echo L{{ item }}'}
                - GATE
                - {id: lj, set: {n: "{{ vars.n + 1 }}"}}
                - {id: lk, run: 'echo "{{ steps.li.output }}-{{ vars.n }}"'}
        outputs: {l: "{{ steps.l.output }}", n: "{{ vars.n }}"}
        """,
        "item == 2",
        "l[2]/gate",
        {"l": ["L0-1", "L1-2", "L2-3", "L3-4"], "n": 4},
        {"l0": 1, "l1": 1, "l2": 1, "l3": 1},
    ),
    "map": (
        """
        steps:
          - id: m
            map:
              items: [0, 1, 2, 3]
              concurrency: 1
              fail_fast: false
              steps:
                - {id: mi, run: 'echo m{{ item }} >> log; echo M{{ item }}'}
                - GATE
                - {id: mo, run: 'echo "{{ steps.mi.output }}!"'}
        outputs: {m: "{{ steps.m.output }}"}
        """,
        "item == 2",
        "m[2]/gate",
        {"m": ["M0!", "M1!", "M2!", "M3!"]},
        {"m0": 1, "m1": 1, "m2": 1, "m3": 1},
    ),
    "parallel": (
        """
        steps:
          - id: p
            parallel:
              concurrency: 1
              fail_fast: false
              branches:
                one: [{id: p1, run: 'echo p1 >> log; echo P1'}]
                two: [{id: p2, run: 'echo p2 >> log; echo P2'}, GATE, {id: p2b, run: 'echo p2b >> log; echo P2B'}]
                three: [{id: p3, run: 'echo p3 >> log; echo P3'}]
          - {id: after, run: 'echo "{{ steps.p1.output }}{{ steps.p2.output }}"'}
        outputs: {p: "{{ steps.p.output }}", after: "{{ steps.after.output }}"}
        """,
        "",
        "p/two/gate",
        {"p": {"one": "P1", "two": "P2B", "three": "P3"}, "after": "P1P2"},
        {"p1": 1, "p2": 1, "p2b": 1, "p3": 1},
    ),
    "sub-workflow": (
        """
        steps:
          - {id: a, run: 'echo a >> log; echo A'}
          - {id: w, workflow: sub.yaml, with: {word: "{{ steps.a.output }}"}}
          - {id: b, run: 'echo b >> log; echo "{{ steps.w.output.out }}"'}
        outputs: {b: "{{ steps.b.output }}"}
        """,
        "",
        "w/gate",
        {"b": "S1A+S2"},
        {"a": 1, "s1": 1, "s2": 1, "b": 1},
    ),
    "try-finally": (
        """
        steps:
          - id: t
            try:
              - {id: t1, run: 'echo t1 >> log; echo T1'}
              - GATE
              - {id: t2, run: 'echo t2 >> log; echo T2'}
            finally:
              - {id: f1, run: 'echo f1 >> log'}
          - {id: after, run: 'echo "{{ steps.t1.output }}{{ steps.t.output }}"'}
        outputs: {after: "{{ steps.after.output }}"}
        """,
        "",
        "t/try/gate",
        {"after": "T1T2"},
        {"t1": 1, "t2": 1, "f1": 1},
    ),
}


def _write(flow: Flow, pattern: str, state: str, folder: str = "") -> Path:
    body, condition, *_ = PATTERNS[pattern]
    gate = GATES[state].replace("IF ", f"if: '{condition}', " if condition else "")
    flow.write(f"{folder}sub.yaml", SUB.replace("GATE", gate))
    return flow.workflow(body.replace("GATE", gate), name=f"{folder}flow.yaml")


async def _stop_when_started(flow: Flow, path: Path, how: str) -> None:
    """Start a run, wait for the gate to block, then interrupt (cancel the task) or cancel (SIGTERM) it."""
    task = asyncio.ensure_future(start_run(llmflow.load(path), {}, flow.options(handle_signals=how == "cancelled")))
    await wait_until(lambda: (flow.root / "started").exists())
    if how == "interrupted":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        os.kill(os.getpid(), signal.SIGTERM)
        assert (await task).status == "cancelled"


def _first_drive(flow: Flow, path: Path, state: str, waiting_path: str) -> str:
    if state in ("interrupted", "cancelled"):
        asyncio.run(_stop_when_started(flow, path, state))
        run_id = flow.only_run()
    else:
        summary = flow.run(path)
        run_id = summary.run_id
        if state == "waiting":
            assert summary.waiting_for == [waiting_path]
    assert flow.meta(run_id)["status"] == state
    return run_id


@pytest.mark.parametrize("state", list(GATES))
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_resume_never_reruns_completed_steps(flow: Flow, pattern: str, state: str) -> None:
    path = _write(flow, pattern, state)
    _, _, waiting_path, expected, effects = PATTERNS[pattern]
    run_id = _first_drive(flow, path, state, waiting_path)
    flow.touch("marker")
    summary = flow.resume(run_id, approve=state == "waiting")
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == expected
    wanted = Counter(effects)
    if pattern == "try-finally" and state != "waiting":
        wanted["f1"] += 1  # the finally ran after the failure (or stop) and runs again after the resumed body
    if GATE_RUNS[state]:
        wanted["gate"] = GATE_RUNS[state]
    assert flow.log() == wanted
    assert flow.meta(run_id)["status"] == "succeeded"
    assert flow.meta(run_id)["resumes"] == 1
    assert flow.events(run_id, "run.resumed")


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_resumed_outputs_equal_an_uninterrupted_run(flow: Flow, pattern: str) -> None:
    fresh = Flow(flow.root / "fresh")
    fresh.root.mkdir()
    fresh.touch("marker")
    unbroken = fresh.run(_write(fresh, pattern, "failed"))
    assert unbroken.status == "succeeded", unbroken.error
    assert unbroken.outputs == PATTERNS[pattern][3]


def test_reject_fails_the_approval_step(flow: Flow) -> None:
    summary = flow.run("steps:\n  - {id: ok, approval: 'ship it?'}\n  - {id: after, run: echo after >> log}\n")
    rejected = flow.resume(summary.run_id, reject=True, comment="not today")
    assert rejected.status == "failed"
    assert rejected.failed_step == "ok"
    assert rejected.error == "step 'ok' was rejected: not today"
    assert not flow.log()


def test_reject_with_continue_on_error_goes_on_and_sees_approved_false(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: ok, approval: 'ship it?', continue_on_error: true}
          - {id: after, run: 'echo "{{ steps.ok.output.approved }} {{ steps.ok.status }}"'}
        outputs: {after: "{{ steps.after.output }}", decision: "{{ steps.ok.output }}"}
        """
    )
    rejected = flow.resume(summary.run_id, reject=True)
    assert rejected.status == "succeeded", rejected.error
    assert rejected.outputs == {"after": "false failed", "decision": {"approved": False, "comment": None}}


def test_approvals_in_parallel_branches_pause_after_the_others_and_list_every_path(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              branches:
                a: [{id: ask-a, approval: 'a?'}, {id: after-a, run: echo after-a >> log}]
                b: [{id: ask-b, approval: 'b?'}]
                c: [{id: nap, wait: 30ms}, {id: work, run: echo work >> log}]
          - {id: end, run: echo end >> log}
        """
    )
    assert summary.status == "waiting"
    assert sorted(summary.waiting_for) == ["p/a/ask-a", "p/b/ask-b"]
    assert flow.log() == {"work": 1}
    assert sorted(flow.meta(summary.run_id)["waiting_for"]) == ["p/a/ask-a", "p/b/ask-b"]
    resumed = flow.resume(summary.run_id, approve=True)
    assert resumed.status == "succeeded", resumed.error
    assert flow.log() == {"work": 1, "after-a": 1, "end": 1}


def test_a_waiting_run_needs_a_decision(flow: Flow) -> None:
    summary = flow.run("steps: [{id: ok, approval: 'fine?'}]")
    with pytest.raises(llmflow.errors.UsageError, match="waiting for approval at ok"):
        flow.resume(summary.run_id)


def test_map_with_fail_fast_resumes_only_unfinished_items(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [0, 1, 2]
              steps:
                - {id: a, run: 'echo a{{ item }} >> log'}
                - {id: gate, if: item == 1, run: 'test -f marker'}
                - {id: nap, if: item != 1, wait: 30ms}
                - {id: b, run: 'echo b{{ item }} >> log'}
        """
    )
    assert summary.status == "failed"
    assert flow.log() == {"a0": 1, "a1": 1, "a2": 1}
    flow.touch("marker")
    assert flow.resume(summary.run_id).status == "succeeded"
    assert flow.log() == {"a0": 1, "a1": 1, "a2": 1, "b0": 1, "b1": 1, "b2": 1}


def test_try_catch_that_failed_resumes_inside_the_catch(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try:
              - {id: body, run: 'echo body >> log; exit 1'}
            catch:
              - {id: c1, run: 'echo c1 >> log'}
              - {id: c2, run: 'echo c2 >> log; test -f marker'}
              - {id: c3, run: 'echo "{{ error.step }}"'}
        outputs: {t: "{{ steps.t.output }}"}
        """
    )
    assert summary.status == "failed"
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"t": "t/try/body"}
    # The body failed and catch began: the resume goes on in catch with the same error, body is not retried.
    assert flow.log() == {"body": 1, "c1": 1, "c2": 2}


def test_a_finally_that_failed_after_a_failed_body_runs_whole_again_on_resume(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try:
              - {id: b1, run: 'echo b1 >> log'}
              - {id: b2, run: 'echo b2 >> log; test -f marker'}
            finally:
              - {id: f1, run: 'echo f1 >> log'}
              - {id: f2, run: 'echo f2 >> log; test -f marker'}
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "t/finally/f2"
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    # The try runs again from its failed step, and its finally, which cleans up after it, runs whole again
    # (as after a finally that succeeded): f1 is not skipped because the first drive's f2 failed.
    assert flow.log() == {"b1": 1, "b2": 2, "f1": 2, "f2": 2}


def test_restored_steps_show_later_steps_what_they_showed_in_the_first_drive(flow: Flow) -> None:
    text = """
        steps:
          - {id: a, run: "echo hello"}
          - {id: b, set: {x: 1}}
          - {id: s, if: "False", set: {y: 2}}
          - {id: gate, run: "test -f go"}
        outputs:
          a: "{{ steps.a }}"
          b: "{{ steps.b }}"
          s: "{{ steps.s }}"
          x: "{{ vars.x }}"
    """
    fresh = Flow(flow.root / "fresh")
    fresh.root.mkdir()
    fresh.touch("go")
    unbroken = fresh.run(text)
    first = flow.run(text)
    assert first.status == "failed"
    flow.touch("go")
    resumed = flow.resume(first.run_id)
    assert resumed.status == "succeeded", resumed.error
    outputs, expected = resumed.outputs, unbroken.outputs
    assert outputs is not None and expected is not None
    assert outputs["x"] == expected["x"] == 1
    timing = {"started", "ended", "duration"}
    for step in ("a", "b", "s"):
        assert {k: v for k, v in outputs[step].items() if k not in timing} == {
            k: v for k, v in expected[step].items() if k not in timing
        }
    assert outputs["a"]["stdout"] == "hello" and outputs["a"]["exit_code"] == 0
    journaled = {record["p"]: record for record in flow.journal(first.run_id)}
    start_ms, duration_ms = journaled["a"]["m"]
    assert outputs["a"]["started"] == start_ms / 1000
    assert outputs["a"]["ended"] == (start_ms + duration_ms) / 1000


def unbroken_outputs(flow: Flow, text: str) -> Any:
    """The outputs of the workflow run without a stop, in a fresh folder beside ``flow``'s (marker present)."""
    fresh = Flow(flow.root / "fresh")
    fresh.root.mkdir()
    fresh.touch("marker")
    summary = fresh.run(text)
    assert summary.status == "succeeded", summary.error
    return summary.outputs


def resumes_as_unbroken(flow: Flow, text: str, *, outputs: Any, failed_step: str, log: dict[str, int]) -> None:
    """Run ``text`` unbroken (``outputs``), then in ``flow`` without the marker (it fails at ``failed_step``)
    and resume it with the marker: the same outputs, and each step run as ``log`` says."""
    expected = unbroken_outputs(flow, text)
    assert expected == outputs
    first = flow.run(text)
    assert first.status == "failed"
    assert first.failed_step == failed_step
    flow.touch("marker")
    resumed = flow.resume(first.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == expected
    assert flow.log() == log


def test_a_catch_resumed_after_a_failure_sees_the_body_steps_that_completed(flow: Flow) -> None:
    """The body's results stay visible to catch and after the try, also when the resume starts in catch."""
    text = """
        steps:
          - id: t
            try:
              - {id: a, run: 'echo a >> log; echo A'}
              - {id: g, steps: [{id: b, run: 'echo b >> log; echo B'}, {fail: boom}]}
            catch:
              - {id: h, run: 'echo h >> log; test -f marker && echo "h {{ steps.a.output }} {{ steps.b.status }}"'}
          - {id: after, run: 'echo "{{ steps.a.output }}{{ steps.b.output }}"'}
        outputs: {h: "{{ steps.h.output }}", after: "{{ steps.after.output }}"}
    """
    resumes_as_unbroken(
        flow, text, outputs={"h": "h A succeeded", "after": "AB"}, failed_step="t/catch/h", log={"a": 1, "b": 1, "h": 2}
    )


def test_steps_inside_a_failed_nested_group_that_was_continued_stay_visible_after_a_resume(flow: Flow) -> None:
    """``g`` failed (continued) because its inner group did: ``a`` inside that completed and shows its output."""
    text = """
        steps:
          - id: g
            continue_on_error: true
            steps:
              - {id: inner, steps: [{id: a, run: 'echo a >> log; echo A'}, {fail: boom}]}
          - {id: gate, run: 'echo gate >> log; test -f marker'}
          - {id: after, run: 'echo "{{ steps.a.output }} {{ steps.a.status }} {{ steps.inner.status }}"'}
        outputs: {after: "{{ steps.after.output }}"}
    """
    resumes_as_unbroken(
        flow, text, outputs={"after": "A succeeded failed"}, failed_step="gate", log={"a": 1, "gate": 2}
    )


def test_a_retried_group_that_failed_for_good_gets_all_its_attempts_again_on_resume(flow: Flow) -> None:
    """'b' passes from its fourth run on: two attempts fail the run, the resume's two attempts finish it (its
    first attempt keeps 'a', which the run's last attempt completed)."""
    summary = flow.run(
        """
        steps:
          - id: g
            retry: {attempts: 2, delay: 0}
            steps:
              - {id: a, run: 'echo a >> log'}
              - {id: b, run: 'echo b >> log; test "$(grep -c b log)" -ge 4'}
        outputs: {attempts: "{{ steps.g.attempts }}"}
        """
    )
    assert summary.status == "failed"
    assert flow.log() == {"a": 2, "b": 2}
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"attempts": 2}
    assert flow.log() == {"a": 3, "b": 4}


def test_a_retried_step_that_failed_for_good_gets_all_its_attempts_again_on_resume(flow: Flow) -> None:
    """'b' passes from its fourth run on: its two attempts fail the run, the resume's two attempts finish it."""
    summary = flow.run(
        """
        steps:
          - {id: b, retry: {attempts: 2, delay: 0}, run: 'echo b >> log; test "$(grep -c b log)" -ge 4'}
        outputs: {attempts: "{{ steps.b.attempts }}"}
        """
    )
    assert summary.status == "failed"
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"attempts": 2}
    assert flow.log() == {"b": 4}


def test_a_variable_only_an_earlier_attempt_of_a_retried_group_set_is_restored_with_the_group(flow: Flow) -> None:
    """Attempt 1 sets x and fails; attempt 2 does not set it: x stays set, after a resume too."""
    text = """
        vars: {x: 0}
        steps:
          - id: g
            retry: {attempts: 2, delay: 0}
            steps:
              - {id: a, run: 'echo a >> log; grep -c a log'}
              - {id: first, if: "steps.a.output == '1'", set: {x: 7}}
              - {id: b, run: 'test "{{ steps.a.output }}" = 2'}
          - {id: gate, run: 'echo gate >> log; test -f marker'}
        outputs: {x: "{{ vars.x }}"}
    """
    assert unbroken_outputs(flow, text) == {"x": 7}
    first = flow.run(text)
    assert first.status == "failed"
    assert first.failed_step == "gate"
    flow.touch("marker")
    resumed = flow.resume(first.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"x": 7}
    assert flow.log() == {"a": 2, "gate": 2}


def test_the_finally_of_a_failed_inner_try_stays_visible_to_an_outer_catch_resumed_after_a_failure(flow: Flow) -> None:
    """The inner try never runs again (the outer catch took over): its finally's results are still there."""
    text = """
        steps:
          - id: outer
            try:
              - id: inner
                try: [{id: a, run: 'echo a >> log; echo A'}, {fail: boom}]
                finally: [{id: f, run: 'echo f >> log; echo F'}]
            catch:
              - {id: h, run: 'echo h >> log; test -f marker && echo "h {{ steps.f.output }}{{ steps.a.output }}"'}
          - {id: after, run: 'echo "{{ steps.f.output }} {{ steps.f.status }}"'}
        outputs: {h: "{{ steps.h.output }}", after: "{{ steps.after.output }}"}
    """
    resumes_as_unbroken(
        flow,
        text,
        outputs={"h": "h FA", "after": "F succeeded"},
        failed_step="outer/catch/h",
        log={"a": 1, "f": 1, "h": 2},
    )


def test_the_finally_of_a_continued_failed_try_stays_visible_after_a_resume(flow: Flow) -> None:
    text = """
        steps:
          - id: t
            continue_on_error: true
            try: [{fail: boom}]
            finally: [{id: f, run: 'echo f >> log; echo F'}]
          - {id: gate, run: 'echo gate >> log; test -f marker'}
          - {id: after, run: 'echo "{{ steps.f.output }} {{ steps.t.status }}"'}
        outputs: {after: "{{ steps.after.output }}"}
    """
    resumes_as_unbroken(flow, text, outputs={"after": "F failed"}, failed_step="gate", log={"f": 1, "gate": 2})


def test_steps_only_an_earlier_attempt_of_a_retried_group_ran_read_as_not_run_before_and_after_a_resume(
    flow: Flow,
) -> None:
    """Attempt 1 takes 'then', attempt 2 'else': after the group, 'x' reads as not run, resumed or not (the
    journal keeps only the last attempt's records, so a resume could not show attempt 1's anyway)."""
    text = """
        steps:
          - id: g
            retry: {attempts: 2, delay: 0}
            steps:
              - {id: a, run: "echo a >> log; grep -c '^a$' log"}
              - id: pick
                if: "steps.a.output == '1'"
                then: [{id: x, run: 'echo X'}]
                else: [{id: y, run: 'echo Y'}]
              - {id: b, run: 'test "{{ steps.a.output }}" = 2'}
          - {id: gate, run: 'echo gate >> log; test -f marker'}
          - {id: after, run: 'echo "{{ steps.x.status }} {{ steps.x.output }} {{ steps.y.output }}"'}
        outputs: {after: "{{ steps.after.output }}"}
    """
    resumes_as_unbroken(flow, text, outputs={"after": "skipped  Y"}, failed_step="gate", log={"a": 2, "gate": 2})
