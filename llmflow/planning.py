"""Dry-run plans: every node of a compiled workflow with what it would do, rendered where already known."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmflow.compiler.graph import ActionNode, LoopNode, MapNode, Node, SwitchNode, Workflow, WorkflowNode
from llmflow.diagrams import describe, sections
from llmflow.errors import ExpressionError, InputError
from llmflow.expressions import ValueTemplate

#: Marks a value filled in from a template inside a shown command.
VALUE_OPEN, VALUE_CLOSE = "«", "»"
#: Longest JSON shown for one structured value before it is cut.
_MAX_VALUE = 300
#: The reference forms the shell rule writes for ``$LLMFLOW_V<n>`` (``shell_lexer.FORMS``), longest first.
_REFERENCE = re.compile(r"""'"\$\{(LLMFLOW_V\d+)\}"'|"\$\{(LLMFLOW_V\d+)\}"|\$\{(LLMFLOW_V\d+)\}""")
_MASK = "***"

Context = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlanDetail:
    """One thing a node would use: its label, the text shown, and whether it is rendered only at run time."""

    label: str
    text: str
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One node of the plan, in document order; ``branch`` names the section (``then``, a branch …) it is in."""

    depth: int
    path: str
    parent: str
    branch: str
    title: str
    kind: str
    condition: str | None
    details: tuple[PlanDetail, ...]


def plan(workflow: Workflow, inputs: Mapping[str, Any]) -> list[PlanEntry]:
    """Every node of ``workflow`` with its kind, condition and rendered action, for ``run --dry-run``."""
    entries: list[PlanEntry] = []
    _walk(workflow.steps, _context(workflow, inputs), entries, depth=0, prefix="", parent="", branch="")
    return entries


def _context(workflow: Workflow, inputs: Mapping[str, Any]) -> Context:
    """The names known before anything runs: inputs (secrets masked), initial ``vars`` and ``env``."""
    shown = {name: _MASK if spec.secret else inputs.get(name) for name, spec in workflow.inputs.items()}
    secret = {name for flow in workflow.workflows() for name in flow.secrets}
    env = {name: (_MASK if name in secret else value) for name, value in os.environ.items()}
    context: Context = {"inputs": shown, "vars": dict(workflow.variables), "env": env}
    if workflow.env is not None:
        with contextlib.suppress(ExpressionError):  # a step using such a name shows its template instead
            env.update({str(k): str(v) for k, v in workflow.env.render(context).items()})
    return context


def _walk(
    nodes: tuple[Node, ...],
    context: Context | None,
    entries: list[PlanEntry],
    *,
    depth: int,
    prefix: str,
    parent: str,
    branch: str,
) -> None:
    for node in nodes:
        path = prefix + node.path
        condition = node.condition.source if node.condition is not None else None
        entries.append(
            PlanEntry(
                depth, path, parent, branch, node.title, describe(node), condition, tuple(_details(node, context))
            )
        )
        parts = sections(node)
        if not parts:
            if context is not None and isinstance(node, ActionNode) and node.action == "set":
                _forget(context, [node])  # later steps see the value set here, not the initial one
            continue
        if isinstance(node, WorkflowNode):
            inner = _sub_context(node, context)
            _walk(node.workflow.steps, inner, entries, depth=depth + 1, prefix=path + "/", parent=path, branch="")
            continue
        if context is not None and (len(parts) > 1 or isinstance(node, (LoopNode, MapNode))):
            _forget(context, [node])  # iterations and branches may see each other's writes: show templates
        for label, (_, steps) in zip(_section_labels(node, parts), parts, strict=True):
            _walk(steps, context, entries, depth=depth + 1, prefix=prefix, parent=path, branch=label)


def _section_labels(node: Node, parts: list[tuple[str, tuple[Node, ...]]]) -> list[str]:
    if isinstance(node, SwitchNode):
        labels = [f"{case.name} (when {case.when.source})" for case in node.cases]
        return labels + ["default"] * (len(parts) - len(labels))
    return [label for label, _ in parts]


def _forget(context: Context, nodes: list[Node]) -> None:
    """Drop the ``vars`` that ``set`` steps in ``nodes`` (and below) assign: their value is not known yet."""
    known: dict[str, Any] = context["vars"]
    for node in _subtree(nodes):
        if isinstance(node, ActionNode) and node.action == "set":
            raw = _raw(node.config)
            for name in raw if isinstance(raw, dict) else ():
                known.pop(str(name), None)


