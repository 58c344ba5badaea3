"""YAML hooks: leaf actions run when matching events happen, as observers that never hold up the run.

A :class:`HookRunner` listens on the event bus. For each event whose type matches a hook's ``on`` globs and
whose step matches its ``steps`` globs (the step id, the instance path or the static path), it evaluates the
hook's ``if`` and renders its action at once (so the hook sees ``event`` and the run as they are at that
moment), then runs the action as a task of its own. Events emitted while a hook runs (its own, and
``hook.failed``) never trigger hooks, so hooks cannot loop. Hook runs are not journaled: a resumed run
does not fire them again for restored steps (a ``steps.restored`` event lists those, with no ``step.completed``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from llmflow.engine.actions import Action, ActionContext
from llmflow.engine.events import Event
from llmflow.engine.outcome import PauseRun
from llmflow.engine.resume import static_path
from llmflow.errors import ActionError, StepError, StepTimeout

if TYPE_CHECKING:
    from llmflow.compiler.graph import HookNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine

#: The id of the hook whose work is running in this context (its events trigger no hooks).
_ACTIVE: ContextVar[str | None] = ContextVar("llmflow_active_hook", default=None)

Matcher = Callable[[str], Any]


def _matcher(globs: Iterable[str]) -> Matcher | None:
    """One compiled test for a list of globs; ``None`` when a ``*`` makes every value match."""
    patterns = list(globs)
    if "*" in patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns)).match


class HookRunner:
    """Runs a workflow's YAML hooks for the events of one run (attach, then ``drain`` before the run ends)."""

    def __init__(self, engine: Engine, frame: Frame, hooks: Iterable[HookNode], *, scope: str = "") -> None:
        self.engine = engine
        self.frame = frame
        #: The instance path prefix of the events these hooks see (a sub-workflow's: ``call/``); ``steps``
        #: globs match paths relative to it.
        self.scope = scope
        self._hooks = [(hook, _matcher(hook.events), _matcher(hook.step_globs)) for hook in hooks]
        self._pending: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._listening = False
        #: Why the run fails: the first failure of a ``required`` hook.
        self.failure: str | None = None
        #: Called once when a required hook fails (the driver stops the run).
        self.on_failure: Callable[[], None] | None = None

    def attach(self) -> None:
        """Start listening to the run's events."""
        self.engine.state.bus.listeners.append(self.listen)
        self._listening = True

    def detach(self) -> None:
        """Stop listening (hooks already started still finish)."""
        self._listening = False
        listeners = self.engine.state.bus.listeners
        if self.listen in listeners:
            listeners.remove(self.listen)

    def listen(self, event: Event) -> None:
        """The bus listener: start every hook the event matches (never blocks, never raises)."""
        if _ACTIVE.get() is not None:
            return
        kind = event["type"]
        path = event["path"]
        if self.scope:
            if not path.startswith(self.scope):
                return
            path = path[len(self.scope) :]
        for hook, types, steps in self._hooks:
            if (types is None or types(kind)) and (steps is None or _step_matches(steps, path, event)):
                if threading.get_ident() == self._thread:
                    self._start(hook, event)
                else:  # an event emitted by a worker thread: start the hook on the run's loop
                    self._loop.call_soon_threadsafe(self._start, hook, event)

    def _start(self, hook: HookNode, event: Event) -> None:
        if not self._listening:  # handed over from a thread after the run stopped listening
            return
        engine = self.engine
        token = _ACTIVE.set(hook.id)  # the task started below inherits this: its events trigger no hooks
        try:
            frame = self.frame.with_locals(event=event)
            try:
                if hook.condition is not None and not engine.check(hook.condition, frame, hook, "if"):
                    return
                context, _ = engine.action_context(hook, frame, hook.path, 1)
                action = engine.action_for(hook, hook.path)
            except StepError as error:
                self._failed(hook, event, error)
                return
            task = self._loop.create_task(self._run(hook, event, action, context))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        finally:
            _ACTIVE.reset(token)

    async def _run(self, hook: HookNode, event: Event, action: Action, context: ActionContext) -> None:
        from llmflow.engine.runner import guarded

        try:
            if hook.timeout is None:
                await guarded(action, context)
            else:
                try:
                    await asyncio.wait_for(guarded(action, context), hook.timeout)
                except asyncio.TimeoutError:
                    limit = f"{hook.timeout:g}s"
                    raise StepTimeout(f"hook '{hook.id}' ran longer than its timeout of {limit}") from None
        except Exception as error:
            self._failed(hook, event, error)
        except PauseRun:
            self._failed(hook, event, ActionError(f"hook '{hook.id}' cannot pause the run"))

    def _failed(self, hook: HookNode, event: Event, error: BaseException) -> None:
        """Report a hook that failed (``hook.failed``); a required one makes the run fail."""
        message = error.message if isinstance(error, StepError) else str(error) or type(error).__name__
        kind = error.kind if isinstance(error, StepError) else "error"
        data = {"hook": hook.id, "error": message, "kind": kind, "event": event["type"], "seq": event["seq"]}
        if hook.required:
            data["required"] = True
        token = _ACTIVE.set(hook.id)
        try:
            self.engine.state.emit("hook.failed", event["path"], data, event.get("attempt", 0))
        finally:
            _ACTIVE.reset(token)
        if hook.required and self.failure is None:
            where = f" at {event['path']}" if event["path"] else ""
            self.failure = f"required hook '{hook.id}' failed on {event['type']}{where}: {message}"
            if self.on_failure is not None:
                self.on_failure()

    async def drain(self) -> None:
        """Wait for every hook started so far, and for those their waiting lets start."""
        while self._pending:
            await asyncio.wait(list(self._pending))

    def stop(self) -> None:
        """Cancel the hooks still running (without waiting for them)."""
        for task in list(self._pending):
            task.cancel()

    async def cancel(self) -> None:
        """Cancel the hooks still running and wait until they have stopped."""
        pending = list(self._pending)
        self.stop()
        await asyncio.gather(*pending, return_exceptions=True)


def _step_matches(matches: Matcher, path: str, event: Event) -> bool:
    """Whether a ``steps`` glob matches the event's step: its id, its instance path (``path``, relative to
    the hooks' scope) or its static path."""
    if matches(path):
        return True
    step_id = (event.get("data") or {}).get("id")
    if isinstance(step_id, str) and matches(step_id):
        return True
    return "[" in path and bool(matches(static_path(path)))
