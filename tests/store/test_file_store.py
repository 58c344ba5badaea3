"""What is particular to the file run store: its on-disk layout and how it copes with crash debris."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from llmflow.errors import StoreError
from llmflow.store import FileRunStore, new_run_id
from llmflow.store import files as files_module

FIXED = datetime(2026, 11, 26, 11, 48, 7, 123000, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> FileRunStore:
    return FileRunStore(tmp_path / "state", clock=lambda: FIXED)


def test_a_run_folder_has_the_documented_layout(store: FileRunStore) -> None:
    handle = store.create_run({"workflow": "w", "status": "running"}, {"flow.yaml": "version: 1\n"})
    handle.lock()
    handle.append({"path": "a"})
    folder = store.root / "runs" / handle.run_id
    assert handle.directory == folder
    expected = ["artifacts", "journal.jsonl", "lock", "run.json", "source"]
    assert sorted(p.name for p in folder.iterdir()) == expected
    meta = json.loads((folder / "run.json").read_text())
    assert meta == {
        "workflow": "w",
        "status": "running",
        "id": handle.run_id,
        "format_version": 1,
        "created": "2026-11-26T11:48:07.123Z",
    }
    checksum = zlib.crc32(b'{"path":"a"}')
    assert (folder / "journal.jsonl").read_bytes() == b'{"path":"a","c":"%08x"}\n' % checksum
    assert set(json.loads((folder / "lock").read_text())) == {"pid", "host", "since"}
    handle.close()
    assert (folder / "lock").read_text() == ""
    assert not [p for p in store.runs_dir.iterdir() if p.name.startswith(".")]


def test_update_rewrites_run_json_without_leaving_temporary_files(store: FileRunStore) -> None:
    handle = store.create_run({"status": "running"}, {})
    for step in range(5):
        handle.update(progress=step, note="\udcff lone surrogate")
    assert sorted(p.name for p in handle.directory.iterdir()) == ["artifacts", "run.json", "source"]
    assert store.open_run(handle.run_id).meta["progress"] == 4
    assert store.open_run(handle.run_id).meta["note"] == "\udcff lone surrogate"


def test_create_run_draws_a_new_id_when_the_first_is_taken(
    store: FileRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = store.create_run({}, {}).run_id
    fresh = new_run_id(FIXED)
    drawn: Iterator[str] = iter([taken, taken, fresh])
    monkeypatch.setattr(files_module, "new_run_id", lambda now=None: next(drawn))
    handle = store.create_run({"n": 2}, {"a.yaml": "x"})
    assert handle.run_id == fresh
    assert store.open_run(fresh).meta["id"] == fresh
    assert store.open_run(taken).meta.get("n") is None


def test_a_failed_create_run_leaves_nothing_behind(store: FileRunStore) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.create_run({"bad": object()}, {"a.yaml": "x"})
    assert list(store.runs_dir.iterdir()) == []


def test_a_folder_without_run_json_is_not_listed(store: FileRunStore) -> None:
    (store.runs_dir / "20261126-000000-junk").mkdir(parents=True)
    assert store.list_runs() == []


def test_an_unreadable_run_json_is_listed_and_left_alone_by_gc(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    (handle.directory / "run.json").write_text("{not json")
    [listed] = store.list_runs()
    assert listed["id"] == handle.run_id and listed["status"] == "unreadable"
    assert "run metadata does not parse" in listed["error"]
    assert store.gc(0, now=datetime(2030, 1, 1, tzinfo=timezone.utc)) == []
    assert handle.directory.is_dir()


def test_a_copied_run_folder_is_the_run_its_name_says(store: FileRunStore) -> None:
    original = store.create_run({"status": "failed", "ended": "2026-11-26T11:48:07.123Z"}, {})
    original.close()
    copy = store.runs_dir / "20200101-000000-copy"
    shutil.copytree(original.directory, copy)  # a backup put back: its run.json names the original
    meta = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**meta, "ended": "2020-01-01T00:00:00.000Z"}))
    assert sorted(meta["id"] for meta in store.list_runs()) == sorted([original.run_id, copy.name])
    assert store.open_run(copy.name).meta["id"] == copy.name
    assert store.gc(86400, now=datetime(2026, 11, 27, tzinfo=timezone.utc)) == [copy.name]
    assert not copy.exists() and original.directory.is_dir()  # not the run the copy's run.json named


def test_gc_sweeps_the_debris_of_an_interrupted_delete(store: FileRunStore) -> None:
    debris = store.runs_dir / ".deleting-20261126-000000-abcd-0000"
    (debris / "artifacts").mkdir(parents=True)
    store.gc(86400)
    assert not debris.exists()


def test_cache_entries_are_sharded_by_key_prefix(store: FileRunStore) -> None:
    store.cache_put("abcdef", [1, 2])
    path = store.root / "cache" / "ab" / "abcdef.json"
    assert json.loads(path.read_text())["value"] == [1, 2]


def test_a_damaged_cache_entry_is_a_miss(store: FileRunStore) -> None:
    store.cache_put("abcdef", [1, 2])
    (store.root / "cache" / "ab" / "abcdef.json").write_bytes(b"\x00\x00")
    assert list(store.cache_get("abcdef")) == []


def test_an_output_shaped_like_an_artifact_marker_round_trips(store: FileRunStore) -> None:
    handle = store.create_run({}, {})
    tricky = {"$artifact": "not-a-digest", "bytes": 3}
    handle.append({"path": "a", "output": tricky})
    assert handle.records() == [{"path": "a", "output": tricky}]
    assert len(list(handle.artifacts_dir().iterdir())) == 1


def test_a_missing_artifact_is_reported(store: FileRunStore) -> None:
    handle = store.create_run({}, {})
    handle.append({"path": "a", "output": "x" * 70_000})
    for artifact in handle.artifacts_dir().iterdir():
        artifact.unlink()
    with pytest.raises(StoreError, match=r"journal\.jsonl:1: artifact [0-9a-f]{64} is missing$"):
        handle.records()


def test_a_run_appended_from_two_handles_in_turn_stays_readable(store: FileRunStore) -> None:
    first = store.create_run({}, {}, durability="none")
    first.append({"n": 1})
    first.close()
    second = store.open_run(first.run_id, durability="batch")
    second.append({"n": 2})
    second.close()
    assert store.open_run(first.run_id).records() == [{"n": 1}, {"n": 2}]
    assert os.path.getsize(first.directory / "journal.jsonl") == 2 * len(b'{"n":1,"c":"00000000"}\n')


class FsyncSpy:
    """Counts the fsyncs of one file (by inode) and notes its size at each; can be told to fail them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.path = path
        self.sizes: list[int] = []
        self.fail = False
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        watched = self.path.exists() and os.fstat(fd).st_ino == self.path.stat().st_ino
        if watched and self.fail:
            raise OSError(5, "Input/output error")
        self._real(fd)
        if watched:
            self.sizes.append(os.fstat(fd).st_size)


