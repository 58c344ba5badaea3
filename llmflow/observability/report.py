"""The run report: one self-contained HTML page (no scripts, no network) with the run, its graph, a Gantt
timeline and every step's details. Everything shown is escaped: outputs are untrusted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.observability.graph_view import ICONS, css_status, graph_html
from llmflow.observability.report_style import STYLE
from llmflow.observability.timeline import Instance, RunTimeline, folded_summary, static_path, tokens

if TYPE_CHECKING:
    from llmflow.compiler.graph import Workflow

#: Longest value shown whole; longer ones are cut, saying how much was left out.
MAX_VALUE_CHARS = 20_000
#: Events listed per step.
MAX_EVENTS = 50
#: Lines of workflow source shown per step.
MAX_SOURCE_LINES = 40
#: Scripts are refused outright: the page has none, so an output that slipped past escaping could not run.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render_report(
    timeline: RunTimeline,
    workflow: Workflow | None,
    *,
    graph_problem: str | None = None,
    sources: Mapping[str, Path] | None = None,
) -> str:
    """The report page for one run. ``workflow`` (its compiled frozen copy) draws the graph and shows each
    step's definition from ``sources`` (display file name → frozen file); without it, ``graph_problem`` says
    why there is no graph."""
    meta = timeline.meta
    anchors = {node.path: f"i{index}" for index, node in enumerate(timeline.instances)}
    title = f"{meta.get('workflow', '?')} · run {meta.get('id', '?')}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        _header(timeline),
        _graph_section(timeline, workflow, graph_problem, anchors),
        _gantt(timeline, anchors),
        _steps(timeline, anchors, workflow, _SourceFiles(sources or {})),
        _footer(),
        "</body>\n</html>\n",
    ]
    return "".join(parts)


# -- pieces ----------------------------------------------------------------------------------------------
def _header(timeline: RunTimeline) -> str:
    meta = timeline.meta
    status = str(meta.get("status", "unknown"))
    rows: list[tuple[str, str]] = [
        ("run", _code(meta.get("id"))),
        ("workflow file", _code(meta.get("file"))),
        ("started", escape(str(meta.get("started") or meta.get("created") or "—"))),
        ("ended", escape(str(meta.get("ended") or "—"))),
        ("duration", escape(_seconds(timeline.duration) if timeline.start is not None else "—")),
    ]
    if meta.get("resumes"):
        rows.append(("resumed", escape(f"{meta['resumes']}×")))
    usage = meta.get("usage") or {}
    if tokens(usage):
        cost = float(usage.get("cost") or 0)
        rows.append(
            (
                "usage",
                escape(
                    f"{tokens(usage)} tokens ({_num(usage.get('input_tokens'))} in, "
                    f"{_num(usage.get('output_tokens'))} out), ${cost:.4f}"
                ),
            )
        )
    if meta.get("error"):
        step = meta.get("failed_step")
        named = step and str(meta["error"]).startswith(f"step '{step}'")  # "step 'fetch': command failed …"
        where = f" (step {step})" if step and not named else ""
        rows.append(("error", f'<span class="error">{escape(str(meta["error"]) + where)}</span>'))
    if meta.get("waiting_for"):
        rows.append(("waiting for", escape(", ".join(map(str, meta["waiting_for"])))))
    if timeline.compensated:
        rows.append(("compensated", escape(", ".join(timeline.compensated))))
    rows.append(("inputs", _value(meta.get("inputs") or {})))
    if meta.get("outputs") not in (None, {}):
        rows.append(("outputs", _value(meta.get("outputs"))))
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return (
        f"<header><h1>{escape(str(meta.get('workflow', '?')))} "
        f'<span class="badge {css_status(status)}">{escape(status)}</span></h1>'
        f'<table class="facts">{table}</table></header>\n'
    )


def _graph_section(
    timeline: RunTimeline, workflow: Workflow | None, problem: str | None, anchors: Mapping[str, str]
) -> str:
    if workflow is None:
        note = escape(problem or "the workflow could not be compiled")
        return f'<section id="graph"><h2>Graph</h2><p class="note">No graph: {note}</p></section>\n'
    first: dict[str, str] = {}
    for node in timeline.instances:
        if not node.placeholder:
            first.setdefault(static_path(node.path), anchors[node.path])
    legend = "".join(
        f'<span class="legend-item {css_status(status)}"><span class="swatch"></span>{escape(status)}</span>'
        for status in ("succeeded", "failed", "skipped", "cancelled", "waiting", "running", "pending")
    )
    return (
        f'<section id="graph"><h2>Graph</h2><div class="legend">{legend}</div>'
        f'<div class="graph">{graph_html(workflow, timeline.counts, first)}</div></section>\n'
    )


def _gantt(timeline: RunTimeline, anchors: Mapping[str, str]) -> str:
    if timeline.start is None or not timeline.instances:
        return '<section id="timeline"><h2>Timeline</h2><p class="note">No step ran.</p></section>\n'
    total = timeline.duration
    ticks = "".join(
        f'<span class="tick" style="left:{fraction * 100:.3f}%">{escape(_seconds(total * fraction))}</span>'
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    )
    rows = [f'<div class="gantt-row axis"><div class="gantt-label"></div><div class="track">{ticks}</div></div>']
    for node in timeline.instances:
        rows.append(_gantt_row(timeline, node, anchors[node.path]))
    return f'<section id="timeline"><h2>Timeline</h2><div class="gantt">{"".join(rows)}</div></section>\n'


def _gantt_row(timeline: RunTimeline, node: Instance, anchor: str) -> str:
    text = f"{node.label} {folded_summary(node.folded)}" if node.folded else node.label
    label = (
        f'<div class="gantt-label" style="padding-left:{node.depth * 1.1:.1f}em">'
        f'<span class="icon">{ICONS.get(node.status, "?")}</span> '
        f'<a href="#{anchor}" title="{escape(node.path)}">{escape(text)}</a></div>'
    )
    bar = ""
    start, end = timeline.offset(node.started), timeline.offset(node.ended if node.ended is not None else timeline.end)
    if start is not None and end is not None:
        left = max(0.0, min(100.0, start / timeline.duration * 100))
        width = max(0.25, min(100.0 - left, (end - start) / timeline.duration * 100))
        tip = f"{node.path}: +{_seconds(start)} → +{_seconds(end)}"
        if node.duration is not None:
            tip += f" ({_seconds(node.duration)})"
        kind = " group" if node.placeholder else ""
        bar = f'<div class="bar{kind}" style="left:{left:.3f}%;width:{width:.3f}%" title="{escape(tip)}"></div>'
    duration = _seconds(node.duration) if node.duration is not None and not node.placeholder else ""
    return (
        f'<div class="gantt-row {css_status(node.status)}">{label}<div class="track">{bar}</div>'
        f'<div class="gantt-time">{escape(duration)}</div></div>'
    )


def _steps(timeline: RunTimeline, anchors: Mapping[str, str], workflow: Workflow | None, sources: _SourceFiles) -> str:
    items = [_step(timeline, node, anchors[node.path], workflow, sources) for node in timeline.instances]
    return f'<section id="steps"><h2>Steps</h2>{"".join(items)}</section>\n'


def _step(timeline: RunTimeline, node: Instance, anchor: str, workflow: Workflow | None, sources: _SourceFiles) -> str:
    facts: list[tuple[str, str]] = [("path", _code(node.path)), ("status", escape(node.status))]
    definition = None
    if workflow is not None and not node.placeholder:
        definition = workflow.nodes.get(static_path(node.path))
    kind = node.kind or (definition.kind if definition is not None else None)
    if node.placeholder:
        kind = "folded items" if node.folded else "iteration" if node.path.endswith("]") else "section"
    if kind:
        facts.append(("kind", escape(kind)))
    if node.folded:
        facts.append(("left out", escape(folded_summary(node.folded))))
    if definition is not None and definition.name:
        facts.append(("name", escape(definition.name)))
    if node.started is not None:
        facts.append(("started", escape(f"{_clock(node.started)} (+{_seconds(timeline.offset(node.started) or 0)})")))
    if node.ended is not None:
        facts.append(("ended", escape(f"{_clock(node.ended)} (+{_seconds(timeline.offset(node.ended) or 0)})")))
    if node.duration is not None:
        facts.append(("duration", escape(_seconds(node.duration))))
    if node.attempts:
        facts.append(("attempts", escape(str(node.attempts))))
    if node.usage and (tokens(node.usage) or node.usage.get("calls")):
        facts.append(("usage", _value(node.usage)))
    if node.error:
        facts.append(("error", f'<pre class="error">{escape(_cut(node.error))}</pre>'))
    if node.error_detail and set(node.error_detail) - {"message"}:
        facts.append(("error details", _value(node.error_detail)))
    if node.recorded and not node.placeholder:
        facts.append(("output", _value(node.output)))
    elif node.preview:
        facts.append(("output preview", f"<pre>{escape(_cut(node.preview))}</pre>"))
    extra = {key: value for key, value in (node.extra or {}).items() if key != "usage"}
    if extra:
        facts.append(("recorded", _value(extra)))
    if definition is not None and not node.placeholder:
        source = sources.definition(definition.location.file, definition.location.line, definition.location.column)
        if source:
            facts.append((f"definition ({escape(str(definition.location))})", f"<pre>{escape(source)}</pre>"))
    if node.events:
        facts.append(("events", _events(timeline, node.events)))
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts)
    summary = [f'<span class="icon">{ICONS.get(node.status, "?")}</span>', f"<code>{escape(node.path)}</code>"]
    if kind:
        summary.append(f'<span class="kind">{escape(kind)}</span>')
    if node.duration is not None and not node.placeholder:
        summary.append(f'<span class="meta">{escape(_seconds(node.duration))}</span>')
    if (node.attempts or 1) > 1:
        summary.append(f'<span class="meta">{node.attempts} attempts</span>')
    if tokens(node.usage) and not node.placeholder:
        summary.append(f'<span class="meta">{tokens(node.usage)} tokens</span>')
    if node.folded:
        summary.append(f'<span class="meta">{escape(folded_summary(node.folded))}</span>')
    opened = " open" if node.status == "failed" and not node.placeholder else ""
    classes = f"step {css_status(node.status)}{' group' if node.placeholder else ''}"
    return (
        f'<details class="{classes}" id="{anchor}" style="margin-left:{node.depth * 1.1:.1f}em"{opened}>'
        f'<summary>{" ".join(summary)}</summary><table class="facts">{table}</table></details>'
    )


def _events(timeline: RunTimeline, events: list[dict[str, Any]]) -> str:
    rows = []
    for event in events[:MAX_EVENTS]:
        moment = float(event.get("ts") or 0) / 1e9
        offset = timeline.offset(moment)
        data = json.dumps(event.get("data") or {}, ensure_ascii=False, default=str)
        rows.append(
            f"<tr><td>+{escape(_seconds(offset or 0))}</td><td>{escape(str(event.get('type')))}</td>"
            f"<td>{escape(str(event.get('attempt', '')))}</td><td><code>{escape(_cut(data, 2000))}</code></td></tr>"
        )
    more = f'<p class="note">{len(events) - MAX_EVENTS} more events not shown</p>' if len(events) > MAX_EVENTS else ""
    head = "<tr><th>at</th><th>event</th><th>attempt</th><th>data</th></tr>"
    return f'<table class="events">{head}{"".join(rows)}</table>{more}'


def _footer() -> str:
    from llmflow import __version__

    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<footer>Generated by llmflow {escape(__version__)} on {escape(made)}.</footer>\n"


# -- values ----------------------------------------------------------------------------------------------
def _value(value: Any) -> str:
    """A value as escaped, pretty JSON in a ``pre`` (cut when long); text is shown as it is."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            text = repr(value)
    return f"<pre>{escape(_cut(text))}</pre>"


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters not shown)"


