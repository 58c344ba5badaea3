"""The engine: runs node instances with conditions, retries, timeouts, the journal and events.

Durability of completions (``strict``, the default): a node instance's completion record is on disk before
its ``step.completed`` event is emitted and before ``execute`` returns, so before the next step of the same
sequence (or the composite around it, or the run's end) can start. Records of instances that finish in the
same moment on concurrent lanes (map items, parallel branches) share one fsync: each lane writes its record,
yields once to the event loop so that the others can write theirs, then syncs; the first sync covers every
record written so far and the others find nothing left to do (group commit). Nothing that depends on a step
runs before its record is durable, so after a crash every step whose successor had started is in the
journal; a step that was running when the process died has no record and runs again on resume
(at-least-once, with the same idempotency key). With ``batch`` and ``none`` durability the record is only
written (the store fsyncs later, or never).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from llmflow.compiler.graph import ActionNode, GroupNode, IfNode, Node, ParallelNode, SwitchNode, TryNode, Workflow
from llmflow.engine import interception
from llmflow.engine.actions import Action, ActionContext, ActionResult
from llmflow.engine.cache import cache_key, cached, remember
from llmflow.engine.frame import Frame, StepsView
from llmflow.engine.outcome import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    NodeFailed,
    Outcome,
    Restored,
    error_info,
    failed_records,
    jsonable,
    record_writes,
)
from llmflow.engine.patterns import executor_for
from llmflow.engine.preview import preview
from llmflow.engine.resume import ATTEMPT, CAUGHT
from llmflow.engine.state import RunState
from llmflow.errors import (
    ActionError,
    ExpressionError,
    LlmflowError,
    ProviderError,
    StepError,
    StepTimeout,
    UnstorableValue,
)

if TYPE_CHECKING:
    from llmflow.expressions import Condition, ValueTemplate

__all__ = ["Engine", "RunState", "preview"]


class Engine:
    """Walks a compiled graph. One engine drives one run."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.env_base = dict(state.env)
        self._group_commit = state.handle.durability == "strict"
        #: How deep each task that runs steps is in ``sequence``; more than one task: lanes run concurrently.
        self._lanes: dict[asyncio.Task[Any] | None, int] = {}

    # -- expressions -------------------------------------------------------------------------------
    def context(self, frame: Frame) -> dict[str, Any]:
        """The names conditions and templates see in ``frame``."""
        state = self.state
        context: dict[str, Any] = {
            "inputs": frame.inputs,
            "vars": frame.vars,
            "steps": frame.steps,
            "run": state.run_info(),
            "env": frame.env if frame.env is not None else self.env_base,
            "secrets": state.secrets,
            "session": {"vars": {}, "history": []},
        }
        if frame.locals:
            context.update(frame.locals)
        return context

    def check(self, condition: Condition, frame: Frame, node: Node, field_name: str, path: str | None = None) -> bool:
        """Evaluate a condition, naming the step and field in any error (at ``path``, by default the node's
        instance path in ``frame``; a loop's own conditions are evaluated in its iteration's frame)."""
        try:
            return condition.evaluate(self.context(frame))
        except ExpressionError as error:
            where = frame.instance_path(node.path) if path is None else path
            raise ActionError(f"step '{node.id}', field '{field_name}': {error.message}", path=where) from None

    def render(self, template: ValueTemplate, frame: Frame, node: Node, field_name: str) -> Any:
        """Render a template value, naming the step and field in any error."""
        try:
            return template.render(self.context(frame))
        except ExpressionError as error:
            path = frame.instance_path(node.path)
            raise ActionError(f"step '{node.id}', field '{field_name}': {error.message}", path=path) from None

    # -- sequences ---------------------------------------------------------------------------------
    async def sequence(self, nodes: tuple[Node, ...], frame: Frame) -> tuple[Any, dict[str, Any]]:
        """Run nodes in order; return the last non-skipped output and every variable written."""
        output: Any = None
        writes: dict[str, Any] = {}
        lanes = self._lanes
        task = asyncio.current_task()
        lanes[task] = lanes.get(task, 0) + 1
        replay = self.state.replay  # empty unless resuming
        restored = self.state.bus.restored
        own_paths = not frame.static_base and not frame.instance_base  # instance path = static path
        try:
            for node in nodes:
                if not replay:
                    record = None
                else:
                    path = node.path if own_paths else frame.instance_path(node.path)
                    record = replay.get(path)
                if record is None:
                    outcome = await self.execute(node, frame)
                elif type(node) is ActionNode:  # most of a resume: as ``_restored``, without an ``Outcome``
                    status = record["s"]
                    restored(path, node.id, node.kind, status)
                    written = record_writes(record)
                    if written:
                        frame.vars.update(written)
                        writes.update(written)
                    if node.named:
                        frame.steps.record(node.id, Restored(record))
                    if status != SKIPPED:
                        output = record.get("output")
                    continue
                else:  # as ``execute`` would, without a coroutine per completed node
                    outcome = self._restored(node, frame, path, record)
                if outcome.writes:
                    writes.update(outcome.writes)
                if outcome.status != SKIPPED:
                    output = outcome.output
        finally:
            depth = lanes.pop(task) - 1
            if depth:
                lanes[task] = depth
        return output, writes

    # -- the journal -------------------------------------------------------------------------------
    async def journal(self, path: str, outcome: Outcome, more: Mapping[str, Any] | None = None) -> int | None:
        """Append the completion record of one node instance; with ``strict`` durability, return once it is
        on disk (group commit with the records of lanes finishing at the same moment: module docstring).
        ``more``: members added to the record (``"l"``: the local names the instance saw, an item, ``index``,
        ``loop``, for its ``compensate`` steps, which may run in another process after a resume; ``"f"``: the
        nodes inside a failed, continued composite that failed with it, ``failed_records``).
        Returns the size in bytes of the output's JSON as journaled (``None`` without an output)."""
        handle = self.state.handle
        record = outcome.record(path)
        if more:
            record.update(more)
        if self._group_commit:
            size = handle.append(record, deferred=True)
            if len(self._lanes) > 1:  # other lanes run: let those ready now write their records first
                await asyncio.sleep(0)
            handle.sync()
            return size
        return handle.append(record)

    def reset(self, instance_path: str) -> None:
        """Forget what completed at or under ``instance_path``: it runs again, now and on any resume."""
        self.forget(instance_path)
        self.state.handle.append({"p": instance_path, "s": "reset"})

    def retry_afresh(self, instance_path: str, attempt: int, carried: Mapping[str, Any]) -> None:
        """A retried node begins another attempt. A composite starts afresh, as in an unbroken run: what
        completed inside it in an earlier attempt runs again, now and on any resume (a resume must not mix the
        records of two attempts). The record keeps the attempt's number and the variables the earlier attempts
        left (``carried``), which a resume of this attempt starts from."""
        self.forget(instance_path)
        record: dict[str, Any] = {"p": instance_path, "s": "retry", "a": attempt}
        if carried:
            record["w"] = dict(carried)
        self.state.handle.append(record)

    def _attempts_over(self, instance_path: str, attempt: int) -> None:
        """A retried node failed for good: a resume of the failed run gives it all its attempts again."""
        if attempt > 1 or instance_path + ATTEMPT in self.state.replay:
            self.state.handle.append({"p": instance_path + ATTEMPT, "s": "reset"})

    def forget(self, instance_path: str) -> None:
        """Drop replay records at or under ``instance_path`` for this drive only."""
        replay = self.state.replay
        for done in [p for p in replay if _at_or_under(p, instance_path)]:
            del replay[done]

    # -- one node instance -------------------------------------------------------------------------
    async def execute(self, node: Node, frame: Frame) -> Outcome:
        """Run one node instance, or restore it from the journal when it completed before."""
        state = self.state
        path = frame.instance_path(node.path)
        record = state.replay.get(path)
        if record is not None:
            return self._restored(node, frame, path, record)

        started = time.time()
        try:
            skip = node.condition is not None and not self.check(node.condition, frame, node, "if")
        except StepError as error:  # the condition itself failed: the node fails, once, without retries
            return await self._failed(node, frame, path, error, 1, started, None)
        if skip:
            outcome = Outcome(SKIPPED, attempts=0, started=started, ended=started)
            await self.journal(path, outcome)
            self._finish(node, frame, outcome)
            state.emit("step.skipped", path, {"id": node.id, "kind": node.kind})
            return outcome

        interceptor = state.interceptor
        changes: dict[str, Any] | None = None
        decisions: list[dict[str, Any]] | None = None
        if interceptor is not None:
            try:
                early = interception.before(self, node, frame, path, started)
            except StepError as error:  # the plugin failed: the node fails, once, without retries
                return await self._failed(node, frame, path, error, 1, started, None)
            if isinstance(early, Outcome):
                try:
                    return await self._skipped_by_plugin(node, frame, path, early)
                except UnstorableValue as error:  # e.g. an integer too long to write: the step fails, not the run
                    return await self._failed(node, frame, path, _unstored(node, path, error), 1, started, None)
            changes, decisions = early
        leaf = isinstance(node, ActionNode)
        before = dict(frame.vars) if node.continue_on_error and not leaf else None
        policy = node.retry
        attempts = policy.attempts if policy is not None else 1
        attempt = 0
        # The journal keeps the number of each later attempt of a retried node, so a run stopped in it resumes
        # that attempt with the attempts it has left (``steps.<id>.attempts`` as in an unbroken run). A
        # composite's later attempt also starts with the variables its earlier attempts left (they are not
        # rolled back): ``carried`` holds them, and the journal keeps them with the attempt's number.
        first_vars: dict[str, Any] | None = None
        carried: dict[str, Any] = {}
        resumed_attempt = False
        if policy is not None:
            if not leaf:
                first_vars = dict(frame.vars)
            earlier = state.replay.get(path + ATTEMPT) if state.replay else None
            if earlier is not None:
                attempt = int(earlier.get("a", 1)) - 1
                carried = dict(earlier.get("w") or {})
                frame.vars.update(carried)
                resumed_attempt = attempt > 0
        # Only leaf actions take a run-wide slot (limits.max_concurrency), one per attempt: a composite
        # holding one while its children wait for theirs could deadlock. The step starts (its event, its
        # start time, its timeout) once it holds the slot; until then it is only waiting, and says nothing.
        # The slot is held until the attempt's end is announced (step.completed, failed, retrying or
        # cancelled), so that no more than max_concurrency steps are ever shown running at once.
        slots = state.action_slots if leaf else None
        held = False  # whether this attempt holds its slot: until its outcome is announced
        try:
            while True:
                attempt += 1
                if resumed_attempt:
                    resumed_attempt = False  # the journal's attempt goes on: what it completed stays done
                elif attempt > 1:
                    if first_vars is not None:
                        carried = {k: v for k, v in frame.vars.items() if k not in first_vars or first_vars[k] != v}
                    self.retry_afresh(path, attempt, carried)
                    if not leaf:
                        # The results of the earlier attempt's steps are gone, as from the journal: after the
                        # composite, a step only an earlier attempt ran reads as not run (also after a resume).
                        frame.steps.forget(_scope_ids(node))
                if slots is not None:
                    await slots.acquire()  # cancelled while waiting: the step never started, nothing to announce
                    held = True
                    if attempt == 1:
                        started = time.time()
                state.emit("step.started", path, _started_data(node), attempt)
                try:
                    outcome = await self._attempt(node, frame, path, attempt, changes)
                    if interceptor is not None:
                        interception.after(self, node, frame, path, attempt, started, outcome, decisions)
                    break
                except StepError as error:
                    failure: StepError = error
                except (TimeoutError, asyncio.TimeoutError) as error:  # two classes before Python 3.11
                    failure = _timeout(node, path, error)
                except asyncio.CancelledError:
                    state.emit("step.cancelled", path, {"id": node.id, "kind": node.kind}, attempt)
                    raise
                delay: float | None = None
                if interceptor is not None:
                    verdict = interception.on_error(self, node, frame, path, attempt, failure, decisions)
                    if isinstance(verdict, Outcome):
                        outcome = verdict
                        break
                    if isinstance(verdict, StepError):
                        self._attempts_over(path, attempt)
                        return await self._failed(node, frame, path, verdict, attempt, started, before)
                    delay = verdict
                if delay is None and attempt < attempts and policy is not None and _retryable(failure, policy.on):
                    delay = policy.delay_before(attempt + 1)
                    if policy.jitter:
                        import random  # here: only retries with jitter need it

                        # max_delay bounds the wait itself, jitter included
                        delay = min(policy.max_delay, delay * (1 + random.uniform(-policy.jitter, policy.jitter)))
                    asked = failure.retry_after if isinstance(failure, ProviderError) else None
                    if asked is not None and asked > 0:  # the server's Retry-After (NaN is no wait at all)
                        delay = max(delay, min(policy.max_delay, asked))
                if delay is not None:
                    data = {
                        "id": node.id,
                        "error": failure.message,
                        "delay": round(delay, 3),
                        "next_attempt": attempt + 1,
                    }
                    state.emit("step.retrying", path, data, attempt)
                    if held and slots is not None:  # free before the delay: a retry waits for a slot anew
                        slots.release()
                        held = False
                    await asyncio.sleep(max(0.0, delay))
                    continue
                self._attempts_over(path, attempt)
                return await self._failed(node, frame, path, failure, attempt, started, before)

            outcome.attempts = attempt
            if carried:  # what earlier attempts set and this one did not set again stays set, as in frame.vars
                outcome.writes = {**carried, **outcome.writes}
            outcome.started = started
            outcome.ended = time.time()
            if decisions:
                interception.keep(outcome, decisions)
            try:
                size = await self.journal(
                    path, outcome, {"l": frame.locals} if node.compensate and frame.locals else None
                )
            except UnstorableValue as error:  # e.g. a plugin's integer too long to write: the step fails, not the run
                return await self._failed(node, frame, path, _unstored(node, path, error), attempt, started, before)
            self._finish(node, frame, outcome)
            data = {"id": node.id, "kind": node.kind, "duration": round(outcome.duration, 6)}
            if outcome.output is not None:
                data["preview"] = preview(outcome.output)
                data["bytes"] = size
            state.emit("step.completed", path, data, attempt)
            if leaf and "usage" in outcome.extra:
                state.check_limits()
            return outcome
        finally:
            if held and slots is not None:
                slots.release()

    async def _skipped_by_plugin(self, node: Node, frame: Frame, path: str, outcome: Outcome) -> Outcome:
        """Journal and announce a node a plugin's ``skip`` decided (skipped, or succeeded with its output)."""
        size = await self.journal(path, outcome)
        self._finish(node, frame, outcome)
        data: dict[str, Any] = {"id": node.id, "kind": node.kind, "decision": "skip"}
        if outcome.status == SKIPPED:
            self.state.emit("step.skipped", path, data)
        else:
            data.update(duration=0.0, preview=preview(outcome.output), bytes=size)
            self.state.emit("step.completed", path, data)
        return outcome

    async def _failed(
        self,
        node: Node,
        frame: Frame,
        path: str,
        failure: StepError,
        attempt: int,
        started: float,
        before: Mapping[str, Any] | None,
    ) -> Outcome:
        """Report a node instance's failure once; continue (status ``failed``) or raise ``NodeFailed``."""
        info = _failure_info(failure, path)
        output = info.pop("output", None)  # e.g. the decision of a rejected approval
        data: dict[str, Any] = {"id": node.id, "kind": node.kind, "error": info}
        if info.get("step") != path:
            data["cause"] = info.get("step")  # this node failed because a node inside it did
        self.state.emit("step.failed", path, data, attempt)
        ended = time.time()
        if not node.continue_on_error:
            # Steps after it in the same scope (a ``catch``, a ``finally``) see it as failed, not skipped.
            error = failure if isinstance(failure, NodeFailed) else NodeFailed(path, failure)
            if node.named:
                failed = Outcome(FAILED, output, error=info, attempts=attempt, started=started, ended=ended)
                frame.steps.record(node.id, failed)
                error.failed.append((frame.steps, node.id, failed))
            raise error
        writes = _changed(before, frame.vars) if before is not None else {}
        outcome = Outcome(FAILED, output, writes, error=info, attempts=attempt, started=started, ended=ended)
        inside = failed_records(failure, frame.steps)  # a resume shows them as failed, as this run does
        await self.journal(path, outcome, {"f": inside} if inside else None)
        self._finish(node, frame, outcome)
        return outcome

    def _restored(self, node: Node, frame: Frame, path: str, record: Mapping[str, Any]) -> Outcome:
        """A node instance the journal holds as completed: never run again, its outcome, variables and
        results restored (and announced in a ``steps.restored`` event)."""
        outcome = Outcome.from_record(record)
        self.state.bus.restored(path, node.id, node.kind, outcome.status)
        self._finish(node, frame, outcome)
        if not isinstance(node, ActionNode):
            self._restore_scope(node, frame, outcome)
            self.restore_failed(frame, record)
        return outcome

    def _finish(self, node: Node, frame: Frame, outcome: Outcome) -> None:
        if outcome.writes:
            frame.vars.update(outcome.writes)
        if node.named:
            frame.steps.record(node.id, outcome)

    def _restore_scope(self, node: Node, frame: Frame, outcome: Outcome) -> None:
        """Make the results of a restored composite's inner steps visible again as ``steps.<id>``.

        Only steps that share the composite's scope (groups, the chosen branch, try/catch/finally,
        parallel branches) are visible outside it; loop iterations and map items keep theirs.
        """
        self.restore_results(_same_scope_children(node, outcome.extra), frame)
        if isinstance(node, TryNode) and outcome.extra.get("branch") == "catch":
            self.restore_failed(frame, self.state.replay.get(frame.instance_path(node.path) + CAUGHT))

    def restore_results(self, nodes: Iterable[Node], frame: Frame) -> None:
        """Make the results of the completed instances among ``nodes`` visible again as ``steps.<id>``, and
        those of the steps inside them that share their scope.

        A composite without a record of its own (it failed, say a group whose step failed, or a try body that
        went to ``catch``) is looked into as well: the steps inside it that completed before the failure
        showed their results in an unbroken run, so they show them after a resume too.
        """
        replay = self.state.replay
        for child in nodes:
            record = replay.get(frame.instance_path(child.path))
            if record is None:
                if not isinstance(child, ActionNode):
                    self.restore_results(_same_scope_children(child, {}), frame)
                continue
            inner = Outcome.from_record(record)
            if child.named:
                frame.steps.record(child.id, inner)
            self._restore_scope(child, frame, inner)
            self.restore_failed(frame, record)

    def restore_failed(self, frame: Frame, record: Mapping[str, Any] | None) -> None:
        """Show the nodes that failed inside a try's body or a continued composite as failed again, from the
        ``caught`` record or the composite's own (``"f"``: ``failed_records``)."""
        failed = record.get("f") if record is not None else None
        if isinstance(failed, dict):
            for step_id, kept in failed.items():
                if isinstance(kept, dict) and isinstance(kept.get("s"), str):
                    frame.steps.record(step_id, Restored(kept))

    async def _attempt(
        self, node: Node, frame: Frame, path: str, attempt: int, changes: Mapping[str, Any] | None = None
    ) -> Outcome:
        work: Awaitable[Outcome]
        if isinstance(node, ActionNode):
            work = self._action(node, frame, path, attempt, changes)
        else:
            executor = executor_for(type(node).__name__)
            if executor is None:
                raise ActionError(f"step '{node.id}': {node.kind} steps cannot run yet", path=path)
            work = executor(self, node, frame, path)
        if node.timeout is not None:
            return await asyncio.wait_for(work, node.timeout)
        outcome: Outcome = await work
        return outcome

    def action_context(
        self, node: ActionNode, frame: Frame, path: str, attempt: int, changes: Mapping[str, Any] | None = None
    ) -> tuple[ActionContext, dict[str, str]]:
        """Render a leaf action's configuration, command and env (``changes`` laid over the configuration):
        what one attempt of it receives, and the step's own env."""
        config = self.render(node.config, frame, node, node.action)
        if changes:
            config = {**config, **changes}
        shell = None
        if node.shell is not None:
            try:
                shell = node.shell.render(self.context(frame))
            except ExpressionError as error:
                raise ActionError(f"step '{node.id}', field 'run': {error.message}", path=path) from None
        env = frame.env if frame.env is not None else self.env_base
        own_env: dict[str, str] = {}
        if node.env is not None:
            own_env = {str(k): str(v) for k, v in self.render(node.env, frame, node, "env").items()}
            env = {**env, **own_env}
        context = ActionContext(
            node=node,
            config=config,
            path=path,
            attempt=attempt,
            frame=frame,
            services=self.state,
            env=env,
            shell=shell,
        )
        return context, own_env

    def action_for(self, node: ActionNode, path: str) -> Action:
        """The registered action of a leaf node."""
        try:
            return self.state.registry.get(node.action)
        except KeyError:
            raise ActionError(f"no action is registered for '{node.action}' steps", path=path) from None

    async def _action(
        self, node: ActionNode, frame: Frame, path: str, attempt: int, changes: Mapping[str, Any] | None
    ) -> Outcome:
        state = self.state
        context, own_env = self.action_context(node, frame, path, attempt, changes)
        action = self.action_for(node, path)
        key = cache_key(context, own_env, action) if node.cache else None
        if key is not None and (hit := cached(state.store, key)) is not None:
            return hit
        result = await guarded(action, context)  # the run-wide slot, if any, is held by ``execute``
        if result.usage:
            state.emit("llm.usage", path, dict(result.usage), attempt)
            state.add_usage(result.usage)
            result.extra.setdefault("usage", result.usage)
        what = f"the output of step '{node.id}'"
        outcome = Outcome(
            SUCCEEDED,
            output=jsonable(result.output, what, path),
            writes=jsonable(result.writes, f"the variables set by step '{node.id}'", path),
            extra=jsonable(result.extra, what, path),
        )
        if key is not None:
            remember(state.store, key, outcome)
        return outcome

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
        if workflow.initial_vars is not None:
            try:
                frame.vars.update(workflow.initial_vars.render(self.context(frame)))
            except ExpressionError as error:
                raise ActionError(f"workflow '{workflow.name}', vars: {error.message}") from None
        await self.sequence(workflow.steps, frame)
        if workflow.outputs is None:
            return {}
        try:
            outputs = workflow.outputs.render(self.context(frame))
        except ExpressionError as error:
            raise ActionError(f"workflow '{workflow.name}', outputs: {error.message}") from None
        return jsonable(outputs, f"the outputs of workflow '{workflow.name}'")


