"""What running a node instance produced, and its journal form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmflow.errors import ActionError, StepError

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
            "started": self.started,
            "ended": self.ended,
        }
        view.update(self.extra)
        if "exit_code" in view and "stdout" not in view:
            # ``parse: text`` keeps stdout only once, as the output (trailing newline stripped).
            view["stdout"] = self.output
        return view

    def record(self, path: str) -> dict[str, Any]:
        """The journal record of this instance: short keys, and nothing that is empty or implied.

        A skipped instance is just ``{"p", "s"}``; ``t`` (start and end time) is kept for instances that ran.
        """
        record: dict[str, Any] = {"p": path, "s": self.status}
        if self.status == SKIPPED:
            return record
        record["t"] = [round(self.started, 3), round(self.ended, 3)]
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
    def from_record(cls, record: Mapping[str, Any]) -> Outcome:
        """Rebuild an outcome from its journal record."""
        started, ended = record.get("t") or (0.0, 0.0)
        return cls(
            status=record["s"],
            output=record.get("output"),
            writes=dict(record.get("w") or {}),
            error=record.get("e"),
            attempts=record.get("a", 0 if record["s"] == SKIPPED else 1),
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
    """A node instance failed for good (retries exhausted, not continued); carries the first cause.

    Enclosing nodes that fail because of it re-raise the same exception, so ``path`` (and ``info["step"]``)
    always names the node instance where the failure started.
    """

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


_SCALARS = (str, int, bool, type(None))


def jsonable(value: Any, what: str, path: str = "") -> Any:
    """``value`` as plain JSON data: tuples, sets and other iterables become lists, keys become strings.

    Values that are already plain come back as they are (no copy). Anything else (objects, bytes,
    ``NaN``, nesting deeper than Python's recursion limit) is refused with an ``ActionError`` naming
    ``what``, so a record never holds non-JSON data.
    """
    try:
        return _plain(value, what, path)
    except RecursionError:
        raise ActionError(f"{what} is nested too deeply to be stored", path=path) from None


def _plain(value: Any, what: str, path: str) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ActionError(f"{what} contains {value}, which JSON cannot hold", path=path)
        return value
    if kind is list:
        items = [_plain(item, what, path) for item in value]
        return value if all(new is old for new, old in zip(items, value, strict=True)) else items
    if kind is dict:
        plain = all(type(key) is str for key in value)
        converted = {_key(key, what, path): _plain(item, what, path) for key, item in value.items()}
        if plain and all(converted[key] is item for key, item in value.items()):
            return value
        return converted
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _plain(float(value), what, path)
    if isinstance(value, Mapping):
        return {_key(key, what, path): _plain(item, what, path) for key, item in value.items()}
    if isinstance(value, (tuple, range)):
        return [_plain(item, what, path) for item in value]
    if isinstance(value, (set, frozenset)):
        items = [_plain(item, what, path) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    raise ActionError(f"{what} holds a value of type {kind.__name__}, which cannot be stored as JSON", path=path)


def _key(key: Any, what: str, path: str) -> str:
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(_plain(key, what, path))
    raise ActionError(f"{what} has a {type(key).__name__} key, which cannot be stored as JSON", path=path)