def test_deferred_strict_appends_share_the_one_fsync_of_the_next_sync(
    store: FileRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = store.create_run({}, {})  # strict
    handle.lock()
    handle.append({"p": "first"})  # opens the journal, and is on disk at once
    spy = FsyncSpy(monkeypatch, handle.journal_path)
    handle.append({"p": "a"}, deferred=True)
    handle.append({"p": "b"}, deferred=True)
    assert spy.sizes == []
    handle.sync()
    assert spy.sizes == [handle.journal_path.stat().st_size]
    handle.sync()  # nothing new: no fsync
    handle.append({"p": "c"})  # not deferred: on disk before append returns
    assert spy.sizes == [spy.sizes[0], handle.journal_path.stat().st_size]
    handle.close()
    assert [record["p"] for record in store.open_run(handle.run_id).records()] == ["first", "a", "b", "c"]


def test_a_failed_fsync_cuts_the_journal_back_to_what_was_durable_and_refuses_more(
    store: FileRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = store.create_run({}, {})
    handle.lock()
    handle.append({"p": "durable"})
    spy = FsyncSpy(monkeypatch, handle.journal_path)
    handle.append({"p": "lost-1"}, deferred=True)
    handle.append({"p": "lost-2"}, deferred=True)
    spy.fail = True
    with pytest.raises(StoreError, match=r"cannot sync .*journal\.jsonl: Input/output error"):
        handle.sync()
    spy.fail = False
    with pytest.raises(StoreError, match="cannot journal any more"):
        handle.append({"p": "later"})
    with pytest.raises(StoreError, match="cannot journal any more"):
        handle.sync()
    handle.close()  # the failure was reported already: closing does not raise it again
    assert store.open_run(handle.run_id).records() == [{"p": "durable"}]
    assert handle.lock_holder() is None


# -- the journal's seal in run.json ------------------------------------------------------------------------


def _line(record: dict[str, object], checksum: int | None = None) -> bytes:
    body = json.dumps(record, separators=(",", ":")).encode()
    crc = zlib.crc32(body) if checksum is None else checksum
    return body[:-1] + b',"c":"%08x"}\n' % crc


def test_run_json_seals_the_journal_with_its_size_and_crc(store: FileRunStore) -> None:
    handle = store.create_run({"status": "running"}, {})
    handle.lock()
    handle.append({"p": "a", "s": "succeeded"})
    handle.append({"p": "b", "s": "succeeded"})
    handle.update(status="failed")
    handle.close()
    data = handle.journal_path.read_bytes()
    assert json.loads((handle.directory / "run.json").read_text())["journal"] == [len(data), zlib.crc32(data)]
    again = store.open_run(handle.run_id)  # a second handle goes on from the seal it read
    again.lock()
    assert [record["p"] for record in again.records()] == ["a", "b"]
    again.append({"p": "c", "s": "succeeded"})
    again.update(status="succeeded")
    again.close()
    data = handle.journal_path.read_bytes()
    assert store.open_run(handle.run_id).meta["journal"] == [len(data), zlib.crc32(data)]


def test_lines_the_seal_vouches_for_are_not_checked_again(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    bad = _line({"p": "a", "s": "succeeded"}, checksum=0)  # fails its own checksum (not being last, not torn)
    handle.journal_path.write_bytes(bad + _line({"p": "b", "s": "succeeded"}))
    with pytest.raises(StoreError, match=r"journal\.jsonl:1: journal record fails its checksum"):
        store.open_run(handle.run_id).records()
    handle.update(journal=[len(bad), zlib.crc32(bad)])  # as if llmflow had written it so
    records = store.open_run(handle.run_id).records()
    assert records == [{"p": "a", "s": "succeeded"}, {"p": "b", "s": "succeeded"}]


def test_a_journal_that_no_longer_matches_its_seal_is_checked_line_by_line(store: FileRunStore) -> None:
    handle = store.create_run({"status": "running"}, {})
    handle.lock()
    for path in "abc":
        handle.append({"p": path, "s": "succeeded"})
    handle.update(status="failed")
    handle.close()
    data = handle.journal_path.read_bytes()
    second = data.index(b"\n") + 1
    handle.journal_path.write_bytes(data[:second] + data[second:].replace(b'"b"', b'"x"', 1))
    with pytest.raises(StoreError, match=r"journal\.jsonl:2: journal record fails its checksum"):
        store.open_run(handle.run_id).records()


@pytest.mark.parametrize("seal", ["nonsense", [1], [10**9, 0], [0, 0], [3.0, 1], [-1, 0], [5, "x"]])
def test_a_malformed_or_impossible_seal_is_ignored(store: FileRunStore, seal: object) -> None:
    handle = store.create_run({"status": "failed", "journal": seal}, {})
    handle.journal_path.write_bytes(_line({"p": "a", "s": "succeeded"}) + b'{"p":"torn')
    assert store.open_run(handle.run_id).records() == [{"p": "a", "s": "succeeded"}]
    handle.journal_path.write_bytes(_line({"p": "a"}, checksum=1) + _line({"p": "b"}))
    with pytest.raises(StoreError, match=r"journal\.jsonl:1: journal record fails its checksum"):
        store.open_run(handle.run_id).records()


def test_a_seal_over_a_line_without_a_checksum_reports_that_line(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    data = _line({"p": "a", "s": "succeeded"}) + b'{"p":"b","s":"succeeded"}\n'
    handle.journal_path.write_bytes(data)
    handle.update(journal=[len(data), zlib.crc32(data)])  # a seal made by hand for a hand-written line
    with pytest.raises(StoreError, match=r"journal\.jsonl:2: journal record does not parse"):
        store.open_run(handle.run_id).records()


def test_the_seal_follows_a_torn_tail_being_cut_off(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    whole = _line({"p": "a", "s": "succeeded"})
    handle.journal_path.write_bytes(whole + b'{"p":"b","s":"succ')
    again = store.open_run(handle.run_id)
    again.lock()
    again.append({"p": "b", "s": "succeeded"})
    again.update(status="succeeded")
    again.close()
    data = handle.journal_path.read_bytes()
    assert data == whole + _line({"p": "b", "s": "succeeded"})
    assert store.open_run(handle.run_id).meta["journal"] == [len(data), zlib.crc32(data)]


def test_no_seal_is_written_after_a_failed_fsync(store: FileRunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = store.create_run({"status": "running"}, {})
    handle.lock()
    handle.append({"p": "durable"})
    spy = FsyncSpy(monkeypatch, handle.journal_path)
    handle.append({"p": "lost"}, deferred=True)
    spy.fail = True
    with pytest.raises(StoreError):
        handle.sync()
    spy.fail = False
    handle.update(status="failed")
    handle.close()
    assert "journal" not in store.open_run(handle.run_id).meta


# -- mark: run.json written in the background --------------------------------------------------------------


def test_a_mark_that_cannot_be_written_is_left_to_the_next_update(store: FileRunStore) -> None:
    handle = store.create_run({"workflow": "w", "status": "failed"}, {})
    handle.lock()
    run_json = handle.directory / "run.json"
    run_json.unlink()
    run_json.mkdir()  # the rename onto it fails
    handle.mark(status="running", pid=4242)  # no error: the run goes on
    assert handle.meta["status"] == "running"
    handle.close()  # waits for the mark's write, whose failure it does not raise
    run_json.rmdir()
    handle.update(status="succeeded")
    meta = store.open_run(handle.run_id).meta
    assert (meta["status"], meta["pid"], meta["workflow"]) == ("succeeded", 4242, "w")
    assert not [p for p in handle.directory.iterdir() if p.name.endswith(".tmp")]


def test_an_update_right_after_a_mark_is_the_last_word(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    handle.lock()
    for round_ in range(20):
        handle.mark(status="running", round=round_)
        handle.update(status="failed", note=round_)
        assert store.open_run(handle.run_id).meta["status"] == "failed"
    handle.close()
    assert store.open_run(handle.run_id).meta["round"] == 19


def test_a_journal_record_is_never_written_before_the_mark_of_its_drive(store: FileRunStore) -> None:
    # A process killed right after its first record must not leave a run.json of the drive before (its
    # status, or the inputs ``resume -i`` gave the steps that run now).
    handle = store.create_run({"status": "failed", "inputs": {"n": 1}}, {})
    handle.lock()
    for round_ in range(20):
        handle.mark(status="running", inputs={"n": round_})
        handle.append({"p": f"s{round_}", "s": "succeeded", "o": round_}, deferred=True)
        meta = json.loads((handle.directory / "run.json").read_text())
        assert (meta["status"], meta["inputs"]) == ("running", {"n": round_})
        handle.update(status="failed")
    handle.close()


def test_taking_the_lock_sweeps_temporary_run_json_copies_a_killed_writer_left(store: FileRunStore) -> None:
    handle = store.create_run({"status": "failed"}, {})
    left = handle.directory / ".run.json.0badc0de.tmp"
    left.write_text('{"status": "running"')  # a write cut short by kill -9
    unrelated = handle.directory / ".notes.tmp"
    unrelated.write_text("x")
    again = store.open_run(handle.run_id)
    assert left.exists()  # reading alone changes nothing
    again.lock()
    assert not left.exists() and unrelated.exists()
    assert again.meta["status"] == "failed"
    again.close()