def _subtree(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        for _, steps in sections(node):
            yield from _subtree(list(steps))


def _sub_context(node: WorkflowNode, context: Context | None) -> Context | None:
    """The names a sub-workflow sees: its inputs from ``with:`` when those are known already."""
    if context is None:
        return None
    from llmflow.engine.inputs import resolve_inputs

    try:
        arguments = node.arguments.render(context)
        inputs = resolve_inputs(node.workflow.inputs, arguments)
    except (ExpressionError, InputError):
        return None
    return _context(node.workflow, inputs) | {"env": context["env"]}


# -- what one node does ----------------------------------------------------------------------------------
def _details(node: Node, context: Context | None) -> Iterator[PlanDetail]:
    if isinstance(node, MapNode):
        yield _shown("items", node.items, context)
    elif isinstance(node, LoopNode):
        if node.for_each is not None:
            yield _shown("for_each", node.for_each, context)
        if node.times is not None:
            yield _shown("times", node.times, context)
    elif isinstance(node, WorkflowNode):
        yield _shown("with", node.arguments, context)
    elif isinstance(node, ActionNode):
        yield from _action_details(node, context)


def _action_details(node: ActionNode, context: Context | None) -> Iterator[PlanDetail]:
    raw = _raw(node.config)
    config: dict[str, Any] = raw if isinstance(raw, dict) else {}
    action = node.action
    if action == "run":
        yield _command(node, config, context)
    elif action == "llm":
        if isinstance(config.get("model"), str):
            yield PlanDetail("model", config["model"])
        for key in ("system", "prompt", "messages"):
            if key in config:
                yield _shown(key, config[key], context)
    elif action == "http":
        method = config.get("method", "GET")
        yield _shown("request", [method, config.get("url", "")], context, joined=True)
    elif action == "python":
        yield PlanDetail("call", str(node.options.get("call", "")))
    elif action == "set":
        yield _shown("set", config, context)
    elif action == "wait":
        from llmflow.durations import format_duration

        yield PlanDetail("duration", format_duration(float(node.options.get("seconds", 0))))
    elif action in ("write", "approval", "fail", "emit", "memory"):
        for key in ("path", "message", "event", "collection"):
            if key in config:
                yield _shown(key, config[key], context)
    elif config:  # an action a plugin registers (`action:`), shown without loading the plugin
        yield _shown("with", node.config, context)


def _command(node: ActionNode, config: dict[str, Any], context: Context | None) -> PlanDetail:
    if node.shell is None:
        return _shown("command", config.get("argv", []), context, argv=True)
    if context is not None:
        try:
            command = node.shell.render(context)
        except ExpressionError:
            pass
        else:
            return PlanDetail("command", _inline(command.script, command.env))
    return PlanDetail("command", node.shell.source, deferred=True)


def _inline(script: str, values: Mapping[str, str]) -> str:
    """``"${LLMFLOW_V1}"`` references replaced by the values they carry, marked as values."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return f"{VALUE_OPEN}{values.get(name, name)}{VALUE_CLOSE}"

    return _REFERENCE.sub(value, script)


def _shown(label: str, value: Any, context: Context | None, *, argv: bool = False, joined: bool = False) -> PlanDetail:
    """``value`` (a compiled template or raw data) rendered when its names are known, else its source."""
    template = value if isinstance(value, ValueTemplate) else ValueTemplate(value, frozenset(), False)
    if context is not None:
        try:
            rendered = template.render(context)
        except ExpressionError:
            pass
        else:
            return PlanDetail(label, _text(rendered, argv=argv, joined=joined))
    return PlanDetail(label, _text(_source(_raw(template)), argv=argv, joined=joined), deferred=True)


def _text(value: Any, *, argv: bool = False, joined: bool = False) -> str:
    if argv and isinstance(value, list):
        return shlex.join(item if isinstance(item, str) else json.dumps(item) for item in value)
    if joined and isinstance(value, list):
        return " ".join(item if isinstance(item, str) else json.dumps(item) for item in value)
    if isinstance(value, str):
        return value
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _raw(template: ValueTemplate) -> Any:
    # ValueTemplate keeps its compiled value private; the plan needs single fields of it and their source.
    return template._value


def _source(value: Any) -> Any:
    """A compiled value with every template turned back into its source text."""
    from llmflow.expressions import Template

    if isinstance(value, Template):
        return value.source
    if isinstance(value, dict):
        return {key: _source(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_source(item) for item in value]
    return value
