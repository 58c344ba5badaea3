"""Parallel branches and map items: outputs, concurrency limits, fail-fast, tolerance, merging and isolation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from engine_helpers import Flow

PROBE = """
import asyncio

state = {"now": 0, "peak": 0}


async def enter(ms, value=None):
    state["now"] += 1
    state["peak"] = max(state["peak"], state["now"])
    try:
        await asyncio.sleep(ms / 1000)
    finally:
        state["now"] -= 1
    return value


def peak():
    return state["peak"]


async def tasks():
    return len(asyncio.all_tasks())
"""


@pytest.fixture
def probe(flow: Flow) -> Flow:
    """A ``probe`` module beside the workflow that measures how many steps run at once."""
    flow.write("probe.py", PROBE)
    return flow


def test_parallel_outputs_by_branch_name(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              branches:
                a: [{id: a1, run: echo A}]
                b: [{id: b1, run: echo B}, {id: b2, run: echo B2}]
        outputs: {p: "{{ steps.p.output }}", b1: "{{ steps.b1.output }}"}
        """
    )
    assert summary.outputs == {"p": {"a": "A", "b": "B2"}, "b1": "B"}


@pytest.mark.parametrize(("limit", "expected"), [("concurrency: 2", 2), ("", 5)], ids=["limited", "unlimited"])
def test_parallel_concurrency_limits_branches_running_at_once(probe: Flow, limit: str, expected: int) -> None:
    lane = "                b{0}: [{{id: s{0}, python: 'probe:enter', with: {{ms: 30}}}}]"
    branches = "\n".join(lane.format(i) for i in range(5))
    summary = probe.run(
        f"""
        steps:
          - id: p
            parallel:
              {limit}
              branches:
{branches}
          - {{id: peak, python: "probe:peak"}}
        outputs: {{peak: "{{{{ steps.peak.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"peak": expected}


def test_parallel_fail_fast_cancels_the_other_branches(flow: Flow) -> None:
    began = time.monotonic()
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              branches:
                slow: [{id: nap, wait: 20s}, {id: never, run: echo never >> log}]
                bad: [{id: boom, fail: broken}]
        """
    )
    assert time.monotonic() - began < 10
    assert summary.status == "failed"
    assert summary.failed_step == "p/bad/boom"
    assert summary.error == "broken"
    assert [event["path"] for event in flow.events(summary.run_id, "step.cancelled")] == ["p/slow/nap"]
    assert not flow.log()


