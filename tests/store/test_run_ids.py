"""Run ids and timestamps: the id shape, time order, prefix matching and its error messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llmflow.errors import RunNotFound
from llmflow.store import new_run_id
from llmflow.store.ids import (
    RUN_ID_PATTERN,
    format_timestamp,
    match_run_id,
    parse_timestamp,
    run_id_time,
)

MOMENT = datetime(2026, 11, 26, 11, 48, 7, 123456, tzinfo=timezone.utc)


def test_a_run_id_is_the_utc_second_and_four_random_characters() -> None:
    run_id = new_run_id(MOMENT)
    assert RUN_ID_PATTERN.match(run_id)
    assert run_id.startswith("20261126-114807-")
    assert RUN_ID_PATTERN.match(new_run_id())


def test_run_ids_sort_by_time_across_timezones() -> None:
    later_in_tokyo = (MOMENT + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=9)))
    assert new_run_id(later_in_tokyo).startswith("20261126-114808-")
    assert new_run_id(MOMENT) < new_run_id(later_in_tokyo) < new_run_id(MOMENT + timedelta(days=1))


def test_a_naive_time_is_taken_as_utc() -> None:
    assert new_run_id(datetime(2026, 1, 2, 3, 4, 5)).startswith("20260102-030405-")


def test_run_ids_made_in_one_second_differ() -> None:
    assert len({new_run_id(MOMENT) for _ in range(200)}) > 190


CANDIDATES = [
    "20261126-114807-k3f9",
    "20261126-114807-k3fa",
    "20261127-090000-abcd",
    "20261128-090000-abcd",
    "20261129-090000-abcd",
]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("20261126-114807-k3f9", "20261126-114807-k3f9"),
        ("20261127", "20261127-090000-abcd"),
        ("20261126-114807-k3fa", "20261126-114807-k3fa"),
    ],
    ids=["exact", "unique-prefix", "exact-beside-a-sibling"],
)
def test_a_selector_names_the_exact_id_or_a_unique_prefix(selector: str, expected: str) -> None:
    assert match_run_id(CANDIDATES, selector) == expected


def test_an_exact_id_wins_over_longer_ids_it_prefixes() -> None:
    assert match_run_id(["run", "run-2"], "run") == "run"


def test_an_ambiguous_prefix_names_some_matches_and_counts_the_rest() -> None:
    with pytest.raises(RunNotFound) as caught:
        match_run_id(CANDIDATES, "2026")
    assert str(caught.value) == (
        "run id prefix '2026' is ambiguous: matches 20261126-114807-k3f9, 20261126-114807-k3fa, "
        "20261127-090000-abcd (and 2 more)"
    )
    with pytest.raises(RunNotFound, match=r"matches 20261126-114807-k3f9, 20261126-114807-k3fa$"):
        match_run_id(CANDIDATES, "20261126")


def test_no_match_says_so() -> None:
    with pytest.raises(RunNotFound, match=r"^no run matches 'zzz'$"):
        match_run_id(CANDIDATES, "zzz")


def test_timestamps_are_utc_with_milliseconds_and_parse_back() -> None:
    text = format_timestamp(MOMENT)
    assert text == "2026-11-26T11:48:07.123Z"
    assert parse_timestamp(text) == MOMENT.replace(microsecond=123000)
    assert parse_timestamp("2026-11-26T12:48:07+01:00") == MOMENT.replace(microsecond=0)
    assert format_timestamp().endswith("Z")


@pytest.mark.parametrize("text", [None, "", "yesterday", 12])
def test_what_is_not_a_timestamp_parses_to_none(text: object) -> None:
    assert parse_timestamp(text) is None


def test_the_time_of_a_run_id() -> None:
    assert run_id_time("20261126-114807-k3f9") == MOMENT.replace(microsecond=0)
    assert run_id_time("custom") is None
