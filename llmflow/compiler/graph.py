"""The compiled workflow: an immutable graph of frozen node objects, each with a stable path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from llmflow.records import FrozenRecord, frozen_error, rebuilt_record

if TYPE_CHECKING:
    from pathlib import Path

    from typing_extensions import dataclass_transform

    from llmflow.expressions import Condition, ShellTemplate, ValueTemplate
else:

    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls


EMPTY: Mapping[str, Any] = MappingProxyType({})
_NOT_MADE = object()
_Object = TypeVar("_Object", bound="Frozen")


@dataclass_transform(frozen_default=True)
class Frozen(FrozenRecord):
    """Base of the graph's classes: a field is an annotated class attribute (its value, if any, the default),
    as in a frozen dataclass; ``kw_only`` and ``eq`` are given as class keywords.

    Not ``@dataclass``: creating 22 dataclasses cost ~26 ms of every start-up (each runs ``exec``). The fields
    live in the instance ``__dict__`` and defaults stay class attributes, so a cached graph stores only the
    fields that differ from their default and is read back by setting one ``__dict__`` per object
    (``llmflow.graphcache``). ``eq`` classes compare and hash by their fields; the others by identity.
    """

    #: Every field in order; the positional ones (all unless ``kw_only``); the defaults by name.
    _fields: ClassVar[tuple[str, ...]] = ()
    _positional: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _names: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, *, eq: bool = True, kw_only: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect: a slow import, for nothing here)
        own = [name for name, kind in annotations.items() if "ClassVar" not in kind]
        cls._fields = (*cls._fields, *(name for name in own if name not in cls._fields))
        cls._positional = () if kw_only else cls._fields
        cls._defaults = {**cls._defaults, **{name: cls.__dict__[name] for name in own if name in cls.__dict__}}
        cls._names = frozenset(cls._fields)
        if not eq:
            cls.__eq__ = object.__eq__  # type: ignore[method-assign]
            cls.__hash__ = object.__hash__  # type: ignore[method-assign]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        values = cls._defaults.copy()
        if args:
            given = cls._positional[: len(args)]
            if len(args) > len(cls._positional) or not kwargs.keys().isdisjoint(given):
                raise TypeError(f"{cls.__name__}(): too many positional arguments, or one given twice")
            values.update(zip(given, args, strict=True))
        values.update(kwargs)
        if values.keys() != cls._names:
            missing = sorted(cls._names - values.keys())
            unknown = sorted(values.keys() - cls._names)
            raise TypeError(f"{cls.__name__}(): missing fields {missing}, unknown fields {unknown}")
        object.__setattr__(self, "__dict__", values)

    def _field_names(self) -> tuple[str, ...]:
        return self._fields

    def __reduce__(self) -> tuple[Any, ...]:
        # The fields alone: not what a workflow worked out from them (``Workflow._memo``), which refers back.
        values = self.__dict__
        if len(values) != len(self._names):
            values = {name: value for name, value in values.items() if name in self._names}
        return rebuilt_record, (type(self), dict(values))


def evolve(obj: _Object, **changes: Any) -> _Object:
    """A copy of a graph object with some fields changed (``dataclasses.replace`` for these classes)."""
    return type(obj)(**{**{name: getattr(obj, name) for name in obj._fields}, **changes})


class Location(tuple[str, int, int]):
    """Where a node is written: file, 1-based line and column.

    A tuple rather than a ``Frozen`` (every node has one): a cached graph rebuilds it with ``tuple.__new__``
    alone, without an instance dictionary or a call back into Python (a sixth of reading a large graph).
    Like the graph's values it is frozen, and equal only to a ``Location`` with the same fields.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ("file", "line", "column")

    def __new__(cls, file: str, line: int, column: int) -> Location:
        return tuple.__new__(cls, (file, line, column))

    def __getnewargs__(self) -> tuple[str, int, int]:
        return (self[0], self[1], self[2])

    @property
    def file(self) -> str:
        """The file's name as shown in messages."""
        return self[0]

    @property
    def line(self) -> int:
        """1-based line."""
        return self[1]

    @property
    def column(self) -> int:
        """1-based column."""
        return self[2]

    def __eq__(self, other: object) -> bool:
        return type(other) is Location and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __setattr__(self, name: str, value: Any) -> None:
        raise frozen_error(self, name)

    def __delattr__(self, name: str) -> None:
        raise frozen_error(self, name)

    def __repr__(self) -> str:
        return f"Location(file={self[0]!r}, line={self[1]!r}, column={self[2]!r})"

    def __str__(self) -> str:
        return f"{self[0]}:{self[1]}:{self[2]}"


class PluginName(Frozen):
    """A template filter (``kind`` filter) or condition function (``kind`` function) that the compiler does not
    know, used where the workflow names plugins: a plugin of the run must register it.

    ``owner`` says whose field it is in (``step 'x'``, ``hook 'y'``, or a top-level key such as ``outputs``).
    """

    kind: str
    name: str
    location: Location
    owner: str


