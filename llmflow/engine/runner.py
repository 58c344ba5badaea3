"""The engine: runs node instances with conditions, retries, timeouts, the journal and events."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.compiler.graph import ActionNode, Node, Workflow
from llmflow.engine.actions import ActionContext, ActionRegistry
from llmflow.engine.events import EventBus
from llmflow.engine.frame import Frame, StepsView
from llmflow.engine.outcome import FAILED, SKIPPED, SUCCEEDED, NodeFailed, Outcome, error_info
from llmflow.engine.patterns import EXECUTORS
from llmflow.errors import ActionError, ExpressionError, LimitExceeded, StepError, StepTimeout

if TYPE_CHECKING:
    from llmflow.engine.ports import RunHandle, RunStore
    from llmflow.expressions import Condition, ValueTemplate


_PREVIEW = 200


def preview(value: Any) -> str:
    """A short text form of a value for events and listings."""
    from llmflow.expressions import stringify

    text = stringify(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


@dataclass(slots=True)
class RunState:
    """Everything run-wide: identity, services, journal replay index and limits."""

    run_id: str
    workflow: Workflow
    handle: RunHandle
    bus: EventBus
    registry: ActionRegistry
    project_dir: Path
    store: RunStore | None = None
    replay: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0, "cost": 0.0})
    output_listener: Callable[[str, str, str], None] | None = None
    action_slots: asyncio.Semaphore | None = None
    started: float = field(default_factory=time.time)
    frozen_root: Path | None = None
    original_root: Path | None = None

    def source_dir_for(self, workflow: Workflow) -> Path:
        """The folder a (sub-)workflow's relative paths start from, even when compiled from a frozen copy."""
        directory = workflow.directory
        if self.frozen_root is not None and self.original_root is not None:
            try:
                return self.original_root / directory.resolve().relative_to(self.frozen_root)
            except ValueError:
                pass
        return directory

    # -- RunServices -------------------------------------------------------------------------------
    def emit(self, kind: str, path: str = "", data: dict[str, Any] | None = None, attempt: int = 0) -> None:
        self.bus.emit(kind, path, data, attempt)

    def artifacts_dir(self) -> Path:
        return self.handle.artifacts_dir()

    def approval_decision(self, path: str) -> dict[str, Any] | None:
        return self.approvals.get(path)

    def output_line(self, path: str, stream: str, line: str) -> None:
        if self.output_listener is not None:
            self.output_listener(path, stream, line)

    def run_info(self) -> dict[str, Any]:
        """``run.*`` in expressions."""
        return {"id": self.run_id, "dir": str(self.handle.directory), "usage": dict(self.usage)}

    def add_usage(self, usage: Mapping[str, Any]) -> None:
        """Add one call's tokens and cost; stop the run cleanly when a limit is crossed."""
        for key in ("input_tokens", "output_tokens", "cost"):
            self.usage[key] += float(usage.get(key) or 0)
        limits = self.workflow.limits
        tokens = self.usage["input_tokens"] + self.usage["output_tokens"]
        if limits.max_tokens is not None and tokens > limits.max_tokens:
            raise LimitExceeded(f"the run used {int(tokens)} tokens, over limits.max_tokens ({limits.max_tokens})")
        if limits.max_cost is not None and self.usage["cost"] > limits.max_cost:
            raise LimitExceeded(f"the run cost ${self.usage['cost']:.4f}, over limits.max_cost (${limits.max_cost})")


