"""The run-store conformance suite: every implementation of the engine's RunStore protocol must pass it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmflow.engine.ports import RUN_STATUSES, RunHandle, RunStore
from llmflow.errors import JournalCorrupt, RunLocked, RunNotFound, StoreError
from llmflow.store import FileRunStore

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class StoreKit:
    """How the suite builds one implementation, and where it finds a run's raw journal bytes to damage."""

    make: Callable[[Path, Clock], Any]
    journal_file: Callable[[RunHandle], Path]


#: Every run-store implementation; adding one is adding one line here.
STORE_KITS = [
    pytest.param(
        StoreKit(lambda root, clock: FileRunStore(root, clock=clock), lambda h: h.directory / "journal.jsonl"),
        id="file",
    ),
]

START = datetime(2026, 11, 26, 11, 48, 7, 123000, tzinfo=timezone.utc)


class TickingClock:
    """A clock that moves on by ``step`` every time it is read, so run order never depends on luck."""

    def __init__(self, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = START
        self.step = step

    def __call__(self) -> datetime:
        moment = self.now
        self.now += self.step
        return moment


@pytest.fixture(params=STORE_KITS)
def kit(request: pytest.FixtureRequest) -> StoreKit:
    kit: StoreKit = request.param
    return kit


@pytest.fixture
def store(kit: StoreKit, tmp_path: Path) -> RunStore:
    made: RunStore = kit.make(tmp_path / "state", TickingClock())
    return made


def _run(store: RunStore, **meta: Any) -> RunHandle:
    return store.create_run({"workflow": "triage", "status": "succeeded", **meta}, {"flow.yaml": "version: 1\n"})


# -- runs, metadata and sources ---------------------------------------------------------------------------


def test_create_run_writes_meta_and_a_frozen_copy_of_the_sources(store: RunStore) -> None:
    sources = {"flow.yaml": "version: 1\nname: tri\u00e4ge\n", "sub/child.yaml": "version: 1\n"}
    handle = store.create_run({"workflow": "triage", "inputs": {"n": 3}}, sources)
    meta = handle.meta
    assert meta["id"] == handle.run_id
    assert meta["workflow"] == "triage" and meta["inputs"] == {"n": 3}
    assert meta["format_version"] == 1
    assert meta["created"] == "2026-11-26T11:48:07.123Z"
    assert handle.run_id.startswith("20261126-114807-")
    assert store.open_run(handle.run_id).meta == meta
    source = store.source_dir(handle.run_id)
    assert {p.relative_to(source).as_posix(): p.read_text() for p in source.rglob("*") if p.is_file()} == sources
    assert handle.artifacts_dir().is_dir()
    assert handle.events_path().name == "events.jsonl"


def test_freeze_sources_adds_a_whole_copy_beside_the_first_that_run_json_can_name(store: RunStore) -> None:
    handle = _run(store)
    edited = {"edited.yaml": "version: 1\nname: edited\n", "lib/sub.yaml": "version: 1\n"}
    assert store.freeze_sources(handle.run_id, edited) == "source-2"
    assert store.freeze_sources(handle.run_id, {"third.yaml": "version: 1\n"}) == "source-3"
    folder = store.source_dir(handle.run_id, {"source_dir": "source-2"})
    assert {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()} == edited
    assert (store.source_dir(handle.run_id) / "flow.yaml").read_text() == "version: 1\n"  # the first copy stays
    assert store.source_dir(handle.run_id, {}) == store.source_dir(handle.run_id)
    assert not [p.name for p in handle.directory.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.parametrize("name", ["../elsewhere", "/etc", "artifacts", "source-0", "source-x", 3])
def test_a_source_folder_run_json_names_must_be_one_of_the_runs(store: RunStore, name: object) -> None:
    handle = _run(store)
    with pytest.raises(StoreError, match=r"run\.json names no source folder of the run"):
        store.source_dir(handle.run_id, {"source_dir": name})


def test_freeze_sources_refuses_paths_that_leave_the_folder(store: RunStore) -> None:
    handle = _run(store)
    with pytest.raises(StoreError, match="must be relative"):
        store.freeze_sources(handle.run_id, {"../outside.yaml": "x"})
    assert sorted(p.name for p in handle.directory.iterdir() if "source" in p.name) == ["source"]


def test_update_merges_fields_into_the_persisted_meta(store: RunStore) -> None:
    handle = _run(store, status="running")
    handle.update(status="succeeded", ended="2026-11-26T11:50:00.000Z", usage={"tokens": 12})
    assert handle.meta["status"] == "succeeded"
    reopened = store.open_run(handle.run_id).meta
    assert reopened == handle.meta
    assert reopened["workflow"] == "triage" and reopened["usage"] == {"tokens": 12}


def test_mark_merges_fields_like_update_and_leaves_no_temporary_file(store: RunStore) -> None:
    handle = _run(store, status="failed")
    handle.mark(status="running", pid=4242, resumes=1)
    assert handle.meta["status"] == "running"
    handle.close()  # the file may be written in the background: closing waits for it
    reopened = store.open_run(handle.run_id).meta
    assert reopened == handle.meta and reopened["pid"] == 4242 and reopened["workflow"] == "triage"
    assert sorted(path.name for path in handle.directory.iterdir() if path.name.endswith(".tmp")) == []


def test_a_masking_handle_masks_what_mark_writes(store: RunStore) -> None:
    from llmflow.redaction import Redactor, masked_handle

    handle = _run(store, status="failed")
    masked = masked_handle(handle, Redactor(["hunter2"]))
    masked.mark(status="running", edited_workflow="/x/hunter2.yaml")
    masked.close()  # the file may be written in the background: closing waits for it
    assert store.open_run(handle.run_id).meta["edited_workflow"] == "/x/***.yaml"


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.yaml", "sub/../../outside.yaml", ""])
def test_create_run_refuses_source_paths_that_leave_the_run(store: RunStore, path: str) -> None:
    with pytest.raises(StoreError, match="must be relative"):
        store.create_run({}, {path: "x"})
    assert store.list_runs() == []


@pytest.mark.parametrize("run_id", ["20990101-000000-none", "../runs", ".", ""])
def test_open_run_of_an_unknown_id_raises_run_not_found(store: RunStore, run_id: str) -> None:
    _run(store)
    with pytest.raises(RunNotFound):
        store.open_run(run_id)


# -- the journal ------------------------------------------------------------------------------------------


def test_records_round_trip_unicode_and_nested_data(store: RunStore) -> None:
    handle = _run(store)
    written: list[dict[str, Any]] = [
        {"path": "fetch", "status": "succeeded", "output": [{"n": 1, "tags": ["a", "b"]}, None, 2.5, True]},
        {
            "path": "label[0].classify",
            "output": {"label": "caf\u00e9 \u2615 \U0001f600", "\u00fcber": {"x": []}},
        },
        {"path": "quote", "output": 'line "one"\nline\ttwo\\ \u2028'},
        {"path": "empty", "output": {}},
    ]
    for record in written:
        handle.append(record)
    assert handle.records() == written
    assert store.open_run(handle.run_id).records() == written


def test_a_new_run_has_no_records(store: RunStore) -> None:
    assert _run(store).records() == []


def test_a_large_output_goes_to_one_artifact_shared_by_equal_outputs(store: RunStore, kit: StoreKit) -> None:
    handle = _run(store)
    big = {"text": "\u00e9" * 40_000, "rows": list(range(2_000))}
    handle.append({"path": "a", "output": big})
    handle.append({"path": "b", "output": big})
    handle.append({"path": "c", "output": "small"})
    assert handle.records() == [
        {"path": "a", "output": big},
        {"path": "b", "output": big},
        {"path": "c", "output": "small"},
    ]
    assert len([p for p in handle.artifacts_dir().iterdir() if not p.name.startswith(".")]) == 1
    assert kit.journal_file(handle).stat().st_size < 1_000


def test_a_torn_last_line_is_ignored_and_the_next_append_starts_clean(store: RunStore, kit: StoreKit) -> None:
    handle = _run(store)
    for index in range(3):
        handle.append({"path": f"step{index}", "output": index})
    handle.close()
    journal = kit.journal_file(handle)
    data = journal.read_bytes()
    journal.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 10])  # cut the last line mid-way
    resumed = store.open_run(handle.run_id)
    assert resumed.records() == [{"path": "step0", "output": 0}, {"path": "step1", "output": 1}]
    resumed.append({"path": "step2", "output": "again"})
    assert [r["output"] for r in resumed.records()] == [0, 1, "again"]
    resumed.close()