class RetryPolicy(Frozen):
    """How often and how patiently a failed node is tried again."""

    attempts: int = 1
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.0
    on: frozenset[str] = frozenset({"any"})

    def delay_before(self, attempt: int) -> float:
        """The pause before ``attempt`` (2 for the first retry), without jitter."""
        return float(min(self.max_delay, self.delay * self.backoff ** max(0, attempt - 2)))


class Node(Frozen, kw_only=True, eq=False):
    """What every node has. ``path`` is stable across runs and used by the journal, events and resume."""

    kind: str
    id: str
    path: str
    location: Location
    named: bool = False  # True when the author gave the id (only those can be referenced)
    name: str | None = None
    condition: Condition | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    continue_on_error: bool = False
    cache: bool = False
    compensate: tuple[Node, ...] = ()
    env: ValueTemplate | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @property
    def title(self) -> str:
        """The node's name for people: its ``name``, else its id."""
        return self.name or self.id

    def children(self) -> Iterator[Node]:
        """Direct child nodes, in document order (compensation steps last)."""
        yield from self.compensate


class ActionNode(Node, kw_only=True, eq=False):
    """A leaf: one action from the registry (``run``, ``llm``, ``http`` …) with its configuration."""

    action: str
    config: ValueTemplate
    options: Mapping[str, Any] = EMPTY
    shell: ShellTemplate | None = None


class GroupNode(Node, kw_only=True, eq=False):
    """A nested sequence of steps; its output is the output of its last step."""

    steps: tuple[Node, ...]

    def children(self) -> Iterator[Node]:
        yield from self.steps
        yield from self.compensate


class IfNode(Node, kw_only=True, eq=False):
    """``if`` + ``then`` (+ ``else``): ``test`` chooses the branch."""

    test: Condition
    then: tuple[Node, ...]
    otherwise: tuple[Node, ...] = ()

    def children(self) -> Iterator[Node]:
        yield from self.then
        yield from self.otherwise
        yield from self.compensate


class Case(Frozen):
    """One ``switch`` case: its branch name, condition and steps."""

    name: str
    when: Condition
    steps: tuple[Node, ...]


class SwitchNode(Node, kw_only=True, eq=False):
    """The first case whose condition holds runs; otherwise ``default``."""

    cases: tuple[Case, ...]
    default: tuple[Node, ...] | None = None

    def children(self) -> Iterator[Node]:
        for case in self.cases:
            yield from case.steps
        yield from self.default or ()
        yield from self.compensate


class LoopNode(Node, kw_only=True, eq=False):
    """Repeats ``steps``: over ``for_each``, ``times`` times, ``while`` or ``until`` a condition."""

    steps: tuple[Node, ...]
    max_iterations: int
    variable: str = "item"
    for_each: ValueTemplate | None = None
    times: ValueTemplate | None = None
    while_: Condition | None = None
    until: Condition | None = None

    def children(self) -> Iterator[Node]:
        yield from self.steps
        yield from self.compensate


class Branch(Frozen):
    """One named branch of a ``parallel`` node."""

    name: str
    steps: tuple[Node, ...]


class ParallelNode(Node, kw_only=True, eq=False):
    """Named branches run concurrently; variables they write are merged by ``merge``."""

    branches: tuple[Branch, ...]
    concurrency: ValueTemplate | None = None
    fail_fast: bool = True
    merge: str = "error"

    def children(self) -> Iterator[Node]:
        for branch in self.branches:
            yield from branch.steps
        yield from self.compensate


class Tolerance(Frozen):
    """How many failed items a ``map`` accepts: a count, or a fraction of the items."""

    count: int = 0
    fraction: float | None = None

    def allows(self, failed: int, total: int) -> bool:
        """True when ``failed`` out of ``total`` items is still acceptable."""
        if self.fraction is not None:
            return failed <= self.fraction * total
        return failed <= self.count


class MapNode(Node, kw_only=True, eq=False):
    """Runs ``steps`` once per item; output in input order, failed items listed in ``.errors``."""

    items: ValueTemplate
    steps: tuple[Node, ...]
    variable: str = "item"
    concurrency: ValueTemplate | None = None
    fail_fast: bool = True
    tolerance: Tolerance = Tolerance()
    merge: str = "error"

    def children(self) -> Iterator[Node]:
        yield from self.steps
        yield from self.compensate


class StreamNode(Node, kw_only=True, eq=False):
    """Runs ``steps`` per item as a source (command, file, items, model) produces them."""

    source: str
    source_config: ValueTemplate
    steps: tuple[Node, ...]
    variable: str = "item"
    format: str = "lines"
    buffer: int = 100
    batch: int = 1
    concurrency: ValueTemplate | None = None
    collect: bool = False
    shell: ShellTemplate | None = None

    def children(self) -> Iterator[Node]:
        yield from self.steps
        yield from self.compensate


