"""The journal bookkeeping behind resume: the replay index, ``--from`` rewinds and edited-workflow checks."""

from __future__ import annotations

import pytest
from engine_helpers import Flow

import llmflow
from llmflow.compiler.graph import Workflow
from llmflow.engine.resume import check_edited, instance_ancestors, replay_index, rerun_set, rewind_record, static_path
from llmflow.errors import UsageError

WORKFLOW = """
steps:
  - {id: a, run: "true"}
  - id: g
    steps:
      - {id: b, run: "true"}
      - {id: c, run: "true"}
  - id: l
    loop:
      times: 2
      steps: [{id: x, run: "true"}]
  - {id: sub, workflow: lib.yaml}
  - {id: d, run: "true"}
"""


@pytest.fixture
def workflow(flow: Flow) -> Workflow:
    flow.workflow('steps: [{id: inner, run: "true"}]', name="lib.yaml")
    return llmflow.load(flow.workflow(WORKFLOW))


def _done(*paths: str) -> list[dict[str, object]]:
    return [{"p": path, "s": "succeeded"} for path in paths]


@pytest.mark.parametrize(
    ("instance", "static"),
    [("a", "a"), ("l[3]/x", "l/x"), ("m[0]/p/b/y", "m/p/b/y"), ("l[1]/m[22]/z", "l/m/z")],
)
def test_static_path(instance: str, static: str) -> None:
    assert static_path(instance) == static


def test_instance_ancestors() -> None:
    assert instance_ancestors("l[2]/g/x") == ["l", "l[2]", "l[2]/g"]
    assert instance_ancestors("a") == []


def test_newest_record_wins_and_moves_to_the_end() -> None:
    records = [*_done("a", "b"), {"p": "a", "s": "failed", "e": {"message": "x"}}]
    index = replay_index(records)
    assert list(index) == ["b", "a"] and index["a"]["s"] == "failed"


def test_compensated_drops_the_instance_what_is_under_it_and_what_is_around_it() -> None:
    records = [*_done("l[0]/g/x", "l[0]/g/x/compensate/u", "l[0]/g/y", "l[0]/g", "l", "z")]
    records.append({"p": "l[0]/g/x", "s": "compensated"})
    assert list(replay_index(records)) == ["l[0]/g/y", "z"]


def test_reset_drops_only_what_is_under_it() -> None:
    records = [*_done("t/try/a", "t/finally/f", "t/finally/g"), {"p": "t/finally", "s": "reset"}]
    assert list(replay_index(records)) == ["t/try/a"]


def test_a_retried_composite_drops_what_its_earlier_attempts_completed() -> None:
    records = [*_done("a", "g/x", "g/y"), {"p": "g", "s": "retry"}, *_done("g/x")]
    assert list(replay_index(records)) == ["a", "g/x"]


def test_a_tolerated_item_failure_is_kept_until_its_map_steps_run_again() -> None:
    failed = {"p": "l[1]/m[2]", "s": "tolerated", "e": {"message": "x"}}
    records = [*_done("l[1]/m[2]/s"), failed]
    assert list(replay_index(records)) == ["l[1]/m[2]/s", "l[1]/m[2]/#failed"]
    kept = {"p": "", "s": "rewind", "drop": ["l/after"], "reopen": ["l"]}
    assert list(replay_index([*records, kept])) == ["l[1]/m[2]/s", "l[1]/m[2]/#failed"]
    dropped = {"p": "", "s": "rewind", "drop": ["l/m/s"], "reopen": ["l", "l/m"]}
    assert list(replay_index([*records, dropped])) == []
    assert list(replay_index([*records, {"p": "l[1]/m[2]/#failed", "s": "reset"}])) == ["l[1]/m[2]/s"]


def test_rewind_from_a_step_in_a_group_keeps_the_earlier_siblings(workflow: Workflow) -> None:
    rewind = rewind_record(workflow, "c")
    assert rewind["reopen"] == ["g"]
    assert rewind["drop"][:2] == ["g/c", "l"]
    records = [*_done("a", "g/b", "g/c", "g", "l[0]/x", "l[1]/x", "l", "sub/inner", "sub", "d"), rewind]
    assert list(replay_index(records)) == ["a", "g/b"]
    assert rerun_set(workflow, "c") == {"g", "g/c", "l", "l/x", "sub", "d"}


def test_check_edited_accepts_instances_inside_loops_and_sub_workflows(workflow: Workflow) -> None:
    check_edited(workflow, _done("a", "g/b", "l[1]/x", "sub/inner", "sub"))


def test_check_edited_lists_what_is_missing_and_ignores_what_was_rewound(workflow: Workflow) -> None:
    with pytest.raises(
        UsageError,
        match=r"no longer has these completed steps: gone, sub/lost; keep them \(with the same ids\) to resume, "
        r"or start a new run with `llmflow run`$",
    ):
        check_edited(workflow, _done("a", "gone", "sub/lost"))
    check_edited(workflow, [*_done("a", "gone"), {"p": "gone", "s": "compensated"}])
