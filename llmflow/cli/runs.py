"""Commands about stored runs: ``runs``, ``show``, ``logs``, ``cancel`` and ``gc``."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmflow.cli import exits
from llmflow.cli.console import describe_event, preview, seconds
from llmflow.cli.terminal import color_for, terminal_json, terminal_text
from llmflow.errors import StoreError, UsageError

if TYPE_CHECKING:
    from rich.text import Text

    from llmflow.observability.timeline import Instance, RunTimeline
    from llmflow.store import FileRunHandle, FileRunStore

_STATUS_COLORS = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "waiting": "yellow",
    "interrupted": "magenta",
    "cancelled": "bright_black",
    "unreadable": "red",
}
_ICONS = {"succeeded": "✓", "failed": "✗", "skipped": "-", "waiting": "⏸", "running": "…", "cancelled": "⊘"}
#: How often ``logs --follow`` and ``cancel`` look again (seconds).
_POLL = 0.15
#: A run marked running whose lock nobody holds for this long lost its process (``logs --follow`` stops).
_STALE_AFTER = 1.0
_CANCEL_WAIT = 10.0
#: Bytes of ``events.jsonl`` ``logs`` reads at a time.
_READ_SIZE = 1 << 20


def _store(state_dir: str | None) -> FileRunStore:
    from llmflow.store import FileRunStore, find_store_root

    return FileRunStore(find_store_root(override=state_dir))


def _open(state_dir: str | None, selector: str | None, last: bool) -> tuple[FileRunStore, FileRunHandle]:
    if not selector and not last:
        raise UsageError("give a run id (or a unique prefix of one), or --last")
    store = _store(state_dir)
    return store, store.open_run(store.resolve(selector, last=last))


def _local(stamp: object) -> str:
    from llmflow.store.ids import parse_timestamp

    moment = parse_timestamp(stamp)
    if moment is None:
        return "—"
    try:
        return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, ValueError, OSError):  # year 1 or 9999 (a damaged run.json) pushed past by the zone
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(meta: dict[str, Any]) -> str:
    from llmflow.store.ids import parse_timestamp

    started = parse_timestamp(meta.get("started") or meta.get("created"))
    ended = parse_timestamp(meta.get("ended"))
    if started is None:
        return "—"
    if ended is None:
        running = meta.get("status") == "running"
        return seconds((datetime.now(started.tzinfo) - started).total_seconds()) if running else "—"
    return seconds(max(0.0, (ended - started).total_seconds()))


# -- runs ------------------------------------------------------------------------------------------------
def list_runs(status: str | None, limit: int | None, *, as_json: bool, state_dir: str | None) -> int:
    """``llmflow runs``: a table of runs, newest first (or their ``run.json`` as a JSON list)."""
    store = _store(state_dir)
    runs = store.list_runs(status=status, limit=limit)
    if as_json:
        sys.stdout.write(terminal_json(json.dumps(runs, indent=2, ensure_ascii=False)) + "\n")
        return exits.SUCCEEDED
    if not runs:
        sys.stderr.write(f"no runs{f' with status {status}' if status else ''} in {store.root}\n")
        return exits.SUCCEEDED
    from rich.console import Console

    console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=1000)
    console.print(_runs_table(runs), crop=True, no_wrap=True, overflow="ellipsis")
    return exits.SUCCEEDED


def _runs_table(runs: list[dict[str, Any]]) -> Text:
    """The runs as aligned columns (what a borderless rich ``Table`` draws), built in one pass: a table of
    thousands of runs took rich seconds to lay out."""
    from rich.cells import cell_len
    from rich.text import Text

    header = ("ID", "WORKFLOW", "STATUS", "STARTED", "DURATION")
    rows: list[tuple[str, ...]] = []
    for meta in runs:
        # Shown as written, escaped (a run.json or folder name holding ``[bold]`` or escape sequences is never
        # acted on): the cells are plain text, never markup.
        rows.append(
            (
                terminal_text(str(meta["id"])),
                terminal_text(str(meta.get("workflow", "?"))),
                terminal_text(str(meta.get("status", "?"))),
                _local(meta.get("started") or meta.get("created")),
                _duration(meta),
            )
        )
    widths = [max(map(cell_len, column)) for column in zip(header, *rows, strict=True)]
    table = Text()

    def add(cells: tuple[str, ...], style: str = "", status_style: str = "") -> None:
        for index, cell in enumerate(cells):
            padding = " " * (widths[index] - cell_len(cell))
            cell_style = status_style if index == 2 and status_style else style
            if index:
                table.append("  ", style)
            if index == len(cells) - 1:  # the durations are right-aligned
                table.append(padding, style)
                table.append(cell, cell_style)
            else:
                table.append(cell, cell_style)
                table.append(padding, style)
        table.append("\n")

    add(header, "bold")
    for row in rows:
        add(row, status_style=_STATUS_COLORS.get(row[2], "white"))
    table.rstrip()
    return table


# -- show ------------------------------------------------------------------------------------------------
#: Width of the timeline bars when stdout is not a terminal (a terminal gets what fits).
_BAR_WIDTH = 32
#: Items of a map, loop or stream `show` draws a row for: the first ones and as many that did not succeed;
#: one row stands for the others (a 100,000-item map printed 200,000 lines).
ITEMS_SHOWN = 20
_ANSI = {"succeeded": "32", "failed": "31", "waiting": "33", "running": "36", "cancelled": "90", "skipped": "90"}


def node_tree(handle: FileRunHandle) -> tuple[list[dict[str, Any]], list[str]]:
    """The run's node instances (latest journal record per path, completed from the events, in tree order)
    as ``show --json`` lists them, and the paths whose compensation ran."""
    from llmflow.observability.timeline import gather

    timeline = gather(handle)
    return [_node_document(node, timeline) for node in timeline.instances], timeline.compensated


def _node_document(node: Instance, timeline: RunTimeline) -> dict[str, Any]:
    document: dict[str, Any] = {"path": node.path, "status": node.status}
    if node.placeholder:
        document["placeholder"] = True
    else:
        document.update(
            started=node.started,
            ended=node.ended,
            duration=node.duration,
            attempts=node.attempts,
            output=node.output,
            error=node.error,
            kind=node.kind,
            usage=node.usage,
        )
    start, end = timeline.offset(node.started), timeline.offset(node.ended)
    document["timeline"] = {"start": start, "end": end} if start is not None else None
    document.update(depth=node.depth, compensated=node.compensated)
    return document


def show_run(selector: str | None, *, last: bool, as_json: bool, state_dir: str | None) -> int:
    """``llmflow show``: the run's header, and the tree of its node instances with a timeline bar each."""
    from llmflow.observability.timeline import gather

    _, handle = _open(state_dir, selector, last)
    timeline = gather(handle, fold=None if as_json else ITEMS_SHOWN)
    meta = timeline.meta
    if as_json:
        _write_show_json(timeline)
        return exits.SUCCEEDED
    # The ruler's window holds the run's start and end (stored to the millisecond) and every event (stored to
    # the microsecond), so a finished run's header quotes the ruler's length: the two never disagree.
    ended = meta.get("ended") and timeline.start is not None and timeline.end is not None
    header = _show_header(meta, timeline.compensated, seconds(timeline.duration) if ended else _duration(meta))
    lines = [terminal_text(line) for line in header]
    lines.append("")
    color = color_for(sys.stdout)
    lines.extend(_show_tree(timeline, color=color))
    sys.stdout.write("\n".join(lines) + "\n")
    return exits.SUCCEEDED


