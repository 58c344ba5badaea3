"""Stage three: turn a checked document into a frozen Workflow, collecting every semantic problem."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmflow.compiler.graph import (
    ActionNode,
    HookNode,
    InputSpec,
    Limits,
    Location,
    ModelSpec,
    Node,
    PluginName,
    RetryPolicy,
    Workflow,
    evolve,
)
from llmflow.compiler.inputs import compile_inputs
from llmflow.compiler.locate import point_into
from llmflow.compiler.scope import ScopeTable, StepInfo, Timing, Usage
from llmflow.compiler.subworkflows import CompileSession, compile_sub_workflow
from llmflow.diagnostics import Diagnostic
from llmflow.digests import sha256_hex
from llmflow.durations import parse_duration
from llmflow.errors import ExpressionError, WorkflowError
from llmflow.spec.document import DocPath, Document
from llmflow.spec.validator import KIND_KEYS, suggest

if TYPE_CHECKING:
    from llmflow.expressions import Condition, ShellTemplate, Template, ValueTemplate
    from llmflow.expressions.references import PluginNames

_HOOK_ACTIONS = ("run", "http", "python", "write", "emit", "action")


@dataclass(frozen=True, slots=True)
class NodeFrame:
    """Where a node (or a list of nodes) sits: path prefix, enclosing nodes and the names in scope."""

    prefix: str = ""
    ancestors: tuple[str, ...] = ()
    iterations: tuple[str, ...] = ()
    branches: tuple[tuple[str, str], ...] = ()
    names: frozenset[str] = frozenset()
    path: str = ""
    doc_path: DocPath = ()
    kind: str = ""

    def at(self, node_id: str, doc_path: DocPath, kind: str) -> NodeFrame:
        """The frame of one node of this list."""
        return replace(self, path=self.prefix + node_id, doc_path=doc_path, kind=kind)

    def child(
        self,
        segment: str,
        *,
        iteration: bool = False,
        branch: tuple[str, str] | None = None,
        names: set[str] | frozenset[str] = frozenset(),
        inside: bool = True,
    ) -> NodeFrame:
        """The frame of a step list nested in this node (``segment`` names the branch, if any)."""
        prefix = f"{self.path}/{segment}/" if segment else f"{self.path}/"
        return NodeFrame(
            prefix=prefix,
            ancestors=(*self.ancestors, self.path) if inside else self.ancestors,
            iterations=(*self.iterations, self.path) if iteration else self.iterations,
            branches=(*self.branches, branch) if branch else self.branches,
            names=self.names | frozenset(names),
        )


@dataclass(slots=True)
class Compiler:
    """Compiles one document; sub-workflows get a Compiler of their own sharing ``session``."""

    doc: Document
    session: CompileSession
    include_chain: tuple[str, ...] = ()
    diagnostics: list[Diagnostic] = field(default_factory=list)
    scope: ScopeTable = field(default_factory=ScopeTable)
    usages: list[Usage] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    default_model: str | None = None
    default_shell: str = "sh"
    default_timeout: float | None = None
    default_retry: RetryPolicy | None = None
    limits: Limits = field(default_factory=Limits)
    #: The file names plugins: filters and functions the compiler does not know may be theirs.
    with_plugins: bool = False
    plugin_names: list[PluginName] = field(default_factory=list)
    _order: int = 0

    # -- diagnostics -------------------------------------------------------------------------------
    def error(self, code: str, message: str, frame: NodeFrame, *rel: str | int, hint: str | None = None) -> None:
        """Record a problem located at ``rel`` inside the node of ``frame``."""
        self.diagnostics.append(self.doc.diagnostic(code, message, (*frame.doc_path, *rel), hint=hint))

    def error_at(self, code: str, message: str, path: DocPath, *, key: bool = False, hint: str | None = None) -> None:
        """Record a problem located at a document path."""
        self.diagnostics.append(self.doc.diagnostic(code, message, path, key=key, hint=hint))

    # -- expressions -------------------------------------------------------------------------------
    def _expression_error(self, code: str, error: ExpressionError, path: DocPath) -> None:
        message = error.message
        if code == "bad-condition" and message.startswith("invalid syntax"):
            message = "the condition has " + message
        diagnostic = self.doc.diagnostic(code, message, path)
        self.diagnostics.append(point_into(self.doc, diagnostic, path, offset=error.offset))

    def condition(
        self,
        source: Any,
        path: DocPath,
        frame: NodeFrame,
        *,
        timing: Timing = "before",
        names: frozenset[str] | None = None,
    ) -> Condition:
        """Compile a condition and remember its references for the checks at the end."""
        from llmflow.expressions import compile_condition

        text = ("True" if source else "False") if isinstance(source, bool) else str(source)
        try:
            condition = compile_condition(text, plugins=self.with_plugins)
        except ExpressionError as error:
            self._expression_error("bad-condition", error, path)
            return compile_condition("False")
        self._use(frame, path, condition.references, timing, names, conditions=True)
        self._plugin_names("function", condition.plugin_functions, path, frame)
        return condition

    def value(self, raw: Any, path: DocPath, frame: NodeFrame, *, timing: Timing = "before") -> ValueTemplate:
        """Compile a value whose strings may be templates."""
        from llmflow.expressions import compile_value

        try:
            template = compile_value(raw, plugins=self.with_plugins)
        except ExpressionError:
            for sub_path, text in _strings(raw, path):
                self._check_template(text, sub_path)
            return compile_value(None)
        if not template.is_static:
            for sub_path, text in _strings(raw, path):
                compiled = _template(text, self.with_plugins) if "{" in text else None
                if compiled is not None:
                    self._use(frame, sub_path, compiled.references, timing, None)
                    self._plugin_names("filter", compiled.plugin_filters, sub_path, frame)
        return template

    def shell(self, source: str, path: DocPath, frame: NodeFrame) -> ShellTemplate | None:
        """Compile a shell command (template values reach the shell as data)."""
        from llmflow.expressions import compile_shell

        try:
            template = compile_shell(source, self.with_plugins)
        except ExpressionError as error:
            self._expression_error("bad-template", error, path)
            return None
        self._use(frame, path, template.references, "before", None)
        self._plugin_names("filter", template.plugin_filters, path, frame)
        return template

    def _check_template(self, text: str, path: DocPath) -> None:
        from llmflow.expressions import compile_template

        try:
            compile_template(text, self.with_plugins)
        except ExpressionError as error:
            self._expression_error("bad-template", error, path)

    def _plugin_names(self, kind: str, names: PluginNames, path: DocPath, frame: NodeFrame) -> None:
        """Remember the filters or functions of one field that a plugin must register, where they are used."""
        for name, offset in names:
            at = point_into(self.doc, self.doc.diagnostic("plugin-name", name, path), path, offset=offset)
            if frame.path.startswith("hooks/"):
                owner = f"hook '{frame.path[len('hooks/') :]}'"
            elif frame.path:
                owner = f"step '{frame.path.rsplit('/', 1)[-1]}'"
            else:
                owner = str(path[0])  # outputs, env, vars
            self.plugin_names.append(PluginName(kind, name, Location(self.doc.file, at.line, at.column), owner))

    def _use(
        self,
        frame: NodeFrame,
        path: DocPath,
        references: frozenset[Any],
        timing: Timing,
        names: frozenset[str] | None,
        *,
        conditions: bool = False,
    ) -> None:
        if references:
            visible = frame.names if names is None else names
            self.usages.append(Usage(frame.path, path, references, visible, timing, conditions))

    # -- small values ------------------------------------------------------------------------------
    def duration(self, value: Any, frame: NodeFrame, *rel: str | int) -> float:
        """Parse a duration, recording a diagnostic when it is not one."""
        name = next((part for part in reversed(rel) if isinstance(part, str)), "duration")
        try:
            seconds = parse_duration(value)
        except ValueError as error:
            self.error("bad-duration", str(error), frame, *rel)
            return 0.0
        except OverflowError:  # an integer too large for a float
            self.error("bad-duration", f"'{name}' is too large to be a duration", frame, *rel)
            return 0.0
        if not math.isfinite(seconds):  # `.inf` and `.nan` are numbers to the schema
            self.error("bad-duration", f"'{name}' must be a finite duration, not {value!r}", frame, *rel)
            return 0.0
        return seconds

    def finite(self, value: Any, path: DocPath) -> Any:
        """``value``, after reporting it when it is an infinite or NaN number (which no bound in a schema stops)."""
        if isinstance(value, float) and not math.isfinite(value):
            self.error_at("bad-value", f"'{path[-1]}' must be a finite number, not {value!r}", path)
        return value

    def retry(self, value: Any, path: DocPath) -> RetryPolicy:
        """A retry policy from ``retry: 3`` or a mapping."""
        if isinstance(value, int):
            return RetryPolicy(attempts=value)
        frame = NodeFrame(doc_path=path)
        policy = RetryPolicy(attempts=int(value.get("attempts", 3)), on=frozenset(value.get("on") or ("any",)))
        if "delay" in value:
            policy = evolve(policy, delay=self.duration(value["delay"], frame, "delay"))
        if "max_delay" in value:
            policy = evolve(policy, max_delay=self.duration(value["max_delay"], frame, "max_delay"))
        if "backoff" in value:
            policy = evolve(policy, backoff=float(self.finite(value["backoff"], (*path, "backoff"))))
        jitter = self.finite(value.get("jitter", 0), (*path, "jitter"))
        policy = evolve(policy, jitter=(0.5 if jitter is True else float(jitter or 0)))
        return policy

    def resolve_model(self, name: str, path: DocPath) -> ModelSpec | None:
        """The model an alias or ``provider/model`` string names; a diagnostic when it names none."""
        if name in self.models:
            return self.models[name]
        if "/" in name:
            return ModelSpec(alias=name, model=name)
        hint = suggest(name, self.models)
        known = ", ".join(sorted(self.models)) or "none declared"
        message = f"unknown model '{name}': not an alias in 'models' ({known}) nor provider/model"
        self.error_at("unknown-model", message, path, hint=f"did you mean '{hint}'?" if hint else None)
        return None

    # -- nodes -------------------------------------------------------------------------------------
    def steps(self, items: list[dict[str, Any]], path: DocPath, frame: NodeFrame) -> tuple[Node, ...]:
        """Compile a list of nodes."""
        return tuple(self.node(spec, (*path, index), index, frame) for index, spec in enumerate(items))

    def node(self, spec: dict[str, Any], path: DocPath, index: int, list_frame: NodeFrame) -> Node:
        """Compile one node through the builder table."""
        from llmflow.compiler.nodes import BUILDERS, KIND_NAMES

        kind_key = next(key for key in spec if key in KIND_KEYS)
        kind = KIND_NAMES[kind_key]
        named = "id" in spec
        node_id = spec["id"] if named else self._generated_id(kind, index)
        frame = list_frame.at(node_id, path, kind)
        info = StepInfo(
            path=frame.path,
            doc_path=path,
            order=self._order,
            kind=kind,
            named=named,
            ancestors=list_frame.ancestors,
            iterations=list_frame.iterations,
            branches=list_frame.branches,
        )
        self._order += 1
        self.scope.steps.setdefault(frame.path, info)  # a duplicate id was reported; keep the first
        if named:
            self.scope.ids.setdefault(node_id, frame.path)
        slot = frame.path
        self.nodes[slot] = None  # type: ignore[assignment]  # reserve the document-order slot
        common = self._common(spec, frame, kind)
        node = BUILDERS[kind_key](self, spec, frame, common)
        if "compensate" in spec:
            compensation_frame = frame.child("compensate", inside=False)
            compensate = self.steps(spec["compensate"], (*path, "compensate"), compensation_frame)
            node = evolve(node, compensate=compensate)
        info.end = self._order - 1
        self.nodes[slot] = node
        return node

    def _generated_id(self, kind: str, index: int) -> str:
        candidate = f"{kind}-{index + 1}"
        while candidate in self.scope.ids or candidate in self.session.user_ids.get(self.doc.file, ()):
            candidate += "x"
        return candidate

    def _common(self, spec: dict[str, Any], frame: NodeFrame, kind: str) -> dict[str, Any]:
        leaf = kind not in ("group", "if", "switch", "loop", "parallel", "map", "stream", "try", "workflow")
        pos = self.doc.position(frame.doc_path)
        common: dict[str, Any] = {
            "kind": kind,
            "id": frame.path.rsplit("/", 1)[-1],
            "path": frame.path,
            "location": Location(self.doc.file, pos.line, pos.column),
            "named": "id" in spec,
            "name": spec.get("name"),
            "continue_on_error": bool(spec.get("continue_on_error", False)),
            "cache": bool(spec.get("cache", False)),
            "condition": None,
            "timeout": self.default_timeout if leaf else None,
            "retry": self.default_retry if leaf else None,
        }
        if "if" in spec:
            common["condition"] = self.condition(spec["if"], (*frame.doc_path, "if"), frame)
        if "timeout" in spec:
            common["timeout"] = self.duration(spec["timeout"], frame, "timeout")
        if "retry" in spec:
            common["retry"] = self.retry(spec["retry"], (*frame.doc_path, "retry"))
        if "env" in spec:
            common["env"] = self.value(spec["env"], (*frame.doc_path, "env"), frame)
        return common

    def sub_workflow(self, target: str, arguments: dict[str, Any], frame: NodeFrame) -> Workflow:
        """Load, validate and compile a sub-workflow file (once per session), checking its inputs."""
        return compile_sub_workflow(self, target, arguments, frame)

    # -- the whole file ----------------------------------------------------------------------------
    def compile(self) -> Workflow:
        """Compile the document; raise WorkflowError with every problem when there is an error.

        Warnings (which do not stop compiling) are left in ``diagnostics``.
        """
        data: dict[str, Any] = self.doc.data
        self.with_plugins = bool(data.get("plugins"))
        self._collect_ids(data)
        inputs = compile_inputs(data.get("inputs") or {}, self.error_at)
        self.models = self._models(data.get("models") or {})
        self._defaults(data.get("defaults") or {}, data.get("limits") or {})
        variables = set(data.get("vars") or {}) | _set_names(data.get("steps"))
        self.scope.inputs = frozenset(inputs)
        self.scope.variables = frozenset(variables)
        self.scope.secrets = frozenset(data.get("secrets") or ())
        top = NodeFrame()
        env = self.value(data["env"], ("env",), top, timing="hook") if "env" in data else None
        initial_vars = self._initial_vars(data.get("vars"), top)
        steps = self.steps(data["steps"], ("steps",), top)
        hooks = tuple(self._hook(hook, index) for index, hook in enumerate(data.get("hooks") or ()))
        outputs = self.value(data.get("outputs") or {}, ("outputs",), top, timing="outputs")
        plugins, plugin_locations = self._plugins(data.get("plugins") or ())
        for usage in self.usages:
            for problem in self.scope.problems(usage):
                hint = f"did you mean '{problem.suggestion}'?" if problem.suggestion else None
                diagnostic = self.doc.diagnostic(problem.code, problem.message, usage.doc_path, hint=hint)
                located = point_into(self.doc, diagnostic, usage.doc_path, offset=problem.offset, needle=problem.needle)
                self.diagnostics.append(located)
        if any(diagnostic.severity == "error" for diagnostic in self.diagnostics):
            raise WorkflowError(self.diagnostics)
        # Warnings only for a workflow without errors: an expression that failed to compile reads nothing.
        if not data.get("plugins"):  # a plugin may read any input: only a workflow without plugins is checked
            self._unused_inputs(inputs)
        file = Path(self.doc.directory, Path(self.doc.file).name).resolve()
        sources = {str(file): sha256_hex(self.doc.text.encode())}
        for node in self.nodes.values():
            sub = getattr(node, "workflow", None)
            if isinstance(sub, Workflow):
                sources.update(sub.sources)
        return Workflow(
            name=data["name"],
            file=self.doc.file,
            path=file,
            version=data["version"],
            description=data.get("description", ""),
            sources=MappingProxyType(sources),
            inputs=MappingProxyType(inputs),
            variables=MappingProxyType(dict(data.get("vars") or {})),
            initial_vars=initial_vars,
            models=MappingProxyType(self.models),
            default_model=self.default_model,
            default_shell=self.default_shell,
            limits=self.limits,
            secrets=tuple(data.get("secrets") or ()),
            env=env,
            hooks=hooks,
            plugins=plugins,
            plugin_locations=plugin_locations,
            plugin_names=tuple(self.plugin_names),
            steps=steps,
            outputs=outputs,
            # Built in running order (a `catch` after its `try`); kept in the order the file is written.
            nodes=MappingProxyType(dict(sorted(self.nodes.items(), key=lambda item: _written_at(item[1])))),
        )

    def _unused_inputs(self, inputs: dict[str, InputSpec]) -> None:
        """Warn about declared inputs that no expression reads (usually a typo or a leftover)."""
        used: set[str] = set()
        for usage in self.usages:
            if "inputs" in usage.names:
                continue  # a loop variable named `inputs` hides the real ones
            for reference in usage.references:
                if reference.root == "inputs":
                    if not reference.path:
                        return  # `{{ inputs }}` reads every input
                    used.add(reference.path[0])
        for name in inputs:
            if name not in used:
                message = f"input '{name}' is declared but never used"
                self.diagnostics.append(
                    self.doc.diagnostic("unused-input", message, ("inputs", name), key=True, severity="warning")
                )

    def _initial_vars(self, raw: Any, frame: NodeFrame) -> ValueTemplate | None:
        """The ``vars:`` block, whose templates may use only what is known before any step runs."""
        if not raw:
            return None
        template = self.value(raw, ("vars",), frame, timing="hook")
        if template.is_static:
            return None
        for name, value in raw.items():
            compiled = _template(value, self.with_plugins) if isinstance(value, str) else None
            for reference in compiled.references if compiled is not None else ():
                if reference.root in ("steps", "vars"):
                    message = f"the starting value of vars.{name} cannot use {reference.root}: no step has run yet"
                    self.error_at("early-reference", message, ("vars", name))
        return template

    def _collect_ids(self, data: dict[str, Any]) -> None:
        from llmflow.spec.validator import iter_nodes

        first: dict[str, DocPath] = {}
        named = [(path, node["id"]) for path, node in iter_nodes(data.get("steps")) if isinstance(node.get("id"), str)]
        # In the order they are written, so the second of two is the one reported, nested or not.
        named.sort(key=lambda item: astuple(self.doc.position((*item[0], "id"), key=True)))
        for node_path, node_id in named:
            if node_id in first:
                line = self.doc.position((*first[node_id], "id")).line
                message = f"duplicate id '{node_id}' (first used at line {line}); ids must be unique in the file"
                self.error_at("duplicate-id", message, (*node_path, "id"))
            else:
                first[node_id] = node_path
        self.session.user_ids[self.doc.file] = frozenset(first)

    def _models(self, raw: dict[str, Any]) -> dict[str, ModelSpec]:
        models = {}
        for alias, spec in raw.items():
            if isinstance(spec, str):
                models[alias] = ModelSpec(alias=alias, model=spec)
            else:
                if "temperature" in spec:
                    self.finite(spec["temperature"], ("models", alias, "temperature"))
                options = {key: value for key, value in spec.items() if key != "model"}
                models[alias] = ModelSpec(alias=alias, model=spec["model"], options=MappingProxyType(options))
        return models

    def _defaults(self, defaults: dict[str, Any], limits: dict[str, Any]) -> None:
        frame = NodeFrame(doc_path=("defaults",))
        if "model" in defaults:
            resolved = self.resolve_model(defaults["model"], ("defaults", "model"))
            self.default_model = resolved.alias if resolved is not None else None
        self.default_shell = defaults.get("shell", "sh")
        if "timeout" in defaults:
            self.default_timeout = self.duration(defaults["timeout"], frame, "timeout")
        if "retry" in defaults:
            self.default_retry = self.retry(defaults["retry"], ("defaults", "retry"))
        limit_frame = NodeFrame(doc_path=("limits",))
        self.limits = Limits(
            max_concurrency=limits.get("max_concurrency"),
            max_iterations=limits.get("max_iterations", 100),
            timeout=self.duration(limits["timeout"], limit_frame, "timeout") if "timeout" in limits else None,
            max_tokens=limits.get("max_tokens"),
            max_cost=self.finite(limits.get("max_cost"), ("limits", "max_cost")),
        )

    def _hook(self, spec: dict[str, Any], index: int) -> HookNode:
        from llmflow.compiler.nodes import BUILDERS

        path: DocPath = ("hooks", index)
        action = next((key for key in _HOOK_ACTIONS if key in spec), "emit")
        hook_id = spec.get("id") or f"hook-{index + 1}"
        frame = NodeFrame(names=frozenset({"event"})).at(f"hooks/{hook_id}", path, action)
        self.scope.steps[frame.path] = StepInfo(frame.path, path, -1, action, False, (), (), ())
        pos = self.doc.position(path)
        common: dict[str, Any] = {
            "kind": action,
            "id": hook_id,
            "path": frame.path,
            "location": Location(self.doc.file, pos.line, pos.column),
            "name": spec.get("name"),
        }
        usages_before = len(self.usages)
        built = BUILDERS[action](self, spec, frame, common)
        assert isinstance(built, ActionNode)  # hooks are leaf actions by the schema
        for usage in self.usages[usages_before:]:
            usage.timing = "hook"
        condition = self.condition(spec["if"], (*path, "if"), frame, timing="hook") if "if" in spec else None
        on = spec.get("on", ())
        step_globs = spec.get("steps", "*")
        self._check_hook_filters(on, step_globs, path)
        return HookNode(
            kind=built.kind,
            id=hook_id,
            path=frame.path,
            location=built.location,
            name=spec.get("name"),
            condition=condition,
            action=built.action,
            config=built.config,
            options=built.options,
            shell=built.shell,
            events=(on,) if isinstance(on, str) else tuple(on),
            step_globs=(step_globs,) if isinstance(step_globs, str) else tuple(step_globs),
            required=bool(spec.get("required", False)),
            timeout=self.duration(spec["timeout"], frame, "timeout") if "timeout" in spec else None,
        )

    def _check_hook_filters(self, on: Any, step_globs: Any, path: DocPath) -> None:
        """Refuse a hook that could never run: it waits for an event of llmflow's own that llmflow never emits
        (``step.faild``), or names a step (without glob characters) that the file does not have."""
        from fnmatch import fnmatchcase

        from llmflow.event_types import EVENT_TYPES, RESERVED_PREFIXES

        for where, pattern in _listed(on, (*path, "on")):
            if pattern.startswith(RESERVED_PREFIXES) and not any(fnmatchcase(kind, pattern) for kind in EVENT_TYPES):
                close = suggest(pattern, EVENT_TYPES)
                self.error_at(
                    "unknown-event",
                    f"llmflow emits no event '{pattern}', so this hook would never run",
                    where,
                    hint=f"did you mean '{close}'?" if close else "see the event types in docs/observability.md",
                )
        names = _step_names(self.nodes)
        for where, pattern in _listed(step_globs, (*path, "steps")):
            if not any(char in pattern for char in "*?[") and pattern not in names:
                close = suggest(pattern, names)
                self.error_at(
                    "unknown-step",
                    f"the hook is for step '{pattern}', which this file does not have",
                    where,
                    hint=f"did you mean '{close}'?" if close else None,
                )

    def _plugins(self, plugins: Any) -> tuple[tuple[str, ...], tuple[Location, ...]]:
        found, locations = [], []
        for index, plugin in enumerate(plugins):
            if (Path(self.doc.directory) / plugin).is_file() or not plugin.endswith(".py"):
                found.append(plugin)
                pos = self.doc.position(("plugins", index))
                locations.append(Location(self.doc.file, pos.line, pos.column))
            else:
                self.error_at("plugin-not-found", f"plugin file '{plugin}' does not exist", ("plugins", index))
        return tuple(found), tuple(locations)


def compile_document(doc: Document, *, session: CompileSession | None = None) -> Workflow:
    """Compile a validated document into a Workflow (raises WorkflowError with every problem)."""
    return Compiler(doc, session or CompileSession()).compile()


def _step_names(nodes: Mapping[str, Node], prefix: str = "") -> set[str]:
    """The ids and static paths a hook's ``steps`` may name, sub-workflows' steps included."""
    names: set[str] = set()
    for path, node in nodes.items():
        names.update((node.id, prefix + path))
        sub = getattr(node, "workflow", None)
        if isinstance(sub, Workflow):
            names |= _step_names(sub.nodes, f"{prefix}{path}/")
    return names


def _listed(value: Any, path: DocPath) -> Iterator[tuple[DocPath, str]]:
    """A string or a list of strings, each with its place in the document."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield (*path, index), item


def _written_at(node: Node) -> tuple[int, int]:
    return node.location.line, node.location.column


def _strings(value: Any, path: DocPath) -> Iterator[tuple[DocPath, str]]:
    """Every string inside a value, with its document path."""
    stack: list[tuple[DocPath, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            stack.extend(((*where, key), sub) for key, sub in item.items())
        elif isinstance(item, list):
            stack.extend(((*where, index), sub) for index, sub in enumerate(item))


def _template(text: str, plugins: bool) -> Template | None:
    """The compiled template (from the cache ``compile_value`` filled); None when it does not compile."""
    from llmflow.expressions import compile_template

    try:
        return compile_template(text, plugins)
    except ExpressionError:
        return None


def _set_names(steps: Any) -> set[str]:
    from llmflow.spec.validator import iter_nodes

    names: set[str] = set()
    for _, node in iter_nodes(steps):
        if isinstance(node.get("set"), dict) and node.get("scope", "run") == "run":
            names.update(str(key) for key in node["set"])
    return names