class TryNode(Node, kw_only=True, eq=False):
    """``try`` body; ``catch`` on failure (variable writes of the body rolled back); ``finally`` always."""

    body: tuple[Node, ...]
    catch: tuple[Node, ...] | None = None
    finally_: tuple[Node, ...] = ()

    def children(self) -> Iterator[Node]:
        yield from self.body
        yield from self.catch or ()
        yield from self.finally_
        yield from self.compensate


class WorkflowNode(Node, kw_only=True, eq=False):
    """Runs another workflow file with inputs; its output is that workflow's ``outputs``."""

    workflow: Workflow
    arguments: ValueTemplate


class InputSpec(Frozen):
    """A declared workflow input."""

    name: str
    type: str = "string"
    description: str = ""
    default: Any = None
    has_default: bool = False
    required: bool = True
    secret: bool = False
    constraints: Mapping[str, Any] = EMPTY

    def hides(self, value: Any) -> bool:
        """Whether ``value`` of this input is kept out of what a run stores and shows: a secret's, unless it is
        the default (which the workflow file shows anyway)."""
        return self.secret and not (self.has_default and value == self.default)


class ModelSpec(Frozen):
    """A model alias: ``provider/model`` and default call options."""

    alias: str
    model: str
    options: Mapping[str, Any] = EMPTY


class Limits(Frozen):
    """Run-wide limits."""

    max_concurrency: int | None = None
    max_iterations: int = 100
    timeout: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None


class HookNode(ActionNode, kw_only=True, eq=False):
    """A YAML hook: a leaf action run when an event whose type and path match the globs happens."""

    events: tuple[str, ...]
    step_globs: tuple[str, ...] = ("*",)
    required: bool = False


class Workflow(Frozen, kw_only=True, eq=False):
    """A compiled workflow, ready to run."""

    name: str
    file: str
    path: Path
    version: int = 1
    description: str = ""
    sources: Mapping[str, str] = EMPTY  # absolute path -> sha256 of every file compiled in
    inputs: Mapping[str, InputSpec] = EMPTY
    variables: Mapping[str, Any] = EMPTY
    initial_vars: ValueTemplate | None = None  # ``vars:`` when it holds templates (rendered at the start)
    models: Mapping[str, ModelSpec] = EMPTY
    default_model: str | None = None
    default_shell: str = "sh"
    limits: Limits = Limits()
    secrets: tuple[str, ...] = ()
    env: ValueTemplate | None = None
    hooks: tuple[HookNode, ...] = ()
    plugins: tuple[str, ...] = ()
    #: Where each entry of ``plugins`` is written (messages about a plugin that does not load point there).
    plugin_locations: tuple[Location, ...] = ()
    #: Filters and functions of this file's expressions that a plugin must register (checked when a run starts).
    plugin_names: tuple[PluginName, ...] = ()
    steps: tuple[Node, ...] = ()
    outputs: ValueTemplate | None = None
    nodes: Mapping[str, Node] = EMPTY  # every node by path, in document order

    def __repr__(self) -> str:
        return f"<Workflow {self.name} from {self.file}>"

    @property
    def directory(self) -> Path:
        """The folder of the workflow file; relative paths in the workflow start here."""
        return self.path.parent

    def node(self, path: str) -> Node:
        """The node at ``path`` (``KeyError`` when there is none)."""
        return self.nodes[path]

    def walk(self) -> Iterator[Node]:
        """Every node in document order."""
        return iter(self.nodes.values())

    def workflows(self) -> Iterator[Workflow]:
        """This workflow, then every sub-workflow it runs at any depth, each once (breadth first)."""
        return iter(cast("tuple[Workflow, ...]", self._memo("workflows", self._find_workflows)))

    def action_names(self) -> frozenset[str]:
        """The action of every leaf step and hook, in this workflow and the sub-workflows it runs."""
        return cast("frozenset[str]", self._memo("action_names", self._find_action_names))

    def _find_workflows(self) -> tuple[Workflow, ...]:
        found: list[Workflow] = []
        queue, seen = [self], set[int]()
        while queue:
            current = queue.pop(0)
            if id(current) in seen:
                continue
            seen.add(id(current))
            found.append(current)
            queue.extend(node.workflow for node in current.walk() if isinstance(node, WorkflowNode))
        return tuple(found)

    def _find_action_names(self) -> frozenset[str]:
        names: set[str] = set()
        for flow in self.workflows():
            names.update(node.action for node in flow.walk() if isinstance(node, ActionNode))
            names.update(hook.action for hook in flow.hooks)
        return frozenset(names)

    def _memo(self, name: str, make: Callable[[], object]) -> object:
        """What ``make`` returns, worked out once: a workflow never changes, and several checks of a run (and of
        every resume) walk all its nodes. Kept in the instance dictionary under a key that is no field, which
        ``evolve``, equality and the graph cache leave out."""
        key = f"memo:{name}"
        held = self.__dict__.get(key, _NOT_MADE)
        if held is _NOT_MADE:
            held = self.__dict__[key] = make()
        return held

    def find(self, step_id: str) -> Node | None:
        """The node with id ``step_id``, if any."""
        for node in self.nodes.values():
            if node.id == step_id:
                return node
        return None
