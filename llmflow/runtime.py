"""The composition root: builds the store, registry, bus and engine, and drives runs and resumes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from llmflow.compiler.graph import ActionNode, HookNode, Workflow, evolve
from llmflow.config import Config
from llmflow.durations import format_moment
from llmflow.engine.actions import ActionRegistry
from llmflow.engine.driver import RunOptions, RunSummary, drive, now, redacted_inputs
from llmflow.engine.events import EventBus
from llmflow.engine.ports import Durability, RunHandle, RunStore
from llmflow.engine.resume import (
    COMPENSATING,
    check_edited,
    check_statuses,
    replay_index,
    rerun_set,
    rewind_record,
    static_path,
)
from llmflow.engine.runner import Engine, RunState
from llmflow.engine.state import usage_number
from llmflow.errors import PluginError, StoreError, UsageError
from llmflow.expressions.extensions import Extensions, Kind, builtin_names, extensions_of_run
from llmflow.plugins import Plugins, load_plugins
from llmflow.plugins.loading import builtin_plugins, declared_plugins
from llmflow.processes import stop_leftovers
from llmflow.providers import ProviderRegistry
from llmflow.providers.pricing import DEFAULT_PRICES
from llmflow.records import Record

__all__ = [
    "ResumeRequest",
    "RunOptions",
    "RunSummary",
    "check_edited",
    "open_store",
    "replay_index",
    "rerun_set",
    "resume_run",
    "start_run",
    "static_path",
]


def open_store(state_dir: str | None = None) -> RunStore:
    """The run store for the current project."""
    from llmflow.store import FileRunStore, find_store_root

    return FileRunStore(find_store_root(override=state_dir))


def registry() -> ActionRegistry:
    """The built-in actions, registered by the built-in plugin's ``register_actions`` (a run then lets its
    other plugins add theirs through the same hook)."""
    actions = ActionRegistry()
    builtin_plugins(shared=True).register_actions(actions, builtin=True)
    return actions


def providers(config: Config | None = None) -> ProviderRegistry:
    """The built-in model providers with the run's settings, registered by the built-in plugin's
    ``register_providers`` (a run then lets its other plugins add theirs)."""
    models = ProviderRegistry(config=config)
    builtin_plugins(shared=True).register_providers(models, builtin=True)
    return models


class _Wiring:
    """What a run's plugins give it: the plugins, every action and model provider, their filters and functions."""

    __slots__ = ("actions", "extensions", "models", "plugins")

    def __init__(
        self, plugins: Plugins, actions: ActionRegistry, models: ProviderRegistry, extensions: Extensions
    ) -> None:
        self.plugins = plugins
        self.actions = actions
        self.models = models
        self.extensions = extensions


def _wire(workflow: Workflow, plugins: Plugins, config: Config) -> _Wiring:
    """The built-ins, then every other plugin's actions, providers, template filters and condition functions
    (a later registration of a name wins).

    Raises ``PluginError`` when a step of ``workflow`` names an action, or one of its expressions a filter or
    function, that no plugin registers.
    """
    actions = registry()
    plugins.register_actions(actions)
    check_actions(workflow, actions)
    extensions = plugins.extensions()
    check_expressions(workflow, extensions)
    models = providers(config)
    plugins.register_providers(models)
    return _Wiring(plugins, actions, models, extensions)


def check_actions(workflow: Workflow, actions: ActionRegistry) -> None:
    """Refuse a workflow with an ``action:`` step (or hook) whose name no plugin registers.

    Validation never imports plugins, so this is the first moment the names can be checked; a run checks
    them before it writes anything, so a misspelt name leaves no run behind. The steps and hooks of
    sub-workflows count too.
    """
    if all(name in actions for name in workflow.action_names()):
        return
    unknown = next(node for node in _leaves(workflow) if node.action not in actions)
    from llmflow.compiler.nodes import RESERVED_ACTIONS
    from llmflow.spec.validator import suggest

    usable = [name for name in actions.kinds() if name not in RESERVED_ACTIONS]
    what = f"hook '{unknown.id}'" if isinstance(unknown, HookNode) else f"step '{unknown.id}'"
    message = f"{what} at {unknown.location}: no plugin registers the action '{unknown.action}'"
    close = suggest(unknown.action, usable)
    if close:
        message += f" (did you mean '{close}'?)"
    message += f"; plugin actions: {', '.join(usable)}" if usable else "; no plugin registers any action"
    raise PluginError(message)