class Engine:
    """Walks a compiled graph. One engine drives one run."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.env_base = dict(state.env)

    # -- expressions -------------------------------------------------------------------------------
    def context(self, frame: Frame) -> dict[str, Any]:
        """The names conditions and templates see in ``frame``."""
        state = self.state
        context: dict[str, Any] = {
            "inputs": frame.inputs,
            "vars": frame.vars,
            "steps": frame.steps,
            "run": state.run_info(),
            "env": self.env_base,
            "secrets": state.secrets,
            "session": {"vars": {}, "history": []},
        }
        if frame.locals:
            context.update(frame.locals)
        return context

    def check(self, condition: Condition, frame: Frame, node: Node, field_name: str) -> bool:
        """Evaluate a condition, naming the step and field in any error."""
        try:
            return condition.evaluate(self.context(frame))
        except ExpressionError as error:
            raise ActionError(f"step '{node.id}', field '{field_name}': {error.message}", path=node.path) from None

    def render(self, template: ValueTemplate, frame: Frame, node: Node, field_name: str) -> Any:
        """Render a template value, naming the step and field in any error."""
        try:
            return template.render(self.context(frame))
        except ExpressionError as error:
            raise ActionError(f"step '{node.id}', field '{field_name}': {error.message}", path=node.path) from None

    # -- sequences ---------------------------------------------------------------------------------
    async def sequence(self, nodes: tuple[Node, ...], frame: Frame) -> tuple[Any, dict[str, Any]]:
        """Run nodes in order; return the last non-skipped output and every variable written."""
        output: Any = None
        writes: dict[str, Any] = {}
        for node in nodes:
            outcome = await self.execute(node, frame)
            if outcome.writes:
                writes.update(outcome.writes)
            if outcome.status != SKIPPED:
                output = outcome.output
        return output, writes

    # -- one node instance -------------------------------------------------------------------------
    async def execute(self, node: Node, frame: Frame) -> Outcome:
        """Run one node instance, or restore it from the journal when it completed before."""
        state = self.state
        path = frame.instance_path(node.path)
        record = state.replay.get(path)
        if record is not None:
            outcome = Outcome.from_record(record)
            self._finish(node, frame, outcome)
            return outcome

        started = time.time()
        if node.condition is not None and not self.check(node.condition, frame, node, "if"):
            outcome = Outcome(SKIPPED, started=started, ended=started)
            state.handle.append(outcome.record(path))
            state.emit("step.skipped", path, {"id": node.id, "kind": node.kind})
            self._finish(node, frame, outcome)
            return outcome

        policy = node.retry
        attempts = policy.attempts if policy is not None else 1
        attempt = 0
        while True:
            attempt += 1
            state.emit("step.started", path, {"id": node.id, "kind": node.kind, "name": node.name}, attempt)
            try:
                outcome = await self._attempt(node, frame, path, attempt)
                break
            except StepError as error:
                failure: StepError = error
            except TimeoutError:
                failure = StepTimeout(f"step '{node.id}' timed out after {node.timeout:g}s", path=path)
            if attempt < attempts and policy is not None and _retryable(failure, policy.on):
                delay = policy.delay_before(attempt + 1)
                if policy.jitter:
                    delay *= 1 + random.uniform(-policy.jitter, policy.jitter)
                data = {
                    "id": node.id,
                    "error": failure.message,
                    "delay": round(delay, 3),
                    "next_attempt": attempt + 1,
                }
                state.emit("step.retrying", path, data, attempt)
                await asyncio.sleep(max(0.0, delay))
                continue
            info = failure.info if isinstance(failure, NodeFailed) else error_info(failure, path)
            state.emit("step.failed", path, {"id": node.id, "kind": node.kind, "error": info}, attempt)
            if node.continue_on_error:
                outcome = Outcome(FAILED, error=info, attempts=attempt, started=started, ended=time.time())
                state.handle.append(outcome.record(path))
                self._finish(node, frame, outcome)
                return outcome
            raise failure if isinstance(failure, NodeFailed) else NodeFailed(path, failure)

        outcome.attempts = attempt
        outcome.started = started
        outcome.ended = time.time()
        state.handle.append(outcome.record(path))
        state.emit(
            "step.completed",
            path,
            {
                "id": node.id,
                "kind": node.kind,
                "duration": round(outcome.duration, 6),
                "preview": preview(outcome.output),
            },
            attempt,
        )
        self._finish(node, frame, outcome)
        return outcome

    def _finish(self, node: Node, frame: Frame, outcome: Outcome) -> None:
        if outcome.writes:
            frame.vars.update(outcome.writes)
        if node.named:
            frame.steps.record(node.id, outcome.view())

    async def _attempt(self, node: Node, frame: Frame, path: str, attempt: int) -> Outcome:
        work: Awaitable[Outcome]
        if isinstance(node, ActionNode):
            work = self._action(node, frame, path, attempt)
        else:
            work = EXECUTORS[type(node).__name__](self, node, frame, path)
        if node.timeout is not None:
            return await asyncio.wait_for(work, node.timeout)
        outcome: Outcome = await work
        return outcome

    async def _action(self, node: ActionNode, frame: Frame, path: str, attempt: int) -> Outcome:
        state = self.state
        config = self.render(node.config, frame, node, node.action)
        shell = None
        if node.shell is not None:
            try:
                shell = node.shell.render(self.context(frame))
            except ExpressionError as error:
                raise ActionError(f"step '{node.id}', field 'run': {error.message}", path=path) from None
        env = self.env_base
        if node.env is not None:
            env = {**env, **{str(k): str(v) for k, v in self.render(node.env, frame, node, "env").items()}}
        context = ActionContext(
            node=node,
            config=config,
            path=path,
            attempt=attempt,
            frame=frame,
            services=state,
            env=env,
            shell=shell,
        )
        try:
            action = state.registry.get(node.action)
        except KeyError:
            raise ActionError(f"no action is registered for '{node.action}' steps", path=path) from None
        if state.action_slots is not None:
            async with state.action_slots:
                result = await action(context)
        else:
            result = await action(context)
        if result.usage:
            state.emit("llm.usage", path, dict(result.usage), attempt)
            state.add_usage(result.usage)
            result.extra.setdefault("usage", result.usage)
        return Outcome(SUCCEEDED, output=result.output, writes=result.writes, extra=result.extra)

    # -- the whole workflow ------------------------------------------------------------------------
    def root_frame(self, inputs: Mapping[str, Any], variables: Mapping[str, Any] | None = None) -> Frame:
        """The frame of the workflow's top-level steps."""
        workflow = self.state.workflow
        known = frozenset(node.id for node in workflow.walk() if node.named)
        initial = dict(workflow.variables)
        if variables:
            initial.update(variables)
        return Frame(
            inputs=dict(inputs),
            vars=initial,
            steps=StepsView(None, known),
            workflow_dir=str(workflow.directory),
        )

    async def run_workflow(self, workflow: Workflow, frame: Frame) -> Any:
        """Run a workflow's steps in ``frame`` and render its outputs."""
        await self.sequence(workflow.steps, frame)
        if workflow.outputs is None:
            return {}
        try:
            return workflow.outputs.render(self.context(frame))
        except ExpressionError as error:
            raise ActionError(f"workflow '{workflow.name}', outputs: {error.message}") from None


def _retryable(error: StepError, on: frozenset[str]) -> bool:
    if isinstance(error, LimitExceeded):
        return False
    kind = error.kind
    if isinstance(error, NodeFailed):
        kind = error.kind
    return "any" in on or kind in on
