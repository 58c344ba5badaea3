"""Stage three, per node: one ``compile_<kind>`` per kind key, turning a checked mapping into a frozen node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmflow.compiler.graph import (
    ActionNode,
    Branch,
    Case,
    GroupNode,
    IfNode,
    LoopNode,
    MapNode,
    Node,
    ParallelNode,
    StreamNode,
    SwitchNode,
    Tolerance,
    TryNode,
    WorkflowNode,
)

if TYPE_CHECKING:
    from llmflow.compiler.core import Compiler, NodeFrame
    from llmflow.spec.document import DocPath

Spec = dict[str, Any]
Builder = Callable[["Compiler", Spec, "NodeFrame", dict[str, Any]], Node]


#: Read-only option mappings of plain scalars, shared by every node that has the same ones (most ``set``
#: steps have ``{"scope": "run"}``): a graph holds, caches and reads back one object instead of thousands.
_SHARED_OPTIONS: dict[tuple[tuple[str, type, Any], ...], MappingProxyType[str, Any]] = {}
_SCALARS = (str, int, bool, type(None))  # not float: 0.0 and -0.0 are equal, yet print apart
_MAX_SHARED = 1024


def _frozen(mapping: dict[str, Any]) -> MappingProxyType[str, Any]:
    if len(mapping) > 4 or not all(type(value) in _SCALARS for value in mapping.values()):
        return MappingProxyType(mapping)
    key = tuple((name, type(value), value) for name, value in mapping.items())
    shared = _SHARED_OPTIONS.get(key)
    if shared is None:
        shared = MappingProxyType(mapping)
        if len(_SHARED_OPTIONS) < _MAX_SHARED:  # a process compiling endless distinct values stays bounded
            _SHARED_OPTIONS[key] = shared
    return shared


def _action(
    compiler: Compiler,
    frame: NodeFrame,
    common: dict[str, Any],
    config: dict[str, Any],
    *,
    field: str,
    options: dict[str, Any] | None = None,
    **extra: Any,
) -> ActionNode:
    template = compiler.value(config, (*frame.doc_path, field), frame)
    return ActionNode(action=frame.kind, config=template, options=_frozen(options or {}), **common, **extra)


def compile_run(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    command = spec["run"]
    config: dict[str, Any] = {key: spec[key] for key in ("cwd", "stdin") if key in spec}
    options = {"parse": spec.get("parse", "text"), "shell": spec.get("shell", compiler.default_shell)}
    if isinstance(command, list):
        config["argv"] = command
        return _action(compiler, frame, common, config, field="run", options=options)
    shell = compiler.shell(command, (*frame.doc_path, "run"), frame)
    return _action(compiler, frame, common, config, field="run", options=options, shell=shell)


def _check_reply_schema(compiler: Compiler, schema: dict[str, Any], path: DocPath) -> None:
    """Refuse an ``llm.schema`` that is no JSON Schema (``type: objekt``): it would fail the step only when the
    model has answered, with the validator's multi-line message."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    try:
        problem = best_match(Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(schema))
    except RecursionError:  # nested beyond what the validator can walk: the loader's depth limit is higher
        problem = None
    if problem is not None:
        where = (*path, *problem.absolute_path)
        message = " ".join(problem.message.split())
        if problem.absolute_path and problem.absolute_path[-1] == "type" and isinstance(problem.instance, str):
            from llmflow.spec.validator import suggest

            types = ("array", "boolean", "integer", "null", "number", "object", "string")
            close = suggest(problem.instance, types)
            meant = f"did you mean '{close}'? " if close else ""
            message = f"unknown type '{problem.instance}' ({meant}types: {', '.join(types)})"
        if len(message) > 200:
            message = message[:199] + "…"
        compiler.error_at("bad-schema", f"'schema' is not a valid JSON Schema (draft 2020-12): {message}", where)