def _write_show_json(timeline: RunTimeline) -> None:
    """``show --json``: ``{"run", "nodes", "timeline"}`` as ``json.dumps(indent=2)`` would write it, a node at a
    time (a run of 100,000 steps would otherwise be held as documents, then as one string, then escaped)."""

    def encoded(value: Any, depth: int) -> str:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        return terminal_json(text.replace("\n", "\n" + " " * depth))

    write = sys.stdout.write
    write('{\n  "run": ' + encoded(timeline.meta, 2) + ',\n  "nodes": [')
    listed = False
    for node in timeline.instances:
        if not node.placeholder:
            document = {k: v for k, v in _node_document(node, timeline).items() if k != "depth"}
            write((",\n    " if listed else "\n    ") + encoded(document, 4))
            listed = True
    window = {"start": timeline.start, "end": timeline.end, "duration": round(timeline.duration, 6)}
    write(("\n  ]" if listed else "]") + ',\n  "timeline": ' + encoded(window, 2) + "\n}\n")


def _show_header(meta: dict[str, Any], compensated: list[str], duration: str) -> list[str]:
    lines = [
        f"run {meta.get('id')}  {meta.get('workflow', '?')} ({meta.get('file', '?')})",
        f"status:   {meta.get('status')}" + (f" (resumed {meta['resumes']}×)" if meta.get("resumes") else ""),
        f"started:  {_local(meta.get('started'))}    ended: {_local(meta.get('ended'))}    duration: {duration}",
        f"inputs:   {json.dumps(meta.get('inputs') or {}, ensure_ascii=False)}",
    ]
    if meta.get("status") == "waiting":
        messages = meta.get("waiting_messages")
        waiting = [str(path) for path in meta.get("waiting_for") or []]
        if isinstance(messages, dict) and len(set(map(str, messages.values()))) > 1:
            lines.extend(f"waiting:  {path}: {messages.get(path, meta.get('error'))}" for path in waiting)
        else:
            lines.append(f"waiting:  {', '.join(waiting)}: {meta.get('error')}")
    elif meta.get("error"):
        step = meta.get("failed_step")
        # Most errors begin by naming their step already ("step 'fetch': command failed …").
        at = f" (step {step})" if step and not str(meta["error"]).startswith(f"step '{step}'") else ""
        lines.append(f"error:    {meta['error']}{at}")
    usage = meta.get("usage") or {}
    tokens = int((usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0))
    if tokens:
        lines.append(f"usage:    {tokens} tokens, ${float(usage.get('cost') or 0):.4f}")
    if compensated:
        lines.append(f"compensated: {', '.join(compensated)}")
    return lines