def test_a_torn_tail_is_cut_even_without_reading_the_records_first(store: RunStore, kit: StoreKit) -> None:
    handle = _run(store)
    handle.append({"path": "one"})
    handle.close()
    with kit.journal_file(handle).open("ab") as journal:
        journal.write(b'{"path":"tw')
    resumed = store.open_run(handle.run_id)
    resumed.append({"path": "two"})
    assert resumed.records() == [{"path": "one"}, {"path": "two"}]
    resumed.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line.replace(b'"step1"', b'"stepX"'), "fails its checksum"),
        (lambda line: b"not json at all", "does not parse"),
        (lambda line: b"", "does not parse"),
    ],
    ids=["flipped-byte", "garbage", "blank"],
)
def test_a_damaged_middle_line_raises_journal_corrupt_naming_the_line(
    store: RunStore, kit: StoreKit, damage: Callable[[bytes], bytes], message: str
) -> None:
    handle = _run(store)
    for index in range(3):
        handle.append({"path": f"step{index}", "output": index})
    journal = kit.journal_file(handle)
    lines = journal.read_bytes().split(b"\n")
    lines[1] = damage(lines[1])
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalCorrupt, match=rf"journal\.jsonl:2: journal record {message}$"):
        store.open_run(handle.run_id).records()


