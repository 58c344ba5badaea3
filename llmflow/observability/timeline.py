"""A run's node instances in tree order, with times, attempts and token usage from its journal and events."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmflow.engine.outcome import record_times
from llmflow.observability.event_log import Event, Seen, add_usage, events_of, read_events, summarise_events

if TYPE_CHECKING:
    from llmflow.engine.ports import RunHandle


_INDEX = re.compile(r"\[\d+\]")


def parent_path(path: str) -> str:
    """The enclosing instance path: ``label[3]/classify`` → ``label[3]`` → ``label`` → ``""``.

    The same rule as the console's; kept here too so that this module does not depend on the CLI.
    """
    if path.endswith("]") and "[" in path:
        return path[: path.rindex("[")]
    slash = path.rfind("/")
    return path[:slash] if slash >= 0 else ""


def static_path(path: str) -> str:
    """The workflow node an instance path is an instance of: ``label[3]/classify`` → ``label/classify``."""
    return _INDEX.sub("", path)


def folded_summary(counts: Mapping[str, int]) -> str:
    """What a folded row stands for: ``99,980 more items: 99,970 succeeded, 10 failed``."""
    spread = ", ".join(f"{count:,} {status}" for status, count in sorted(counts.items()))
    return f"{sum(counts.values()):,} more items: {spread}"


def segment_label(path: str) -> str:
    """The last part of an instance path: ``classify``, or ``[3]`` for an item or iteration."""
    if path.endswith("]") and "[" in path:
        return path[path.rindex("[") :]
    return path[path.rfind("/") + 1 :]


def tokens(usage: dict[str, Any] | None) -> int:
    """Input plus output tokens of a usage mapping."""
    if not usage:
        return 0
    return int((usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0))


@dataclass(slots=True)
class Instance:
    """One node instance (or, with ``placeholder``, an item, iteration or section holding some)."""

    path: str
    status: str
    started: float | None = None  # seconds since the epoch
    ended: float | None = None
    attempts: int | None = None
    output: Any = None
    error: str | None = None
    error_detail: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    kind: str | None = None
    name: str | None = None
    preview: str | None = None
    recorded: bool = False  # has a journal record
    placeholder: bool = False
    compensated: bool = False
    depth: int = 0
    events: list[Event] = field(default_factory=list)
    folded: dict[str, int] | None = None  # the row standing for items left out: how many have each status

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, when both are known."""
        if self.started is None or self.ended is None:
            return None
        return round(max(0.0, self.ended - self.started), 6)

    @property
    def label(self) -> str:
        """The last part of the path, as a tree shows it."""
        return segment_label(self.path)


@dataclass(slots=True)
class RunTimeline:
    """Everything ``show`` and ``report`` draw: ``run.json``, the instances in tree order, the time window."""

    meta: dict[str, Any]
    instances: list[Instance]
    compensated: list[str]
    start: float | None
    end: float | None
    #: Per static node path, how many instances ended with each status; counted before folding, so every
    #: instance counts, also those a folded row stands for.
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """The window the instances are drawn in, in seconds (never zero, so it can be divided by)."""
        if self.start is None or self.end is None:
            return 0.0
        return max(self.end - self.start, 1e-6)

    def offset(self, moment: float | None) -> float | None:
        """Seconds from the start of the window to ``moment``."""
        if moment is None or self.start is None:
            return None
        return round(moment - self.start, 6)


