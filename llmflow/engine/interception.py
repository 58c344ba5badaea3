"""Interception: the port through which plugins skip, change, replace, retry, recover, re-route or stop nodes.

The engine sees only the :class:`Interceptor` protocol (``RunState.interceptor``, ``None`` when no plugin
intercepts, and then nothing here runs). Each hook gets the node and a :class:`StepContext` and returns a
:class:`Decision` or ``None``; a decision is announced as a ``hook.decision`` event and kept in the node's
completion record (``x.decisions``). Decisions that shape a composite still running (a branch taken, a loop
broken) are also journaled at once as ``{"s": "decided"}`` records, so that a resume re-entering the
composite follows them instead of asking the plugins again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from llmflow.compiler.graph import ActionNode
from llmflow.engine.outcome import SKIPPED, SUCCEEDED, NodeFailed, Outcome, error_info, jsonable
from llmflow.engine.resume import DECIDED
from llmflow.errors import ActionError, RunAborted, RunError, StepError
from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from llmflow.compiler.graph import Node
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine

#: The decisions each hook may return (``abort`` from any of them).
ALLOWED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "before_step": frozenset({"skip", "change", "abort"}),
        "after_step": frozenset({"replace", "abort"}),
        "on_error": frozenset({"retry", "recover", "fail", "abort"}),
        "on_branch": frozenset({"branch", "abort"}),
        "before_iteration": frozenset({"break", "abort"}),
    }
)


class Decision(FrozenRecord):
    """What an interception hook decided; build one with the class methods (``Decision.skip(output=…)``)."""

    __slots__ = ("branch", "config", "delay", "kind", "message", "output")
    kind: str
    output: Any
    config: Mapping[str, Any] | None
    message: str | None
    branch: str | None
    delay: float

    def __init__(
        self,
        kind: str,
        output: Any = None,
        config: Mapping[str, Any] | None = None,
        message: str | None = None,
        branch: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self._set(kind=kind, output=output, config=config, message=message, branch=branch, delay=delay)

    @classmethod
    def skip(cls, output: Any = None) -> Decision:
        """``before_step``: do not run the node; with an ``output`` it succeeds with it, else it is skipped."""
        return cls("skip", output=output)

    @classmethod
    def change(cls, config: Mapping[str, Any]) -> Decision:
        """``before_step``: run a leaf action with these keys laid over its rendered configuration."""
        return cls("change", config=config)

    @classmethod
    def abort(cls, message: str = "") -> Decision:
        """Any hook: stop the run now, as failed (compensation runs; a resume asks again)."""
        return cls("abort", message=message or None)

    @classmethod
    def replace(cls, output: Any) -> Decision:
        """``after_step``: the node's output is ``output`` instead."""
        return cls("replace", output=output)

    @classmethod
    def retry(cls, delay: float = 0.0) -> Decision:
        """``on_error``: try the node again after ``delay`` seconds, whatever its ``retry`` says."""
        return cls("retry", delay=max(0.0, float(delay)))

    @classmethod
    def recover(cls, output: Any = None) -> Decision:
        """``on_error``: the node succeeds with ``output``."""
        return cls("recover", output=output)

    @classmethod
    def fail(cls, message: str = "") -> Decision:
        """``on_error``: the node fails now, without the retries left (``message`` replaces the error's)."""
        return cls("fail", message=message or None)

    @classmethod
    def take_branch(cls, name: str) -> Decision:
        """``on_branch``: run this branch (``then``/``else``, a case name, ``default``) instead."""
        return cls("branch", branch=name)

    @classmethod
    def break_loop(cls) -> Decision:
        """``before_iteration``: end the loop before this iteration (as a false ``while`` does)."""
        return cls("break")

    def record(self) -> dict[str, Any]:
        """The decision as JSON data, as events and the journal keep it: ``{"decision": kind, …}``."""
        found: dict[str, Any] = {"decision": self.kind}
        if self.output is not None:
            found["output"] = jsonable(self.output, f"the output of a '{self.kind}' decision")
        if self.config is not None:
            if not isinstance(self.config, Mapping):  # plugins are not type-checked
                kind = type(self.config).__name__  # type: ignore[unreachable]
                raise ActionError(f"the config of a 'change' decision must be a mapping, not {kind}")
            found["config"] = jsonable(dict(self.config), "the config of a 'change' decision")
        if self.message is not None:
            found["message"] = str(self.message)
        if self.kind == "branch":
            found["branch"] = self.branch
        if self.delay:
            delay = self.delay
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
                # an endless wait (and ``Infinity``, which no JSON reader takes, in the events)
                raise ActionError(f"the delay of a 'retry' decision must be a number of seconds, not {delay!r}")
            found["delay"] = float(delay)
        return found