def check_expressions(workflow: Workflow, extensions: Extensions) -> None:
    """Refuse a workflow whose conditions or templates use a filter or function that no plugin registers.

    The compiler records those it does not know (only in files that name plugins: validation never imports
    them); the run checks them, in sub-workflows too, once its plugins are loaded and before it writes anything.
    """
    for current in workflow.workflows():
        for used in current.plugin_names:
            kind: Kind = "filter" if used.kind == "filter" else "function"
            registered = extensions.registered(kind)
            if used.name in registered:
                continue
            where = f"{used.owner} at {used.location}" if used.owner else str(used.location)
            message = f"{where}: no plugin registers the {kind} '{used.name}'"
            from llmflow.spec.validator import suggest

            close = suggest(used.name, [*registered, *builtin_names(kind)])
            if close:
                message += f" (did you mean '{close}'?)"
            names = sorted(registered)
            message += f"; plugin {kind}s: {', '.join(names)}" if names else f"; no plugin registers any {kind}"
            raise PluginError(message)


def _leaves(workflow: Workflow) -> Iterator[ActionNode]:
    """Every leaf step of the workflow, then its hooks; then the same for each sub-workflow (once each)."""
    for current in workflow.workflows():
        for node in current.walk():
            if isinstance(node, ActionNode):
                yield node
        yield from current.hooks


def _source_layout(workflow: Workflow) -> tuple[dict[str, str], dict[str, Any]]:
    """What freezing ``workflow`` takes: each source file's text by its path relative to the files' common
    folder, and the ``run.json`` fields that say where they came from (``file``, ``source_root``,
    ``source_main``, ``sources`` with their sha256).

    Plugin files named in ``plugins:`` are frozen with the workflow files, so that the frozen copy compiles
    on resume (the resumed run imports them from their original folder, as ``python`` steps do).
    """
    files = [Path(path) for path in workflow.sources]
    plugin_files = [
        path
        for directory, entry, _ in declared_plugins(workflow)
        if entry.endswith(".py") and (path := (directory / entry).resolve()).is_file()
    ]
    root = Path(os.path.commonpath([str(path.parent) for path in [*files, *plugin_files]]))
    texts = {str(path.relative_to(root)): path.read_text(encoding="utf-8") for path in [*plugin_files, *files]}
    fields = {
        "file": workflow.file,
        "source_root": str(root),
        "source_main": str(workflow.path.relative_to(root)),
        "sources": {str(Path(p).relative_to(root)): digest for p, digest in workflow.sources.items()},
    }
    return texts, fields


async def start_run(workflow: Workflow, inputs: Mapping[str, Any], options: RunOptions | None = None) -> RunSummary:
    """Create a run of ``workflow`` with checked ``inputs`` and drive it to an end state."""
    from llmflow.engine.inputs import resolve_inputs

    options = options or RunOptions()
    values = resolve_inputs(workflow.inputs, inputs)
    store = open_store(options.state_dir)
    config = _settings(store)  # before the run exists: a malformed llmflow.toml leaves no run behind
    wiring = _wire(workflow, load_plugins(workflow, options.plugins), config)  # nor does a plugin that does not load
    texts, fields = _source_layout(workflow)
    meta = {
        "workflow": workflow.name,
        **fields,
        "inputs": redacted_inputs(workflow, values),
        "status": "running",
        "started": now(),
    }
    handle = store.create_run(meta, texts, durability=options.durability)
    handle.lock()
    try:
        state = _state(workflow, handle, store, options, wiring, values, config=config)
    except BaseException as error:
        handle.update(status="failed", ended=now(), error=str(error) or type(error).__name__)
        handle.close()
        raise
    engine = Engine(state)
    frame = engine.root_frame(values)
    with extensions_of_run(wiring.extensions):  # this run's plugin filters and functions, for its tasks alone
        return await _finish(state, drive(engine, frame, state.handle, options, "run.started", values))


def _settings(store: RunStore) -> Config:
    """``llmflow.toml`` (project and user) and ``.env`` of the project the store belongs to."""
    from llmflow.config import load_config
    from llmflow.store.location import project_root

    return load_config(project_root(store.root))


