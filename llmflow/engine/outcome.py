"""What running a node instance produced, and its journal form."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from llmflow.errors import ActionError, StepError
from llmflow.records import Record

#: Node statuses.
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"


class Outcome(Record):
    """The result of one node instance.

    ``writes`` are the run variables the instance (and everything inside it) left behind; ``extra`` holds
    the kind-specific fields shown as ``steps.<id>.<field>`` (``stdout``, ``exit_code``, ``branch`` …).
    """

    __slots__ = ("attempts", "ended", "error", "extra", "output", "started", "status", "writes")

    def __init__(
        self,
        status: str,
        output: Any = None,
        writes: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        attempts: int = 1,
        started: float = 0.0,
        ended: float = 0.0,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.output = output
        self.writes: dict[str, Any] = writes if writes is not None else {}
        self.error = error
        self.attempts = attempts
        self.started = started
        self.ended = ended
        self.extra: dict[str, Any] = extra if extra is not None else {}

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

        A skipped instance is just ``{"p", "s"}``; ``m`` (start time and duration, in whole milliseconds) is
        kept for instances that ran: integers, because a JSON parser reads them several times faster than
        decimal fractions, which would otherwise be most of reading a large journal on resume.
        Variables that are the output itself (``set``) are stored once: ``"wo": 1`` instead of ``w``.
        """
        record: dict[str, Any] = {"p": path, "s": self.status}
        if self.status == SKIPPED:
            if self.extra:  # a plugin's decision to skip it
                record["x"] = self.extra
            return record
        start = round(self.started * 1000)
        record["m"] = [start, max(0, round(self.ended * 1000) - start)]
        if self.output is not None:
            record["output"] = self.output
        if self.writes:
            if self.writes is self.output:
                record["wo"] = 1
            else:
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
        """Rebuild an outcome from its journal record (a resume calls this once per completed instance)."""
        status = record["s"]
        output = record.get("output")
        written = record_writes(record)
        writes = dict(written) if written else {}
        started, ended = record_times(record) or (0.0, 0.0)
        extra = record.get("x")
        return cls(
            status,
            output,
            writes,
            record.get("e"),
            record.get("a", 0 if status == SKIPPED else 1),
            started,
            ended,
            dict(extra) if extra else {},
        )


class Restored:
    """The result of a node instance restored from its journal record, for ``steps.<id>``: the outcome is
    rebuilt only if an expression reads it (a resume restores many steps, and later steps read few)."""

    __slots__ = ("record",)

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record

    def view(self) -> dict[str, Any]:
        """What ``steps.<id>`` shows (as ``Outcome.view``)."""
        return Outcome.from_record(self.record).view()


def record_writes(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The variables a journaled instance left behind (its output itself when ``"wo"`` says so), or ``None``."""
    if record.get("wo"):
        output = record.get("output")
        if type(output) is dict:
            return output
    written: Mapping[str, Any] | None = record.get("w")
    return written


def record_times(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """When a journaled instance started and ended (epoch seconds), or ``None`` when it did not run.

    Records hold ``"m": [start_ms, duration_ms]``; those journaled before that format hold
    ``"t": [start, end]`` in seconds, and are read as well.
    """
    times = record.get("m")
    if times:
        return times[0] / 1000, (times[0] + times[1]) / 1000
    times = record.get("t")
    if times:
        return float(times[0]), float(times[1])
    return None


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
        #: The named nodes that failed because of it, innermost first, each with the steps view its result
        #: went into: the journal keeps those of a scope with the try that caught the failure, or with the
        #: composite that failed and was continued (``failed_records``), so a resume shows them as failed.
        self.failed: list[tuple[object, str, Outcome]] = []


def failed_records(failure: BaseException, steps: object) -> dict[str, dict[str, Any]]:
    """The journal records (without a path) of the named nodes that failed with ``failure`` and showed their
    result in ``steps`` (a frame's steps view): kept with the record of the try that caught the failure, or of
    the composite that failed and was continued, so that a resume shows them as failed again."""
    if not isinstance(failure, NodeFailed):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for scope, step_id, outcome in failure.failed:
        if scope is steps:
            record = outcome.record("")
            del record["p"]
            found[step_id] = record
    return found


class PauseRun(BaseException):
    """Raised by an action (``approval``) to stop the run in status ``waiting``; resumable."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.paths = [path]
        self.message = message
        self.messages = {path: message}  # every waiting path's own message (lanes of a map or parallel)

    def join(self, other: PauseRun) -> None:
        """Wait for ``other``'s approvals too."""
        self.paths.extend(other.paths)
        self.messages.update(other.messages)


_SCALARS = frozenset({str, int, bool, type(None)})


def jsonable(value: Any, what: str, path: str = "") -> Any:
    """``value`` as plain JSON data: tuples, sets and other iterables become lists, keys become strings.

    Values that are already plain come back as they are (no copy). Anything else (objects, bytes,
    ``NaN``, nesting deeper than Python's recursion limit) is refused with an ``ActionError`` naming
    ``what``, so a record never holds non-JSON data.
    """
    if type(value) in _SCALARS:
        return value
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
        # Nearly every value is already plain: check it without building anything, copy only on a change.
        for index, item in enumerate(value):
            if type(item) not in _SCALARS and _plain(item, what, path) is not item:
                return value[:index] + [_plain(other, what, path) for other in value[index:]]
        return value
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and _plain(item, what, path) is not item):
                return {_key(key, what, path): _plain(item, what, path) for key, item in value.items()}
        return value
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


def json_encoder(
    item_separator: str = ",",
    key_separator: str = ":",
    *,
    default: Callable[[Any], Any] | None = None,
    check_circular: bool = False,
) -> Callable[[Any], str]:
    """A reusable JSON encoder (non-ASCII kept), as fast as the standard library allows.

    ``json.dumps`` with options builds a new encoder on every call; this builds the C encoder once (and
    falls back to the public encoder where the accelerator is missing or behaves differently). Without
    ``check_circular`` a value that contains itself ends in ``RecursionError``; with it, the encoder keeps
    state while it works, so each thread needs an encoder of its own.
    """
    options = json.JSONEncoder(
        ensure_ascii=False,
        separators=(item_separator, key_separator),
        default=default,
        check_circular=check_circular,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return options.encode
    markers: dict[int, Any] | None = {} if check_circular else None
    try:
        chunks = make(
            markers,
            options.default,
            json.encoder.encode_basestring,
            None,
            key_separator,
            item_separator,
            False,
            False,
            True,
        )
        sample = {"a": [1, 2.5, None, True], "b": {"\u00e9": "x\n"}, "": ""}
        if "".join(chunks(sample, 0)) != options.encode(sample):
            return options.encode
    except Exception:
        return options.encode

    def encode(value: Any) -> str:
        try:
            return "".join(chunks(value, 0))
        except BaseException:
            if markers:  # an encoding that failed half-way leaves its open containers marked
                markers.clear()
            raise

    return encode