def gather(handle: RunHandle, *, keep_events: bool = False, fold: int | None = None) -> RunTimeline:
    """The run's instances: the latest journal record per path, completed by what the events tell (steps
    that failed or paused leave no record; usage counts every call, retries included).

    With ``fold``, a map, loop or stream of more items than that keeps the rows of its first ``fold`` items
    and of up to ``fold`` more that did not succeed; one row stands for the rest (``Instance.folded``).
    With ``keep_events``, the instances listed keep their events (``Instance.events``): the events are read
    again once the rows are known, so that those of the items folded away are never held.
    """
    meta = handle.meta
    if meta.get("status") == "running" and handle.lock_holder() is None:
        # Its process died (kill -9, power loss) before it could say so: shown as `llmflow runs` lists it.
        meta = {**meta, "status": "interrupted", "stale": True}
    seen = summarise_events(read_events(handle))
    nodes: dict[str, Instance] = {}
    compensated: list[str] = []
    failed_inside: dict[str, dict[str, Any]] = {}
    for record in handle.records():
        status, path = record.get("s"), str(record.get("p", ""))
        if status == "compensated":
            compensated.append(path)
            continue
        if isinstance(record.get("f"), dict) or isinstance(record.get("e"), dict):
            failed_inside[path] = record
        if status not in ("succeeded", "failed", "skipped", "cancelled"):
            continue  # rewinds and resets change what runs again, not what happened
        times = record_times(record) or (None, None)
        error = record.get("e") if isinstance(record.get("e"), dict) else None
        extra = record.get("x") if isinstance(record.get("x"), dict) else None
        nodes[path] = Instance(
            path=path,
            status=str(status),
            started=times[0],
            ended=times[1],
            attempts=int(record.get("a", 1)),
            output=record.get("output"),
            error=str(error.get("message")) if error else None,
            error_detail=error,
            extra=extra,
            usage=dict(extra["usage"]) if extra and isinstance(extra.get("usage"), dict) else None,
            recorded=True,
        )
    _add_failed_inside(nodes, seen, failed_inside)
    _add_unrecorded(nodes, seen, meta)
    for path, node in nodes.items():
        item = seen.get(path)
        if item is None:
            continue
        node.kind, node.name, node.preview = item.kind, item.name, item.preview
        if item.usage:  # every call counts, also those of failed attempts
            node.usage = item.usage
    counts: dict[str, Counter[str]] = {}
    for path, node in nodes.items():
        counts.setdefault(static_path(path), Counter())[node.status] += 1
    instances = _tree(nodes, seen, compensated, fold)
    if keep_events:
        listed = {node.path: node for node in instances if not node.placeholder}
        # Openings are read from their pattern node's events (``map.item`` at ``label`` opens ``label[3]``).
        wanted = set(listed) | {parent_path(path) for path in listed}
        for path, events in events_of(read_events(handle, wanted), listed.keys()).items():
            listed[path].events = events
    starts = [node.started for node in instances if node.started is not None]
    ends = [node.ended for node in instances if node.ended is not None] + starts
    start = min(starts, default=None)
    run_start, run_end = _moment(meta.get("started") or meta.get("created")), _moment(meta.get("ended"))
    if run_start is not None and (start is None or run_start < start):
        start = run_start
    end = max(ends, default=None)
    if run_end is not None and (end is None or run_end > end):
        end = run_end
    return RunTimeline(meta=meta, instances=instances, compensated=compensated, start=start, end=end, counts=counts)


def _moment(stamp: object) -> float | None:
    from llmflow.store.ids import parse_timestamp

    moment = parse_timestamp(stamp)
    return moment.timestamp() if moment is not None else None