def test_every_durability_mode_journals_the_same_records(store: RunStore) -> None:
    records = [{"path": f"s{i}", "output": {"i": i, "text": "x" * (i * 50)}} for i in range(20)]
    seen = []
    for durability in ("strict", "batch", "none"):
        handle = store.create_run({"workflow": "w"}, {}, durability=durability)
        handle.lock()
        for record in records:
            handle.append(record)
        handle.sync()
        handle.close()
        seen.append(store.open_run(handle.run_id, durability=durability).records())
    assert seen == [records, records, records]


@pytest.mark.parametrize("durability", ["strict", "batch", "none"])
def test_deferred_appends_are_journaled_like_any_other(store: RunStore, durability: Any) -> None:
    handle = store.create_run({"workflow": "w"}, {}, durability=durability)
    handle.lock()
    handle.append({"p": "a"}, deferred=True)
    handle.append({"p": "b"})
    handle.append({"p": "c"}, deferred=True)
    handle.sync()
    handle.close()
    assert store.open_run(handle.run_id).records() == [{"p": "a"}, {"p": "b"}, {"p": "c"}]


def test_an_unknown_durability_is_refused(store: RunStore) -> None:
    with pytest.raises(StoreError, match="unknown durability"):
        store.create_run({}, {}, durability="sometimes")  # type: ignore[arg-type]


# -- the lock ---------------------------------------------------------------------------------------------


def test_the_lock_is_exclusive_between_two_handles(store: RunStore) -> None:
    first = _run(store)
    second = store.open_run(first.run_id)
    assert first.lock_holder() is None
    first.lock()
    with pytest.raises(RunLocked, match=rf"^run {first.run_id} is being driven by pid {os.getpid()} on .+ since "):
        second.lock()
    holder = second.lock_holder()
    assert holder is not None and holder["pid"] == os.getpid()
    first.close()
    assert second.lock_holder() is None
    second.lock()
    with pytest.raises(RunLocked):
        first.lock()
    second.unlock()
    first.lock()
    first.close()
    first.close()  # closing twice is harmless


def test_lock_reads_run_json_again_so_an_update_made_meanwhile_is_not_lost(store: RunStore) -> None:
    run_id = _run(store, status="failed").run_id
    stale = store.open_run(run_id)  # opened before another process changes the run
    other = store.open_run(run_id)
    other.lock()
    other.update(status="cancelled", note="by llmflow cancel")
    other.close()
    stale.lock()
    assert stale.meta["status"] == "cancelled" and stale.meta["note"] == "by llmflow cancel"
    stale.update(resumes=1)
    stale.close()
    meta = store.open_run(run_id).meta
    assert (meta["status"], meta["note"], meta["resumes"]) == ("cancelled", "by llmflow cancel", 1)