def test_parallel_without_fail_fast_waits_for_every_branch(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              fail_fast: false
              branches:
                slow: [{id: nap, wait: 30ms}, {id: after, run: echo after >> log}]
                bad: [{id: boom, fail: broken}]
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "p/bad/boom"
    assert flow.log() == {"after": 1}
    assert "p/slow/after" in [record["p"] for record in flow.journal(summary.run_id)]


def test_parallel_merge_error_names_both_branches(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: p
            parallel:
              branches:
                left: [{id: l, set: {x: 1}}]
                right: [{id: r, set: {x: 2}}]
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "p"
    assert summary.error is not None
    assert "branch left and branch right both set vars.x" in summary.error


@pytest.mark.parametrize(("merge", "expected"), [("last", 2), ("list", [1, 2]), ("error", 1)])
def test_parallel_merge_policies(flow: Flow, merge: str, expected: object) -> None:
    second = 2 if merge != "error" else 1  # the same value twice is no conflict
    summary = flow.run(
        f"""
        steps:
          - id: p
            parallel:
              merge: {merge}
              branches:
                left: [{{id: l, set: {{x: 1}}}}]
                right: [{{id: r, set: {{x: {second}}}}}]
        outputs: {{x: "{{{{ vars.x }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"x": expected}


def test_parallel_branches_work_on_isolated_variables(flow: Flow) -> None:
    summary = flow.run(
        """
        vars: {x: 0}
        steps:
          - id: p
            parallel:
              merge: list
              branches:
                a: [{id: a1, set: {x: 1}}, {id: a2, wait: 20ms}, {id: a3, run: 'echo "{{ vars.x }}"'}]
                b: [{id: b1, set: {x: 2}}, {id: b2, wait: 20ms}, {id: b3, run: 'echo "{{ vars.x }}"'}]
        outputs: {p: "{{ steps.p.output }}", x: "{{ vars.x }}"}
        """
    )
    assert summary.outputs == {"p": {"a": "1", "b": "2"}, "x": [1, 2]}


def test_map_output_is_in_input_order_when_items_finish_out_of_order(probe: Flow) -> None:
    summary = probe.run(
        """
        steps:
          - id: m
            map:
              items: [40, 1, 20]
              steps:
                - {id: nap, python: "probe:enter", with: {ms: "{{ item }}", value: "{{ index }}-{{ item }}"}}
        outputs: {m: "{{ steps.m.output }}"}
        """
    )
    assert summary.outputs == {"m": ["0-40", "1-1", "2-20"]}
    finished = [record["p"] for record in probe.journal(summary.run_id)]
    assert finished == ["m[1]/nap", "m[2]/nap", "m[0]/nap", "m"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [("concurrency: 2", 2), ("", 6)],
    ids=["map-concurrency", "unlimited"],
)
def test_map_concurrency(probe: Flow, settings: str, expected: int) -> None:
    summary = probe.run(
        f"""
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4, 5, 6]
              {settings}
              steps:
                - {{id: nap, python: "probe:enter", with: {{ms: 20}}}}
          - {{id: peak, python: "probe:peak"}}
        outputs: {{peak: "{{{{ steps.peak.output }}}}"}}
        """
    )
    assert summary.outputs == {"peak": expected}


def test_a_map_holds_tasks_only_for_the_items_in_flight(probe: Flow) -> None:
    summary = probe.run(
        """
        steps:
          - id: m
            map:
              items: "{{ range(300) | list }}"
              concurrency: 2
              steps:
                - {id: count, python: "probe:tasks"}
        outputs: {most: "{{ steps.m.output | max }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    # The run's own tasks and two workers, not one task for each of the 300 items.
    assert summary.outputs["most"] < 20


def test_limits_max_concurrency_caps_actions_across_a_map(probe: Flow) -> None:
    summary = probe.run(
        """
        limits: {max_concurrency: 2}
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4, 5, 6]
              steps:
                - {id: nap, python: "probe:enter", with: {ms: 20}}
          - {id: peak, python: "probe:peak"}
        outputs: {peak: "{{ steps.peak.output }}"}
        """
    )
    assert summary.outputs == {"peak": 2}


def _most_running(events: list[dict[str, Any]]) -> int:
    """The most steps at once between their ``step.started`` and their end, in the order of the events."""
    running: set[str] = set()
    most = 0
    for event in events:
        if event["type"] == "step.started":
            running.add(event["path"])
            most = max(most, len(running))
        elif event["type"] in ("step.completed", "step.failed", "step.retrying", "step.cancelled"):
            running.discard(event["path"])
    return most


def test_a_step_waiting_for_a_run_wide_slot_has_not_started(flow: Flow) -> None:
    summary = flow.run(
        """
        limits: {max_concurrency: 2}
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4, 5, 6]
              concurrency: 500
              steps:
                - {id: nap, wait: 200ms}
        """
    )
    assert summary.status == "succeeded", summary.error
    leaves = [event for event in flow.events(summary.run_id) if event["path"].endswith("/nap")]
    assert len([event for event in leaves if event["type"] == "step.started"]) == 6
    assert _most_running(leaves) == 2


def test_a_steps_timeout_does_not_count_the_wait_for_a_run_wide_slot(flow: Flow) -> None:
    # One slot, six items of 250ms: the last one waits over a second for its slot, yet runs well within 1s.
    summary = flow.run(
        """
        limits: {max_concurrency: 1}
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4, 5, 6]
              steps:
                - {id: nap, wait: 250ms, timeout: 1s}
        """
    )
    assert summary.status == "succeeded", summary.error
    durations = [event["data"]["duration"] for event in flow.events(summary.run_id, "step.completed")]
    assert len([duration for duration in durations if duration < 1]) >= 6  # the six naps, not their waits


def test_each_attempt_takes_a_run_wide_slot_of_its_own(flow: Flow) -> None:
    summary = flow.run(
        """
        limits: {max_concurrency: 1}
        steps:
          - id: m
            map:
              items: [1, 2, 3]
              fail_fast: false
              steps:
                - {id: boom, fail: "no", retry: {attempts: 2, delay: 10ms}, continue_on_error: true}
        """
    )
    leaves = [event for event in flow.events(summary.run_id) if event["path"].endswith("/boom")]
    assert len([event for event in leaves if event["type"] == "step.started"]) == 6
    assert _most_running(leaves) == 1


def test_a_step_cancelled_while_waiting_for_a_slot_never_started(flow: Flow) -> None:
    summary = flow.run(
        """
        limits: {max_concurrency: 1}
        steps:
          - id: m
            timeout: 300ms
            map:
              items: [1, 2, 3]
              steps:
                - {id: nap, wait: 20s}
        """
    )
    assert summary.status == "failed"
    events = [event for event in flow.events(summary.run_id) if event["path"].endswith("/nap")]
    started = [event["path"] for event in events if event["type"] == "step.started"]
    cancelled = [event["path"] for event in events if event["type"] == "step.cancelled"]
    assert len(started) == 1  # the other two waited for the slot until the map's timeout cancelled them
    assert cancelled == started


def test_nested_maps_share_the_run_wide_slots_without_deadlock(flow: Flow) -> None:
    summary = flow.run(
        """
        limits: {max_concurrency: 1}
        steps:
          - id: outer
            map:
              items: [1, 2, 3]
              steps:
                - id: inner
                  map:
                    items: [1, 2, 3]
                    steps:
                      - {id: nap, wait: 1ms}
        """
    )
    assert summary.status == "succeeded", summary.error
    leaves = [event for event in flow.events(summary.run_id) if event["path"].endswith("/nap")]
    assert _most_running(leaves) == 1


def test_map_fail_fast_cancels_the_other_items(flow: Flow) -> None:
    began = time.monotonic()
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [0, 1]
              steps:
                - {id: nap, if: item == 0, wait: 20s}
                - {id: boom, if: item == 1, fail: "item {{ item }} broke"}
        """
    )
    assert time.monotonic() - began < 10
    assert summary.status == "failed"
    assert summary.failed_step == "m"
    assert summary.error == "map 'm': 1 of 2 items failed; item 1: item 1 broke"
    assert [event["path"] for event in flow.events(summary.run_id, "step.cancelled")] == ["m[0]/nap"]


@pytest.mark.parametrize(
    ("tolerated", "status"),
    [("2", "succeeded"), ("1", "failed"), ('"50%"', "succeeded"), ('"25%"', "failed")],
)
def test_map_tolerated_failures(flow: Flow, tolerated: str, status: str) -> None:
    summary = flow.run(
        f"""
        steps:
          - id: m
            map:
              items: [1, 2, 3, 4]
              fail_fast: false
              tolerated_failures: {tolerated}
              steps:
                - {{id: check, if: item % 2 == 0, fail: "even {{{{ item }}}}"}}
                - {{id: echo, run: "echo {{{{ item }}}}"}}
        outputs:
          out: "{{{{ steps.m.output }}}}"
          errors: "{{{{ steps.m.errors }}}}"
        """
    )
    assert summary.status == status, summary.error
    if status == "succeeded":
        assert summary.outputs is not None
        assert summary.outputs["out"] == ["1", None, "3", None]
        assert summary.outputs["errors"] == [
            {"index": 1, "item": 2, "error": {"message": "even 2", "kind": "action", "step": "m[1]/check"}},
            {"index": 3, "item": 4, "error": {"message": "even 4", "kind": "action", "step": "m[3]/check"}},
        ]
    else:
        assert summary.error is not None and summary.error.startswith("map 'm': 2 of 4 items failed")


def test_map_with_tolerance_and_fail_fast_only_stops_past_the_tolerance(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [1, 2, 3]
              tolerated_failures: 1
              steps:
                - {id: check, if: item == 1, fail: "one"}
                - {id: nap, wait: 20ms}
                - {id: echo, run: "echo {{ item }}"}
        outputs: {out: "{{ steps.m.output }}", errors: "{{ steps.m.errors | length }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"out": [None, "2", "3"], "errors": 1}


def test_map_without_errors_has_empty_errors(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [a]
              steps: [{id: x, run: 'echo "{{ item }}"'}]
        outputs: {errors: "{{ steps.m.errors }}"}
        """
    )
    assert summary.outputs == {"errors": []}


def test_map_items_get_isolated_variable_copies(flow: Flow) -> None:
    summary = flow.run(
        """
        vars: {x: start}
        steps:
          - id: m
            map:
              items: [a, b, c]
              as: letter
              merge: list
              steps:
                - {id: before, run: 'echo "{{ vars.x }}"'}
                - {id: mine, set: {x: "{{ letter }}"}}
                - {id: nap, wait: 20ms}
                - {id: after, run: 'echo "{{ steps.before.output }}>{{ vars.x }}"'}
        outputs: {m: "{{ steps.m.output }}", x: "{{ vars.x }}"}
        """
    )
    assert summary.outputs == {"m": ["start>a", "start>b", "start>c"], "x": ["a", "b", "c"]}


def test_map_over_a_mapping_gives_key_value_items(flow: Flow) -> None:
    summary = flow.run(
        """
        vars: {m: {one: 1, two: 2}}
        steps:
          - id: m
            map:
              items: "{{ vars.m }}"
              steps: [{id: x, run: 'echo "{{ item.key }}{{ item.value }}"'}]
        outputs: {m: "{{ steps.m.output }}"}
        """
    )
    assert summary.outputs == {"m": ["one1", "two2"]}


def test_map_over_a_text_gives_its_lines_as_a_loop_does(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: ls, run: printf 'a.txt\\nb.txt\\n'}
          - id: m
            map:
              items: "{{ steps.ls.output }}"
              as: name
              steps: [{id: x, run: 'echo "<{{ name }}>"'}]
        outputs: {m: "{{ steps.m.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"m": ["<a.txt>", "<b.txt>"]}


@pytest.mark.parametrize(("items", "shown"), [("null", "null"), ("5", "an integer"), ("true", "a boolean")])
def test_map_items_of_another_type_fail_with_its_name(flow: Flow, items: str, shown: str) -> None:
    steps = "steps:\n  - id: m\n    map:\n      items: '{{ vars.v }}'\n      steps: [{set: {x: 1}}]\n"
    summary = flow.run(f"vars: {{v: {items}}}\n" + steps)
    assert summary.status == "failed"
    assert summary.error == f"map 'm': items must be a list, not {shown}"


def test_parallel_inside_a_map_item_has_item_instance_paths(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: m
            map:
              items: [1, 2]
              steps:
                - id: both
                  parallel:
                    branches:
                      x: [{id: px, run: "echo x{{ item }}"}]
                      y: [{id: py, run: "echo y{{ item }}"}]
                - {id: join, run: 'echo "{{ steps.px.output }}{{ steps.py.output }}"'}
        outputs: {m: "{{ steps.m.output }}"}
        """
    )
    assert summary.outputs == {"m": ["x1y1", "x2y2"]}
    paths = {record["p"] for record in flow.journal(summary.run_id)}
    assert {"m[0]/both/x/px", "m[0]/both/y/py", "m[1]/both/x/px", "m[1]/both/y/py", "m[0]/both"} <= paths
    branch_events = flow.events(summary.run_id, "parallel.branch")
    assert sorted((event["path"], event["data"]["branch"]) for event in branch_events) == [
        ("m[0]/both", "x"),
        ("m[0]/both", "y"),
        ("m[1]/both", "x"),
        ("m[1]/both", "y"),
    ]