def _add_failed_inside(
    nodes: dict[str, Instance], seen: dict[str, Seen], failed_inside: dict[str, dict[str, Any]]
) -> None:
    """The steps that failed inside a composite whose record tells (a try that caught the failure, a composite
    that failed and was continued, a map item whose failure was tolerated), unless the events tell their end.
    Those steps have no record of their own, and the events of their failure are written after the record
    that keeps them: a run killed in between has only their start in its events (and showed them running).

    The ``f`` member of the record keeps the named steps of the composite's own scope that failed; the steps
    between the composite and the step whose error it keeps (``e.step``) failed with that error too."""
    for around, record in failed_inside.items():
        errors: list[tuple[dict[str, Any], tuple[float, float] | None]] = []
        if isinstance(record.get("e"), dict):
            errors.append((record["e"], record_times(record)))
        for step_id, kept in (record.get("f") or {}).items():
            error = kept.get("e") if isinstance(kept, dict) else None
            if not isinstance(error, dict) or kept.get("s") != "failed":
                continue
            errors.append((error, record_times(kept)))
            path = _path_inside(around, step_id, str(error.get("step") or ""))
            if path is not None and path not in nodes and _running_or_unseen(seen.get(path)):
                span = record_times(kept) or (None, None)
                nodes[path] = Instance(
                    path=path,
                    status="failed",
                    started=span[0],
                    ended=span[1],
                    attempts=int(kept.get("a", 1)),
                    output=kept.get("output"),
                    error=str(error.get("message")),
                    error_detail=error,
                )
        for error, times in errors:
            step = str(error.get("step") or "")
            if not step.startswith(around + "/") and not step.startswith(around + "["):
                continue
            segments = step.split("/")
            for depth in range(around.count("/") + 2, len(segments) + 1):  # below ``around`` (it may be running)
                path = "/".join(segments[:depth])
                item = seen.get(path)
                if path in nodes or item is None or item.status != "running" or item.kind is None:
                    continue  # recorded, ended in the events, or an item or iteration (a placeholder row)
                nodes[path] = Instance(
                    path=path,
                    status="failed",
                    started=item.started,
                    ended=times[1] if times else None,
                    attempts=item.attempts or None,
                    error=str(error.get("message")),
                    error_detail=error,
                )


def _running_or_unseen(item: Seen | None) -> bool:
    return item is None or item.status == "running"


def _path_inside(around: str, step_id: str, failed_step: str) -> str | None:
    """The instance path of step ``step_id`` that failed inside ``around`` with the step at ``failed_step``
    (itself, or a step inside it): ``failed_step`` cut after the segment that is ``step_id``."""
    if not failed_step.startswith(around + "/"):
        return None
    segments = failed_step[len(around) + 1 :].split("/")
    for depth, segment in enumerate(segments):
        if segment == step_id or segment.startswith(step_id + "["):  # the node, or an item or iteration of it
            return around + "/" + "/".join([*segments[:depth], step_id])
    return None


def _add_unrecorded(nodes: dict[str, Instance], seen: dict[str, Seen], meta: dict[str, Any]) -> None:
    """Instances the journal does not hold: the step that failed the run, those waiting for approval, and
    those the events show failing, cancelled or still running.

    A step the events leave running in a run that nobody drives (its process was killed, or it ended while
    the step's last events were still unwritten) did not finish: it shows as cancelled, as the steps a Ctrl-C
    stops do, not as running for ever."""
    failed_step = meta.get("failed_step") if meta.get("status") == "failed" else None
    waiting = [str(path) for path in meta.get("waiting_for") or ()] if meta.get("status") == "waiting" else []
    driven = meta.get("status") == "running"  # a stale run was turned ``interrupted`` by ``gather``
    for path, item in seen.items():
        if path in nodes or item.status not in ("failed", "cancelled", "running"):
            continue
        if item.status == "running" and (item.kind is None or path in waiting):
            continue  # item, iteration and branch openings are placeholders; approvals are added below
        error = item.error or {}
        nodes[path] = Instance(
            path=path,
            status=item.status if driven or item.status != "running" else "cancelled",
            started=item.started,
            ended=item.ended,
            attempts=item.attempts or None,
            error=str(error["message"]) if error.get("message") else None,
            error_detail=item.error,
        )
    extra: list[tuple[Any, str]] = [(failed_step, "failed")] + [(path, "waiting") for path in waiting]
    for missing, status in extra:
        if not missing:
            continue
        node = nodes.get(missing)
        if node is None:
            item = seen.get(missing) or Seen()
            node = nodes[missing] = Instance(path=missing, status=status, started=item.started, ended=item.ended)
            node.attempts = item.attempts or None
        node.status = status
        if node.error is None:
            node.error = meta.get("error")