class StepContext:
    """What a hook sees of one node instance: where it is, its attempt, and the names its expressions see.

    ``config`` is the rendered configuration of a leaf action (``None`` for composites), rendered on first
    read. Everything is a read-only view: decisions, not mutations, change what happens.
    """

    __slots__ = ("_config", "_engine", "_frame", "_node", "attempt", "path", "run_id")

    def __init__(self, engine: Engine, node: Node, frame: Frame, path: str, attempt: int) -> None:
        self._engine = engine
        self._node = node
        self._frame = frame
        self._config: dict[str, Any] | None = None
        self.path = path
        self.attempt = attempt
        self.run_id = engine.state.run_id

    def __repr__(self) -> str:
        return f"<StepContext {self.path} attempt {self.attempt}>"

    @property
    def inputs(self) -> Mapping[str, Any]:
        """The workflow's inputs."""
        return MappingProxyType(self._frame.inputs)

    @property
    def vars(self) -> Mapping[str, Any]:
        """The run variables as the node sees them."""
        return MappingProxyType(self._frame.vars)

    @property
    def steps(self) -> Mapping[str, Any]:
        """``steps.<id>`` as the node sees them."""
        return self._frame.steps

    @property
    def locals(self) -> Mapping[str, Any]:
        """Loop and map names (``item``, ``index``, ``loop``) and ``error`` inside ``catch``."""
        return MappingProxyType(self._frame.locals)

    @property
    def config(self) -> dict[str, Any] | None:
        """The leaf action's configuration as rendered for this instance (a copy); ``None`` for composites."""
        node = self._node
        if not isinstance(node, ActionNode):
            return None
        if self._config is None:
            self._config = self._engine.render(node.config, self._frame, node, node.action)
        return dict(self._config)


class Interceptor(Protocol):
    """The hooks that may change how node instances run; each returns a ``Decision`` or ``None``."""

    def before_step(self, step: Node, context: StepContext) -> Decision | None:
        """Before the first attempt of a node whose ``if`` held."""

    def after_step(self, step: Node, context: StepContext, result: Mapping[str, Any]) -> Decision | None:
        """After a node succeeded (``result`` is what ``steps.<id>`` will show), before it is journaled."""

    def on_error(self, step: Node, context: StepContext, error: Mapping[str, Any]) -> Decision | None:
        """After an attempt failed, before the node's own ``retry`` is considered."""

    def on_branch(self, step: Node, context: StepContext, branch: str | None) -> Decision | None:
        """After an ``if``/``switch`` chose ``branch``, before it runs."""

    def before_iteration(self, step: Node, context: StepContext, iteration: int) -> Decision | None:
        """Before iteration ``iteration`` (1 for the first) of a loop, after its ``while`` held."""


