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
        yield f"{indent}{'└── ' if last else '├── '}{_one_line(node.title)}  [{_one_line(describe(node))}]"
        inner = indent + ("    " if last else "│   ")
        parts = sections(node)
        for index, (label, steps) in enumerate(parts):
            if label:
                final = index == len(parts) - 1
                yield f"{inner}{'└── ' if final else '├── '}{label}:"
                yield from _text_list(steps, inner + ("    " if final else "│   "))
            else:
                yield from _text_list(steps, inner)


def _one_line(text: str) -> str:
    """``text`` with its line breaks and runs of white space as single spaces: a step name or a condition
    written over several lines would otherwise break the tree, or end a Mermaid statement mid-label."""
    return " ".join(text.split())


_ESCAPES = {"_": "__", "-": "_h", "/": "_s"}


def _ident(path: str) -> str:
    """A Mermaid/dot identifier for a node path; distinct paths give distinct identifiers."""
    return "n_" + re.sub(r"[^A-Za-z0-9]", lambda m: _ESCAPES.get(m.group(), f"_x{ord(m.group()):x}_"), path)


def _section_ident(ident: str, label: str) -> str:
    # "_b" never comes out of _ident's escapes, so a section cannot take a node's identifier.
    return f"{ident}_b{_ident(label)[2:]}"


def _mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label (entity codes keep quotes and angle brackets literal).

    ``#`` goes first: Mermaid reads any ``#word;`` in the diagram as an entity code, so a name such as
    ``issue #42; retry`` would otherwise be drawn as ``issue *; retry``."""
    return (
        _one_line(text)
        .replace("#", "#35;")
        .replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
    )


def _dot_text(text: str) -> str:
    """Text for a quoted dot string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid(workflow: Workflow) -> Iterator[str]:
    yield "flowchart TD"
    yield from _mermaid_list(workflow.steps, "  ")


def _mermaid_list(nodes: tuple[Node, ...], indent: str) -> Iterator[str]:
    for node in nodes:
        parts = sections(node)
        ident = _ident(node.path)
        if not parts:
            yield f'{indent}{ident}["{_mermaid_text(node.title)}<br/><i>{_mermaid_text(describe(node))}</i>"]'
            continue
        yield f'{indent}subgraph {ident}["{_mermaid_text(node.title)}: {_mermaid_text(describe(node))}"]'
        yield f"{indent}  direction TB"
        for label, steps in parts:
            if label and len(parts) > 1:
                yield f'{indent}  subgraph {_section_ident(ident, label)}["{_mermaid_text(label)}"]'
                yield from _mermaid_list(steps, indent + "    ")
                yield f"{indent}  end"
            else:
                yield from _mermaid_list(steps, indent + "  ")
        yield f"{indent}end"
    for first, second in pairwise(nodes):
        yield f"{indent}{_ident(first.path)} --> {_ident(second.path)}"


def _dot(workflow: Workflow) -> Iterator[str]:
    yield f'digraph "{_dot_text(workflow.name)}" {{'
    yield "  rankdir=TB;"
    yield "  compound=true;"
    yield '  node [shape=box, style=rounded, fontname="Helvetica"];'
    yield from _dot_list(workflow.steps, "  ")
    yield "}"


def _dot_anchor(node: Node) -> str:
    """A leaf inside ``node`` to draw edges to (dot edges join nodes; ``lhead``/``ltail`` clip them)."""
    for _, steps in sections(node):
        if steps:
            return _dot_anchor(steps[0])
    return _ident(node.path)


def _dot_edge(first: Node, second: Node) -> str:
    clips = []
    if sections(first):
        clips.append(f"ltail=cluster_{_ident(first.path)}")
    if sections(second):
        clips.append(f"lhead=cluster_{_ident(second.path)}")
    attributes = f" [{', '.join(clips)}]" if clips else ""
    return f"{_dot_anchor(first)} -> {_dot_anchor(second)}{attributes};"


def _dot_list(nodes: tuple[Node, ...], indent: str) -> Iterator[str]:
    for node in nodes:
        parts = sections(node)
        ident = _ident(node.path)
        if not parts:
            yield f'{indent}{ident} [label="{_dot_text(node.title)}\\n({_dot_text(describe(node))})"];'
            continue
        yield f"{indent}subgraph cluster_{ident} {{"
        yield f'{indent}  label="{_dot_text(node.title)}: {_dot_text(describe(node))}";'
        for label, steps in parts:
            if label and len(parts) > 1:
                yield f"{indent}  subgraph cluster_{_section_ident(ident, label)} {{"
                yield f'{indent}    label="{_dot_text(label)}";'
                yield from _dot_list(steps, indent + "    ")
                yield f"{indent}  }}"
            else:
                yield from _dot_list(steps, indent + "  ")
        yield f"{indent}}}"
    for first, second in pairwise(nodes):
        yield f"{indent}{_dot_edge(first, second)}"
