"""The composition root: builds the store, registry, bus and engine, and drives runs and resumes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmflow.compiler.graph import Workflow
from llmflow.engine.actions import ActionRegistry
from llmflow.engine.events import EventBus, Sink
from llmflow.engine.outcome import FAILED, SKIPPED, SUCCEEDED, PauseRun
from llmflow.engine.ports import Durability, RunHandle, RunStore
from llmflow.engine.runner import Engine, RunState
from llmflow.errors import LimitExceeded, RunError, StepError, UsageError

_INDEX = re.compile(r"\[\d+\]")
_REPLAYABLE = (SUCCEEDED, SKIPPED, FAILED)


@dataclass(slots=True)
class RunOptions:
    """How to drive a run: where the store is, how durable the journal is, who watches."""

    state_dir: str | None = None
    durability: Durability = "strict"
    sinks: list[Sink] = field(default_factory=list)
    output_listener: Callable[[str, str, str], None] | None = None
    started_listener: Callable[[str, Path], None] | None = None
    handle_signals: bool = True


@dataclass(slots=True)
class RunSummary:
    """How a run (or a resume) ended."""

    run_id: str
    status: str
    outputs: Any = None
    error: str | None = None
    failed_step: str | None = None
    waiting_for: list[str] = field(default_factory=list)
    directory: Path | None = None
    usage: dict[str, float] = field(default_factory=dict)


def open_store(state_dir: str | None = None) -> RunStore:
    """The run store for the current project."""
    from llmflow.store import FileRunStore, find_store_root

    return FileRunStore(find_store_root(override=state_dir))


def registry() -> ActionRegistry:
    """Every action: built-ins (and, later, plugins) through one door."""
    from llmflow.actions import builtin_actions

    return ActionRegistry(builtin_actions())


def static_path(instance_path: str) -> str:
    """``label[3]/classify`` → ``label/classify``."""
    return _INDEX.sub("", instance_path)


def _source_layout(workflow: Workflow) -> tuple[Path, dict[str, str], str]:
    """The common folder of every source file, each file's text by relative path, and the main file's."""
    files = [Path(path) for path in workflow.sources]
    root = Path(os.path.commonpath([str(path.parent) for path in files]))
    texts = {str(path.relative_to(root)): path.read_text(encoding="utf-8") for path in files}
    return root, texts, str(workflow.path.relative_to(root))


def _now() -> str:
    from llmflow.store.ids import format_timestamp

    return format_timestamp()


def _redacted_inputs(workflow: Workflow, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: ("***" if workflow.inputs[name].secret else value) for name, value in inputs.items()}


def _secrets(workflow: Workflow, project: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    dotenv: dict[str, str] = {}
    env_file = project / ".env"
    if env_file.is_file():
        for line in env_file.read_text(encoding="utf-8", errors="replace").splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and not name.startswith("#"):
                dotenv[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    for name in workflow.secrets:
        found = os.environ.get(name, dotenv.get(name))
        if found is not None:
            values[name] = found
    return values


async def start_run(workflow: Workflow, inputs: Mapping[str, Any], options: RunOptions | None = None) -> RunSummary:
    """Create a run of ``workflow`` with checked ``inputs`` and drive it to an end state."""
    from llmflow.engine.inputs import resolve_inputs

    options = options or RunOptions()
    values = resolve_inputs(workflow.inputs, inputs)
    store = open_store(options.state_dir)
    root, texts, main = _source_layout(workflow)
    meta = {
        "workflow": workflow.name,
        "file": workflow.file,
        "source_root": str(root),
        "source_main": main,
        "sources": {str(Path(p).relative_to(root)): digest for p, digest in workflow.sources.items()},
        "inputs": _redacted_inputs(workflow, values),
        "status": "running",
        "started": _now(),
    }
    handle = store.create_run(meta, texts, durability=options.durability)
    handle.lock()
    state = _state(workflow, handle, store, options)
    engine = Engine(state)
    frame = engine.root_frame(values)
    return await _drive(engine, frame, handle, options, "run.started", values)


def _state(workflow: Workflow, handle: RunHandle, store: RunStore, options: RunOptions, start_seq: int = 0) -> RunState:
    from llmflow.sinks import FileEventSink
    from llmflow.store.location import project_root

    bus = EventBus(handle.run_id, start_seq)
    bus.add(FileEventSink(handle.events_path()))
    for sink in options.sinks:
        bus.add(sink)
    project = project_root(store.root)
    env = dict(os.environ)
    state = RunState(
        run_id=handle.run_id,
        workflow=workflow,
        handle=handle,
        bus=bus,
        registry=registry(),
        project_dir=project,
        store=store,
        env=env,
        secrets=_secrets(workflow, project),
        output_listener=options.output_listener,
    )
    if workflow.limits.max_concurrency:
        state.action_slots = asyncio.Semaphore(workflow.limits.max_concurrency)
    return state


async def _drive(
    engine: Engine,
    frame: Any,
    handle: RunHandle,
    options: RunOptions,
    start_event: str,
    inputs: Mapping[str, Any],
) -> RunSummary:
    state = engine.state
    workflow = state.workflow
    handle.update(status="running", pid=os.getpid(), host=socket.gethostname(), resumed=_now())
    if options.started_listener is not None:
        options.started_listener(handle.run_id, handle.directory)
    state.emit(start_event, "", {"workflow": workflow.name, "inputs": _redacted_inputs(workflow, inputs)})
    if workflow.env is not None:
        rendered = workflow.env.render(engine.context(frame))
        engine.env_base.update({str(k): str(v) for k, v in rendered.items()})

    task = asyncio.ensure_future(engine.run_workflow(workflow, frame))
    reason: list[str] = []
    loop = asyncio.get_running_loop()
    handlers = []
    if options.handle_signals:
        for sig, why in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "cancelled")):
            try:
                loop.add_signal_handler(sig, _stopper(task, reason, why))
                handlers.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    summary = RunSummary(run_id=handle.run_id, status="running", directory=handle.directory)
    try:
        done, _ = await asyncio.wait({task}, timeout=workflow.limits.timeout)
        if not done:
            reason.append("timeout")
            task.cancel()
        try:
            summary.outputs = await task
            summary.status = "succeeded"
        except asyncio.CancelledError:
            if not reason:
                raise
            if reason[0] == "timeout":
                summary.status = "failed"
                summary.error = f"the run timed out after {workflow.limits.timeout:g}s (limits.timeout)"
            else:
                summary.status = reason[0]
        except PauseRun as pause:
            summary.status = "waiting"
            summary.waiting_for = list(dict.fromkeys(pause.paths))
            summary.error = pause.message
        except (StepError, RunError) as error:
            summary.status = "failed"
            summary.error = str(error)
            summary.failed_step = error.path if isinstance(error, StepError) else None
            if not isinstance(error, LimitExceeded):
                await _compensate(engine, frame)
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)
        summary.usage = dict(state.usage)
        events = {
            "succeeded": "run.completed",
            "failed": "run.failed",
            "waiting": "run.paused",
            "interrupted": "run.interrupted",
            "cancelled": "run.cancelled",
        }
        data: dict[str, Any] = {"status": summary.status}
        if summary.error:
            data["error"] = summary.error
        if summary.waiting_for:
            data["waiting_for"] = summary.waiting_for
        state.emit(events.get(summary.status, "run.failed"), "", data)
        handle.sync()
        handle.update(
            status=summary.status if summary.status != "running" else "interrupted",
            ended=_now(),
            error=summary.error,
            failed_step=summary.failed_step,
            waiting_for=summary.waiting_for,
            outputs=summary.outputs,
            usage=summary.usage,
            last_seq=state.bus.seq,
        )
        state.bus.close()
        handle.close()
    return summary


def _stopper(task: asyncio.Future[Any], reason: list[str], why: str) -> Callable[[], None]:
    def stop() -> None:
        if reason:  # a second signal: stop waiting for clean-up
            os._exit(130 if why == "interrupted" else 143)
        reason.append(why)
        task.cancel()

    return stop


async def _compensate(engine: Engine, frame: Any) -> None:
    """Run the ``compensate`` steps of completed nodes, most recent first; the run stays failed."""
    state = engine.state
    completed = [record for record in state.handle.records() if record.get("s") == SUCCEEDED]
    for record in reversed(completed):
        path = record["p"]
        node = state.workflow.nodes.get(static_path(path))
        if node is None or not node.compensate or "/compensate/" in path:
            continue
        state.emit("step.compensating", path, {"id": node.id})
        try:
            await engine.sequence(node.compensate, frame)
        except StepError as error:
            state.emit("step.failed", path, {"id": node.id, "error": {"message": f"compensation failed: {error}"}})
            continue
        state.handle.append({"p": path, "s": "compensated"})


# -- resume ----------------------------------------------------------------------------------------
def replay_index(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Completed node instances by path, after compensations and rewinds are applied."""
    index: dict[str, dict[str, Any]] = {}
    for record in records:
        status = record.get("s")
        path = record.get("p", "")
        if status in _REPLAYABLE:
            index[path] = record
        elif status == "compensated":
            for done in [p for p in index if p == path or p.startswith((path + "/", path + "["))]:
                del index[done]
        elif status == "rewind":
            dropped = set(record.get("drop") or ())
            for done in [p for p in index if _under(static_path(p), dropped)]:
                del index[done]
    return index