def test_a_locked_run_cannot_be_deleted(store: RunStore) -> None:
    handle = _run(store)
    handle.lock()
    with pytest.raises(RunLocked):
        store.delete_run(handle.run_id)
    handle.close()
    store.delete_run(handle.run_id)
    with pytest.raises(RunNotFound):
        store.open_run(handle.run_id)
    with pytest.raises(RunNotFound):
        store.delete_run(handle.run_id)


# -- finding and listing runs -----------------------------------------------------------------------------


def test_resolve_by_exact_id_unique_prefix_ambiguous_prefix_and_last(store: RunStore) -> None:
    ids = [_run(store).run_id for _ in range(3)]  # 11:48:07, 11:48:08, 11:48:09
    assert store.resolve(ids[1]) == ids[1]
    assert store.resolve(ids[0][:15]) == ids[0]
    with pytest.raises(RunNotFound, match=r"^run id prefix '20261126-1148' is ambiguous: matches "):
        store.resolve("20261126-1148")
    with pytest.raises(RunNotFound, match=r"^no run matches '1999'"):
        store.resolve("1999")
    with pytest.raises(RunNotFound):
        store.resolve(None)
    assert store.resolve(None, last=True) == ids[2]


def test_last_breaks_a_tie_within_one_second_by_creation_time(kit: StoreKit, tmp_path: Path) -> None:
    store: RunStore = kit.make(tmp_path, TickingClock(step=timedelta(milliseconds=1)))
    ids = [_run(store).run_id for _ in range(5)]
    assert len({run_id[:15] for run_id in ids}) == 1
    assert store.resolve(None, last=True) == ids[-1]
    assert [meta["id"] for meta in store.list_runs()] == ids[::-1]


def test_resolve_last_in_an_empty_store_raises_run_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.resolve(None, last=True)


def test_list_runs_is_newest_first_and_filters_by_status(store: RunStore) -> None:
    statuses = ["succeeded", "failed", "succeeded", "waiting"]
    ids = [_run(store, status=status).run_id for status in statuses]
    assert [meta["id"] for meta in store.list_runs()] == ids[::-1]
    assert [meta["id"] for meta in store.list_runs(status="succeeded")] == [ids[2], ids[0]]
    assert [meta["id"] for meta in store.list_runs(limit=2)] == [ids[3], ids[2]]
    assert store.list_runs(status="cancelled") == []
    assert all(meta["status"] in RUN_STATUSES for meta in store.list_runs())


def test_a_limit_keeps_the_newest_runs_when_it_falls_within_one_second(kit: StoreKit, tmp_path: Path) -> None:
    store: RunStore = kit.make(tmp_path, TickingClock(step=timedelta(milliseconds=300)))
    statuses = ["failed", "succeeded", "failed", "succeeded", "failed", "succeeded"]  # seconds 0,0,0,0,1,1
    ids = [_run(store, status=status).run_id for status in statuses]
    assert [meta["id"] for meta in store.list_runs(limit=3)] == [ids[5], ids[4], ids[3]]
    assert [meta["id"] for meta in store.list_runs(limit=5)] == ids[:0:-1]
    assert [meta["id"] for meta in store.list_runs(limit=2, status="failed")] == [ids[4], ids[2]]
    assert [meta["id"] for meta in store.list_runs(limit=10)] == ids[::-1]


def test_a_running_run_that_nobody_drives_is_listed_as_stale_interrupted(store: RunStore) -> None:
    driven = _run(store, status="running")
    driven.lock()
    orphan = _run(store, status="running")
    listed = {meta["id"]: meta for meta in store.list_runs()}
    assert listed[driven.run_id]["status"] == "running" and "stale" not in listed[driven.run_id]
    assert listed[orphan.run_id]["status"] == "interrupted" and listed[orphan.run_id]["stale"] is True
    assert [meta["id"] for meta in store.list_runs(status="running")] == [driven.run_id]
    assert [meta["id"] for meta in store.list_runs(status="interrupted")] == [orphan.run_id]
    driven.close()


