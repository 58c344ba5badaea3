"""The action port: what a leaf action receives and returns, and the registry the engine looks them up in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from llmflow.compiler.graph import ActionNode
    from llmflow.engine.frame import Frame
    from llmflow.expressions import ShellCommand


@dataclass(slots=True)
class ActionResult:
    """What an action produced: its output, variables it set, extra ``steps.<id>`` fields, model usage."""

    output: Any = None
    writes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] | None = None


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

    def approval_decision(self, path: str) -> dict[str, Any] | None:
        """The decision given with ``resume --approve/--reject`` for an approval at ``path``, if any."""

    def approval_asked(self, path: str) -> float:
        """When the approval at ``path`` was first asked (epoch seconds; now, when this is the first time)."""

    def output_line(self, path: str, stream: str, line: str) -> None:
        """Show one line of a step's live output (stdout/stderr)."""


@dataclass(slots=True)
class ActionContext:
    """Everything one attempt of a leaf action needs."""

    node: ActionNode
    config: dict[str, Any]
    path: str
    attempt: int
    frame: Frame
    services: RunServices
    env: Mapping[str, str]
    shell: ShellCommand | None = None

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