def _state(
    workflow: Workflow,
    handle: RunHandle,
    store: RunStore,
    options: RunOptions,
    wiring: _Wiring,
    inputs: Mapping[str, Any],
    start_seq: int = 0,
    config: Config | None = None,
) -> RunState:
    from llmflow.redaction import RedactingSink, masked_handle, masked_store, redacting_listener, run_secrets
    from llmflow.sinks import FileEventSink
    from llmflow.store.location import project_root

    project = project_root(store.root)
    config = config if config is not None else _settings(store)
    secrets, redactor = run_secrets(workflow, config, inputs)
    sinks = [
        FileEventSink(handle.events_path()),
        *options.sinks,
        *wiring.plugins.sinks(handle.run_id, handle.directory),
    ]
    if redactor:  # only runs with secrets pay for masking: journal records, run.json, events, cache, output
        handle = masked_handle(handle, redactor)
        store = masked_store(store, redactor)
        sinks = [RedactingSink(sink, redactor) for sink in sinks]
        stored = handle.meta.get("inputs")
        if redactor.redact(stored) is not stored:  # an input given a secret's value (run.json was just written)
            handle.update(inputs=stored)
    bus = EventBus(handle.run_id, start_seq)
    for sink in sinks:
        bus.add(sink)
    models = wiring.models
    models.redactor = redactor if redactor else None  # streamed text is masked as it arrives
    env = dict(os.environ)
    state = RunState(
        run_id=handle.run_id,
        workflow=workflow,
        handle=handle,
        bus=bus,
        registry=wiring.actions,
        project_dir=project,
        store=store,
        env=env,
        secrets=secrets,
        output_listener=redacting_listener(options.output_listener, redactor),
        providers=models,
        prices={**DEFAULT_PRICES, **config.prices},
        interceptor=wiring.plugins.interceptor(),
    )
    if workflow.limits.max_concurrency:
        state.action_slots = asyncio.Semaphore(workflow.limits.max_concurrency)
    return state


async def _finish(state: RunState, driving: Awaitable[RunSummary]) -> RunSummary:
    """Await the drive, then close the providers' connections and mask secrets in what is returned."""
    from llmflow.redaction import Redactor

    try:
        summary = await driving
    finally:
        if isinstance(state.providers, ProviderRegistry):
            await state.providers.aclose()
    redactor = getattr(state.handle, "redactor", None)
    if isinstance(redactor, Redactor):
        summary.error = redactor.redact(summary.error)
        summary.outputs = redactor.redact(summary.outputs)
    return summary


class ResumeRequest(Record):
    """What ``llmflow resume`` asks for."""

    __slots__ = ("approve", "comment", "from_step", "inputs", "last", "reject", "selector", "workflow_file")

    def __init__(
        self,
        selector: str | None = None,
        last: bool = False,
        from_step: str | None = None,
        workflow_file: Path | None = None,
        approve: bool = False,
        reject: bool = False,
        comment: str | None = None,
        inputs: dict[str, str] | None = None,
    ) -> None:
        self.selector = selector
        self.last = last
        self.from_step = from_step
        self.workflow_file = workflow_file
        self.approve = approve
        self.reject = reject
        self.comment = comment
        self.inputs: dict[str, str] = inputs if inputs is not None else {}


def load_run_workflow(store: RunStore, run_id: str, meta: Mapping[str, Any]) -> Workflow:
    """Compile the run's frozen copy of its workflow, with paths mapped back to the original folder."""
    from llmflow.frontend import load_workflow

    for key in ("source_main", "source_root"):
        if key not in meta:
            raise StoreError(
                f"run {run_id}: run.json has no '{key}', so the frozen workflow cannot be found; "
                "resume with --workflow FILE"
            )
    frozen = store.source_dir(run_id, meta) / str(meta["source_main"])
    workflow = load_workflow(frozen, display_name=str(meta.get("file", frozen.name)))
    return _rebase(workflow, Path(str(meta["source_root"])) / str(meta["source_main"]))


def _rebase(workflow: Workflow, original: Path) -> Workflow:
    # Relative paths in steps (cwd, write, python imports) start at the original workflow's folder.
    return evolve(workflow, path=original)