def test_gc_deletes_only_old_runs_that_nobody_drives(store: RunStore) -> None:
    old_ended = _run(store, status="succeeded", ended="2026-11-26T12:00:00.000Z")
    old_created = _run(store, status="failed")
    old_but_driven = _run(store, status="running")
    old_but_driven.lock()
    old_waiting_but_locked = _run(store, status="waiting")
    old_waiting_but_locked.lock()
    recently_ended = _run(store, status="succeeded", ended="2026-12-20T00:00:00.000Z")
    stale = _run(store, status="running")
    now = datetime(2026, 12, 30, tzinfo=timezone.utc)
    removed = store.gc(older_than_seconds=14 * 86400, now=now)
    assert sorted(removed) == sorted([old_ended.run_id, old_created.run_id, stale.run_id])
    remaining = {meta["id"] for meta in store.list_runs()}
    assert remaining == {old_but_driven.run_id, old_waiting_but_locked.run_id, recently_ended.run_id}
    old_but_driven.close()
    old_waiting_but_locked.close()


def test_gc_dry_run_names_what_gc_would_delete_and_deletes_nothing(store: RunStore) -> None:
    old = _run(store, status="succeeded", ended="2026-11-26T12:00:00.000Z")
    old_but_driven = _run(store, status="failed", ended="2026-11-26T12:00:00.000Z")
    old_but_driven.lock()
    recent = _run(store, status="succeeded", ended="2026-12-20T00:00:00.000Z")
    now = datetime(2026, 12, 30, tzinfo=timezone.utc)
    assert store.gc(14 * 86400, now=now, dry_run=True) == [old.run_id]
    assert {meta["id"] for meta in store.list_runs()} == {old.run_id, old_but_driven.run_id, recent.run_id}
    assert store.gc(14 * 86400, now=now) == [old.run_id]
    old_but_driven.close()


# -- the events file --------------------------------------------------------------------------------------


def _event(seq: int, size: int = 10) -> bytes:
    return b'{"v":1,"seq":%d,"type":"step.completed","data":{"preview":"%s"}}\n' % (seq, b"x" * size)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, 0),
        (b"", 0),
        (b"\n\n", 0),
        (_event(1) + _event(2) + _event(3), 3),
        (_event(1) + _event(2) + b'{"v":1,"seq":3,"ty', 2),  # a torn last event
        (_event(1) + b'{"v":1,"seq":2,"ty', 1),
        (b'{"v":1,"seq":1,"ty', 0),
        (_event(1) + _event(2, size=100_000), 2),  # a last line far longer than one read
        (_event(1) + _event(2, size=100_000) + b'{"v":1,"seq":3,"data":"' + b"y" * 50_000, 2),
        (_event(7, size=20_000) + b"\n" + b"not an event\n", 7),
        (b"".join(_event(seq) for seq in range(1, 5001)), 5000),
    ],
    ids=[
        "no-file",
        "empty",
        "blank-lines",
        "three",
        "torn-last",
        "only-one-complete",
        "only-torn",
        "long-last-line",
        "long-line-then-long-torn-tail",
        "junk-after-the-last-event",
        "many",
    ],
)
def test_last_event_seq_reads_the_last_complete_event(store: RunStore, content: bytes | None, expected: int) -> None:
    handle = _run(store)
    if content is not None:
        handle.events_path().write_bytes(content)
    assert handle.last_event_seq() == expected


# -- the step cache ---------------------------------------------------------------------------------------


def test_cache_get_yields_nothing_for_a_miss_and_the_value_after_a_put(store: RunStore) -> None:
    key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert list(store.cache_get(key)) == []
    store.cache_put(key, {"label": "bug", "score": [0.5, 1]})
    assert list(store.cache_get(key)) == [{"label": "bug", "score": [0.5, 1]}]
    store.cache_put(key, "replaced")
    assert list(store.cache_get(key)) == ["replaced"]


def test_cache_can_hold_none(store: RunStore) -> None:
    store.cache_put("ab12", None)
    assert list(store.cache_get("ab12")) == [None]
    assert list(store.cache_get("ab13")) == []


@pytest.mark.parametrize("key", ["", "../escape", ".hidden", "a/b"])
def test_cache_refuses_keys_that_are_not_plain_names(store: RunStore, key: str) -> None:
    with pytest.raises(StoreError, match="invalid cache key"):
        store.cache_put(key, 1)


def test_cache_refuses_values_that_are_not_json(store: RunStore) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.cache_put("ab", {1, 2})
