"""What running a node instance produced, and its journal form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmflow.errors import StepError

#: Node statuses.
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"


@dataclass(slots=True)
class Outcome:
    """The result of one node instance.

    ``writes`` are the run variables the instance (and everything inside it) left behind; ``extra`` holds
    the kind-specific fields shown as ``steps.<id>.<field>`` (``stdout``, ``exit_code``, ``branch`` …).
    """

    status: str
    output: Any = None
    writes: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    attempts: int = 1
    started: float = 0.0
    ended: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds the instance took (all attempts)."""
        return max(0.0, self.ended - self.started)

    def view(self) -> dict[str, Any]:
        """What ``steps.<id>`` shows to conditions and templates."""
        view = {
            "output": self.output,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
            "duration": round(self.duration, 6),
        }
        view.update(self.extra)
        return view

    def record(self, path: str) -> dict[str, Any]:
        """The journal record of this instance (short keys: the journal is on the hot path)."""
        record: dict[str, Any] = {
            "p": path,
            "s": self.status,
            "t": [round(self.started, 6), round(self.ended, 6)],
        }
        if self.output is not None:
            record["output"] = self.output
        if self.writes:
            record["w"] = self.writes
        if self.error is not None:
            record["e"] = self.error
        if self.attempts != 1:
            record["a"] = self.attempts
        if self.extra:
            record["x"] = self.extra
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Outcome:
        """Rebuild an outcome from its journal record."""
        started, ended = record.get("t", (0.0, 0.0))
        return cls(
            status=record["s"],
            output=record.get("output"),
            writes=dict(record.get("w") or {}),
            error=record.get("e"),
            attempts=record.get("a", 1),
            started=started,
            ended=ended,
            extra=dict(record.get("x") or {}),
        )


def error_info(error: BaseException, path: str = "") -> dict[str, Any]:
    """The ``error`` mapping templates see: ``message``, ``kind``, ``step`` and kind-specific data."""
    if isinstance(error, StepError):
        info: dict[str, Any] = {"message": error.message, "kind": error.kind, "step": error.path or path}
        info.update(error.data)
        return info
    return {"message": str(error) or type(error).__name__, "kind": "error", "step": path}


class NodeFailed(StepError):
    """A node instance failed for good (retries exhausted, not continued); carries the first cause."""

    def __init__(self, path: str, cause: BaseException) -> None:
        info = error_info(cause, path)
        super().__init__(info["message"], path=info["step"], data=info)
        self.kind = info["kind"]
        self.cause = cause
        self.info = info


class PauseRun(BaseException):
    """Raised by an action (``approval``) to stop the run in status ``waiting``; resumable."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.paths = [path]
        self.message = message