def ask(
    engine: Engine, hook: str, node: Node, frame: Frame, path: str, attempt: int, *args: Any
) -> tuple[Decision, dict[str, Any]] | None:
    """Ask the interceptor's ``hook`` about a node instance; announce (and act on ``abort``) what it decides.

    A plugin that raises fails the node (an ``ActionError`` naming the hook); a decision the hook may not
    return does too.
    """
    interceptor = engine.state.interceptor
    if interceptor is None:
        return None
    context = StepContext(engine, node, frame, path, attempt)
    try:
        decision = getattr(interceptor, hook)(node, context, *args)
    except (StepError, RunError):
        raise
    except (Exception, SystemExit) as error:  # a plugin's sys.exit() fails the node, as a python step's does
        message = f"step '{node.id}': the plugin hook {hook} failed: {type(error).__name__}: {error}"
        raise ActionError(message, path=path) from error
    if decision is None:
        return None
    if not isinstance(decision, Decision):
        message = f"step '{node.id}': the plugin hook {hook} returned {type(decision).__name__}, not a Decision"
        raise ActionError(message, path=path)
    if decision.kind not in ALLOWED[hook]:
        allowed = ", ".join(sorted(ALLOWED[hook]))
        message = f"step '{node.id}': the plugin hook {hook} may decide {allowed}, not '{decision.kind}'"
        raise ActionError(message, path=path)
    try:
        record = decision.record()
    except ActionError as error:  # a decision that cannot be followed or stored: say whose it is
        raise ActionError(f"step '{node.id}': the plugin hook {hook}: {error.message}", path=path) from None
    announce(engine, hook, node, path, record, attempt)
    if decision.kind == "abort":
        reason = f": {decision.message}" if decision.message else ""
        raise RunAborted(f"a plugin aborted the run at step '{node.id}' ({hook}){reason}")
    return decision, record


def before(
    engine: Engine, node: Node, frame: Frame, path: str, started: float
) -> Outcome | tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Ask ``before_step``: the outcome of a node a plugin skips, or the configuration changes to run it with
    and the decisions made so far (for its completion record)."""
    asked = ask(engine, "before_step", node, frame, path, 1)
    if asked is None:
        return None, []
    decision, record = asked
    decisions = [noted("before_step", record)]
    if decision.kind == "skip":
        output = record.get("output")
        status = SKIPPED if output is None else SUCCEEDED
        return Outcome(status, output, attempts=0, started=started, ended=time.time(), extra={"decisions": decisions})
    if not isinstance(node, ActionNode):
        message = (
            f"step '{node.id}': a plugin can change the configuration of leaf actions only, not of a {node.kind} step"
        )
        raise ActionError(message, path=path)
    return dict(record["config"]), decisions


def after(
    engine: Engine,
    node: Node,
    frame: Frame,
    path: str,
    attempt: int,
    started: float,
    outcome: Outcome,
    decisions: list[dict[str, Any]] | None,
) -> None:
    """Ask ``after_step`` about a successful attempt; a ``replace`` decision changes the outcome's output."""
    outcome.attempts, outcome.started, outcome.ended = attempt, started, time.time()
    asked = ask(engine, "after_step", node, frame, path, attempt, outcome.view())
    if asked is None:
        return
    record = asked[1]
    outcome.output = record.get("output")
    if decisions is not None:
        decisions.append(noted("after_step", record))


def on_error(
    engine: Engine,
    node: Node,
    frame: Frame,
    path: str,
    attempt: int,
    failure: StepError,
    decisions: list[dict[str, Any]] | None,
) -> Outcome | StepError | float | None:
    """Ask ``on_error`` about a failed attempt: the outcome it recovers to, the failure to end the node with,
    the delay before the retry it asks for, or ``None`` (the node's own ``retry`` decides)."""
    info = dict(failure.info) if isinstance(failure, NodeFailed) else error_info(failure, path)
    try:
        asked = ask(engine, "on_error", node, frame, path, attempt, MappingProxyType(info))
    except StepError as error:  # the plugin failed: the node fails with that
        return error
    if asked is None:
        return None
    decision, record = asked
    if decisions is not None:
        decisions.append(noted("on_error", record))
    if decision.kind == "recover":
        return Outcome(SUCCEEDED, record.get("output"))
    if decision.kind == "fail":
        return ActionError(decision.message, path=path) if decision.message else failure
    return decision.delay


def keep(outcome: Outcome, decisions: list[dict[str, Any]]) -> None:
    """Put the decisions made about a node instance into its completion record (``x.decisions``)."""
    earlier = outcome.extra.get("decisions") or []
    outcome.extra = {**outcome.extra, "decisions": [*decisions, *earlier]}