def compile_llm(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    call = spec["llm"]
    config: dict[str, Any] = {"prompt": call} if isinstance(call, str) else dict(call)
    schema = config.pop("schema", None)
    if "temperature" in config:
        compiler.finite(config["temperature"], (*frame.doc_path, "llm", "temperature"))
    if "history" in config:
        message = "session histories are not available in this version of llmflow: this step fails when it runs"
        compiler.diagnostics.append(
            compiler.doc.diagnostic("unsupported", message, (*frame.doc_path, "llm", "history"), severity="warning")
        )
    if isinstance(schema, dict):
        _check_reply_schema(compiler, schema, (*frame.doc_path, "llm", "schema"))
    model = config.get("model", compiler.default_model)
    options: dict[str, Any] = {"schema": schema}
    if isinstance(model, str) and "{{" not in model:
        resolved = compiler.resolve_model(model, (*frame.doc_path, "llm", "model"))
        if resolved is not None:
            config["model"] = resolved.model
            options["model_options"] = dict(resolved.options)
    if isinstance(config.get("fallback"), list):
        config["fallback"] = fallbacks = list(config["fallback"])  # a copy: the document stays as written
        fallback_options: list[dict[str, Any] | None] = []
        for index, fallback in enumerate(fallbacks):
            known: dict[str, Any] | None = None
            if isinstance(fallback, str) and "{{" not in fallback:
                resolved = compiler.resolve_model(fallback, (*frame.doc_path, "llm", "fallback", index))
                if resolved is not None:
                    fallbacks[index] = resolved.model
                    known = dict(resolved.options)
            fallback_options.append(known)
        options["fallback_options"] = fallback_options
    return _action(compiler, frame, common, config, field="llm", options=options)


def compile_http(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    request = spec["http"]
    config: dict[str, Any] = {"url": request} if isinstance(request, str) else dict(request)
    return _action(compiler, frame, common, config, field="http")


def compile_python(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    target = spec["python"]
    call = target if isinstance(target, str) else target.get("call", "")
    arguments = dict(target.get("with") or {}) if isinstance(target, dict) else {}
    arguments.update(spec.get("with") or {})
    if ":" not in call:
        compiler.error("bad-call", f"python call {call!r} must look like 'package.module:function'", frame, "python")
    config = {"with": arguments}
    return _action(compiler, frame, common, config, field="python", options={"call": call})


def compile_set(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    options = {"scope": spec.get("scope", "run")}
    if options["scope"] == "session":
        message = "session variables are not available in this version of llmflow: this step fails when it runs"
        compiler.diagnostics.append(
            compiler.doc.diagnostic("unsupported", message, (*frame.doc_path, "scope"), severity="warning")
        )
    return _action(compiler, frame, common, dict(spec["set"]), field="set", options=options)


def compile_write(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    config = dict(spec["write"])
    path = config.get("path")
    if isinstance(path, str) and "{{" not in path and "{%" not in path:
        pure = PurePosixPath(path)
        if pure.is_absolute() or Path(path).is_absolute() or ".." in pure.parts:
            message = f"write path {path!r} leaves the project folder; use a relative path without '..'"
            compiler.error("unsafe-path", message, frame, "write", "path")
    return _action(compiler, frame, common, config, field="write")


def compile_wait(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    seconds = compiler.duration(spec["wait"], frame, "wait")
    return _action(compiler, frame, common, {}, field="wait", options={"seconds": seconds})


def compile_approval(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    approval = spec["approval"]
    config = {"message": approval} if isinstance(approval, str) else dict(approval)
    options: dict[str, Any] = {}
    if "timeout" in config:
        options["timeout"] = compiler.duration(config.pop("timeout"), frame, "approval", "timeout")
    return _action(compiler, frame, common, config, field="approval", options=options)


def compile_fail(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    failure = spec["fail"]
    config = {"message": failure} if isinstance(failure, str) else dict(failure)
    return _action(compiler, frame, common, config, field="fail")


def compile_emit(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    emit = spec["emit"]
    config = {"event": emit} if isinstance(emit, str) else dict(emit)
    return _action(compiler, frame, common, config, field="emit")


def compile_memory(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    return _action(compiler, frame, common, dict(spec["memory"]), field="memory")


def compile_action(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    name = spec["action"]
    if name in RESERVED_ACTIONS:
        message = f"'{name}' is a built-in kind, not a plugin action: write the step with its own key ({name}: ...)"
        compiler.error("builtin-action", message, frame, "action")
    config = compiler.value(dict(spec.get("with") or {}), (*frame.doc_path, "with"), frame)
    # The node is shown (events, `show`, `graph`, plugin hooks) under the name of the action it runs.
    return ActionNode(action=name, config=config, **{**common, "kind": name})


def compile_workflow(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    arguments = dict(spec.get("with") or {})
    sub = compiler.sub_workflow(spec["workflow"], arguments, frame)
    template = compiler.value(arguments, (*frame.doc_path, "with"), frame)
    return WorkflowNode(workflow=sub, arguments=template, **common)


def compile_group(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    steps = compiler.steps(spec["steps"], (*frame.doc_path, "steps"), frame.child(""))
    return GroupNode(steps=steps, **common)


def compile_if(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    test = common.pop("condition")
    then = compiler.steps(spec["then"], (*frame.doc_path, "then"), frame.child("then"))
    otherwise: tuple[Node, ...] = ()
    if spec.get("else") is not None:
        otherwise = compiler.steps(spec["else"], (*frame.doc_path, "else"), frame.child("else"))
    return IfNode(test=test, then=then, otherwise=otherwise, condition=None, **common)


def compile_switch(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    switch = spec["switch"]
    cases = []
    seen: set[str] = set()
    for index, case in enumerate(switch["cases"]):
        name = case.get("name") or f"case-{index + 1}"
        case_path = (*frame.doc_path, "switch", "cases", index)
        if name in seen:
            compiler.error("duplicate-case", f"two cases are named '{name}'", frame, "switch", "cases", index, "name")
        seen.add(name)
        when = compiler.condition(case["when"], (*case_path, "when"), frame)
        steps = compiler.steps(case["steps"], (*case_path, "steps"), frame.child(name))
        cases.append(Case(name=name, when=when, steps=steps))
    default = None
    if switch.get("default") is not None:
        default = compiler.steps(switch["default"], (*frame.doc_path, "switch", "default"), frame.child("default"))
    return SwitchNode(cases=tuple(cases), default=default, **common)


def compile_loop(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    loop = spec["loop"]
    base = (*frame.doc_path, "loop")
    variable = loop.get("as", "item")
    explicit_cap = loop.get("max_iterations")
    cap = explicit_cap or compiler.limits.max_iterations
    for_each = compiler.value(loop["for_each"], (*base, "for_each"), frame) if "for_each" in loop else None
    times = compiler.value(loop["times"], (*base, "times"), frame) if "times" in loop else None
    body = frame.child("", iteration=True, names={variable, "index", "loop"})
    while_ = None
    if "while" in loop:  # checked before each iteration, which already has its index (and item)
        while_ = compiler.condition(loop["while"], (*base, "while"), frame, names=body.names)
    steps = compiler.steps(loop["steps"], (*base, "steps"), body)
    until = None
    if "until" in loop:
        until = compiler.condition(loop["until"], (*base, "until"), frame, timing="after-body", names=body.names)
    for key, endless in (("while", True), ("until", False)):
        if loop.get(key) is endless and explicit_cap is None:
            message = f"'{key}: {str(endless).lower()}' never ends; give the loop a max_iterations"
            compiler.error("unbounded-loop", message, frame, "loop", key)
    return LoopNode(
        steps=steps,
        max_iterations=cap,
        variable=variable,
        for_each=for_each,
        times=times,
        while_=while_,
        until=until,
        **common,
    )


def compile_parallel(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    parallel = spec["parallel"]
    base = (*frame.doc_path, "parallel")
    branches = []
    for name, steps in parallel["branches"].items():
        branch_frame = frame.child(name, branch=(frame.path, name))
        branches.append(Branch(name=name, steps=compiler.steps(steps, (*base, "branches", name), branch_frame)))
    concurrency = None
    if "concurrency" in parallel:
        concurrency = compiler.value(parallel["concurrency"], (*base, "concurrency"), frame)
    return ParallelNode(
        branches=tuple(branches),
        concurrency=concurrency,
        fail_fast=parallel.get("fail_fast", True),
        merge=parallel.get("merge", "error"),
        **common,
    )


def _tolerance(value: Any) -> Tolerance:
    if isinstance(value, str) and value.endswith("%"):
        return Tolerance(fraction=float(value[:-1]) / 100.0)
    return Tolerance(count=int(value or 0))


def compile_map(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    mapping = spec["map"]
    base = (*frame.doc_path, "map")
    variable = mapping.get("as", "item")
    items = compiler.value(mapping["items"], (*base, "items"), frame)
    concurrency = None
    if "concurrency" in mapping:
        concurrency = compiler.value(mapping["concurrency"], (*base, "concurrency"), frame)
    body = frame.child("", iteration=True, names={variable, "index"})
    steps = compiler.steps(mapping["steps"], (*base, "steps"), body)
    return MapNode(
        items=items,
        steps=steps,
        variable=variable,
        concurrency=concurrency,
        fail_fast=mapping.get("fail_fast", True),
        tolerance=_tolerance(mapping.get("tolerated_failures")),
        merge=mapping.get("merge", "error"),
        **common,
    )


def compile_stream(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    stream = spec["stream"]
    base = (*frame.doc_path, "stream")
    source_spec = dict(stream["from"])
    source = next(iter(source_spec))
    if source == "llm":
        message = "streaming from a model is not available in this version of llmflow: this stream fails when it runs"
        compiler.diagnostics.append(
            compiler.doc.diagnostic("unsupported", message, (*base, "from", "llm"), severity="warning")
        )
    shell = None
    if source == "run" and isinstance(source_spec["run"], str):
        shell = compiler.shell(source_spec.pop("run"), (*base, "from", "run"), frame)
    source_config = compiler.value(source_spec, (*base, "from"), frame)
    variable = stream.get("as", "item")
    concurrency = None
    if "concurrency" in stream:
        concurrency = compiler.value(stream["concurrency"], (*base, "concurrency"), frame)
    body = frame.child("", iteration=True, names={variable, "index"})
    steps = compiler.steps(stream["steps"], (*base, "steps"), body)
    return StreamNode(
        source=source,
        source_config=source_config,
        steps=steps,
        variable=variable,
        format=stream.get("format", "lines"),
        buffer=stream.get("buffer", 100),
        batch=stream.get("batch", 1),
        concurrency=concurrency,
        collect=stream.get("collect", False),
        shell=shell,
        **common,
    )


def compile_try(compiler: Compiler, spec: Spec, frame: NodeFrame, common: dict[str, Any]) -> Node:
    body = compiler.steps(spec["try"], (*frame.doc_path, "try"), frame.child("try"))
    catch = None
    if spec.get("catch") is not None:
        catch_frame = frame.child("catch", names={"error"})
        catch = compiler.steps(spec["catch"], (*frame.doc_path, "catch"), catch_frame)
    finally_: tuple[Node, ...] = ()
    if spec.get("finally") is not None:
        finally_ = compiler.steps(spec["finally"], (*frame.doc_path, "finally"), frame.child("finally"))
    return TryNode(body=body, catch=catch, finally_=finally_, **common)


#: The table the compiler dispatches on: one builder per kind key.
BUILDERS: dict[str, Builder] = {
    "run": compile_run,
    "llm": compile_llm,
    "http": compile_http,
    "python": compile_python,
    "set": compile_set,
    "write": compile_write,
    "wait": compile_wait,
    "approval": compile_approval,
    "fail": compile_fail,
    "emit": compile_emit,
    "memory": compile_memory,
    "action": compile_action,
    "workflow": compile_workflow,
    "steps": compile_group,
    "then": compile_if,
    "switch": compile_switch,
    "loop": compile_loop,
    "parallel": compile_parallel,
    "map": compile_map,
    "stream": compile_stream,
    "try": compile_try,
}

#: The graph kind of each kind key (``then`` marks the if/else pattern).
KIND_NAMES = {key: key for key in BUILDERS} | {"then": "if", "steps": "group"}

#: Names ``action:`` refuses: the built-in kinds are written with their own key (``run: ...``), which checks
#: and compiles what the generic form cannot (a shell command, a model, a duration …).
RESERVED_ACTIONS = frozenset(BUILDERS) | frozenset(KIND_NAMES.values())
