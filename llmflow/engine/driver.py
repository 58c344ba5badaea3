"""Driving one run to an end state: signals, the run timeout, pauses, failures, compensation, ``run.json``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmflow.compiler.graph import Workflow
from llmflow.engine.compensation import compensate
from llmflow.engine.events import Sink
from llmflow.engine.hooks import HookRunner
from llmflow.engine.outcome import PauseRun
from llmflow.engine.ports import Durability, RunHandle
from llmflow.engine.resume import COMPENSATING
from llmflow.engine.runner import Engine, RunState
from llmflow.engine.signals import catch_signals
from llmflow.errors import ActionError, ExpressionError, LimitExceeded, RunError, StepError
from llmflow.records import Record


class RunOptions(Record):
    """How to drive a run: where the store is, how durable the journal is, who watches."""

    __slots__ = (
        "abort_listener",
        "durability",
        "handle_signals",
        "output_listener",
        "plugins",
        "sinks",
        "started_listener",
        "state_dir",
    )

    def __init__(
        self,
        state_dir: str | None = None,
        durability: Durability = "strict",
        sinks: list[Sink] | None = None,
        output_listener: Callable[[str, str, str], None] | None = None,
        started_listener: Callable[[str, Path], None] | None = None,
        handle_signals: bool = True,
        plugins: list[Any] | None = None,
        abort_listener: Callable[[RunSummary], None] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.durability: Durability = durability
        self.sinks: list[Sink] = sinks if sinks is not None else []
        self.output_listener = output_listener
        self.started_listener = started_listener
        self.handle_signals = handle_signals
        #: Plugin objects (modules, classes or instances with ``@hookimpl`` functions) added for this run.
        self.plugins: list[Any] = plugins if plugins is not None else []
        #: Told how the run stopped when a second Ctrl-C (or SIGTERM) ends the process at once, just before it
        #: exits (the last thing shown: the process exits without unwinding).
        self.abort_listener = abort_listener


class RunSummary(Record):
    """How a run (or a resume) ended."""

    __slots__ = (
        "compensated",
        "directory",
        "error",
        "failed_step",
        "outputs",
        "run_id",
        "status",
        "usage",
        "waiting_for",
        "waiting_messages",
    )

    def __init__(
        self,
        run_id: str,
        status: str,
        outputs: Any = None,
        error: str | None = None,
        failed_step: str | None = None,
        waiting_for: list[str] | None = None,
        directory: Path | None = None,
        usage: dict[str, float] | None = None,
        compensated: list[str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.status = status
        self.outputs = outputs
        self.error = error
        self.failed_step = failed_step
        self.waiting_for: list[str] = waiting_for if waiting_for is not None else []
        #: The message of each approval in ``waiting_for`` (``error`` holds the first).
        self.waiting_messages: dict[str, str] = {}
        self.directory = directory
        self.usage: dict[str, float] = usage if usage is not None else {}
        self.compensated: list[str] = compensated if compensated is not None else []


def now() -> str:
    """The current UTC time as ``run.json`` stores it: ISO 8601 with milliseconds, ``…T11:48:07.123Z``."""
    moment = datetime.now(timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def redacted_inputs(workflow: Workflow, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as stored and shown: secret ones replaced by ``***``, unless they hold their default (which the
    workflow file shows anyway, and which a resume can then go on with without asking for it again)."""
    return {name: ("***" if workflow.inputs[name].hides(value) else value) for name, value in inputs.items()}


_END_EVENTS = {
    "succeeded": "run.completed",
    "failed": "run.failed",
    "waiting": "run.paused",
    "interrupted": "run.interrupted",
    "cancelled": "run.cancelled",
}