def _source_roots(store: RunStore, run_id: str, meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """The run's frozen copy of its sources (resolved), and the folder they were copied from."""
    return store.source_dir(run_id, meta).resolve(), Path(str(meta["source_root"]))


def _original_folders(frozen: Path, original: Path) -> Callable[[Workflow], Path]:
    """The original folder of a (sub-)workflow compiled from the run's frozen copy (as ``source_dir_for``)."""

    def folder(flow: Workflow) -> Path:
        try:
            return original / flow.directory.resolve().relative_to(frozen)
        except ValueError:
            return flow.directory

    return folder


async def resume_run(request: ResumeRequest, options: RunOptions | None = None) -> RunSummary:
    """Continue a run that failed, was interrupted or cancelled, or waits for approval.

    Every check (lock, status, journal, edited workflow, inputs) happens before anything is written, so a
    refused resume leaves the run exactly as it was.
    """
    options = options or RunOptions()
    store = open_store(options.state_dir)
    run_id = store.resolve(request.selector, last=request.last)
    handle = store.open_run(run_id, durability=options.durability)
    handle.lock()
    try:
        meta = handle.meta
        waiting = _check_resumable(run_id, meta, request)
        # Commands a killed driver left running would race the steps about to run again: stop them.
        stop_leftovers(handle.directory / "processes")
        records = handle.records()
        check_statuses(records, str(handle.journal_path))
        workflow = _resume_workflow(store, run_id, meta, request, records)
        _check_approvals(run_id, meta, request, workflow, waiting)
        roots = _source_roots(store, run_id, meta) if request.workflow_file is None else None
        directory_of = _original_folders(*roots) if roots is not None else None
        config = _settings(store)
        wiring = _wire(workflow, load_plugins(workflow, options.plugins, directory_of=directory_of), config)
        rewind = rewind_record(workflow, request.from_step) if request.from_step is not None else None
        values = _resume_inputs(workflow, meta, request)
        _end_torn_event(handle.events_path())
        start_seq = max(int(meta.get("last_seq") or 0), handle.last_event_seq())
        state = _state(workflow, handle, store, options, wiring, values, start_seq=start_seq, config=config)
        if request.workflow_file is not None:
            _adopt_edited(store, state.handle, workflow, options.durability)
        stored = redacted_inputs(workflow, values)
        # The run goes on with new inputs: a later resume (or --from) must not go back to the old ones, and
        # run.json says what the steps that run from now on saw. ``mark`` writes them on a thread of its own,
        # and the journal's next record waits for that write.
        new_inputs = stored if request.inputs and stored != meta.get("inputs") else None
    except BaseException:
        handle.close()
        raise
    if rewind is not None:
        if new_inputs is not None:  # before the rewind's record
            state.handle.mark(inputs=new_inputs)
            new_inputs = None
        handle.append(rewind)
        records.append(rewind)
    state.replay = replay_index(records)
    if COMPENSATING in state.replay and meta.get("status") == "failed":
        # The drive that began compensating ended (failed, every compensation run): a resume of the failed
        # run tries the workflow again; only a drive killed while compensating leaves the marker open.
        handle.append({"p": COMPENSATING, "s": "reset"})
        del state.replay[COMPENSATING]
    for key, value in (meta.get("usage") or {}).items():
        if key in state.usage and isinstance(value, (int, float)):
            state.usage[key] = usage_number(key, value)
    if roots is not None:  # paths in the frozen copy map back to the original folder
        state.frozen_root, state.original_root = roots
    if request.approve or request.reject:
        decision = {"approved": request.approve, "comment": request.comment}
        state.approvals = {path: decision for path in waiting}
    asked = meta.get("approvals_asked") or {}
    again = rerun_set(workflow, request.from_step) if request.from_step is not None else set()
    state.approvals_asked = {  # also those of a run killed while it waited; one run again with --from is asked afresh
        str(path): float(moment)
        for path, moment in (asked.items() if isinstance(asked, dict) else ())
        if isinstance(moment, (int, float)) and static_path(str(path)) not in again
    }
    engine = Engine(state)
    frame = engine.root_frame(values)
    changes: dict[str, Any] = {"resumes": int(meta.get("resumes") or 0) + 1}
    if new_inputs is not None:  # with the status: one write of run.json
        changes["inputs"] = new_inputs
    if request.workflow_file is not None:
        changes["edited_workflow"] = str(Path(request.workflow_file).resolve())
    with extensions_of_run(wiring.extensions):
        return await _finish(state, drive(engine, frame, state.handle, options, "run.resumed", values, meta=changes))


def _adopt_edited(store: RunStore, handle: RunHandle, workflow: Workflow, durability: Durability) -> None:
    """Make the edited workflow of ``resume --workflow`` the run's own: frozen beside the first copy and
    named in ``run.json`` (durably), so that a later plain resume goes on with it, not with the workflow the
    run started with, whose steps the edit may have changed."""
    texts, fields = _source_layout(workflow)
    folder = store.freeze_sources(handle.run_id, texts, durability=durability)
    handle.update(workflow=workflow.name, **fields, source_dir=folder)


def _check_resumable(run_id: str, meta: Mapping[str, Any], request: ResumeRequest) -> list[str]:
    """Refuse a resume the run's status does not allow; return the approval paths it waits at."""
    status = meta.get("status")
    if status == "succeeded" and request.from_step is None:
        raise UsageError(f"run {run_id} already succeeded; use --from STEP to run part of it again")
    if request.approve and request.reject:
        raise UsageError("--approve and --reject cannot be given together")
    waiting = [str(path) for path in meta.get("waiting_for") or []]
    if (request.approve or request.reject) and status != "waiting":
        raise UsageError(f"run {run_id} is not waiting for approval (status: {status})")
    return waiting


def _check_approvals(
    run_id: str, meta: Mapping[str, Any], request: ResumeRequest, workflow: Workflow, waiting: list[str]
) -> None:
    """A waiting run needs a decision while its approvals are in time; a decision given after an approval's
    ``timeout`` is refused (a plain resume lets that approval fail as timed out). ``--from`` asks again."""
    if meta.get("status") != "waiting" or request.from_step is not None:
        return
    asked = meta.get("approvals_asked") or {}
    deadlines: dict[str, float] = {}
    for path in waiting:
        node = workflow.nodes.get(static_path(path))
        timeout = node.options.get("timeout") if isinstance(node, ActionNode) and node.action == "approval" else None
        if timeout is not None and isinstance(asked.get(path), (int, float)):
            deadlines[path] = float(asked[path]) + float(timeout)
    expired = [path for path, deadline in deadlines.items() if deadline < time.time()]
    if (request.approve or request.reject) and expired:
        path = expired[0]
        node = workflow.nodes[static_path(path)]
        raise UsageError(
            f"the approval at {path} of run {run_id} timed out at {format_moment(deadlines[path])}: resume without "
            f"--approve/--reject to let it fail, or with --from {node.id} to ask again"
        )
    if not (request.approve or request.reject) and not expired:
        note = f" (it times out at {format_moment(min(deadlines.values()))})" if deadlines else ""
        raise UsageError(
            f"run {run_id} is waiting for approval at {', '.join(waiting)}{note}; resume with --approve or --reject"
        )


def _resume_workflow(
    store: RunStore, run_id: str, meta: Mapping[str, Any], request: ResumeRequest, records: list[dict[str, Any]]
) -> Workflow:
    """The frozen copy, or the edited file given with ``--workflow`` when it still has every completed node."""
    if request.workflow_file is None:
        return load_run_workflow(store, run_id, meta)
    from llmflow.frontend import load_workflow

    workflow = load_workflow(request.workflow_file)
    check_edited(workflow, records)
    return workflow


def _resume_inputs(workflow: Workflow, meta: Mapping[str, Any], request: ResumeRequest) -> dict[str, Any]:
    """The run's stored inputs, with ``-i`` overrides; secret inputs (never stored) must be given again."""
    from llmflow.engine.inputs import parse_assignments, resolve_inputs

    # An input an edited workflow (--workflow) no longer declares is dropped: only -i names are the user's.
    stored = {name: value for name, value in (meta.get("inputs") or {}).items() if name in workflow.inputs}
    missing = [
        name
        for name, value in stored.items()
        if value == "***" and workflow.inputs[name].secret and name not in request.inputs
    ]
    if missing:
        raise UsageError(f"secret inputs are not stored; pass them again: -i {missing[0]}=...")
    stored.update(parse_assignments(workflow.inputs, [f"{k}={v}" for k, v in request.inputs.items()]))
    return resolve_inputs(workflow.inputs, stored)


def _end_torn_event(path: Path) -> None:
    """Cut off the fragment a crash in the middle of a write left at the end of ``events.jsonl``.

    The resumed run appends to the file; its first event would otherwise finish the fragment's line and
    make one damaged line of both. A last event complete but for its newline is kept (``last_event_seq`` counts it).
    """
    try:
        with path.open("r+b") as stream:
            end = position = stream.seek(0, os.SEEK_END)
            while position > 0:
                start = max(0, position - 8192)
                stream.seek(start)
                chunk = stream.read(position - start)
                if position == end and chunk.endswith(b"\n"):
                    return
                newline = chunk.rfind(b"\n")
                if newline >= 0 or start == 0:
                    break
                position = start
            else:
                return  # an empty file
            cut = start + newline + 1
            stream.seek(cut)
            try:
                whole = isinstance(json.loads(stream.read()), dict)
            except (ValueError, RecursionError):
                whole = False
            if whole:
                stream.write(b"\n")
            else:
                stream.truncate(cut)
    except OSError:
        return  # no events yet, or an unwritable file: the sink reports its own trouble