def _under(path: str, roots: set[str]) -> bool:
    """True when ``path`` or one of its ancestors is in ``roots``."""
    parts = path.split("/")
    return any("/".join(parts[:depth]) in roots for depth in range(1, len(parts) + 1))


def rerun_set(workflow: Workflow, step: str) -> set[str]:
    """Static paths that ``--from STEP`` runs again: STEP, everything after it, and what contains it."""
    target = workflow.find(step)
    if target is None:
        from llmflow.spec.validator import suggest

        match = suggest(step, [node.id for node in workflow.walk() if node.named])
        hint = f" (did you mean '{match}'?)" if match else ""
        raise UsageError(f"--from: the workflow has no step '{step}'{hint}")
    paths = list(workflow.nodes)
    start = paths.index(target.path)
    ancestors = {target.path.rsplit("/", depth)[0] for depth in range(1, target.path.count("/") + 1)}
    return set(paths[start:]) | (ancestors & set(paths))


def check_edited(workflow: Workflow, records: list[dict[str, Any]]) -> None:
    """Refuse an edited workflow that no longer has every completed node."""
    known = set(workflow.nodes)
    missing = set()
    for record in records:
        if record.get("s") not in _REPLAYABLE:
            continue
        path = static_path(record["p"])
        if path in known or _inside_sub_workflow(workflow, path):
            continue
        missing.add(path)
    if missing:
        shown = sorted(missing)
        listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
        raise UsageError(f"the edited workflow no longer has these completed steps: {listed}")


