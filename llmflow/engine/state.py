"""Run-wide state shared by every node instance: identity, services, the replay index, usage and limits."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.errors import LimitExceeded

if TYPE_CHECKING:
    from llmflow.compiler.graph import Workflow
    from llmflow.engine.actions import ActionRegistry, ModelProviders
    from llmflow.engine.events import EventBus
    from llmflow.engine.interception import Interceptor
    from llmflow.engine.ports import RunHandle, RunStore

_USAGE_KEYS = ("input_tokens", "output_tokens", "cost")


def usage_number(key: str, value: Any) -> float:
    """A usage count as ``run.usage`` keeps it: tokens whole (as ``steps.<id>.usage`` shows them), cost a float;
    what is not a finite number (a plugin provider's mistake) counts as 0."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError, OverflowError):
        number = 0.0
    if not math.isfinite(number):
        number = 0.0
    return number if key == "cost" else int(number)


class RunState:
    """Everything run-wide: identity, services, journal replay index and limits.

    (A plain class, not a dataclass: see ``llmflow.records``.)
    """

    __slots__ = (
        "_run_info",
        "action_slots",
        "approvals",
        "approvals_asked",
        "bus",
        "env",
        "frozen_root",
        "handle",
        "interceptor",
        "model_calls",
        "original_root",
        "output_listener",
        "prices",
        "project_dir",
        "providers",
        "registry",
        "replay",
        "run_id",
        "secrets",
        "started",
        "store",
        "usage",
        "workflow",
    )

    def __init__(
        self,
        run_id: str,
        workflow: Workflow,
        handle: RunHandle,
        bus: EventBus,
        registry: ActionRegistry,
        project_dir: Path,
        store: RunStore | None = None,
        replay: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        approvals: dict[str, dict[str, Any]] | None = None,
        approvals_asked: dict[str, float] | None = None,
        usage: dict[str, float] | None = None,
        output_listener: Callable[[str, str, str], None] | None = None,
        action_slots: asyncio.Semaphore | None = None,
        started: float | None = None,
        frozen_root: Path | None = None,
        original_root: Path | None = None,
        providers: ModelProviders | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        model_calls: dict[str, int] | None = None,
        interceptor: Interceptor | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.handle = handle
        self.bus = bus
        self.registry = registry
        self.project_dir = project_dir
        self.store = store
        self.replay = replay if replay is not None else {}
        self.env = env if env is not None else {}
        self.secrets = secrets if secrets is not None else {}
        self.approvals = approvals if approvals is not None else {}
        #: When each approval was first asked (epoch seconds), kept in ``run.json`` while the run waits.
        self.approvals_asked = approvals_asked if approvals_asked is not None else {}
        self.usage = usage if usage is not None else {"input_tokens": 0, "output_tokens": 0, "cost": 0.0}
        self.output_listener = output_listener
        self.action_slots = action_slots
        self.started = started if started is not None else time.time()
        self.frozen_root = frozen_root
        self.original_root = original_root
        self.providers = providers
        self.prices = prices if prices is not None else {}
        self.model_calls = model_calls if model_calls is not None else {}
        self.interceptor = interceptor  # plugins that intercept node instances; None: none do
        self._run_info: dict[str, Any] | None = None

    def next_call_index(self, model: str) -> int:
        """How many calls to ``model`` this run made before this one (completed ones on resume included)."""
        if model not in self.model_calls:
            self.model_calls[model] = sum(
                1 for record in self.replay.values() if (record.get("x") or {}).get("model") == model
            )
        index = self.model_calls[model]
        self.model_calls[model] = index + 1
        return index

    def cost_of(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """US dollars for one call by the run's price table (unknown models cost nothing)."""
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

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
        """Emit an event."""
        self.bus.emit(kind, path, data, attempt)

    def artifacts_dir(self) -> Path:
        """The run's artifacts folder."""
        return self.handle.artifacts_dir()

    def state_dir(self) -> Path | None:
        """The run store's folder (``.llmflow``), where no step may write; ``None`` without a store."""
        return self.store.root if self.store is not None else None

    def source_files(self) -> frozenset[Path]:
        """The files the workflow and its sub-workflows were compiled from, where they are in the project."""
        found: set[Path] = set()
        for flow in self.workflow.workflows():
            for source in (flow.path, *map(Path, flow.sources)):
                path = source.resolve()
                if (
                    self.frozen_root is not None
                    and self.original_root is not None
                    and path.is_relative_to(self.frozen_root)
                ):
                    path = (self.original_root / path.relative_to(self.frozen_root)).resolve()
                found.add(path)
        return frozenset(found)

    def approval_decision(self, path: str) -> dict[str, Any] | None:
        """The decision given on resume for the approval at ``path``, if any."""
        return self.approvals.get(path)

    def approval_asked(self, path: str) -> float:
        """When the approval at ``path`` was first asked (recorded now when this is the first time).

        A first ask goes into ``run.json`` at once, not only at the run's end: a run killed while other
        branches still ran must not start the approval's timeout afresh when it is resumed.
        """
        asked = self.approvals_asked.get(path)
        if asked is None:
            asked = self.approvals_asked[path] = time.time()
            self.handle.mark(approvals_asked=dict(self.approvals_asked))
        return asked

    def output_line(self, path: str, stream: str, line: str) -> None:
        """Pass one line of live output to the listener."""
        if self.output_listener is not None:
            self.output_listener(path, stream, line)

    def run_info(self) -> dict[str, Any]:
        """``run.*`` in expressions (built again only when the usage changed; expressions cannot change it)."""
        info = self._run_info
        if info is None or info["usage"] != self.usage:
            info = self._run_info = {"id": self.run_id, "dir": str(self.handle.directory), "usage": dict(self.usage)}
        return info

    def add_usage(self, usage: Mapping[str, Any]) -> None:
        """Add one call's tokens and cost (limits are checked once the step is journaled)."""
        for key in _USAGE_KEYS:
            self.usage[key] += usage_number(key, usage.get(key))

    def check_limits(self) -> None:
        """Stop the run cleanly (``LimitExceeded``) when the tokens or cost used cross a limit."""
        limits = self.workflow.limits
        tokens = self.usage["input_tokens"] + self.usage["output_tokens"]
        if limits.max_tokens is not None and tokens > limits.max_tokens:
            raise LimitExceeded(f"the run used {int(tokens)} tokens, over limits.max_tokens ({limits.max_tokens})")
        if limits.max_cost is not None and self.usage["cost"] > limits.max_cost:
            raise LimitExceeded(f"the run cost ${self.usage['cost']:.4f}, over limits.max_cost (${limits.max_cost})")