def announce(engine: Engine, hook: str, node: Node, path: str, record: Mapping[str, Any], attempt: int = 0) -> None:
    """Emit ``hook.decision`` for one decision."""
    engine.state.emit("hook.decision", path, {"id": node.id, "hook": hook, "decision": dict(record)}, attempt)


def noted(hook: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of a completion record's ``x.decisions``."""
    return {"hook": hook, **record}


def journal_decision(engine: Engine, path: str, hook: str, record: Mapping[str, Any]) -> None:
    """Journal a decision about a composite that is still running (``P/#decided`` in the replay index)."""
    engine.state.handle.append({"p": path, "s": "decided", "h": hook, "d": dict(record)})


def replayed(engine: Engine, path: str, hook: str) -> dict[str, Any] | None:
    """The decision ``hook`` made about ``path`` before a resume, if it is in the journal."""
    record = engine.state.replay.get(path + DECIDED)
    if record is None or record.get("h") != hook:
        return None
    decision = record.get("d")
    return dict(decision) if isinstance(decision, dict) else None


def choose_branch(
    engine: Engine,
    node: Node,
    frame: Frame,
    path: str,
    natural: Callable[[], str | None],
    names: tuple[str, ...],
    decisions: list[dict[str, Any]],
) -> str | None:
    """The branch an ``if``/``switch`` runs: the journaled decision on a resume, else what the conditions
    chose (``natural``) unless an ``on_branch`` hook overrides it (then journaled before the branch runs)."""
    earlier = replayed(engine, path, "on_branch")
    if earlier is not None:
        announce(engine, "on_branch", node, path, {**earlier, "replayed": True})
        decisions.append(noted("on_branch", earlier))
        branch = earlier.get("branch")
        return str(branch) if branch is not None else None
    chosen = natural()
    asked = ask(engine, "on_branch", node, frame, path, 0, chosen)
    if asked is None:
        return chosen
    decision, record = asked
    if decision.branch not in names:
        known = ", ".join(names)
        message = f"step '{node.id}': a plugin chose branch '{decision.branch}', which is not one of {known}"
        raise ActionError(message, path=path)
    journal_decision(engine, path, "on_branch", record)
    decisions.append(noted("on_branch", record))
    return decision.branch


class IterationGate:
    """Asks ``before_iteration`` before each iteration of one loop instance, remembering across resumes.

    Iterations that began before a resume (the journal holds records under them) were already allowed: the
    hook is not asked again for them. A journaled ``break`` ends the loop at the same iteration.
    """

    __slots__ = ("_begun", "_broken_at", "decisions", "engine", "node", "path")

    def __init__(self, engine: Engine, node: Node, path: str) -> None:
        self.engine = engine
        self.node = node
        self.path = path
        self.decisions: list[dict[str, Any]] = []
        earlier = replayed(engine, path, "before_iteration")
        self._broken_at: int | None = int(earlier["iteration"]) if earlier and "iteration" in earlier else None
        self._begun = _begun_iterations(engine.state.replay, path) if engine.state.replay else frozenset()

    def stops(self, frame: Frame, index: int) -> bool:
        """True when the loop ends before iteration ``index`` (0-based)."""
        engine, node, path = self.engine, self.node, self.path
        if self._broken_at is not None and index + 1 >= self._broken_at:
            record = {"decision": "break", "iteration": self._broken_at}
            announce(engine, "before_iteration", node, path, {**record, "replayed": True})
            self.decisions.append(noted("before_iteration", record))
            return True
        if index in self._begun:
            return False
        asked = ask(engine, "before_iteration", node, frame, path, 0, index + 1)
        if asked is None:
            return False
        record = {**asked[1], "iteration": index + 1}
        journal_decision(engine, path, "before_iteration", record)
        self.decisions.append(noted("before_iteration", record))
        return True


def _begun_iterations(replay: Mapping[str, Any], path: str) -> frozenset[int]:
    """Indexes of the iterations of loop instance ``path`` that have journal records under them."""
    prefix = path + "["
    start = len(prefix)
    found: set[int] = set()
    for done in replay:
        if done.startswith(prefix):
            end = done.find("]", start)
            if end > start and done[start:end].isdigit():
                found.add(int(done[start:end]))
    return frozenset(found)