def _show_tree(timeline: RunTimeline, *, color: bool) -> list[str]:
    """One line per instance: the tree, a bar placed by start and end within the run, then the details."""
    import shutil

    from llmflow.observability.timeline import folded_summary, tokens

    def paint(text: str, status: str) -> str:
        return f"\033[{_ANSI.get(status, '0')}m{text}\033[0m" if color else text

    heads = [
        (f"{'  ' * node.depth}", _ICONS.get(node.status, "•"), terminal_text(node.label)) for node in timeline.instances
    ]
    name_width = min(max((len(f"{a}{b} {c}") for a, b, c in heads), default=0), 48)
    width = _BAR_WIDTH
    if sys.stdout.isatty():
        columns = shutil.get_terminal_size((120, 24)).columns
        width = max(16, min(60, columns - name_width - 48))
    total = seconds(timeline.duration) if timeline.start is not None else ""
    lines = [f"{'':<{name_width}}   0s{total:>{width - 2}}" if width > len(total) + 3 else ""]
    for (indent, icon, label), node in zip(heads, timeline.instances, strict=True):
        pad = " " * max(0, name_width - len(f"{indent}{icon} {label}"))
        head = f"{indent}{paint(icon, node.status)} {label}{pad}"
        bar = f"│{paint(_bar(timeline, node, width), node.status)}│"
        details = "" if node.placeholder else terminal_text(node_details(node, tokens(node.usage)))
        if node.folded:
            details = folded_summary(node.folded)
        lines.append(f"{head}  {bar}  {details}".rstrip())
    return lines


def _bar(timeline: RunTimeline, node: Instance, width: int) -> str:
    """``node``'s span as a run of blocks within ``width`` cells (``░`` for an item or section, ``·`` for a
    skipped step); blank when its times are unknown."""
    import math

    if node.started is None or timeline.start is None:
        return " " * width
    scale = width / timeline.duration
    end = node.ended if node.ended is not None else (timeline.end or node.started)
    first = min(width - 1, max(0, int((node.started - timeline.start) * scale)))
    last = min(width, max(first + 1, math.ceil((end - timeline.start) * scale)))
    fill = "░" if node.placeholder else ("·" if node.status == "skipped" else "█")
    return " " * first + fill * (last - first) + " " * (width - last)


def node_details(node: Instance, token_count: int) -> str:
    """What follows an instance's bar: duration, attempts, tokens and cost, status notes, then the error or a
    preview of the output."""
    parts: list[str] = []
    if node.duration is not None and node.status != "skipped":
        parts.append(seconds(node.duration))
    if (node.attempts or 1) > 1:
        parts.append(f"{node.attempts} attempts")
    if token_count:
        cost = float((node.usage or {}).get("cost") or 0)
        parts.append(f"{token_count} tokens" + (f" ${cost:.4f}" if cost else ""))
    if node.status in ("skipped", "cancelled", "running"):
        parts.append(node.status)
    if node.compensated:
        parts.append("compensated")
    if node.status == "waiting":
        parts.append(f"waiting for approval: {preview(node.error or '')}")
    elif node.error:
        parts.append(f"error: {preview(node.error)}")
    elif node.output is not None:
        parts.append(f"→ {preview(node.output)}")
    return "  ".join(parts)


