"""The engine's view of the outside: the run-store protocol it writes to (adapters live elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

#: How hard the journal pushes each record to disk.
#: ``strict``: fsync every record (default); ``batch``: flush every record, fsync at most every 50 ms and
#: when the run stops; ``none``: leave it to the operating system.
Durability = Literal["strict", "batch", "none"]

#: Statuses of a run.
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "waiting", "cancelled")


class RunHandle(Protocol):
    """One run's folder: its metadata, journal, events file, artifacts and lock."""

    run_id: str
    directory: Path

    @property
    def meta(self) -> dict[str, Any]:
        """The contents of ``run.json`` as last written or read."""

    def lock(self) -> None:
        """Take the run's lock for this process; raise ``RunLocked`` naming the holder if another has it."""

    def unlock(self) -> None:
        """Release the lock (also released by the OS when the process dies)."""

    def lock_holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (``{pid, host, since}``), or ``None`` when nobody does."""

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` and rewrite it atomically."""

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record to the journal (checksummed; large ``output`` values go to artifacts)."""

    def records(self) -> list[dict[str, Any]]:
        """Every journal record, verified, with artifact references resolved.

        A torn last line (a crash in the middle of a write) is ignored; any other bad line raises
        ``JournalCorrupt`` naming the line.
        """

    def sync(self) -> None:
        """Push everything written so far to disk (used at pauses and at the end of a run)."""

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

    def source_dir(self, run_id: str) -> Path:
        """The folder holding the frozen copy of a run's workflow files."""

    def cache_get(self, key: str) -> Iterator[Any]:
        """Yield the cached value for ``key`` once if there is one (a generator so ``None`` can be cached)."""

    def cache_put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
