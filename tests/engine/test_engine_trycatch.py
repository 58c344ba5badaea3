"""try/catch/finally with variable rollback, sub-workflows with inputs and outputs, and compensation."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine_helpers import Flow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_failed_body_writes_are_rolled_back_and_catch_sees_the_error(flow: Flow) -> None:
    summary = flow.run(
        """
        vars: {x: 0}
        steps:
          - id: t
            try:
              - {id: bump, set: {x: 1}}
              - {id: broken, fail: "it broke"}
            catch:
              - {id: handle, run: 'echo "{{ vars.x }}|{{ error.message }}|{{ error.step }}|{{ error.kind }}"'}
        outputs: {t: "{{ steps.t.output }}", x: "{{ vars.x }}", branch: "{{ steps.t.branch }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"t": "0|it broke|t/try/broken|action", "x": 0, "branch": "catch"}


def test_try_output_is_the_body_output_when_it_succeeds(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try: [{id: body, run: echo body}]
            catch: [{id: c, run: echo caught}]
            finally: [{id: f, run: echo finally}]
        outputs: {t: "{{ steps.t.output }}", branch: "{{ steps.t.branch }}"}
        """
    )
    assert summary.outputs == {"t": "body", "branch": "try"}


def test_catch_writes_survive_and_body_writes_before_failure_do_not(flow: Flow) -> None:
    summary = flow.run(
        """
        vars: {a: 0, b: 0}
        steps:
          - id: t
            try:
              - {id: s1, set: {a: 1}}
              - {id: bad, fail: x}
            catch:
              - {id: s2, set: {b: 2}}
        outputs: {a: "{{ vars.a }}", b: "{{ vars.b }}"}
        """
    )
    assert summary.outputs == {"a": 0, "b": 2}


def test_finally_runs_when_catch_fails_again(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try: [{id: first, fail: one}]
            catch: [{id: second, fail: two}]
            finally: [{id: cleanup, run: echo cleanup >> log}]
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "t/catch/second"
    assert summary.error == "two"
    assert flow.log() == {"cleanup": 1}


def test_finally_runs_without_catch_and_the_failure_goes_on(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try: [{id: first, fail: one}]
            finally: [{id: cleanup, run: echo cleanup >> log}]
          - {id: later, run: echo later >> log}
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "t/try/first"
    assert flow.log() == {"cleanup": 1}


def test_step_failed_is_emitted_once_per_node_instance_with_the_cause(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: outer
            steps:
              - id: inner
                steps:
                  - {id: leaf, fail: deep}
        """
    )
    failed = flow.events(summary.run_id, "step.failed")
    assert [event["path"] for event in failed] == ["outer/inner/leaf", "outer/inner", "outer"]
    assert [event["data"].get("cause") for event in failed] == [None, "outer/inner/leaf", "outer/inner/leaf"]
    assert all(event["data"]["error"]["message"] == "deep" for event in failed)


def test_continue_on_error_on_a_composite_keeps_the_variables_its_steps_left(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: g
            continue_on_error: true
            steps:
              - {id: s, set: {x: 1}}
              - {id: bad, fail: nope}
          - {id: after, run: 'echo "{{ vars.x }} {{ steps.g.status }} {{ steps.g.error.message }}"'}
        outputs: {after: "{{ steps.after.output }}"}
        """
    )
    assert summary.outputs == {"after": "1 failed nope"}
    record = next(r for r in flow.journal(summary.run_id) if r["p"] == "g")
    assert record["s"] == "failed" and record["w"] == {"x": 1}


def test_sub_workflow_with_inputs_and_outputs(flow: Flow) -> None:
    shutil.copy(EXAMPLES / "lib" / "normalize.yaml", flow.root / "normalize.yaml")
    summary = flow.run(
        """
        steps:
          - id: norm
            workflow: normalize.yaml
            with: {text: "  Hello   BIG  World ", lowercase: true}
          - {id: keep, workflow: normalize.yaml, with: {text: "A  B", lowercase: false}}
        outputs: {norm: "{{ steps.norm.output }}", keep: "{{ steps.keep.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {
        "norm": {"text": "hello big world", "words": 3},
        "keep": {"text": "A B", "words": 2},
    }
    paths = [record["p"] for record in flow.journal(summary.run_id)]
    assert paths[:4] == ["norm/squeeze", "norm/case/then/lower", "norm/case", "norm/count"]


def test_sub_workflow_failure_names_the_inner_step(flow: Flow) -> None:
    flow.workflow(
        """
        inputs: {n: {type: integer}}
        steps:
          - {id: check, if: inputs.n > 1, fail: "too big: {{ inputs.n }}"}
        """,
        name="lib/check.yaml",
    )
    summary = flow.run(
        """
        steps:
          - {id: sub, workflow: lib/check.yaml, with: {n: 5}}
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "sub/check"
    assert summary.error == "too big: 5"


def test_compensation_undoes_completed_steps_newest_first(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: book
            run: echo book >> log; echo B1
            compensate:
              - {id: unbook, run: 'echo "unbook-{{ steps.book.output }}" >> log'}
          - id: loop
            loop:
              for_each: [a, b]
              steps:
                - id: charge
                  run: echo "charge-{{ item }}" >> log
                  compensate:
                    - {id: refund, run: echo refund >> log}
          - {id: bad, fail: "payment rejected"}
        """
    )
    assert summary.status == "failed"
    assert summary.compensated == ["loop[1]/charge", "loop[0]/charge", "book"]
    lines = (flow.root / "log").read_text().split()
    assert lines == ["book", "charge-a", "charge-b", "refund", "refund", "unbook-B1"]
    records = flow.journal(summary.run_id)
    compensated = [record["p"] for record in records if record["s"] == "compensated"]
    assert compensated == ["loop[1]/charge", "loop[0]/charge", "book"]
    assert {"loop[1]/charge/compensate/refund", "loop[0]/charge/compensate/refund"} <= {r["p"] for r in records}
    kinds = [event["type"] for event in flow.events(summary.run_id) if event["type"].startswith("step.compensat")]
    assert kinds == ["step.compensating", "step.compensated"] * 3
    assert flow.meta(summary.run_id)["status"] == "failed"


def test_compensation_undoes_what_an_earlier_attempt_of_a_retried_group_completed(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: g
            retry: {attempts: 2, delay: 1ms}
            steps:
              - {id: first, run: 'echo first >> log; test ! -f marker'}
              - id: charge
                run: echo charge >> log; touch marker
                compensate: [{id: refund, run: echo refund >> log}]
              - {id: bad, fail: "payment rejected"}
        """
    )
    assert summary.status == "failed"
    assert summary.compensated == ["g/charge"]
    assert flow.log() == {"first": 2, "charge": 1, "refund": 1}


def test_a_failing_compensation_does_not_stop_the_others(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: one
            run: echo one >> log
            compensate: [{id: undo-one, run: echo undo-one >> log}]
          - id: two
            run: echo two >> log
            compensate: [{id: undo-two, fail: cannot}]
          - {id: bad, fail: stop}
        """
    )
    assert summary.status == "failed"
    assert summary.error == "stop"
    assert summary.compensated == ["one"]
    assert flow.log() == {"one": 1, "two": 1, "undo-one": 1}
    done = [event["data"] for event in flow.events(summary.run_id, "step.compensated")]
    assert done == [{"id": "two", "ok": False, "error": "cannot"}, {"id": "one", "ok": True}]


def test_a_compensated_step_runs_again_on_resume(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: g
            steps:
              - {id: keep, run: echo keep >> log}
              - id: book
                run: echo book >> log
                compensate: [{id: unbook, run: echo unbook >> log}]
          - {id: gate, run: echo gate >> log; test -f marker}
        """
    )
    assert summary.status == "failed"
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert flow.log() == {"keep": 1, "book": 2, "unbook": 1, "gate": 2}


def test_finally_runs_when_the_try_times_out_and_again_after_a_resume(flow: Flow) -> None:
    body = """
    steps:
      - id: t
        timeout: 1s
        try:
          - {id: first, run: echo first >> log}
          - {id: slow, run: 'test -f quick || sleep 30; echo slow >> log'}
        finally: [{id: cleanup, run: echo cleanup >> log}]
      - {id: after, run: echo after >> log}
    """
    summary = flow.run(body)
    assert summary.status == "failed" and summary.failed_step == "t"
    assert "timed out after 1s" in (summary.error or "")
    assert flow.log() == {"first": 1, "cleanup": 1}
    flow.touch("quick")
    again = flow.resume(summary.run_id)
    assert again.status == "succeeded", again.error
    assert flow.log() == {"first": 1, "slow": 1, "cleanup": 2, "after": 1}


def test_finally_runs_in_a_branch_a_fail_fast_sibling_cancels(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              branches:
                doomed:
                  - {id: wait-then-fail, run: 'while [ ! -f started ]; do sleep 0.02; done; exit 3'}
                guarded:
                  - id: t
                    try: [{id: blocked, run: 'touch started; sleep 30'}]
                    finally:
                      - {id: cleanup, run: echo cleanup >> log}
                      - {id: broken, fail: the cleanup broke too}
        """
    )
    assert summary.status == "failed" and summary.failed_step == "p/doomed/wait-then-fail"
    assert flow.log() == {"cleanup": 1}
    cancelled = {event["path"] for event in flow.events(summary.run_id, "step.cancelled")}
    assert "p/guarded/t/try/blocked" in cancelled


def test_catch_sees_the_failed_steps_as_failed_and_so_does_a_resume_inside_catch(flow: Flow) -> None:
    body = """
    steps:
      - id: t
        try:
          - {id: first, set: {a: 1}}
          - id: g
            steps: [{id: boom, run: 'echo out; exit 3'}]
        catch:
          - {id: ask, approval: {message: go on}}
          - id: seen
            set:
              seen: >-
                {{ steps.boom.status }} {{ steps.g.status }} {{ steps.first.status }}
                {{ steps.boom.error.exit_code }}
    outputs: {seen: "{{ vars.seen }}"}
    """
    waiting = flow.run(body)
    assert waiting.status == "waiting", waiting.error
    resumed = flow.resume(waiting.run_id, approve=True)
    assert resumed.status == "succeeded", resumed.error
    # Before, the failed steps read as skipped, and after a resume inside catch so did the completed one.
    assert resumed.outputs == {"seen": "failed failed succeeded 3"}


def test_steps_after_a_caught_try_see_its_failed_steps_as_failed_before_and_after_a_resume(flow: Flow) -> None:
    body = """
    steps:
      - id: t
        try:
          - {id: first, set: {a: 1}}
          - {id: boom, fail: broken}
        catch: [{id: handled, set: {h: 1}}]
      - {id: gate, run: test -f marker}
      - id: after
        set: {seen: "{{ steps.boom.status }}/{{ steps.boom.error.message }}/{{ steps.first.status }}"}
    outputs: {seen: "{{ vars.seen }}"}
    """
    failed = flow.run(body)
    assert failed.status == "failed" and failed.failed_step == "gate"
    flow.touch("marker")
    resumed = flow.resume(failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"seen": "failed/broken/succeeded"}
    assert flow.run(body).outputs == {"seen": "failed/broken/succeeded"}


def test_finally_sees_the_step_that_failed_an_uncaught_try(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: t
            try: [{id: boom, fail: broken}]
            finally: [{id: cleanup, run: 'echo "{{ steps.boom.status }}" >> log'}]
        """
    )
    assert summary.status == "failed" and summary.failed_step == "t/try/boom"
    assert flow.log() == {"failed": 1}


def test_compensations_see_the_item_index_and_loop_their_step_saw(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [a, b]
              as: seat
              concurrency: 1  # compensations run in reverse completion order: make that order certain
              steps:
                - id: book
                  run: echo "booked-{{ seat }}"
                  compensate:
                    - {id: unbook, run: 'echo "unbook-{{ seat }}-{{ index }}-{{ steps.book.output }}" >> log'}
          - id: l
            loop:
              times: 2
              steps:
                - id: charge
                  run: "true"
                  compensate: [{id: refund, run: 'echo "refund-{{ loop.iteration }}" >> log'}]
          - {id: bad, fail: stop}
        """
    )
    assert summary.status == "failed"
    assert summary.compensated == ["l[1]/charge", "l[0]/charge", "m[1]/book", "m[0]/book"]
    assert flow.log() == {"refund-2": 1, "refund-1": 1, "unbook-b-1-booked-b": 1, "unbook-a-0-booked-a": 1}


def test_compensations_after_a_resume_see_the_item_their_step_saw(flow: Flow) -> None:
    body = """
    steps:
      - id: m
        map:
          items: [a, b]
          steps:
            - id: book
              run: "true"
              compensate: [{id: unbook, run: 'echo "unbook-{{ item }}" >> log'}]
      - {id: confirm, approval: {message: pay now}}
    """
    waiting = flow.run(body)
    assert waiting.status == "waiting", waiting.error
    rejected = flow.resume(waiting.run_id, reject=True)  # a new process: the items come from the journal
    assert rejected.status == "failed"
    assert flow.log() == {"unbook-b": 1, "unbook-a": 1}
