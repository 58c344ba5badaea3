"""Drawings of a compiled workflow: a text tree, Mermaid flowcharts and Graphviz dot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise

from llmflow.compiler.graph import (
    GroupNode,
    IfNode,
    LoopNode,
    MapNode,
    Node,
    ParallelNode,
    StreamNode,
    SwitchNode,
    TryNode,
    Workflow,
    WorkflowNode,
)

Section = tuple[str, tuple[Node, ...]]


def sections(node: Node) -> list[Section]:
    """The labelled step lists inside a pattern node (empty for leaves)."""
    if isinstance(node, (GroupNode, LoopNode, MapNode, StreamNode)):
        return [("", node.steps)]
    if isinstance(node, IfNode):
        return [("then", node.then)] + ([("else", node.otherwise)] if node.otherwise else [])
    if isinstance(node, SwitchNode):
        parts = [(case.name, case.steps) for case in node.cases]
        return parts + ([("default", node.default)] if node.default else [])
    if isinstance(node, ParallelNode):
        return [(branch.name, branch.steps) for branch in node.branches]
    if isinstance(node, TryNode):
        parts = [("try", node.body)]
        if node.catch:
            parts.append(("catch", node.catch))
        if node.finally_:
            parts.append(("finally", node.finally_))
        return parts
    if isinstance(node, WorkflowNode):
        return [(node.workflow.file, node.workflow.steps)]
    return []


def describe(node: Node) -> str:
    """A short label: the kind and what drives it."""
    if isinstance(node, MapNode):
        return f"map as {node.variable}"
    if isinstance(node, LoopNode):
        if node.for_each is not None:
            how = f"for_each as {node.variable}"
        elif node.times is not None:
            how = "times"
        elif node.while_ is not None:
            how = f"while {node.while_.source}"
        else:
            how = f"until {node.until.source if node.until else ''}"
        return f"loop {how} (max {node.max_iterations})"
    if isinstance(node, IfNode):
        return f"if {node.test.source}"
    if isinstance(node, WorkflowNode):
        return f"workflow {node.workflow.file}"
    return node.kind


def draw(workflow: Workflow, style: str) -> str:
    """The workflow drawn as ``text``, ``mermaid`` or ``dot``."""
    if style == "mermaid":
        return "\n".join(_mermaid(workflow))
    if style == "dot":
        return "\n".join(_dot(workflow))
    return "\n".join(_text(workflow))


def _text(workflow: Workflow) -> Iterator[str]:
    yield f"{workflow.name} ({workflow.file})"
    yield from _text_list(workflow.steps, "")


def _text_list(nodes: tuple[Node, ...], indent: str) -> Iterator[str]:
    for position, node in enumerate(nodes):
        last = position == len(nodes) - 1
        yield f"{indent}{'└── ' if last else '├── '}{node.title}  [{describe(node)}]"
        inner = indent + ("    " if last else "│   ")
        parts = sections(node)
        for index, (label, steps) in enumerate(parts):
            if label:
                final = index == len(parts) - 1
                yield f"{inner}{'└── ' if final else '├── '}{label}:"
                yield from _text_list(steps, inner + ("    " if final else "│   "))
            else:
                yield from _text_list(steps, inner)


def _ident(path: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", path)


def _label(text: str) -> str:
    return text.replace('"', "'")


def _mermaid(workflow: Workflow) -> Iterator[str]:
    yield "flowchart TD"
    yield from _mermaid_list(workflow.steps, "  ")


def _mermaid_list(nodes: tuple[Node, ...], indent: str) -> Iterator[str]:
    for node in nodes:
        parts = sections(node)
        ident = _ident(node.path)
        if not parts:
            yield f'{indent}{ident}["{_label(node.title)}<br/><i>{_label(describe(node))}</i>"]'
            continue
        yield f'{indent}subgraph {ident}["{_label(node.title)}: {_label(describe(node))}"]'
        yield f"{indent}  direction TB"
        for label, steps in parts:
            if label and len(parts) > 1:
                yield f'{indent}  subgraph {ident}__{_ident(label)}["{_label(label)}"]'
                yield from _mermaid_list(steps, indent + "    ")
                yield f"{indent}  end"
            else:
                yield from _mermaid_list(steps, indent + "  ")
        yield f"{indent}end"
    for first, second in pairwise(nodes):
        yield f"{indent}{_ident(first.path)} --> {_ident(second.path)}"


def _dot(workflow: Workflow) -> Iterator[str]:
    yield f'digraph "{_label(workflow.name)}" {{'
    yield "  rankdir=TB;"
    yield '  node [shape=box, style=rounded, fontname="Helvetica"];'
    yield from _dot_list(workflow.steps, "  ")
    yield "}"


def _dot_anchor(node: Node) -> str:
    """A leaf inside ``node`` to draw edges to (dot has no edges to clusters)."""
    parts = sections(node)
    for _, steps in parts:
        if steps:
            return _dot_anchor(steps[0])
    return _ident(node.path)


def _dot_list(nodes: tuple[Node, ...], indent: str) -> Iterator[str]:
    for node in nodes:
        parts = sections(node)
        ident = _ident(node.path)
        if not parts:
            yield f'{indent}{ident} [label="{_label(node.title)}\\n({_label(describe(node))})"];'
            continue
        yield f"{indent}subgraph cluster_{ident} {{"
        yield f'{indent}  label="{_label(node.title)}: {_label(describe(node))}";'
        for label, steps in parts:
            if label and len(parts) > 1:
                yield f"{indent}  subgraph cluster_{ident}__{_ident(label)} {{"
                yield f'{indent}    label="{_label(label)}";'
                yield from _dot_list(steps, indent + "    ")
                yield f"{indent}  }}"
            else:
                yield from _dot_list(steps, indent + "  ")
        yield f"{indent}}}"
    for first, second in pairwise(nodes):
        yield f"{indent}{_dot_anchor(first)} -> {_dot_anchor(second)};"
