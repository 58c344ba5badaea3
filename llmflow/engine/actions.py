"""The action port: what a leaf action receives and returns, and the registry the engine looks them up in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmflow.records import Record

if TYPE_CHECKING:
    from llmflow.compiler.graph import ActionNode
    from llmflow.engine.frame import Frame
    from llmflow.expressions import ShellCommand


class ActionResult(Record):
    """What an action produced: its output, variables it set, extra ``steps.<id>`` fields, model usage."""

    __slots__ = ("extra", "output", "usage", "writes")

    def __init__(
        self,
        output: Any = None,
        writes: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        self.output = output
        self.writes: dict[str, Any] = writes if writes is not None else {}
        self.extra: dict[str, Any] = extra if extra is not None else {}
        self.usage = usage


class ModelProviders(Protocol):
    """The run's model providers by name (the concrete registry lives outside the engine)."""

    def get(self, name: str) -> Any:
        """The provider called ``name``; ``KeyError`` when there is none."""

    def names(self) -> list[str]:
        """Every provider name."""


class RunServices(Protocol):
    """Run-wide services an action may use."""

    run_id: str
    project_dir: Path

    def emit(self, kind: str, path: str = "", data: dict[str, Any] | None = None, attempt: int = 0) -> None:
        """Emit an event."""

    def artifacts_dir(self) -> Path:
        """The run's artifacts folder."""

    def state_dir(self) -> Path | None:
        """The run store's folder (``.llmflow``), where no step may write; ``None`` without a store."""

    def source_files(self) -> frozenset[Path]:
        """The files the workflow and its sub-workflows were compiled from (where they are in the project,
        also when the run goes on from its frozen copy), resolved."""

    def approval_decision(self, path: str) -> dict[str, Any] | None:
        """The decision given with ``resume --approve/--reject`` for an approval at ``path``, if any."""

    def approval_asked(self, path: str) -> float:
        """When the approval at ``path`` was first asked (epoch seconds; now, when this is the first time)."""

    def output_line(self, path: str, stream: str, line: str) -> None:
        """Show one line of a step's live output (stdout/stderr)."""


class ActionContext(Record):
    """Everything one attempt of a leaf action needs."""

    __slots__ = ("attempt", "config", "env", "frame", "node", "path", "services", "shell")

    def __init__(
        self,
        node: ActionNode,
        config: dict[str, Any],
        path: str,
        attempt: int,
        frame: Frame,
        services: RunServices,
        env: Mapping[str, str],
        shell: ShellCommand | None = None,
    ) -> None:
        self.node = node
        self.config = config
        self.path = path
        self.attempt = attempt
        self.frame = frame
        self.services = services
        self.env = env
        self.shell = shell

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of this node instance: ``<run id>:<path>``."""
        return f"{self.services.run_id}:{self.path}"

    @property
    def workflow_dir(self) -> Path:
        """The folder of the workflow file the node comes from."""
        return Path(self.frame.workflow_dir)

    def emit(self, kind: str, data: dict[str, Any] | None = None) -> None:
        """Emit an event about this node instance."""
        self.services.emit(kind, self.path, data, self.attempt)


Action = Callable[[ActionContext], Awaitable[ActionResult]]


class ActionRegistry:
    """Actions by kind. The engine knows none by name; built-ins and plugins register the same way."""

    def __init__(self, actions: Mapping[str, Action] | None = None) -> None:
        self._actions: dict[str, Action] = dict(actions or {})

    def register(self, kind: str, action: Action) -> None:
        """Add or replace the action for ``kind``."""
        self._actions[kind] = action

    def get(self, kind: str) -> Action:
        """The action for ``kind``; ``KeyError`` when none is registered."""
        return self._actions[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._actions

    def kinds(self) -> list[str]:
        """Every registered kind."""
        return sorted(self._actions)