def _inside_sub_workflow(workflow: Workflow, path: str) -> bool:
    """True when ``path`` lies inside a ``workflow`` node (its nodes belong to the other file)."""
    parts = path.split("/")
    for depth in range(1, len(parts)):
        node = workflow.nodes.get("/".join(parts[:depth]))
        if node is not None and node.kind == "workflow":
            return True
    return False


@dataclass(slots=True)
class ResumeRequest:
    """What ``llmflow resume`` asks for."""

    selector: str | None = None
    last: bool = False
    from_step: str | None = None
    workflow_file: Path | None = None
    approve: bool = False
    reject: bool = False
    comment: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)


def load_run_workflow(store: RunStore, run_id: str, meta: Mapping[str, Any]) -> Workflow:
    """Compile the run's frozen copy of its workflow, with paths mapped back to the original folder."""
    from llmflow.frontend import load_workflow

    frozen = store.source_dir(run_id) / str(meta["source_main"])
    workflow = load_workflow(frozen, display_name=str(meta.get("file", frozen.name)))
    return _rebase(workflow, Path(str(meta["source_root"])) / str(meta["source_main"]))


def _rebase(workflow: Workflow, original: Path) -> Workflow:
    # Relative paths in steps (cwd, write, python imports) start at the original workflow's folder.
    return replace(workflow, path=original)


