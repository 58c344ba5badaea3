"""The run console: a live rich tree of nodes on a terminal, plain progress lines elsewhere."""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from llmflow.cli.terminal import terminal_text
from llmflow.threads import Background

if TYPE_CHECKING:
    from rich.console import RenderableType

Event = dict[str, Any]
#: Gives the number of attempts a node at a static path may take, when known.
AttemptsLookup = Callable[[str], int | None]

_INDEX = re.compile(r"\[\d+\]")
_ACTIVE = ("running", "retrying", "waiting")
#: Children shown per node in the live tree before the rest are summarised in one line.
_MAX_CHILDREN = 12
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ICONS = {
    "succeeded": ("✓", "green"),
    "failed": ("✗", "red"),
    "skipped": ("-", "dim"),
    "retrying": ("↻", "yellow"),
    "waiting": ("⏸", "yellow"),
    "cancelled": ("⊘", "dim"),
    "pending": ("·", "dim"),
}


def parent_path(path: str) -> str:
    """The enclosing instance path: ``label[3]/classify`` → ``label[3]`` → ``label`` → ``""``."""
    if path.endswith("]") and "[" in path:
        return path[: path.rindex("[")]
    slash = path.rfind("/")
    return path[:slash] if slash >= 0 else ""


def segment_label(path: str) -> str:
    """The last part of an instance path as shown in a tree: ``classify``, or ``[3]`` for an item."""
    if path.endswith("]") and "[" in path:
        return path[path.rindex("[") :]
    return path[path.rfind("/") + 1 :]


def static_path(path: str) -> str:
    """``label[3]/classify`` → ``label/classify``."""
    return _INDEX.sub("", path)


def seconds(value: float) -> str:
    """A step duration as the console shows it: ``0.03s``, ``12.4s``, ``4m05s``."""
    if value < 60:
        return f"{value:.2f}s" if value < 10 else f"{value:.1f}s"
    from llmflow.durations import format_duration

    return format_duration(value)


def tokens_of(data: dict[str, Any]) -> int:
    """The tokens one ``llm.usage`` event counts."""
    if data.get("total_tokens"):
        return int(data["total_tokens"])
    return int(data.get("input_tokens") or 0) + int(data.get("output_tokens") or 0)


def retry_note(path: str, data: dict[str, Any], attempts: AttemptsLookup | None) -> str:
    """``retry 2/3 in 1.0s`` for a ``step.retrying`` event (the total when the event or workflow tells it)."""
    total = data.get("attempts") or (attempts(static_path(path)) if attempts is not None else None)
    attempt = f"{data.get('next_attempt')}/{total}" if total else str(data.get("next_attempt"))
    return f"retry {attempt} in {float(data.get('delay') or 0):.1f}s"


def compensation_note(kind: str, data: dict[str, Any]) -> str:
    """``compensating``, ``compensated``, or ``compensation failed`` when a ``compensate`` step failed."""
    if kind == "step.compensated" and data.get("ok") is False:
        return "compensation failed"
    return kind.removeprefix("step.")


#: Output lines longer than this are shown cut, with a count of what is left out (the journal keeps them whole).
MAX_LINE = 2000


def clipped(line: str, limit: int = MAX_LINE) -> str:
    """``line``, or its first ``limit`` characters and how many more there are (a minified JSON document or a
    model's reply on one line would otherwise fill the terminal or a CI log)."""
    if len(line) <= limit:
        return line
    more = len(line) - limit
    return f"{line[:limit]} … ({more:,} more character{'' if more == 1 else 's'})"


