"""One run's folder on disk: ``run.json``, the journal writer, artifacts, the lock, and durable writes.

Journal durability (``durability``):

``strict``
    A record is on disk (fsynced) before ``append`` returns. With ``append(record, deferred=True)`` the
    write happens at once and the fsync waits for the next ``sync()``: records appended by steps that finish
    together (map items, parallel branches) then share one fsync (group commit). The caller must call
    ``sync()`` before it relies on a deferred record (before the next dependent step starts, before the run
    reports its end); the engine does.
``batch``
    Records are written at once and fsynced at most every ``BATCH_INTERVAL`` seconds and by ``sync()``.
``none``
    Records are written at once; the operating system decides when they reach the disk.

An fsync that fails leaves it unknown which written bytes survive: the journal is cut back to what was last
fsynced and the handle refuses every later append and sync (``StoreError``), so no caller is ever told a
record is durable when it may not be.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmflow.engine.ports import RUN_STATUSES, Durability
from llmflow.errors import RunNotFound, StoreError
from llmflow.store.journal import (
    check_records,
    decode_journal,
    encode_journal_line,
    may_hold_packed_outputs,
    resolve_artifacts,
    sealed_lines,
)
from llmflow.store.locking import RunLock
from llmflow.threads import Background

RUN_FILE = "run.json"
SOURCE_DIR = "source"
JOURNAL_FILE = "journal.jsonl"
EVENTS_FILE = "events.jsonl"
ARTIFACTS_DIR = "artifacts"
LOCK_FILE = "lock"
#: The ``run.json`` member that seals the journal: ``[size, crc32]`` of its bytes when ``run.json`` was written.
JOURNAL_SEAL = "journal"
_CRC32 = zlib.crc32
#: ``batch`` durability fsyncs the journal when at least this many seconds passed since the last fsync.
BATCH_INTERVAL = 0.05


class FileRunHandle:
    """One run's folder. Journal appends go through one descriptor opened on first use (``O_APPEND``,
    one ``os.write`` per record), fsynced according to ``durability``."""

    def __init__(
        self, run_id: str, directory: Path, meta: dict[str, Any], *, durability: Durability = "strict"
    ) -> None:
        self.run_id = run_id
        self.directory = directory
        self.durability: Durability = durability
        self.journal_path = directory / JOURNAL_FILE
        self._meta = meta
        self._durable = durability != "none"
        self._fsync_each = durability == "strict"
        self._fsync_batched = durability == "batch"
        self._lock = RunLock(directory / LOCK_FILE, run_id)
        self._artifacts = ArtifactFiles(directory / ARTIFACTS_DIR, durable=self._durable)
        self._guard = threading.Lock()
        self._fd: int | None = None
        self._size = 0  # bytes in the journal, so a failed write can be cut off again
        self._synced = 0  # bytes of the journal known to be on disk
        self._unsynced = False
        self._last_sync = 0.0
        self._broken: str | None = None  # why appends are refused after a failed fsync
        self._verified: tuple[int, int] | None = None  # (journal size, verified length) seen by records()
        # (size, CRC-32) of the journal as this handle knows it to be, written to run.json as its ``journal``
        # member so that the next reader need not check those lines one by one (``sealed_lines``).
        self._seal: tuple[int, int] | None = None
        self._marking: Background | None = None  # the thread writing ``run.json`` for ``mark``
        self._journal_waits = False  # whether the next journal record waits for that write (new inputs)

    @property
    def meta(self) -> dict[str, Any]:
        """The contents of ``run.json`` as last written or read (a copy)."""
        return dict(self._meta)

    def lock(self) -> None:
        """Take the run's lock; ``RunLocked`` naming the holder when another handle or process has it.

        ``run.json`` is read again once the lock is held: another process may have updated it since this
        handle was opened, and a later ``update`` merges into what is read here.
        """
        if self._lock.held:
            return
        self._lock.acquire()
        try:
            self._meta = read_meta(self.directory, self.run_id)
        except BaseException:
            self._lock.release()
            raise
        self._sweep_temporaries()

    def _sweep_temporaries(self) -> None:
        """Remove the temporary ``run.json`` copies a process killed while writing one left behind (only the
        lock's holder writes ``run.json``, so none of them is being written now)."""
        prefix = f".{RUN_FILE}."
        with contextlib.suppress(OSError), os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def unlock(self) -> None:
        """Release the run's lock."""
        self._lock.release()

    def lock_holder(self) -> dict[str, Any] | None:
        """``{pid, host, since}`` of whoever holds the run's lock, or ``None``."""
        return self._lock.holder()

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` and rewrite it atomically (fsynced unless durability: none)."""
        self._wait_for_mark()
        merged = self._merged(fields)
        write_atomically(self.directory / RUN_FILE, dump_meta(merged), durable=self._durable)
        self._meta = merged

    def mark(self, **fields: Any) -> None:
        """``update`` without the folder's fsync (the file's own is kept, so the new ``run.json`` is never
        empty): a power loss leaves this version or the one before.

        When durable, the file is written by a thread of its own, so its fsync (most of the cost: ~1 ms of
        every run's and resume's start) overlaps the run instead of delaying it; ``meta`` has the fields at
        once, and the next ``update`` and ``close`` wait for the write first. A write that fails is left to the
        next ``update``, which writes every field again (the run's end always does). A mark that changes the
        run's ``inputs`` (``resume -i``) is waited for by the next journal record as well: the steps that saw
        them must not be journaled beside a ``run.json`` with the old ones.
        """
        merged = self._merged(fields)
        data = dump_meta(merged)
        self._meta = merged
        self._wait_for_mark()
        if not self._durable:
            write_atomically(self.directory / RUN_FILE, data, durable=False)
            return
        self._marking = Background(self._write_mark, data)
        self._journal_waits = "inputs" in fields

    def _merged(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**self._meta, **fields}
        with self._guard:
            seal = self._seal
        if seal is not None:
            merged[JOURNAL_SEAL] = list(seal)
        return merged

    def _write_mark(self, data: bytes) -> None:
        with contextlib.suppress(Exception):  # the next update writes these fields again, and reports its failure
            write_atomically(self.directory / RUN_FILE, data, durable=True, settle=False)

    def _wait_for_mark(self) -> None:
        marking, self._marking = self._marking, None
        if marking is not None:
            marking.join()

    def append(self, record: Mapping[str, Any], *, deferred: bool = False) -> int | None:
        """Append one checksummed record to the journal and return the size in bytes of its ``output``'s JSON
        (``None`` without one); a sizeable output is stored compressed, one over 64 KiB goes to artifacts.

        ``deferred`` (``strict`` only): write now, fsync at the next ``sync()`` (group commit). After a ``mark``
        that changed the inputs, the first record waits for its ``run.json``, so a process killed at any moment
        never leaves a record of a step that saw new inputs beside a ``run.json`` with the old ones.
        """
        if self._journal_waits and self._marking is not None:
            self._wait_for_mark()
        line, size = encode_journal_line(record, self._artifacts.put)
        with self._guard:
            if self._broken is not None:
                raise StoreError(self._broken)
            fd = self._fd if self._fd is not None else self._open_journal()
            try:
                written = os.write(fd, line)
                while written < len(line):  # short writes are rare on files, but allowed
                    written += os.write(fd, line[written:])
            except OSError as error:
                # Take the record back out: a partial line would turn into a corrupt middle line once
                # the next record lands.
                with contextlib.suppress(OSError):  # if this fails too, a torn last line is still ignored
                    os.ftruncate(fd, self._size)
                raise StoreError(f"cannot append to {self.journal_path}: {error.strerror}") from None
            self._size += written
            if self._seal is not None:
                self._seal = (self._size, _CRC32(line, self._seal[1]))
            self._unsynced = self._durable
            if self._fsync_each:
                if not deferred:
                    self._fsync(fd)
            elif self._fsync_batched and time.monotonic() - self._last_sync >= BATCH_INTERVAL:
                self._fsync(fd)
        return size

    def _fsync(self, fd: int) -> None:
        """fsync the journal (the guard is held); on failure cut it back to what was durable and refuse more."""
        try:
            os.fsync(fd)
        except OSError as error:
            self._broken = f"cannot sync {self.journal_path}: {error.strerror}; the run cannot journal any more"
            self._seal = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._synced)
                self._size = self._synced
            raise StoreError(self._broken) from None
        self._synced = self._size
        self._unsynced = False
        self._last_sync = time.monotonic()

    def records(self) -> list[dict[str, Any]]:
        """Every journal record, verified (checksum and member shapes), artifacts resolved; a torn last line is
        ignored."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StoreError(f"cannot read {self.journal_path}: {error.strerror}") from None
        label = str(self.journal_path)
        trusted = sealed_lines(data, self._meta.get(JOURNAL_SEAL))
        records, verified = decode_journal(data, file_label=label, trusted=trusted)
        self._verified = (len(data), verified)
        with self._guard:
            self._seal = (verified, _CRC32(memoryview(data)[:verified]))
        checked = check_records(records, file_label=label, trusted=trusted)
        if not may_hold_packed_outputs(data):  # nothing to resolve: no need to look at every record
            return checked
        return resolve_artifacts(checked, self._artifacts.get, file_label=label)

    def sync(self) -> None:
        """fsync journal records not yet on disk (deferred ``strict`` records, ``batch``); one fsync covers
        every record appended before it, whoever appended it."""
        with self._guard:
            if self._broken is not None:
                raise StoreError(self._broken)
            if self._fd is not None and self._unsynced:
                self._fsync(self._fd)

    def last_event_seq(self) -> int:
        """The ``seq`` of the last complete event in ``events.jsonl`` (0 when there is none).

        Reads the file backwards, so the cost does not grow with the run; a torn or unreadable last line
        is skipped, and lines of any length are read whole.
        """
        return last_seq_in(self.events_path())

    def events_path(self) -> Path:
        """Where the run's ``events.jsonl`` lives."""
        return self.directory / EVENTS_FILE

    def artifacts_dir(self) -> Path:
        """Where artifact files go (large outputs are stored here by sha256)."""
        return self.directory / ARTIFACTS_DIR

    def close(self) -> None:
        """Sync and close the journal, then release the lock. Closing twice is harmless, and so is closing a
        handle whose fsync failed (that failure was raised already)."""
        try:
            self._wait_for_mark()
            if self._broken is None:
                self.sync()
        finally:
            with self._guard:
                fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
            self._lock.release()

    def __enter__(self) -> FileRunHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_journal(self) -> int:
        """Open the journal for appending, first cutting off a torn tail a crash may have left, so the
        next record does not land on the same line as a fragment."""
        path = self.journal_path
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            else:
                if self._durable:
                    fsync_directory(self.directory)
                self._fd, self._size, self._synced, self._last_sync = fd, 0, 0, time.monotonic()
                self._seal = (0, 0)
                return fd
        except OSError as error:
            raise StoreError(f"cannot open {path}: {error.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            known = self._verified
            if known is not None and known[0] == size and self._seal is not None:
                verified = known[1]
            else:
                data = path.read_bytes()
                verified = decode_journal(data, file_label=str(path))[1]
                self._seal = (verified, _CRC32(memoryview(data)[:verified]))
            if verified < size:
                os.ftruncate(fd, verified)
                if self._durable:
                    os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        # What was there before this handle counts as durable: a crash could have lost it before now anyway.
        self._fd, self._size, self._synced, self._last_sync = fd, verified, verified, time.monotonic()
        return fd


class ArtifactFiles:
    """Content-addressed files in one folder: the same bytes are stored once, under their sha256."""

    def __init__(self, directory: Path, *, durable: bool) -> None:
        self.directory = directory
        self.durable = durable

    def put(self, payload: bytes) -> str:
        """Store ``payload`` unless it is already there; return its sha256."""
        import hashlib  # here: artifacts (outputs over 64 KiB) are rare, and hashlib loads OpenSSL

        digest = hashlib.sha256(payload).hexdigest()
        target = self.directory / digest
        if not target.exists():
            write_atomically(target, payload, durable=self.durable)
        return digest

    def get(self, digest: str) -> bytes | None:
        """The bytes stored under ``digest``, or ``None`` when there are none."""
        try:
            return (self.directory / digest).read_bytes()
        except FileNotFoundError:
            return None


def write_atomically(target: Path, data: bytes, *, durable: bool, settle: bool = True) -> None:
    """Replace ``target`` with ``data`` in one step (temporary file, rename); with ``durable``, fsync the
    file before the rename, so a power loss leaves the old or the new file, and (unless ``settle`` is
    false) the folder after it, so that it leaves the new one."""
    temporary = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    try:
        write_new_file(temporary, data, durable=durable)
        os.replace(temporary, target)
        if durable and settle:
            fsync_directory(target.parent)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StoreError(f"cannot write {target}: {error.strerror or error}") from None


def fsync_directory(directory: Path) -> None:
    """Make a folder's entries (files created, renamed, removed) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, *, durable: bool, replace: bool = False) -> None:
    """Write ``data`` to a file that must not exist yet (or is truncated, with ``replace``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


#: ``last_seq_in`` reads the events file backwards in blocks of this many bytes.
_TAIL_BLOCK = 8192


def last_seq_in(path: Path) -> int:
    """The ``seq`` of the last complete event in the events file at ``path`` (0 when there is none)."""
    try:
        stream = path.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror}") from None
    with stream:
        position = stream.seek(0, os.SEEK_END)
        head = b""  # the start of the earliest line seen so far, whose beginning is not read yet
        while position > 0:
            size = min(_TAIL_BLOCK, position)
            position -= size
            stream.seek(position)
            pieces = (stream.read(size) + head).split(b"\n")
            head = pieces[0] if position > 0 else b""
            for line in reversed(pieces[1:] if position > 0 else pieces):
                seq = _seq_of(line)
                if seq is not None:
                    return seq
    return 0


def _seq_of(line: bytes) -> int | None:
    if not line.startswith(b"{"):
        return None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # a torn line (a crash mid-write), or not an event at all
        return None
    seq = event.get("seq") if isinstance(event, dict) else None
    return seq if type(seq) is int else None


def read_meta(directory: Path, run_id: str) -> dict[str, Any]:
    """The ``run.json`` in ``directory``: ``RunNotFound`` when absent, ``StoreError`` when unreadable or when
    a member the commands read has the wrong shape."""
    path = directory / RUN_FILE
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise RunNotFound(f"no run with id '{run_id}'") from None
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise StoreError(f"{path}: run metadata does not parse") from None
    except RecursionError:
        raise StoreError(f"{path}: run metadata is nested too deeply") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: run metadata is not a JSON object")
    for key, value in meta.items():
        expected = _META_SHAPES.get(key)
        if expected is not None and not _SHAPE_CHECKS[expected](value):
            raise StoreError(f"{path}: run metadata member '{key}' is not {expected}")
    # The folder's name is the run's id: a copied run folder (a backup put back under a new name) is the run
    # its name says, so ``gc``, ``cancel`` or ``resume`` of the id ``runs`` shows never reach the original.
    meta["id"] = run_id
    return meta


def is_quantity(value: object) -> bool:
    """Whether ``value`` read from ``run.json`` or ``events.jsonl`` is a number that can be added up and shown:
    not a bool, NaN, infinite or too large for a float. Python's JSON reads NaN and Infinity, and integers no
    float can hold; no count, cost or time llmflow writes is one of them (``abs(nan) < x`` is false)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300


#: What the members of ``run.json`` that commands read must hold, by their description in an error.
_SHAPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "a string": lambda value: isinstance(value, str),
    "a string or null": lambda value: value is None or isinstance(value, str),
    "an object": lambda value: isinstance(value, dict),
    "an object of numbers": lambda value: isinstance(value, dict) and all(map(is_quantity, value.values())),
    "a list of strings": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "an integer": lambda value: type(value) is int,
    f"one of {', '.join(RUN_STATUSES)}": lambda value: value in RUN_STATUSES,
}
#: The shape of each such member (others may hold anything): a damaged member is reported naming the file
#: when the run is opened, instead of failing wherever it is first used.
_META_SHAPES: dict[str, str] = {
    **dict.fromkeys(("id", "workflow", "file", "source_root", "source_main", "created"), "a string"),
    "status": f"one of {', '.join(RUN_STATUSES)}",
    **dict.fromkeys(("started", "ended", "error", "failed_step"), "a string or null"),
    **dict.fromkeys(("inputs", "sources"), "an object"),
    **dict.fromkeys(("usage", "approvals_asked"), "an object of numbers"),
    "waiting_for": "a list of strings",
    **dict.fromkeys(("last_seq", "resumes"), "an integer"),
}


def read_meta_quietly(directory: Path) -> dict[str, Any]:
    """The ``run.json`` in ``directory``, or an empty mapping when it cannot be read."""
    try:
        return read_meta(directory, directory.name)
    except StoreError:
        return {}


def dump_meta(meta: Mapping[str, Any]) -> bytes:
    """``run.json`` text: indented JSON for people, UTF-8, with a final newline."""
    try:
        try:
            return (json.dumps(meta, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: let JSON escape them
            return (json.dumps(meta, indent=2) + "\n").encode("ascii")
    except (TypeError, ValueError, RecursionError) as error:
        raise StoreError(f"run metadata is not JSON-serialisable: {error}") from None
