"""Execution frames: the variables, step results and local names a node instance sees."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from llmflow.records import Record

_NOT_RUN = {"output": None, "status": "skipped", "error": None, "attempts": 0, "duration": 0.0}


class Viewable(Protocol):
    """A finished step's result that can show itself as ``steps.<id>`` (an ``Outcome``)."""

    def view(self) -> dict[str, Any]:
        """What ``steps.<id>`` shows."""


class StepsView(Mapping[str, Any]):
    """``steps.<id>`` for expressions: this frame's results layered over the enclosing frames'.

    Steps that exist in the workflow but have not run (an unchosen branch) read as ``skipped``. A result
    is turned into its view the first time an expression reads it (most never are).
    """

    __slots__ = ("_known", "_own", "_parent")

    def __init__(self, parent: StepsView | None, known: frozenset[str]) -> None:
        self._own: dict[str, Any] = {}
        self._parent = parent
        self._known = known

    @property
    def known(self) -> frozenset[str]:
        """Every step id the workflow has (run or not)."""
        return self._known

    def record(self, step_id: str, result: dict[str, Any] | Viewable) -> None:
        """Make a finished step visible (its view, or a result that makes its view when first read)."""
        self._own[step_id] = result

    def forget(self, step_ids: Iterable[str]) -> None:
        """Make steps of this scope read as not run again (a retried composite's earlier attempt)."""
        for step_id in step_ids:
            self._own.pop(step_id, None)

    def __getitem__(self, key: str) -> Any:
        scope: StepsView | None = self
        while scope is not None:
            found = scope._own.get(key)
            if found is not None:
                if type(found) is not dict:
                    found = scope._own[key] = found.view()
                return found
            scope = scope._parent
        if key in self._known:
            return _NOT_RUN
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._known or any(key in s._own for s in self._chain()))

    def _chain(self) -> Iterator[StepsView]:
        scope: StepsView | None = self
        while scope is not None:
            yield scope
            scope = scope._parent

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for scope in self._chain():
            for key in scope._own:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Frame(Record):
    """Where a node instance runs.

    ``static_base``/``instance_base`` turn a node's static path (``label/classify``) into its instance
    path (``label[3]/classify``) inside loop iterations, map items and sub-workflows.
    """

    __slots__ = ("env", "inputs", "instance_base", "locals", "static_base", "steps", "vars", "workflow_dir")

    def __init__(
        self,
        inputs: Mapping[str, Any],
        vars: dict[str, Any],
        steps: StepsView,
        locals: dict[str, Any] | None = None,
        static_base: str = "",
        instance_base: str = "",
        workflow_dir: str = ".",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.inputs = inputs
        self.vars = vars
        self.steps = steps
        self.locals: dict[str, Any] = locals if locals is not None else {}
        self.static_base = static_base
        self.instance_base = instance_base
        self.workflow_dir = workflow_dir
        self.env = env  # a sub-workflow's own ``env``; None: the run's

    def instance_path(self, static_path: str) -> str:
        """The journal path of a node in this frame."""
        if not self.static_base and not self.instance_base:
            return static_path
        return self.instance_base + static_path[len(self.static_base) :]

    def nested(
        self,
        static_base: str,
        instance_base: str,
        *,
        locals: Mapping[str, Any] | None = None,
        isolated: bool = False,
        new_steps: bool = True,
    ) -> Frame:
        """A frame for an iteration, item or branch: its own step results, shared or copied variables."""
        merged = dict(self.locals)
        if locals:
            merged.update(locals)
        return Frame(
            inputs=self.inputs,
            vars=dict(self.vars) if isolated else self.vars,
            steps=StepsView(self.steps, self.steps.known) if new_steps else self.steps,
            locals=merged,
            static_base=static_base,
            instance_base=instance_base,
            workflow_dir=self.workflow_dir,
            env=self.env,
        )

    def with_locals(self, **names: Any) -> Frame:
        """The same frame with extra local names (``error`` inside ``catch``)."""
        merged = dict(self.locals)
        merged.update(names)
        return Frame(
            inputs=self.inputs,
            vars=self.vars,
            steps=self.steps,
            locals=merged,
            static_base=self.static_base,
            instance_base=self.instance_base,
            workflow_dir=self.workflow_dir,
            env=self.env,
        )