def preview(value: Any, limit: int = 80) -> str:
    """A value on one line of at most ``limit`` characters."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_event(event: dict[str, Any]) -> str:
    """One event as a line for people: local time, type, path and the gist of its data."""
    from datetime import datetime

    moment = datetime.fromtimestamp(int(event.get("ts", 0)) / 1e9).strftime("%H:%M:%S.%f")[:-3]
    kind, data = str(event.get("type")), event.get("data") or {}
    error = data.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    if kind == "step.completed":
        gist = f"{seconds(float(data.get('duration') or 0))} → {preview(data.get('preview', ''))}"
    elif kind == "step.failed":
        gist = str(message)
    elif kind == "step.retrying":
        gist = f"retry {data.get('next_attempt')} in {data.get('delay')}s: {message}"
    elif kind == "step.started":
        gist = str(data.get("kind", "")) + (f" (attempt {event['attempt']})" if event.get("attempt", 1) > 1 else "")
    elif kind == "steps.restored" and isinstance(data.get("steps"), list):
        paths = [str(step.get("path")) for step in data["steps"] if isinstance(step, dict)]
        gist = preview(f"{len(paths)} from the journal: {', '.join(paths)}")
    elif kind.startswith("run.") and "status" in data:
        gist = str(data["status"]) + (f": {message}" if message else "")
    else:
        gist = preview(data)
    return terminal_text(f"{moment}  {kind:<15} {event.get('path') or '-'}  {gist}".rstrip())


class PlainConsole:
    """Progress as plain lines (``▶ greet``, ``✓ greet (0.03s)`` …), written by a thread of its own so that
    ``put`` only queues."""

    def __init__(self, stream: IO[str], attempts: AttemptsLookup | None = None) -> None:
        self._stream = stream
        self._attempts = attempts
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._tokens: dict[str, int] = {}
        self._streamed: dict[str, str] = {}  # model text streamed but not yet printed (no newline yet)
        self._closed = False
        self._thread = Background(self._drain)

    def begin(self, run_id: str, directory: object) -> None:
        """Called when the run starts (``RunOptions.started_listener``)."""

    def put(self, event: Event) -> None:
        """Queue one event (never blocks)."""
        self._queue.put(("event", event))

    def output(self, path: str, stream: str, line: str) -> None:
        """Queue one line of a ``run`` step's output (``RunOptions.output_listener``)."""
        self._queue.put(("output", (path, line)))

    def close(self) -> None:
        """Write what is queued and stop (closing twice is harmless)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            kind, payload = item
            line = self._format(payload) if kind == "event" else f"  {payload[0]} │ {clipped(payload[1])}"
            if line is None:
                continue
            line = terminal_text(line)
            try:
                self._stream.write(line + "\n")
                if self._queue.empty():
                    self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stderr must not stop the run
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def _format(self, event: Event) -> str | None:
        kind = event["type"]
        path = event["path"]
        data: dict[str, Any] = event.get("data") or {}
        if kind == "llm.chunk":
            lines = (self._streamed.pop(path, "") + str(data.get("text", ""))).split("\n")
            self._streamed[path] = lines.pop()
            return "\n".join(f"  {path} │ {clipped(line)}" for line in lines) or None
        if kind == "llm.retry":
            self._streamed.pop(path, None)
            return f"↻ {path} model call retried: {data.get('error')}"
        if kind in ("step.completed", "step.failed") and self._streamed.get(path):
            rest = f"  {path} │ {self._streamed.pop(path)}\n"
            formatted = self._format_step(kind, path, data, event)
            return rest + formatted if formatted else rest.rstrip("\n")
        return self._format_step(kind, path, data, event)

    def _format_step(self, kind: str, path: str, data: dict[str, Any], event: Event) -> str | None:
        if kind == "step.started":
            name = data.get("name")
            return None if event.get("attempt", 1) > 1 else f"▶ {path}" + (f" — {name}" if name else "")
        if kind == "step.completed":
            extras = [seconds(float(data.get("duration") or 0))]
            if event.get("attempt", 1) > 1:
                extras.append(f"{event['attempt']} attempts")
            if self._tokens.get(path):
                extras.append(f"{self._tokens[path]} tokens")
            return f"✓ {path} ({', '.join(extras)})"
        if kind == "step.failed":
            error = data.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            return f"✗ {path}: {message}"
        if kind == "step.retrying":
            return f"↻ {path} {retry_note(path, data, self._attempts)}: {data.get('error')}"
        if kind == "step.skipped":
            return f"- {path} skipped"
        if kind == "step.cancelled":
            return f"⊘ {path} cancelled"
        if kind in ("step.compensating", "step.compensated"):
            return f"↺ {path} {compensation_note(kind, data)}"
        if kind == "llm.usage":
            self._tokens[path] = self._tokens.get(path, 0) + tokens_of(data)
            return None
        if kind == "run.paused":
            waiting = ", ".join(data.get("waiting_for") or [])
            return f"⏸ {waiting} waiting for approval: {data.get('error')}"
        if kind == "hook.failed":
            return f"! hook failed at {path or 'run'}: {data.get('error') or data}"
        return None


class _Node:
    """One row of the live tree."""

    __slots__ = ("attempts", "children", "ended", "error", "kind", "label", "last_line", "note", "started", "status")

    def __init__(self, label: str) -> None:
        self.label = label
        self.kind = ""
        self.status = "pending"
        self.started: int | None = None
        self.ended: int | None = None
        self.attempts = 0
        self.error = ""
        self.note = ""
        self.last_line = ""
        self.children: dict[str, _Node] = {}


class LiveConsole:
    """A rich ``Live`` tree of node instances (status, duration, attempts, tokens), nested by path and
    redrawn by rich's own refresh thread; ``put`` only updates the model under a short lock."""

    def __init__(self, stream: IO[str], attempts: AttemptsLookup | None = None) -> None:
        self._stream = stream
        self._attempts = attempts
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._root = _Node("")
        self._tokens: dict[str, int] = {}
        self._title = ""
        self._live: Any = None
        self._ended = False

    def begin(self, run_id: str, directory: object) -> None:
        """Start drawing (``RunOptions.started_listener``)."""
        from rich.console import Console
        from rich.live import Live

        self._title = f"run {run_id}"
        console = Console(file=self._stream)
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=8, redirect_stdout=False)
        self._live.start()

    def put(self, event: Event) -> None:
        """Update the model with one event."""
        kind = event["type"]
        path = event["path"]
        data: dict[str, Any] = event.get("data") or {}
        with self._lock:
            if kind.startswith("run."):
                self._run_event(kind, data)
                return
            if kind in ("map.item", "loop.iteration"):
                index = data["index"] if kind == "map.item" else int(data.get("iteration", 1)) - 1
                path = f"{path}[{index}]"
            node = self._node(path)
            if kind.startswith("step.") and data.get("kind"):
                node.kind = str(data["kind"])
            if kind in ("step.started", "map.item", "loop.iteration"):
                node.status = "running"
                node.started = node.started or event["ts"]
                node.attempts = max(node.attempts, int(event.get("attempt") or 0))
                if data.get("name"):
                    node.label = terminal_text(f"{segment_label(path)} — {data['name']}")
            elif kind in ("step.completed", "step.failed", "step.skipped", "step.cancelled"):
                node.status = kind.removeprefix("step.").replace("completed", "succeeded")
                node.ended = event["ts"]
                node.started = node.started or event["ts"]
                error = data.get("error")
                node.error = terminal_text(str(error.get("message") if isinstance(error, dict) else error or ""))
            elif kind == "step.retrying":
                node.status = "retrying"
                node.note = terminal_text(retry_note(path, data, self._attempts))
            elif kind == "llm.usage":
                self._tokens[path] = self._tokens.get(path, 0) + tokens_of(data)
            elif kind == "llm.chunk":
                text = (node.last_line + str(data.get("text", ""))).rsplit("\n", 1)[-1]
                node.last_line = terminal_text(text[-160:])
            elif kind == "llm.retry":
                node.last_line = ""
            elif kind in ("step.compensating", "step.compensated"):
                node.note = compensation_note(kind, data)

    def output(self, path: str, stream: str, line: str) -> None:
        """Keep the last output line of a running step to show under it."""
        with self._lock:
            self._node(path).last_line = terminal_text(line)

    def close(self) -> None:
        """Draw the final tree and stop (closing twice is harmless)."""
        live, self._live = self._live, None
        if live is not None:
            with self._lock:
                self._ended = True
            live.stop()

    def _run_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "run.paused":
            for path in data.get("waiting_for") or ():
                self._node(path).status = "waiting"
        elif kind in ("run.interrupted", "run.cancelled"):
            for node in self._nodes.values():
                if node.status in _ACTIVE:
                    node.status = "cancelled"

    def _node(self, path: str) -> _Node:
        node = self._nodes.get(path)
        if node is None:
            parent = self._node(parent_path(path)) if parent_path(path) else self._root
            node = self._nodes[path] = parent.children[path] = _Node(segment_label(path))
        return node

    # -- drawing (rich's refresh thread) -------------------------------------------------------------
    def _render(self) -> RenderableType:
        from rich.tree import Tree

        tree = Tree(f"[bold]{self._title}[/]")
        now = time.time_ns()
        with self._lock:
            self._add(tree, self._root, now)
        return tree

    def _add(self, tree: Any, node: _Node, now: int) -> tuple[int, int | None, int | None, str]:
        """Draw ``node``'s children under ``tree``; return (tokens, first start, last end, status) of them."""
        from rich.text import Text

        children = list(node.children.items())
        shown = _visible(children)
        tokens, first, last, statuses = 0, None, None, set()
        for path, child in children:
            branch = tree.add("") if path in shown else None
            inner = _Tree() if branch is None else branch
            below = self._add(inner, child, now)
            own = self._tokens.get(path, 0) + below[0]
            started = child.started or below[1]
            ended = child.ended or below[2]
            # Items, iterations and section placeholders have no events of their own: their children decide.
            derived = child.children and (child.status == "pending" or child.label.startswith("["))
            status = below[3] if derived else child.status
            tokens += own
            first = started if first is None or (started and started < first) else first
            last = ended if last is None or (ended and ended > last) else last
            statuses.add(status)
            if branch is not None:
                branch.label = Text.from_markup(self._line(child, status, started, ended, own, now))
                if child.last_line and status in _ACTIVE and child.kind == "run":
                    branch.add(Text(f"│ {child.last_line}"[:200], style="dim"))
        if len(shown) < len(children):
            tree.add(Text(f"… {len(children) - len(shown)} more", style="dim"))
        status = next((s for s in ("failed", "waiting", "retrying", "running", "cancelled") if s in statuses), "")
        return tokens, first, last, status or ("succeeded" if statuses else "pending")

    def _line(self, node: _Node, status: str, started: int | None, ended: int | None, tokens: int, now: int) -> str:
        from rich.markup import escape

        if status in ("running",) and not self._ended:
            icon, style = _SPINNER[int(time.monotonic() * 10) % len(_SPINNER)], "cyan"
        else:
            icon, style = _ICONS.get(status, ("?", "dim"))
        parts = [f"[{style}]{icon}[/] {escape(node.label)}"]
        if node.kind:
            parts.append(f"[dim]{escape(node.kind)}[/]")
        if status == "skipped":
            parts.append("[dim]skipped[/]")
        elif started:
            parts.append(seconds(((ended or now) - started) / 1e9))
        if node.attempts > 1:
            parts.append(f"[yellow]attempt {node.attempts}[/]")
        if tokens:
            parts.append(f"[magenta]{tokens} tokens[/]")
        if node.note and (status == "retrying" or node.note.startswith("compensat")):
            parts.append(f"[yellow]{escape(node.note)}[/]")
        if status == "failed" and node.error:
            parts.append(f"[red]{escape(node.error[:200])}[/]")
        return "  ".join(parts)


class _Tree:
    """Stands in for a rich tree whose rows are hidden, so totals still add up."""

    def add(self, label: Any) -> _Tree:
        return self


def _visible(children: list[tuple[str, _Node]]) -> set[str]:
    """The children worth a row: all when few; else the active and failed ones and the most recent."""
    if len(children) <= _MAX_CHILDREN:
        return {path for path, _ in children}
    important = [path for path, node in children if node.status in (*_ACTIVE, "failed")][: _MAX_CHILDREN - 2]
    recent = [path for path, _ in children if path not in important][-(_MAX_CHILDREN - len(important)) :]
    return set(important) | set(recent)


RunConsole = PlainConsole | LiveConsole


def make_console(stream: IO[str], *, live: bool, attempts: AttemptsLookup | None = None) -> RunConsole:
    """The console for ``stream``: a live tree when it is a terminal, plain lines otherwise."""
    return LiveConsole(stream, attempts) if live else PlainConsole(stream, attempts)