def _code(value: object) -> str:
    return f"<code>{escape(str(value if value is not None else '—'))}</code>"


def _num(value: object) -> str:
    return str(int(value)) if isinstance(value, (int, float)) else "0"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f}ms" if value >= 0.001 or value == 0 else f"{value * 1000:.2f}ms"
    if value < 60:
        return f"{value:.2f}s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


def _clock(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, timezone.utc)
    return f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 1000:03d}Z"


class _SourceFiles:
    """The workflow's frozen source files, each read once, by the names node locations use."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self._paths = paths
        self._lines: dict[str, list[str]] = {}

    def definition(self, file: str, line: int, column: int) -> str | None:
        """The lines that define a node: its first line and those indented under it."""
        lines = self._read(file)
        if not 0 < line <= len(lines):
            return None
        chosen = [lines[line - 1]]
        for text in lines[line:]:
            if text.strip() and len(text) - len(text.lstrip(" ")) < column - 1:
                break
            chosen.append(text)
            if len(chosen) >= MAX_SOURCE_LINES:
                chosen.append("…")
                break
        return "\n".join(chosen).rstrip()

    def _read(self, file: str) -> list[str]:
        if file not in self._lines:
            path = self._paths.get(file)
            try:
                self._lines[file] = path.read_text(encoding="utf-8").splitlines() if path is not None else []
            except (OSError, UnicodeDecodeError):
                self._lines[file] = []
        return self._lines[file]
