"""A run's events as ``show`` and ``report`` read them: ``events.jsonl`` a line at a time (damaged lines passed
over), and what the events tell about each node instance, folded in as they come."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmflow.store.run_folder import is_quantity

if TYPE_CHECKING:
    from llmflow.engine.ports import RunHandle

Event = dict[str, Any]

#: Step events that end a node instance, and the status each gives it.
_ENDINGS = {
    "step.completed": "succeeded",
    "step.failed": "failed",
    "step.skipped": "skipped",
    "step.cancelled": "cancelled",
}
#: Events that open an item, iteration or branch of a pattern node (the placeholder rows of the tree).
_OPENINGS = ("map.item", "loop.iteration", "parallel.branch")
_USAGE_KEYS = ("input_tokens", "output_tokens", "cost", "calls")
#: Events kept per instance for the report (a step retried a thousand times keeps its first ones).
_EVENTS_PER_PATH = 200
#: Event stamps are nanoseconds since the epoch in a signed 64-bit integer (until the year 2262).
_STAMP_LIMIT = 2**63
#: ``json.loads`` of a str, without its checks of the arguments.
_decode = json.JSONDecoder().decode
#: The ``path`` member of an event line as the event bus writes it (no space after the colon).
_PATH_MEMBER = re.compile(rb'"path":"((?:[^"\\]|\\.)*)"')


def add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Add one ``llm.usage`` (or journal ``x.usage``) mapping into ``total``."""
    for key in _USAGE_KEYS:
        value = usage.get(key)
        if is_quantity(value):
            total[key] = total.get(key, 0) + value
    if usage.get("model"):
        total["model"] = usage["model"]


@dataclass(slots=True)
class Seen:
    """What the events say about one instance path."""

    started: float | None = None
    ended: float | None = None
    status: str | None = None
    attempts: int = 0
    usage: dict[str, Any] | None = None
    kind: str | None = None
    name: str | None = None
    preview: str | None = None
    error: dict[str, Any] | None = None


def read_events(handle: RunHandle, paths: Set[str] | None = None) -> Iterator[Event]:
    """The run's events from ``events.jsonl``, read a line at a time (a big run's events would take hundreds
    of megabytes held at once); damaged lines are passed over.

    With ``paths``, only lines whose ``path`` member may be one of them are parsed (a cheap look at the raw
    line first): the caller still checks each event's path, this only spares parsing the others.
    """
    try:
        stream = handle.events_path().open("rb")
    except OSError:
        return
    with stream:
        try:
            for raw in stream:
                # A line holding a bare CR is split there, as ``bytes.splitlines`` did.
                for line in raw.splitlines() if b"\r" in raw else (raw,):
                    if paths is not None and not _may_hold(line, paths):
                        continue
                    try:
                        # As ``json.loads(line)`` reads UTF-8 bytes, without its guess at the encoding.
                        event = _decode(line.removeprefix(codecs.BOM_UTF8).decode("utf-8", "surrogatepass"))
                    except (ValueError, RecursionError):  # damaged, or nested too deeply to be an event
                        continue
                    if _is_event(event):
                        yield event
        except OSError:
            return


def _may_hold(line: bytes, paths: Set[str]) -> bool:
    """Whether the event on ``line`` may have one of ``paths`` as its ``path``. The event bus writes ``path``
    before ``data``, so the first ``"path":"…"`` is the event's own; a line that does not look so is parsed."""
    found = _PATH_MEMBER.search(line)
    if found is None:
        return True
    text = found.group(1)
    if b"\\" in text:
        return True  # escaped characters: let the parser read it
    try:
        return text.decode("utf-8") in paths
    except UnicodeDecodeError:
        return True


def _is_event(event: object) -> bool:
    """Whether a parsed line holds the members ``show`` and ``report`` read in the shapes the event bus writes
    them (a damaged line passes JSON yet says ``"ts": "abc"`` or ``"data": [1]``)."""
    if not isinstance(event, dict):
        return False
    stamp, attempt, data = event.get("ts"), event.get("attempt"), event.get("data")
    return (
        isinstance(event.get("type", ""), str)
        and isinstance(event.get("path", ""), str)
        and (data is None or isinstance(data, dict))
        and (stamp is None or (isinstance(stamp, (int, float)) and abs(stamp) < _STAMP_LIMIT))
        and (attempt is None or type(attempt) is int)
    )


def opening_path(event: Event) -> str | None:
    """The path of the item, iteration or branch a ``map.item``, ``loop.iteration`` or ``parallel.branch``
    event opens (``label[3]``, ``reviews/style``)."""
    data, path = event.get("data") or {}, str(event.get("path", ""))
    kind = event.get("type")
    if kind == "map.item" and isinstance(data.get("index"), int):
        return f"{path}[{data['index']}]"
    if kind == "loop.iteration" and isinstance(data.get("iteration"), int):
        return f"{path}[{data['iteration'] - 1}]"
    if kind == "parallel.branch" and data.get("branch"):
        return f"{path}/{data['branch']}"
    return None


def _instance_path(event: Event) -> str | None:
    """The instance path an event tells about, for the events ``show`` and ``report`` read (else None)."""
    kind = str(event.get("type", ""))
    if kind in _OPENINGS:
        return opening_path(event)
    if kind.startswith(("step.", "llm.usage")):
        return str(event.get("path", "")) or None
    return None


def summarise_events(events: Iterable[Event]) -> dict[str, Seen]:
    """Per instance path: first start, end, status, attempts, usage (summed over every call) and kind. Events
    are folded in as they come and none is kept, so a run's events are never all held at once."""
    seen: dict[str, Seen] = {}
    for event in events:
        path = _instance_path(event)
        if not path:
            continue
        kind = str(event.get("type", ""))
        item = seen.get(path)
        if item is None:
            item = seen[path] = Seen()
        stamp = float(event.get("ts") or 0) / 1e9
        attempt = int(event.get("attempt") or 0)
        data = event.get("data") or {}
        if kind == "step.started" or kind in _OPENINGS:
            if attempt <= 1 or item.started is None:  # a first attempt, or the instance run again on resume
                item.started, item.ended, item.status = stamp, None, "running"
            item.kind = str(data.get("kind") or item.kind or "") or None
            item.name = data.get("name") or item.name
        elif kind in _ENDINGS:
            item.ended, item.status = stamp, _ENDINGS[kind]
            item.started = item.started if item.started is not None else stamp
            item.kind = str(data.get("kind") or item.kind or "") or None
            if data.get("preview") is not None:
                item.preview = str(data["preview"])
            error = data.get("error")
            item.error = error if isinstance(error, dict) else ({"message": str(error)} if error else None)
        elif kind == "llm.usage":
            if item.usage is None:
                item.usage = {}
            add_usage(item.usage, data)
        item.attempts = max(item.attempts, attempt)
    return seen


def events_of(events: Iterable[Event], paths: Set[str]) -> dict[str, list[Event]]:
    """The events of each of ``paths`` (the first ``_EVENTS_PER_PATH`` of each), in the order they came; the
    events of other instances are passed over, not kept."""
    kept: dict[str, list[Event]] = {}
    for event in events:
        path = _instance_path(event)
        if path is None or path not in paths:
            continue
        listed = kept.setdefault(path, [])
        if len(listed) < _EVENTS_PER_PATH:
            listed.append(event)
    return kept
