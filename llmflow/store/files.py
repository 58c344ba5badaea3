"""The file run store: run folders under ``runs/`` (created, found, listed, collected) and the cache."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, get_args

from llmflow.engine.ports import Durability, RunHandle, RunStore
from llmflow.errors import RunLocked, RunNotFound, StoreError
from llmflow.store.ids import (
    format_timestamp,
    is_plain_name,
    match_run_id,
    moment_before,
    new_run_id,
    parse_timestamp,
    run_id_time,
    utc_now,
)
from llmflow.store.journal import dump_json
from llmflow.store.locking import RunLock
from llmflow.store.run_folder import (
    ARTIFACTS_DIR,
    LOCK_FILE,
    RUN_FILE,
    SOURCE_DIR,
    FileRunHandle,
    dump_meta,
    fsync_directory,
    read_meta,
    read_meta_quietly,
    write_atomically,
    write_new_file,
)

FORMAT_VERSION = 1
_ID_ATTEMPTS = 100
#: Half-built run folders (``.new-*``) older than this are debris of a crashed ``create_run``.
_STAGING_MAX_AGE = 3600.0
#: The names of a run's frozen source folders: ``source`` (the run's start), ``source-2`` … (``--workflow``).
_SOURCE_VERSION = re.compile(r"source(-[1-9][0-9]*)?")
_DURABILITIES = frozenset(get_args(Durability))


class FileRunStore:
    """Runs as folders under ``<root>/runs/``, the step cache under ``<root>/cache/``.

    ``clock`` returns the current aware UTC datetime; it stamps run ids and ``created`` (tests pass a
    fake one so that run order does not hang on the wall clock).
    """

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.root = Path(root)
        self.clock = clock

    @property
    def runs_dir(self) -> Path:
        """The folder holding one folder per run."""
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        """The folder holding the step cache."""
        return self.root / "cache"

    def create_run(
        self, meta: Mapping[str, Any], sources: Mapping[str, str], *, durability: Durability = "strict"
    ) -> FileRunHandle:
        """Create a run folder with a fresh id, ``run.json`` and a frozen copy of ``sources``.

        The folder is built under a hidden name and renamed into place, so a run either exists whole or
        not at all; a name already taken (two runs in one second drawing the same suffix) draws again.
        """
        _check_durability(durability)
        files = {_checked_source_path(path): text for path, text in sources.items()}
        durable = durability != "none"
        now = self.clock()
        run_meta: dict[str, Any] = {**meta, "id": "", "format_version": FORMAT_VERSION}
        run_meta["created"] = format_timestamp(now)
        staging = self.runs_dir / f".new-{os.urandom(6).hex()}"
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
            (staging / ARTIFACTS_DIR).mkdir()
            folders = {staging, *_write_sources(staging / SOURCE_DIR, files, durable=durable)}
            for _attempt in range(_ID_ATTEMPTS):
                run_meta["id"] = new_run_id(now)
                write_new_file(staging / RUN_FILE, dump_meta(run_meta), durable=durable, replace=True)
                if durable:
                    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
                        fsync_directory(folder)
                if _rename_if_free(staging, self.runs_dir / run_meta["id"]):
                    break
            else:
                raise StoreError(f"no free run id in {self.runs_dir} after {_ID_ATTEMPTS} attempts")
            if durable:
                fsync_directory(self.runs_dir)
        except OSError as error:
            import shutil  # here: shutil (with the compression modules it imports) is rarely needed

            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"cannot create a run in {self.runs_dir}: {error.strerror or error}") from None
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        run_id = str(run_meta["id"])
        return FileRunHandle(run_id, self.runs_dir / run_id, run_meta, durability=durability)

    def open_run(self, run_id: str, *, durability: Durability = "strict") -> FileRunHandle:
        """The handle of the run named exactly ``run_id`` (``RunNotFound`` when there is none)."""
        _check_durability(durability)
        directory = self._run_directory(run_id)
        meta = read_meta(directory, run_id)
        return FileRunHandle(run_id, directory, meta, durability=durability)

    def resolve(self, selector: str | None, *, last: bool = False) -> str:
        """The run id ``selector`` names (exact id, else a unique prefix); with ``last``, the newest run
        (among those ``selector`` is a prefix of, when it is given)."""
        # A folder without run.json is not a run (``list_runs`` leaves it out too): a stray ``runs/backup``
        # must not be the newest run, nor make a prefix ambiguous.
        pool = [
            run_id
            for run_id in self._run_ids()
            if run_id.startswith(selector or "") and os.path.lexists(self.runs_dir / run_id / RUN_FILE)
        ]
        if not pool and selector:
            # Say where it looked: a command run from another folder finds another (or a new) run store.
            hint = f"; an input is given with -i: -i {selector}" if "=" in selector else ""  # resume --last n=2
            raise RunNotFound(f"no run matches '{selector}' in {self.root} (`llmflow runs` lists the runs there){hint}")
        if last:
            if not pool:
                raise RunNotFound(f"no runs in {self.root}")
            return self._newest(pool)
        if not selector:
            raise RunNotFound("no run named: give a run id (or a unique prefix of one) or use --last")
        return match_run_id(pool, selector)

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """``run.json`` of every run, newest first, optionally only those with ``status``.

        A run recorded as ``running`` whose lock nobody holds lost its process: it is reported as
        ``interrupted`` with ``"stale": true``. A ``run.json`` that cannot be read is reported with
        status ``unreadable`` and an ``error``, never skipped silently.
        """
        entries: list[dict[str, Any]] = []
        # Newest first by the second in the id; with a limit, reading stops once it is reached and the next
        # run started in an earlier second (``runs -n 20`` of thousands of runs reads about 20 run.json files).
        for run_id in sorted(self._run_ids(), key=lambda name: name[:15], reverse=True):
            if limit is not None and len(entries) >= limit and run_id[:15] < str(entries[-1]["id"])[:15]:
                break
            directory = self.runs_dir / run_id
            try:
                meta = read_meta(directory, run_id)
            except RunNotFound:
                continue  # a folder without run.json is not a run
            except StoreError as error:
                meta = {"id": run_id, "status": "unreadable", "error": str(error)}
            meta.setdefault("id", run_id)
            if meta.get("status") == "running" and RunLock(directory / LOCK_FILE, run_id).holder() is None:
                meta.update(status="interrupted", stale=True)
            if status is None or meta.get("status") == status:
                entries.append(meta)
        entries.sort(key=lambda meta: _order_key(str(meta["id"]), meta), reverse=True)
        return entries if limit is None else entries[: max(limit, 0)]

    def delete_run(self, run_id: str) -> None:
        """Remove a run folder; ``RunLocked`` while a process (this one included) holds its lock."""
        directory = self._run_directory(run_id)
        if not directory.is_dir():
            raise RunNotFound(f"no run with id '{run_id}'")
        # Holding the lock while the folder is moved away keeps anyone from starting to drive it meanwhile.
        doomed = self.runs_dir / f".deleting-{run_id}-{os.urandom(4).hex()}"
        with RunLock(directory / LOCK_FILE, run_id):
            try:
                os.rename(directory, doomed)
            except OSError as error:
                raise StoreError(f"cannot delete run {run_id}: {error.strerror}") from None
        import shutil

        shutil.rmtree(doomed, ignore_errors=True)

    def gc(self, older_than_seconds: float, *, now: datetime | None = None, dry_run: bool = False) -> list[str]:
        """Delete runs that nobody drives and that ended (or were created) before ``now`` minus
        ``older_than_seconds``; return their ids. Unreadable runs are left for a person to look at.

        With ``dry_run``, nothing is deleted (crash debris included): the ids are those a real ``gc`` would
        delete at this moment (a run whose lock is held now is skipped, as ``gc`` would skip it).
        """
        cutoff = moment_before(now if now is not None else self.clock(), older_than_seconds)
        removed: list[str] = []
        for meta in self.list_runs():
            run_id = str(meta["id"])
            if meta.get("status") in ("running", "unreadable"):
                continue
            moment = parse_timestamp(meta.get("ended")) or parse_timestamp(meta.get("created"))
            moment = moment or run_id_time(run_id)
            if moment is None or moment >= cutoff:
                continue
            if dry_run:
                if RunLock(self.runs_dir / run_id / LOCK_FILE, run_id).holder() is None:
                    removed.append(run_id)
                continue
            try:
                self.delete_run(run_id)
            except (RunLocked, RunNotFound):
                continue  # picked up by a process since it was listed, or already deleted
            removed.append(run_id)
        if not dry_run:
            self._sweep_debris()
        return removed

    def source_dir(self, run_id: str, meta: Mapping[str, Any] | None = None) -> Path:
        """The folder holding the frozen copy of the workflow files the run uses now: ``source/``, or the
        one ``freeze_sources`` wrote last (named by ``meta``'s ``source_dir``)."""
        name = (meta or {}).get("source_dir") or SOURCE_DIR
        if not isinstance(name, str) or not _SOURCE_VERSION.fullmatch(name):
            raise StoreError(f"run {run_id}: run.json names no source folder of the run ({name!r})")
        return self._run_directory(run_id) / name

    def freeze_sources(self, run_id: str, sources: Mapping[str, str], *, durability: Durability = "strict") -> str:
        """Freeze another copy of workflow files into the run (``resume --workflow``), beside the first;
        return its folder's name (``source-2``, ``source-3`` …) for ``run.json``'s ``source_dir``.

        The copy is written under a hidden name and renamed into place, so it exists whole or not at all.
        """
        _check_durability(durability)
        files = {_checked_source_path(path): text for path, text in sources.items()}
        durable = durability != "none"
        directory = self._run_directory(run_id)
        staging = directory / f".{SOURCE_DIR}-{os.urandom(6).hex()}"
        try:
            folders = _write_sources(staging, files, durable=durable)
            if durable:
                for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
                    fsync_directory(folder)
            number = 2
            while not _rename_if_free(staging, directory / f"{SOURCE_DIR}-{number}"):
                number += 1
            if durable:
                fsync_directory(directory)
        except OSError as error:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"cannot freeze the workflow into {directory}: {error.strerror or error}") from None
        return f"{SOURCE_DIR}-{number}"

    def cache_get(self, key: str) -> Iterator[Any]:
        """Yield the value cached under ``key`` once, if there is one (so ``None`` can be cached).

        A damaged entry counts as a miss: the step runs again and ``cache_put`` rewrites it.
        """
        try:
            raw = self._cache_path(key).read_bytes()
            entry = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            return
        if isinstance(entry, dict) and entry.get("key") == key and "value" in entry:
            yield entry["value"]

    def cache_put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``, replacing any earlier value atomically."""
        path = self._cache_path(key)
        entry = {"key": key, "stored": format_timestamp(self.clock()), "value": value}
        data = dump_json(entry, what=f"cache value for {key!r}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create {path.parent}: {error.strerror}") from None
        # A lost cache entry only costs a recomputation, so the cache never waits for the disk.
        write_atomically(path, data, durable=False)

    def _cache_path(self, key: str) -> Path:
        if not is_plain_name(key) or len(key) > 200:
            raise StoreError(f"invalid cache key {key!r}")
        return self.cache_dir / key[:2] / f"{key}.json"

    def _run_directory(self, run_id: str) -> Path:
        if not is_plain_name(run_id):
            raise RunNotFound(f"no run with id '{run_id}'")
        return self.runs_dir / run_id

    def _run_ids(self) -> list[str]:
        try:
            with os.scandir(self.runs_dir) as entries:
                return [entry.name for entry in entries if entry.name[0] != "." and entry.is_dir()]
        except FileNotFoundError:
            return []
        except OSError as error:  # runs/ is a file, or cannot be read
            raise StoreError(f"cannot list the runs in {self.runs_dir}: {error.strerror}") from None

    def _newest(self, run_ids: list[str]) -> str:
        # Ids order runs to the second; within one second, the milliseconds of ``created`` decide.
        latest_second = max(run_id[:15] for run_id in run_ids)
        tied = [run_id for run_id in run_ids if run_id[:15] == latest_second]
        if len(tied) == 1:
            return tied[0]
        return max(tied, key=lambda run_id: _order_key(run_id, read_meta_quietly(self.runs_dir / run_id)))

    def _sweep_debris(self) -> None:
        """Remove what crashed ``create_run``/``delete_run`` calls left behind in ``runs/``."""
        try:
            with os.scandir(self.runs_dir) as entries:
                debris = [entry for entry in entries if entry.name.startswith((".new-", ".deleting-"))]
        except FileNotFoundError:
            return
        if not debris:
            return
        import shutil

        horizon = time.time() - _STAGING_MAX_AGE
        for entry in debris:
            with contextlib.suppress(OSError):  # another process may be sweeping the same folder
                if entry.name.startswith(".deleting-") or entry.stat().st_mtime < horizon:
                    shutil.rmtree(entry.path, ignore_errors=True)


def _write_sources(folder: Path, files: Mapping[str, str], *, durable: bool) -> set[Path]:
    """Write ``files`` (checked relative paths to text) into the new ``folder``; return every folder made."""
    folder.mkdir()
    folders = {folder}
    for relative, text in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        folders.add(target.parent)
        write_new_file(target, text.encode("utf-8"), durable=durable)
    return folders


def _rename_if_free(source: Path, target: Path) -> bool:
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _order_key(run_id: str, meta: Mapping[str, Any]) -> tuple[str, str, str]:
    return (run_id[:15], str(meta.get("created", "")), run_id)


def _check_durability(durability: str) -> None:
    if durability not in _DURABILITIES:
        raise StoreError(f"unknown durability {durability!r} (use strict, batch or none)")


def _checked_source_path(relative: str) -> str:
    """``relative`` in normal form, refused when absolute or when it could climb out of ``source/``."""
    pure = PurePosixPath(relative)
    if not relative or "\0" in relative or pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise StoreError(f"source path {relative!r} must be relative and stay inside the run's source folder")
    return pure.as_posix()


if TYPE_CHECKING:  # mypy holds the file store to the engine's protocols
    _STORE_CONFORMS: RunStore = FileRunStore(Path())
    _HANDLE_CONFORMS: RunHandle = FileRunHandle("", Path(), {})
