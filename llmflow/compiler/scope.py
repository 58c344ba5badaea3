"""Which names and steps an expression may refer to, and the diagnostics when it refers to others."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from llmflow.spec.document import DocPath

if TYPE_CHECKING:
    from llmflow.expressions import Reference

#: Names every expression can use.
GLOBAL_NAMES = frozenset({"inputs", "vars", "steps", "session", "run", "env", "secrets"})

#: Names that are functions in conditions or globals in templates, never data.
BUILTIN_NAMES = frozenset(
    {
        "len",
        "min",
        "max",
        "sum",
        "any",
        "all",
        "abs",
        "round",
        "int",
        "float",
        "str",
        "bool",
        "sorted",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    }
)

#: What ``steps.<id>`` offers.
STEP_FIELDS = frozenset(
    {
        "output",
        "status",
        "error",
        "attempts",
        "duration",
        "started",
        "ended",
        "usage",
        "branch",
        "errors",
        "stdout",
        "stderr",
        "exit_code",
        "status_code",
        "headers",
        "cached",
        "path",
        "iterations",
        "caught",
        "bytes",
        "count",
    }
)

#: When a field is evaluated relative to its node.
Timing = Literal["before", "after-body", "outputs", "hook"]


@dataclass(slots=True)
class StepInfo:
    """Where a node sits in the graph, for reference checks."""

    path: str
    doc_path: DocPath
    order: int
    kind: str
    named: bool
    ancestors: tuple[str, ...]  # graph paths, outermost first
    iterations: tuple[str, ...]  # loop/map/stream ancestors, outermost first
    branches: tuple[tuple[str, str], ...]  # (parallel path, branch name) chain
    end: int = -1  # order of the last node in this subtree


@dataclass(slots=True)
class Usage:
    """One expression's references, to check once every node is known."""

    owner: str  # graph path of the node the field belongs to
    doc_path: DocPath
    references: frozenset[Reference]
    names: frozenset[str]  # local names visible at the field (loop variables, error, event …)
    timing: Timing = "before"
    conditions: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad reference: code and message, a suggested name, and where the reference is in its field."""

    code: str
    message: str
    suggestion: str | None
    needle: str  # the reference's text as usually written (``steps.fetch.output``)
    offset: int | None  # 0-based offset of the reference in the field's text, when known


@dataclass(slots=True)
class ScopeTable:
    """Everything the reference checks need: node positions, user ids, declared names."""

    steps: dict[str, StepInfo] = field(default_factory=dict)  # by graph path
    ids: dict[str, str] = field(default_factory=dict)  # user id -> graph path
    inputs: frozenset[str] = frozenset()
    variables: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()

    def problems(self, usage: Usage) -> Iterator[Problem]:
        """Every bad reference in ``usage``."""
        for reference in sorted(usage.references, key=lambda r: (r.offset or 0, r.root, r.path)):
            root: str = reference.root
            parts: tuple[str, ...] = reference.path
            needle = ".".join((root, *parts[:2]))
            for code, message, suggestion in self._check(usage, root, parts):
                yield Problem(code, message, suggestion, needle, reference.offset)

    def _check(self, usage: Usage, root: str, parts: tuple[str, ...]) -> Iterator[tuple[str, str, str | None]]:
        if root in usage.names or root in BUILTIN_NAMES:
            return
        if root not in GLOBAL_NAMES:
            choices = sorted(GLOBAL_NAMES | usage.names)
            yield "unknown-name", f"unknown name '{root}'", _closest(root, choices)
            return
        if not parts:
            return
        first = parts[0]
        if root == "inputs" and first not in self.inputs:
            yield "unknown-input", f"unknown input '{first}'", _closest(first, self.inputs)
        elif root == "vars" and first not in self.variables:
            message = f"unknown variable '{first}': no 'set' step or 'vars' entry defines it"
            yield "unknown-variable", message, _closest(first, self.variables)
        elif root == "secrets" and first not in self.secrets:
            message = f"unknown secret '{first}': declare it in 'secrets'"
            yield "unknown-secret", message, _closest(first, self.secrets)
        elif root == "steps":
            yield from self._check_step(usage, first, parts[1:])

    def _check_step(self, usage: Usage, step_id: str, rest: tuple[str, ...]) -> Iterator[tuple[str, str, str | None]]:
        target_path = self.ids.get(step_id)
        if target_path is None:
            yield "unknown-step", f"unknown step '{step_id}'", _closest(step_id, self.ids)
            return
        if rest and rest[0] not in STEP_FIELDS:
            message = f"steps.{step_id} has no field '{rest[0]}'"
            yield "unknown-field", message, _closest(rest[0], STEP_FIELDS)
        if usage.timing == "hook":
            return
        target = self.steps[target_path]
        if usage.timing == "outputs":
            if target.iterations:
                yield "out-of-scope", _inside_message(step_id, self.steps[target.iterations[-1]]), None
            return
        owner = self.steps[usage.owner]
        inside_owner = target.path in self.steps and owner.path in target.ancestors
        if target.path == owner.path:
            yield "self-reference", f"step '{step_id}' cannot refer to its own result here", None
            return
        if target.path in owner.ancestors:
            yield (
                "ancestor-reference",
                f"step '{step_id}' has not finished when this runs: it contains it",
                None,
            )
            return
        if inside_owner and usage.timing == "after-body":
            return  # `until` sees the steps of the iteration that just ran
        if target.order > owner.order:
            yield "forward-reference", f"step '{step_id}' runs after '{_label(owner)}'", None
            return
        visible = owner.iterations
        if not _is_prefix(target.iterations, visible):
            enclosing = self.steps[target.iterations[len(_common(target.iterations, visible))]]
            yield "out-of-scope", _inside_message(step_id, enclosing), None
            return
        for parallel, branch in target.branches:
            for other_parallel, other_branch in owner.branches:
                if parallel == other_parallel and branch != other_branch:
                    message = (
                        f"step '{step_id}' runs in parallel branch '{branch}', at the same time as "
                        f"'{_label(owner)}' in branch '{other_branch}'"
                    )
                    yield "concurrent-reference", message, None
                    return


def _label(info: StepInfo) -> str:
    return info.path.rsplit("/", 1)[-1]


def _inside_message(step_id: str, enclosing: StepInfo) -> str:
    ref = f"steps.{_label(enclosing)}.output"
    return f"step '{step_id}' runs inside {enclosing.kind} '{_label(enclosing)}'; from outside it use {ref}"


def _is_prefix(prefix: tuple[str, ...], whole: tuple[str, ...]) -> bool:
    return whole[: len(prefix)] == prefix


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    common: list[str] = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common.append(x)
    return tuple(common)


def _closest(word: str, choices: Iterable[str]) -> str | None:
    from llmflow.spec.validator import suggest

    return suggest(word, choices)
