"""The engine's view of the outside: the run-store protocol it writes to (adapters live elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

#: How hard the journal pushes each record to disk.
#: ``strict``: every record is fsynced before the step after it starts (default; records of steps that end
#: together may share one fsync); ``batch``: write every record, fsync at most every 50 ms and when the run
#: stops; ``none``: leave it to the operating system.
Durability = Literal["strict", "batch", "none"]

#: Statuses of a run.
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "waiting", "cancelled")


class RunHandle(Protocol):
    """One run's folder: its metadata, journal, events file, artifacts and lock."""

    run_id: str
    directory: Path
    journal_path: Path  # how messages about the journal's lines name it
    durability: Durability

    @property
    def meta(self) -> dict[str, Any]:
        """The contents of ``run.json`` as last written or read."""

    def lock(self) -> None:
        """Take the run's lock for this process; raise ``RunLocked`` naming the holder if another has it.

        ``meta`` is read again once the lock is held, so an update made by another process in between is
        not lost by a later ``update``.
        """

    def unlock(self) -> None:
        """Release the lock (also released by the OS when the process dies)."""

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (``{pid, host, since}``), or ``None`` when nobody does."""

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` and rewrite it atomically."""

    def mark(self, **fields: Any) -> None:
        """``update``, but without waiting for the rename to reach the disk: after a power loss ``run.json``
        may still be the version before, which is complete too. For the ``running`` status a run starts
        with, which the final (durable) ``update`` settles."""

    def append(self, record: Mapping[str, Any], *, deferred: bool = False) -> int | None:
        """Append one record to the journal (checksummed; sizeable ``output`` values are stored compressed,
        large ones go to artifacts) and return the size in bytes of its output's JSON (``None`` without one).

        With ``strict`` durability the record is on disk when this returns, unless ``deferred``: then it is
        written at once and made durable by the next ``sync()``, together with every other record written
        before it (group commit). Other durabilities ignore ``deferred``.
        """

    def records(self) -> list[dict[str, Any]]:
        """Every journal record, verified, with artifact references resolved.

        A torn last line (a crash in the middle of a write) is ignored; any other bad line raises
        ``JournalCorrupt`` naming the line.
        """

    def sync(self) -> None:
        """Push every record appended so far to disk (deferred records, ``batch``; at the end of a run)."""

    def last_event_seq(self) -> int:
        """The ``seq`` of the last complete event in ``events.jsonl``, 0 when there is none (read from the end,
        so it is cheap in a long run and right after a crash that tore the last line)."""

    def events_path(self) -> Path:
        """Where the run's ``events.jsonl`` lives."""

    def artifacts_dir(self) -> Path:
        """Where files written with ``artifact: true`` go."""

    def close(self) -> None:
        """Flush, sync and close open files and release the lock."""


class RunStore(Protocol):
    """Where runs live: creating, finding, listing and removing them, plus the step cache."""

    root: Path

    def create_run(
        self,
        meta: Mapping[str, Any],
        sources: Mapping[str, str],
        *,
        durability: Durability = "strict",
    ) -> RunHandle:
        """Create a new run folder with a fresh time-sortable id, ``run.json`` and a frozen copy of
        ``sources`` (relative path -> text); return its handle (not yet locked)."""

    def open_run(self, run_id: str, *, durability: Durability = "strict") -> RunHandle:
        """The handle of an existing run (exact id)."""

    def resolve(self, selector: str | None, *, last: bool = False) -> str:
        """The run id that ``selector`` (an exact id or a unique prefix) names, or the newest with ``last``;
        ``RunNotFound`` when none or several match."""

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """``run.json`` of runs, newest first."""

    def delete_run(self, run_id: str) -> None:
        """Remove a run folder (refused while another process holds its lock)."""

    def gc(self, older_than_seconds: float, *, now: datetime | None = None, dry_run: bool = False) -> list[str]:
        """Delete the runs nobody drives that ended (or were created) more than ``older_than_seconds`` before
        ``now``; return their ids. ``dry_run``: delete nothing, return what would be deleted now."""

    def source_dir(self, run_id: str, meta: Mapping[str, Any] | None = None) -> Path:
        """The folder holding the frozen copy of the workflow files the run uses now (the one ``meta``, the
        run's ``run.json``, names; without it, the copy made when the run was created)."""

    def freeze_sources(self, run_id: str, sources: Mapping[str, str], *, durability: Durability = "strict") -> str:
        """Freeze another copy of workflow files (relative path to text) into the run, whole or not at all;
        return the name ``run.json``'s ``source_dir`` must give for ``source_dir`` to find it."""

    def cache_get(self, key: str) -> Iterator[Any]:
        """Yield the cached value for ``key`` once if there is one (a generator so ``None`` can be cached)."""

    def cache_put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
