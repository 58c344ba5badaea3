"""The workflow graph as nested HTML boxes (patterns hold their sections and steps), coloured by run status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from html import escape

from llmflow.compiler.graph import Node, ParallelNode, Workflow
from llmflow.diagrams import describe, sections

#: Statuses a node can be drawn with, worst first: the first one any instance has colours the node.
STATUS_ORDER = ("failed", "waiting", "running", "cancelled", "succeeded", "skipped")
ICONS = {
    "succeeded": "✓",
    "failed": "✗",
    "skipped": "–",
    "waiting": "⏸",
    "running": "…",
    "cancelled": "⊘",
    "pending": "·",
}


def overall(statuses: Counter[str]) -> str:
    """The status a node is drawn with, given how many of its instances ended how (``pending``: none ran)."""
    if not statuses:
        return "pending"
    return next((status for status in STATUS_ORDER if statuses.get(status)), "pending")


def css_status(status: str) -> str:
    """A status as a CSS class name (unknown ones become ``unknown``: class names never come from data)."""
    return f"st-{status}" if status in ICONS else "st-unknown"


def graph_html(
    workflow: Workflow, statuses: Mapping[str, Counter[str]], anchors: Mapping[str, str] | None = None
) -> str:
    """``workflow``'s steps as nested boxes; ``statuses`` counts instance statuses by static path and
    ``anchors`` links a static path to the element that details its first instance."""
    return "".join(_flow(workflow.steps, statuses, anchors or {}))


def _flow(nodes: tuple[Node, ...], statuses: Mapping[str, Counter[str]], anchors: Mapping[str, str]) -> Iterator[str]:
    yield '<ol class="flow">'
    for position, node in enumerate(nodes):
        if position:
            yield '<li class="arrow" aria-hidden="true">↓</li>'
        yield from _node(node, statuses, anchors)
    yield "</ol>"


def _node(node: Node, statuses: Mapping[str, Counter[str]], anchors: Mapping[str, str]) -> Iterator[str]:
    counts = statuses.get(node.path, Counter())
    status = overall(counts)
    parts = sections(node)
    classes = f"node {'pattern' if parts else 'leaf'} {css_status(status)}"
    yield f'<li class="{classes}" data-path="{escape(node.path)}">'
    title = escape(node.title)
    anchor = anchors.get(node.path)
    name = f'<a href="#{escape(anchor)}">{title}</a>' if anchor else title
    tally = _tally(counts)
    yield (
        f'<div class="node-head"><span class="icon">{ICONS.get(status, "?")}</span> {name}'
        f' <span class="kind">{escape(describe(node))}</span>'
        + (f' <span class="tally">{escape(tally)}</span>' if tally else "")
        + (f' <span class="cond">if {escape(node.condition.source)}</span>' if node.condition is not None else "")
        + "</div>"
    )
    if parts:
        side_by_side = len(parts) > 1 or isinstance(node, ParallelNode)
        yield f'<div class="sections{" row" if side_by_side else ""}">'
        for label, steps in parts:
            yield '<div class="section">'
            if label:
                yield f'<div class="section-label">{escape(label)}</div>'
            yield from _flow(steps, statuses, anchors)
            yield "</div>"
        yield "</div>"
    yield "</li>"


def _tally(counts: Counter[str]) -> str:
    """``3 instances: 2 ✓ 1 ✗`` for a node that ran more than once (nothing for one that ran once)."""
    total = sum(counts.values())
    if total <= 1:
        return ""
    spread = " ".join(f"{counts[status]} {ICONS[status]}" for status in STATUS_ORDER if counts.get(status))
    return f"{total}× {spread}" if len(counts) > 1 else f"{total}×"