def _map_sources(state: RunState, store: RunStore, run_id: str, meta: Mapping[str, Any]) -> None:
    state.frozen_root = store.source_dir(run_id).resolve()
    state.original_root = Path(str(meta["source_root"]))


async def resume_run(request: ResumeRequest, options: RunOptions | None = None) -> RunSummary:
    """Continue a run that failed, was interrupted or cancelled, or waits for approval."""
    from llmflow.engine.inputs import resolve_inputs
    from llmflow.frontend import load_workflow

    options = options or RunOptions()
    store = open_store(options.state_dir)
    run_id = store.resolve(request.selector, last=request.last)
    handle = store.open_run(run_id, durability=options.durability)
    handle.lock()
    try:
        meta = handle.meta
        status = meta.get("status")
        if status == "succeeded" and request.from_step is None:
            raise UsageError(f"run {run_id} already succeeded; use --from STEP to run part of it again")
        waiting = list(meta.get("waiting_for") or [])
        if status == "waiting" and not (request.approve or request.reject):
            raise UsageError(
                f"run {run_id} is waiting for approval at {', '.join(waiting)}; resume with --approve or --reject"
            )
        if (request.approve or request.reject) and status != "waiting":
            raise UsageError(f"run {run_id} is not waiting for approval (status: {status})")
        records = handle.records()
        if request.workflow_file is not None:
            workflow = load_workflow(request.workflow_file)
            check_edited(workflow, records)
        else:
            workflow = load_run_workflow(store, run_id, meta)
        if request.from_step is not None:
            drop = rerun_set(workflow, request.from_step)
            handle.append({"p": "", "s": "rewind", "drop": sorted(drop)})
            records.append({"p": "", "s": "rewind", "drop": sorted(drop)})
        stored_inputs = dict(meta.get("inputs") or {})
        if any(value == "***" for value in stored_inputs.values()):
            missing = [name for name, value in stored_inputs.items() if value == "***" and name not in request.inputs]
            if missing:
                raise UsageError(f"secret inputs are not stored; pass them again: -i {missing[0]}=...")
        from llmflow.engine.inputs import parse_assignments

        stored_inputs.update(parse_assignments(workflow.inputs, [f"{k}={v}" for k, v in request.inputs.items()]))
        values = resolve_inputs(workflow.inputs, stored_inputs)
    except BaseException:
        handle.close()
        raise
    state = _state(workflow, handle, store, options, start_seq=int(meta.get("last_seq") or _last_seq(handle)))
    state.replay = replay_index(records)
    if request.workflow_file is None:
        _map_sources(state, store, run_id, meta)
    if request.approve or request.reject:
        decision = {"approved": request.approve, "comment": request.comment}
        state.approvals = {path: decision for path in waiting}
    engine = Engine(state)
    frame = engine.root_frame(values)
    handle.update(resumes=int(meta.get("resumes") or 0) + 1)
    return await _drive(engine, frame, handle, options, "run.resumed", values)


def _last_seq(handle: RunHandle) -> int:
    path = handle.events_path()
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - 8192))
            tail = stream.read().splitlines()
    except OSError:
        return 0
    import json

    for line in reversed(tail):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0