async def drive(
    engine: Engine,
    frame: Any,
    handle: RunHandle,
    options: RunOptions,
    start_event: str,
    inputs: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> RunSummary:
    """Run the workflow to an end state and record it; the lock is released however it ends.

    ``meta``: more fields for ``run.json``, written with the ``running`` status (one write, not two).

    Cancelling the task that awaits this (as ``asyncio.run`` does on Ctrl-C) stops the run as
    ``interrupted`` (in-flight steps are cancelled, the journal stays consistent) and re-raises.
    """
    state = engine.state
    workflow = state.workflow
    summary = RunSummary(run_id=handle.run_id, status="running", directory=handle.directory)
    reason: list[str] = []
    loop = asyncio.get_running_loop()
    release_signals: Callable[[], None] = _no_signals
    outer_cancelled = False
    hooks = HookRunner(engine, frame, workflow.hooks) if workflow.hooks else None
    try:
        driver = {"pid": os.getpid(), "host": socket.gethostname()}
        if start_event == "run.resumed":
            driver["resumed"] = now()
        handle.mark(**(meta or {}), status="running", **driver)  # _record_end's update makes it durable
        if options.started_listener is not None:
            options.started_listener(handle.run_id, handle.directory)
        if hooks is not None:
            hooks.attach()
        state.emit(start_event, "", {"workflow": workflow.name, "inputs": redacted_inputs(workflow, inputs)})
        task = asyncio.ensure_future(_main(engine, workflow, frame))
        if hooks is not None:
            hooks.on_failure = _hook_stopper(task, reason)
            if hooks.failure is not None:  # a required hook on the start event failed at once
                hooks.on_failure()
        if options.handle_signals:

            def at_once(status: str) -> None:
                _stop_at_once(state, handle, options, status)

            handlers: dict[int, Callable[[], None]] = {
                signal.SIGINT: _stopper(task, reason, "interrupted", hooks, at_once),
                signal.SIGTERM: _stopper(task, reason, "cancelled", hooks, at_once),
            }
            hangup = getattr(signal, "SIGHUP", None)  # the terminal went away (a closed SSH session): as Ctrl-C
            if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:  # not under nohup
                handlers[hangup] = handlers[signal.SIGINT]
            release_signals = catch_signals(loop, handlers)
        try:
            done, _ = await asyncio.wait({task}, timeout=workflow.limits.timeout)
        except asyncio.CancelledError:
            outer_cancelled = True
            reason.append("interrupted")
            done = set()
        if not done:
            if not reason:
                reason.append("timeout")
            task.cancel()
            await asyncio.wait({task})
        await _settle(task, engine, frame, summary, reason, hooks)
        if hooks is not None and not outer_cancelled:
            await _settle_hooks(hooks, engine, frame, summary)
    except asyncio.CancelledError:
        outer_cancelled = True
        summary.status = "interrupted"
    except BaseException as error:
        summary.status = "failed"
        summary.error = f"internal error: {type(error).__name__}: {error}"
        raise
    finally:
        release_signals()
        try:
            _announce_end(state, summary)
            if hooks is not None:
                await _end_hooks(hooks, cancel=outer_cancelled)
        finally:
            _record_end(state, handle, summary)
    if outer_cancelled:
        raise asyncio.CancelledError
    return summary


async def _main(engine: Engine, workflow: Workflow, frame: Any) -> Any:
    """The workflow's ``env``, then its steps and outputs."""
    if workflow.env is not None:
        try:
            rendered = workflow.env.render(engine.context(frame))
        except ExpressionError as error:
            raise ActionError(f"workflow '{workflow.name}', env: {error.message}") from None
        engine.env_base.update({str(k): str(v) for k, v in rendered.items()})
    failing = engine.state.replay.get(COMPENSATING)
    if failing is not None:
        await _fail_again(engine, workflow, frame, failing)
    return await engine.run_workflow(workflow, frame)


async def _fail_again(engine: Engine, workflow: Workflow, frame: Any, failing: Mapping[str, Any]) -> None:
    """The run was killed while compensating a failure: restore what completed (the compensations see the
    steps and variables they would have seen) and fail as before, so that the compensation is finished
    without running any step of the workflow again."""
    if workflow.initial_vars is not None:
        with contextlib.suppress(ExpressionError):  # it rendered before the failure
            frame.vars.update(workflow.initial_vars.render(engine.context(frame)))
    replay = engine.state.replay
    for node in workflow.steps:
        if node.path in replay:
            await engine.execute(node, frame)
    recorded = failing.get("e")
    error: Mapping[str, Any] = recorded if isinstance(recorded, dict) else {}
    message = str(error.get("message") or "the run failed")
    step = error.get("step")
    if isinstance(step, str) and step:
        raise StepError(message, path=step)
    raise RunError(message)


async def _settle(
    task: asyncio.Future[Any],
    engine: Engine,
    frame: Any,
    summary: RunSummary,
    reason: list[str],
    hooks: HookRunner | None = None,
) -> None:
    """Turn how the workflow task ended into the summary (compensating a failure)."""
    workflow = engine.state.workflow
    try:
        summary.outputs = task.result()
        summary.status = "succeeded"
    except asyncio.CancelledError:
        if not reason:
            raise
        if reason[0] == "timeout":
            summary.status = "failed"
            summary.error = f"the run timed out after {workflow.limits.timeout:g}s (limits.timeout)"
        elif reason[0] == "hook" and hooks is not None:
            summary.status = "failed"
            summary.error = hooks.failure
            summary.compensated = await compensate(engine, frame, summary.error, None)
        else:
            summary.status = reason[0]
    except PauseRun as pause:
        summary.status = "waiting"
        summary.waiting_for = list(dict.fromkeys(pause.paths))
        summary.waiting_messages = {path: pause.messages.get(path, pause.message) for path in summary.waiting_for}
        summary.error = pause.message
    except (StepError, RunError) as error:
        summary.status = "failed"
        summary.error = str(error)
        summary.failed_step = (error.path or None) if isinstance(error, StepError) else None
        if not isinstance(error, LimitExceeded):
            summary.compensated = await compensate(engine, frame, summary.error, summary.failed_step)


async def _settle_hooks(hooks: HookRunner, engine: Engine, frame: Any, summary: RunSummary) -> None:
    """Wait for the hooks the run's steps started (cancel them when the run was stopped); a required hook
    that failed meanwhile fails a run that had succeeded."""
    if summary.status in ("interrupted", "cancelled"):
        await hooks.cancel()
        return
    await hooks.drain()
    if hooks.failure is not None and summary.status == "succeeded":
        summary.status = "failed"
        summary.error = hooks.failure
        summary.outputs = None
        summary.compensated = await compensate(engine, frame, summary.error, None)


async def _end_hooks(hooks: HookRunner, *, cancel: bool) -> None:
    """Let the hooks of the run's last event finish (their failures can no longer change the status)."""
    try:
        if cancel:
            await hooks.cancel()
        else:
            await hooks.drain()
    finally:
        hooks.detach()


def _announce_end(state: RunState, summary: RunSummary) -> None:
    """Settle a status nobody set and emit the run's last event."""
    if summary.status == "running":  # stopped by something no one could handle
        summary.status = "interrupted"
    summary.usage = dict(state.usage)
    data: dict[str, Any] = {"status": summary.status}
    if summary.error:
        data["error"] = summary.error
    if summary.failed_step:
        data["failed_step"] = summary.failed_step
    if summary.waiting_for:
        data["waiting_for"] = summary.waiting_for
    state.emit(_END_EVENTS[summary.status], "", data)


def _record_end(state: RunState, handle: RunHandle, summary: RunSummary) -> None:
    """Write the end state to ``run.json`` and release the run."""
    try:
        if summary.status == "running":
            summary.status = "interrupted"
        waiting = set(summary.waiting_for)
        handle.sync()
        handle.update(
            status=summary.status,
            ended=now(),
            error=summary.error,
            failed_step=summary.failed_step,
            waiting_for=summary.waiting_for,
            waiting_messages=summary.waiting_messages,
            approvals_asked={path: asked for path, asked in state.approvals_asked.items() if path in waiting},
            outputs=summary.outputs,
            usage=summary.usage,
            last_seq=state.bus.seq,
            **({"compensated": summary.compensated} if summary.compensated else {}),
        )
    finally:
        state.bus.close()
        handle.close()


def _no_signals() -> None:
    pass


def _stopper(
    task: asyncio.Future[Any],
    reason: list[str],
    why: str,
    hooks: HookRunner | None = None,
    at_once: Callable[[str], None] | None = None,
) -> Callable[[], None]:
    def stop() -> None:
        if reason:  # a second signal: stop waiting for clean-up
            if at_once is not None:
                at_once(why)
            os._exit(130 if why == "interrupted" else 143)
        reason.append(why)
        task.cancel()
        if hooks is not None:  # hooks still running (the run may be waiting for them at its end) stop too
            hooks.stop()

    return stop


def _stop_at_once(state: RunState, handle: RunHandle, options: RunOptions, status: str) -> None:
    """A second signal: no more waiting for the steps in flight to wind down. The commands still running are
    killed (they would outlive the process), ``run.json`` says how the run stopped (the journal holds what
    completed, so ``resume`` goes on as after ``kill -9``) and the abort listener is told; the caller exits."""
    from llmflow.processes import kill_live_groups

    kill_live_groups()
    second = "Ctrl-C" if status == "interrupted" else "SIGTERM"
    error = f"stopped at once by a second {second}: the steps in flight were abandoned, their commands killed"
    summary = RunSummary(run_id=handle.run_id, status=status, error=error, directory=handle.directory)
    with contextlib.suppress(Exception):  # exiting anyway: a store that cannot write leaves the run as killed
        handle.sync()
        handle.update(status=status, ended=now(), error=error, last_seq=state.bus.seq)
    if options.abort_listener is not None:
        with contextlib.suppress(Exception):
            options.abort_listener(summary)
    for stream in (sys.stdout, sys.stderr):  # os._exit does not flush them
        with contextlib.suppress(Exception):
            stream.flush()


def _hook_stopper(task: asyncio.Future[Any], reason: list[str]) -> Callable[[], None]:
    def stop() -> None:
        if not reason:
            reason.append("hook")
        task.cancel()

    return stop


# -- resume ----------------------------------------------------------------------------------------