def _tree(
    nodes: dict[str, Instance], seen: dict[str, Seen], compensated: list[str], fold: int | None = None
) -> list[Instance]:
    """Instances in tree order (siblings by start time), with placeholder rows for the items, iterations and
    sections between them; a placeholder spans its children and has the status they add up to. Items past
    ``fold`` are left out as ``gather`` says."""
    children: dict[str, dict[str, None]] = {}  # insertion-ordered sets
    for path in nodes:
        while path:
            parent = parent_path(path)
            siblings = children.setdefault(parent, {})
            if path in siblings:
                break
            siblings[path] = None
            path = parent
    done: set[str] = set(compensated)
    starts: dict[str, float] = {}

    def start_of(path: str) -> float:
        if path not in starts:
            own = nodes[path].started if path in nodes else None
            if own is None and path in seen:
                own = seen[path].started
            below = min(map(start_of, children.get(path, ())), default=float("inf"))
            starts[path] = own if own is not None and own <= below else below
        return starts[path]

    ordered: list[Instance] = []

    def visit(parent: str, depth: int) -> None:
        rows = [
            (path, nodes.get(path) or _placeholder(path, children, nodes, seen))
            for path in sorted(children.get(parent, ()), key=start_of)
        ]
        left_out: list[Instance] = []
        if fold is not None and len(rows) > 2 * fold and all(path.endswith("]") for path, _ in rows):
            rows, left_out = _fold(rows, fold)
        for path, node in rows:
            node.depth, node.compensated = depth, path in done
            ordered.append(node)
            visit(path, depth + 1)
        if left_out:
            ordered.append(_folded_row(parent, left_out, depth))

    visit("", 0)
    return ordered


def _fold(rows: list[tuple[str, Instance]], fold: int) -> tuple[list[tuple[str, Instance]], list[Instance]]:
    """The item rows kept (the first ``fold``, then up to ``fold`` that did not succeed) and those left out."""
    kept = rows[:fold]
    left_out: list[Instance] = []
    unusual = 0
    for path, node in rows[fold:]:
        if unusual < fold and node.status not in ("succeeded", "skipped"):
            kept.append((path, node))
            unusual += 1
        else:
            left_out.append(node)
    return kept, left_out


def _folded_row(parent: str, left_out: list[Instance], depth: int) -> Instance:
    """One row for the items left out: their span, the status they add up to and how many have each."""
    counts: dict[str, int] = {}
    for node in left_out:
        counts[node.status] = counts.get(node.status, 0) + 1
    worst = next((s for s in ("failed", "waiting", "running", "cancelled") if s in counts), None)
    starts = [node.started for node in left_out if node.started is not None]
    ends = [node.ended for node in left_out if node.ended is not None]
    return Instance(
        path=f"{parent}[…]",
        status=worst or ("skipped" if set(counts) == {"skipped"} else "succeeded"),
        started=min(starts, default=None),
        ended=max(ends, default=None) if worst not in ("running", "waiting") else None,
        placeholder=True,
        depth=depth,
        folded=counts,
    )


def _placeholder(
    path: str, children: dict[str, dict[str, None]], nodes: dict[str, Instance], seen: dict[str, Seen]
) -> Instance:
    """The row of an item, iteration or section: its span and status come from the instances below it."""
    below: list[Instance] = []

    def collect(parent: str) -> None:
        for child in children.get(parent, ()):
            if child in nodes:
                below.append(nodes[child])
            collect(child)

    collect(path)
    statuses = {node.status for node in below}
    worst = next((s for s in ("failed", "waiting", "running", "cancelled") if s in statuses), None)
    status = worst or ("skipped" if statuses == {"skipped"} else "succeeded")
    starts = [node.started for node in below if node.started is not None]
    ends = [node.ended for node in below if node.ended is not None]
    item = seen.get(path)
    if item is not None and item.started is not None:
        starts.append(item.started)
    usage: dict[str, Any] = {}
    for node in below:
        if node.usage:
            add_usage(usage, node.usage)
    return Instance(
        path=path,
        status=status,
        started=min(starts, default=None),
        ended=max(ends, default=None) if status not in ("running", "waiting") else None,
        usage=usage or None,
        placeholder=True,
    )