# -- logs ------------------------------------------------------------------------------------------------
def _lines(path: str, position: int, limit: int = _READ_SIZE) -> tuple[list[bytes], int]:
    """Complete lines added to ``path`` after byte ``position`` (about ``limit`` bytes of them, or one longer
    line), and the position after them."""
    try:
        with open(path, "rb") as stream:
            stream.seek(position)
            pieces = [stream.read(limit)]
            while len(pieces[-1]) == limit and b"\n" not in pieces[-1]:  # a line longer than the limit
                pieces.append(stream.read(limit))
            data = b"".join(pieces)
    except FileNotFoundError:
        return [], position
    except OSError as error:
        raise StoreError(f"cannot read {path}: {error.strerror}") from None
    end = data.rfind(b"\n") + 1  # a line still being written (or cut by the limit) waits for the next look
    return data[:end].splitlines(), position + end


def show_logs(selector: str | None, *, last: bool, follow: bool, as_json: bool, state_dir: str | None) -> int:
    """``llmflow logs``: the run's events, readable or raw; ``--follow`` until the run has ended."""
    store, handle = _open(state_dir, selector, last)
    path = str(handle.events_path())
    position = 0
    shown = 0  # lines of the file read so far
    unlocked_since: float | None = None
    try:
        while True:
            ended = False
            if follow and handle.lock_holder() is None:
                status = store.open_run(handle.run_id).meta.get("status")
                unlocked_since = unlocked_since or time.monotonic()
                ended = status != "running" or time.monotonic() - unlocked_since > _STALE_AFTER
            else:
                unlocked_since = None
            while True:  # a piece at a time: a run's events can run to gigabytes
                lines, position = _lines(path, position)
                if not lines:
                    break
                for line in _printable(lines, as_json, shown + 1):
                    sys.stdout.write(line + "\n")
                shown += len(lines)
            sys.stdout.flush()
            if not follow or ended:
                if not shown and not os.path.exists(path):  # say why nothing was shown
                    sys.stderr.write(f"run {handle.run_id} has no events.jsonl: it recorded no events\n")
                return exits.SUCCEEDED
            time.sleep(_POLL)
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except BrokenPipeError:  # `llmflow logs ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.SUCCEEDED


def _printable(lines: list[bytes], as_json: bool, first: int) -> Iterator[str]:
    """``lines`` (numbered from ``first`` in the file) as shown: raw with ``--json``, else one line per event;
    a damaged line is said to be damaged, with its start, not left out (with ``--json``, on stderr, so that
    stdout stays JSON lines)."""
    for number, raw in enumerate(lines, first):
        text = raw.decode("utf-8", "replace")
        if as_json:
            try:
                event = json.loads(text)
            except (ValueError, RecursionError):
                event = None
            if isinstance(event, dict):
                yield terminal_json(text)
            else:
                sys.stderr.write(_damaged(number, text) + "\n")
            continue
        try:
            event = json.loads(text)
            yield describe_event(event)
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
            yield _damaged(number, text)


def _damaged(number: int, text: str) -> str:
    return terminal_text(f"events.jsonl:{number}: not an event: {preview(text)}")


# -- cancel and gc ---------------------------------------------------------------------------------------
def cancel_run(selector: str | None, *, last: bool, state_dir: str | None) -> int:
    """``llmflow cancel``: stop the process driving a run (SIGTERM), or mark a stopped run cancelled."""
    store, handle = _open(state_dir, selector, last)
    run_id = handle.run_id
    holder = handle.lock_holder()
    stopped = ""
    if holder is not None:
        pid = _terminate(run_id, holder)
        deadline = time.monotonic() + _CANCEL_WAIT
        while handle.lock_holder() is not None:
            if time.monotonic() > deadline:
                sys.stderr.write(f"error: pid {pid} did not stop within {_CANCEL_WAIT:g}s\n")
                return exits.FAILED
            time.sleep(_POLL / 2)
        stopped = f" (stopped pid {pid})"
    handle.lock()
    try:
        current = store.open_run(run_id)  # run.json as it is now that nobody else can change it
        status = current.meta.get("status")
        if status == "succeeded":
            if stopped:
                sys.stderr.write(f"run {run_id} succeeded before it could be cancelled\n")
                return exits.FAILED
            raise UsageError(f"run {run_id} already succeeded; there is nothing to cancel")
        if status == "cancelled":
            sys.stderr.write(
                f"cancelled run {run_id}{stopped}\n" if stopped else f"run {run_id} is already cancelled\n"
            )
            return exits.SUCCEEDED
        # Not yet recorded: the run was stopped, or its driver died before it could record the end.
        _mark_cancelled(current)
    finally:
        handle.close()
    sys.stderr.write(f"cancelled run {run_id}{stopped or f' (was {status})'}\n")
    return exits.SUCCEEDED