def _started_data(node: Node) -> dict[str, Any]:
    data = {"id": node.id, "kind": node.kind}
    if node.name:
        data["name"] = node.name
    return data


def _timeout(node: Node, path: str, error: BaseException) -> StepTimeout:
    if node.timeout is not None:
        return StepTimeout(f"step '{node.id}' timed out after {node.timeout:g}s", path=path)
    return StepTimeout(f"step '{node.id}' timed out: {error or type(error).__name__}", path=path)


def _failure_info(failure: StepError, path: str) -> dict[str, Any]:
    """The ``error`` mapping of a failure, as plain JSON (a copy: enclosing nodes share the original)."""
    info = dict(failure.info) if isinstance(failure, NodeFailed) else error_info(failure, path)
    try:
        return dict(jsonable(info, "the error"))
    except ActionError:
        return {"message": str(info.get("message")), "kind": str(info.get("kind")), "step": info.get("step", path)}


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The variables ``after`` holds that ``before`` did not (or held with another value)."""
    return {key: value for key, value in after.items() if key not in before or before[key] is not value}


def _at_or_under(path: str, root: str) -> bool:
    return path == root or path.startswith((root + "/", root + "["))


_UNKNOWN = object()


def _same_scope_children(node: Node, extra: Mapping[str, Any]) -> Iterator[Node]:
    """Children of a composite that record their results in the composite's own steps view.

    Only the chosen branch counts; when the record does not say (a composite that failed and was
    continued), every branch does: only those that ran have records.
    """
    branch = extra.get("branch", _UNKNOWN)
    if isinstance(node, GroupNode):
        yield from node.steps
    elif isinstance(node, IfNode):
        if branch in ("then", _UNKNOWN):
            yield from node.then
        if branch in ("else", _UNKNOWN):
            yield from node.otherwise
    elif isinstance(node, SwitchNode):
        for case in node.cases:
            if branch in (case.name, _UNKNOWN):
                yield from case.steps
        if branch in ("default", _UNKNOWN):
            yield from node.default or ()
    elif isinstance(node, TryNode):
        yield from node.body
        if branch in ("catch", _UNKNOWN):
            yield from node.catch or ()
        yield from node.finally_
    elif isinstance(node, ParallelNode):
        for lane in node.branches:
            yield from lane.steps


def _scope_ids(node: Node) -> Iterator[str]:
    """The ids of the steps inside ``node`` that record their results in its own steps view (every branch)."""
    for child in _same_scope_children(node, {}):
        if child.named:
            yield child.id
        yield from _scope_ids(child)


def _unstored(node: Node, path: str, error: UnstorableValue) -> ActionError:
    """The failure of a step whose result the journal cannot hold."""
    return ActionError(f"the result of step '{node.id}' cannot be stored: {error.reason}", path=path)


def _retryable(error: StepError, on: frozenset[str]) -> bool:
    return "any" in on or error.kind in on


async def guarded(action: Action, context: ActionContext) -> ActionResult:
    """Run an action; a bug in it (any exception that is not an llmflow error) fails the step, not the run."""
    try:
        result = await action(context)
    except (LlmflowError, asyncio.CancelledError):
        raise
    except (Exception, SystemExit) as error:  # sys.exit() in an action fails its step, not the run
        what = f"step '{context.node.id}': the {context.node.action} action failed"
        if isinstance(error, UnicodeEncodeError) and "surrogates" in str(error.reason):
            # Text from a command or a model decoded with surrogateescape, sent where only UTF-8 goes.
            bad = error.object[error.start : error.end] if isinstance(error.object, str) else ""
            message = f"{what}: its input holds text that is not valid Unicode ({bad!a}), which cannot be sent"
        else:
            message = f"{what}: {type(error).__name__}: {error}"
        raise ActionError(message, path=context.path) from error
    if not isinstance(result, ActionResult):  # a plugin's action that returns its output bare, or nothing
        raise ActionError(
            f"step '{context.node.id}': the {context.node.action} action returned {type(result).__name__},"
            " not an ActionResult",
            path=context.path,
        )
    return result
