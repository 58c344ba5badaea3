"""Outcomes: what ``steps.<id>`` shows, the journal record form, and turning values into plain JSON."""

from __future__ import annotations

from typing import Any

import pytest

from llmflow.engine.outcome import FAILED, SKIPPED, SUCCEEDED, Outcome, jsonable, record_times
from llmflow.errors import ActionError


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ((1, "a"), [1, "a"]),
        ({3, 1, 2}, [1, 2, 3]),
        (range(3), [0, 1, 2]),
        ({2: "a", None: "b", False: "c"}, {"2": "a", "null": "b", "false": "c"}),
        ({"nested": [(1,), {"x": frozenset({"y"})}]}, {"nested": [[1], {"x": ["y"]}]}),
        (1.5, 1.5),
    ],
    ids=["tuple", "set", "range", "keys", "nested", "float"],
)
def test_jsonable_converts_what_json_can_hold(value: Any, plain: Any) -> None:
    assert jsonable(value, "the output") == plain


def test_jsonable_returns_plain_values_without_copying() -> None:
    value = {"a": [1, {"b": "c"}], "d": None}
    assert jsonable(value, "the output") is value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "the output holds a value of type object, which cannot be stored as JSON"),
        (b"bytes", "the output holds a value of type bytes, which cannot be stored as JSON"),
        (float("nan"), "the output contains nan, which JSON cannot hold"),
        ({(1, 2): 3}, "the output has a tuple key, which cannot be stored as JSON"),
    ],
    ids=["object", "bytes", "nan", "tuple-key"],
)
def test_jsonable_refuses_the_rest(value: Any, message: str) -> None:
    with pytest.raises(ActionError, match=f"^{message}$"):
        jsonable(value, "the output")


def test_jsonable_refuses_nesting_past_the_recursion_limit() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ActionError, match="nested too deeply"):
        jsonable(deep, "the output")


def test_record_omits_empty_fields_and_round_trips() -> None:
    outcome = Outcome(SUCCEEDED, output="x", started=10.0, ended=12.5, extra={"exit_code": 0})
    record = outcome.record("a/b")
    assert record == {"p": "a/b", "s": "succeeded", "m": [10000, 2500], "output": "x", "x": {"exit_code": 0}}
    back = Outcome.from_record(record)
    assert back.view() == outcome.view()
    assert back.view()["stdout"] == "x"


def test_record_times_are_whole_milliseconds_and_records_in_seconds_still_read() -> None:
    record = Outcome(SUCCEEDED, started=1795954868.0274, ended=1795954868.0296).record("a")
    assert record["m"] == [1795954868027, 3]
    assert all(type(value) is int for value in record["m"])  # parsed far faster than decimal fractions
    back = Outcome.from_record(record)
    assert (back.started, back.ended) == (1795954868.027, 1795954868.03)
    assert record_times({"p": "a", "s": "succeeded", "t": [10.25, 12.5]}) == (10.25, 12.5)  # an older journal
    assert record_times({"p": "a", "s": "skipped"}) is None
    older = Outcome.from_record({"p": "a", "s": "succeeded", "t": [10.25, 12.5], "output": 1})
    assert (older.started, older.ended, older.output) == (10.25, 12.5, 1)


def test_skipped_record_is_minimal() -> None:
    assert Outcome(SKIPPED, attempts=0, started=5.0, ended=5.0).record("s") == {"p": "s", "s": "skipped"}
    assert Outcome.from_record({"p": "s", "s": "skipped"}).view()["attempts"] == 0


def test_failed_record_keeps_error_attempts_and_writes() -> None:
    outcome = Outcome(FAILED, writes={"x": 1}, error={"message": "m"}, attempts=3, started=1.0, ended=2.0)
    record = outcome.record("f")
    assert record["e"] == {"message": "m"} and record["a"] == 3 and record["w"] == {"x": 1}
    assert "output" not in record and "x" not in record


def test_variables_that_are_the_output_are_recorded_once() -> None:
    values = {"x": 1, "text": "hello"}
    record = Outcome(SUCCEEDED, output=values, writes=values, started=1.0, ended=2.0).record("s")
    assert record["output"] == values and record["wo"] == 1 and "w" not in record
    back = Outcome.from_record(record)
    assert back.writes == values and back.writes is not back.output  # a copy: frames may change it
    equal_but_separate = Outcome(SUCCEEDED, output={"x": 1}, writes={"x": 1}).record("s")
    assert equal_but_separate["w"] == {"x": 1} and "wo" not in equal_but_separate


@pytest.mark.parametrize(
    "value",
    [
        [1, [2, (3,)]],
        {"a": {"b": {1: "c"}}},
        [{"a": 1}, {"b": {2, 1}}],
        {"keep": [1, 2], "fix": (3,)},
    ],
    ids=["nested-tuple", "nested-int-key", "set-in-list", "one-member-to-fix"],
)
def test_jsonable_copies_only_when_something_must_change(value: Any) -> None:
    import json

    plain = jsonable(value, "the output")
    assert plain is not value
    assert json.loads(json.dumps(plain)) == plain


@pytest.mark.parametrize(
    "value",
    [
        "short",
        "x" * 300,
        "line one\nline two",
        None,
        True,
        12,
        2.5,
        {"a": 1},
        {"v": "x" * 5000},
        {"k" * 300: 1},
        list(range(10_000)),
        [[[["deep"]]]],
        {"é": ["ü", None, False]},
        [{"a": [1, 2]}, {"b": '\n\t"'}],
    ],
    ids=lambda value: type(value).__name__ + str(len(str(value))),
)
def test_preview_is_stringify_cut_to_80_characters(value: Any) -> None:
    from llmflow.engine.runner import preview
    from llmflow.expressions import stringify

    text = stringify(value)
    assert preview(value) == (text if len(text) <= 80 else text[:79] + "…")