def _terminate(run_id: str, holder: dict[str, Any]) -> int:
    """Send SIGTERM to the process holding the run's lock (the driver records ``cancelled``); its pid."""
    import signal
    import socket

    pid, host = holder.get("pid"), holder.get("host")
    # The lock file is only information, and may be damaged: ``kill(0)`` would signal this command's own process
    # group and ``kill(-1)`` every process the user may signal, so only a real process id is signalled.
    if type(pid) is not int or pid <= 0:
        raise UsageError(f"run {run_id} is locked, but its lock file names no process to stop (pid {pid!r})")
    if host != socket.gethostname():
        raise UsageError(f"run {run_id} is driven by pid {pid} on {host}; cancel it there")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise UsageError(f"run {run_id} is locked by pid {pid}, which this system cannot see") from None
    except PermissionError:
        raise UsageError(f"run {run_id} is driven by pid {pid}, which you may not signal") from None
    return pid


def _mark_cancelled(handle: FileRunHandle) -> None:
    """Record ``cancelled`` in ``run.json`` and a ``run.cancelled`` event, numbered after the last one."""
    from llmflow.engine.events import EventBus
    from llmflow.sinks import FileEventSink
    from llmflow.store.ids import format_timestamp

    meta = handle.meta
    previous = str(meta.get("status"))
    last_seq = int(meta.get("last_seq") or 0)
    lines, _ = _lines(str(handle.events_path()), max(0, _size(handle) - 65536))
    for line in reversed(lines):  # a run that died without writing last_seq
        try:
            last_seq = max(last_seq, int(json.loads(line)["seq"]))
            break
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
    bus = EventBus(handle.run_id, last_seq)
    bus.add(FileEventSink(handle.events_path()))
    bus.emit("run.cancelled", "", {"status": "cancelled", "previous": previous, "by": "llmflow cancel"})
    bus.close()
    handle.update(status="cancelled", ended=format_timestamp(), last_seq=bus.seq, waiting_for=[])


def _size(handle: FileRunHandle) -> int:
    try:
        return handle.events_path().stat().st_size
    except FileNotFoundError:
        return 0


def collect_garbage(older_than: str, *, dry_run: bool, state_dir: str | None) -> int:
    """``llmflow gc``: delete runs that ended longer ago than ``older_than`` (and nobody drives)."""
    import re

    from llmflow.durations import parse_duration

    # A workflow's bare number is seconds; here ``30`` (30 days meant?) would delete nearly every run.
    if re.fullmatch(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*", older_than):
        raise UsageError(f"--older-than: {older_than!r} has no unit (say 30d, 12h, 45m or 90s)")
    try:
        age = parse_duration(older_than)
    except ValueError:
        raise UsageError(f"--older-than: {older_than!r} is not an age (say 30d, 12h, 45m, 90s or 1d12h)") from None
    store = _store(state_dir)
    by_id = {str(meta["id"]): meta for meta in store.list_runs()}
    removed = _gc_candidates(store, by_id, age) if dry_run else store.gc(age)
    verb = "would remove" if dry_run else "removed"
    for run_id in removed:
        meta = by_id.get(run_id, {})
        sys.stdout.write(
            terminal_text(f"{verb} {run_id}  {meta.get('workflow', '?')}  {meta.get('status', '?')}") + "\n"
        )
    count = f"{len(removed)} run{'s' * (len(removed) != 1)}"
    sys.stderr.write(f"{verb} {count} older than {older_than}\n")
    return exits.SUCCEEDED


def _gc_candidates(store: FileRunStore, runs: dict[str, dict[str, Any]], age: float) -> list[str]:
    """What ``FileRunStore.gc(age)`` would delete now (it has no dry-run of its own; keep the rules alike)."""
    from llmflow.store.ids import moment_before, parse_timestamp, run_id_time

    cutoff = moment_before(store.clock(), age)
    chosen = []
    for run_id, meta in runs.items():
        if meta.get("status") in ("running", "unreadable"):
            continue
        moment = parse_timestamp(meta.get("ended")) or parse_timestamp(meta.get("created")) or run_id_time(run_id)
        if moment is not None and moment < cutoff and store.open_run(run_id).lock_holder() is None:
            chosen.append(run_id)
    return chosen
