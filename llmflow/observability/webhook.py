"""The webhook sink: POSTs JSON batches of chosen events to an HTTP endpoint without ever slowing the run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from llmflow.observability.worker import BackgroundSink, Event, Warn

if TYPE_CHECKING:
    import httpx

#: Events posted unless told otherwise: the run's own, and failed steps.
DEFAULT_EVENT_TYPES = ("run.*", "step.failed")
#: Statuses worth a second try: the endpoint may be busy, or restarting.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSink(BackgroundSink):
    """POSTs ``{"events": [...]}`` batches of the events whose type matches ``event_types`` (globs) to ``url``.

    A batch the endpoint refuses or cannot take (a connection error, a timeout, a 5xx or 429) is tried once
    more after ``retry_delay`` seconds, then given up and counted in ``failed``; events that find the queue
    full are counted in ``dropped``, and those still waiting when ``close`` stops waiting (``close_timeout``)
    in ``abandoned``. ``warn``, when given, receives one line for people at close if any event was not
    delivered. Everything network-bound happens on the sink's own thread with a synchronous httpx client.
    """

    thread_name = "llmflow-webhook"

    def __init__(
        self,
        url: str,
        *,
        event_types: Iterable[str] = DEFAULT_EVENT_TYPES,
        batch: int = 50,
        timeout: float = 5.0,
        capacity: int = 10_000,
        retries: int = 1,
        retry_delay: float = 0.5,
        close_timeout: float = 2.0,
        linger: float = 0.05,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        warn: Warn | None = None,
    ) -> None:
        self.url = url
        self.event_types = tuple(event_types)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self.headers = {"content-type": "application/json", "user-agent": _user_agent(), **(headers or {})}
        self.delivered = 0
        self.failed = 0
        self.batches = 0
        self.last_error: str | None = None
        self._transport = transport
        self._warn = warn
        self._wanted: dict[str, bool] = {}  # event type -> matches, so ``put`` globs each type only once
        self._client: httpx.Client | None = None
        super().__init__(capacity=capacity, batch=batch, linger=linger, close_timeout=close_timeout)

    def accepts(self, event: Event) -> bool:
        """Whether the event's type matches one of ``event_types``."""
        kind = event.get("type")
        wanted = self._wanted.get(kind)  # type: ignore[arg-type]
        if wanted is None:
            wanted = isinstance(kind, str) and any(fnmatchcase(kind, pattern) for pattern in self.event_types)
            self._wanted[str(kind)] = wanted
        return wanted

    @property
    def undelivered(self) -> int:
        """Events that did not reach the endpoint: dropped, failed or abandoned."""
        return self.dropped + self.failed + self.abandoned

    # -- the worker thread -----------------------------------------------------------------------------
    def open(self) -> None:
        """Build the HTTP client (here, so that the run does not wait for it)."""
        import httpx

        self._client = httpx.Client(timeout=self.timeout, transport=self._transport, headers=self.headers)

    def finish(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()

    def handle(self, events: list[Event]) -> None:
        """POST one batch, with one more try when the endpoint seems only briefly unwell."""
        body, unencodable = _encode(events)
        if unencodable:
            self._count(failed=unencodable, error="an event could not be encoded as JSON")
        if body is None:
            return
        count = len(events) - unencodable
        error: str | None = None
        for attempt in range(1 + self.retries):
            if attempt:
                self._stopping.wait(self.retry_delay)  # close cuts the pause short, not the retry
            retry, error = self._post(body)
            if error is None:
                self._count(delivered=count)
                return
            if not retry:
                break
        self._count(failed=count, error=error)

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """Send once: (worth retrying, error or None)."""
        import httpx

        assert self._client is not None
        try:
            response = self._client.post(self.url, content=body)
        except httpx.TimeoutException:
            return True, f"no answer within {self.timeout:g}s"
        except httpx.HTTPError as error:
            return True, f"{type(error).__name__}: {error}"
        if response.is_success:
            return False, None
        return response.status_code in _RETRYABLE, f"HTTP {response.status_code}"

    def _count(self, *, delivered: int = 0, failed: int = 0, error: str | None = None) -> None:
        def update() -> None:
            self.delivered += delivered
            self.failed += failed
            self.batches += 1 if delivered else 0
            if error is not None:
                self.last_error = error

        self.settle(update, delivered + failed)

    def closed(self) -> None:
        """Tell ``warn`` what could not be delivered."""
        if self._warn is not None and self.undelivered:
            self._warn(undelivered_message(self))


def undelivered_message(sink: WebhookSink) -> str:
    """``webhook: 3 events could not be delivered to URL (HTTP 500)``."""
    count = sink.undelivered
    why = sink.last_error or sink.broken or ("the queue was full" if sink.dropped else "no time left at the end")
    return f"webhook: {count} event{'s' * (count != 1)} could not be delivered to {sink.url} ({why})"


def _encode(events: list[Event]) -> tuple[bytes | None, int]:
    """The batch as JSON bytes, leaving out events that cannot be encoded (counted)."""
    try:
        return json.dumps({"events": events}, default=str).encode("utf-8"), 0
    except (ValueError, TypeError, RecursionError):
        good: list[str] = []
        for event in events:
            try:
                good.append(json.dumps(event, default=str))
            except (ValueError, TypeError, RecursionError):
                continue
        body = ('{"events": [' + ", ".join(good) + "]}").encode("utf-8") if good else None
        return body, len(events) - len(good)


def _user_agent() -> str:
    from llmflow import __version__

    return f"llmflow/{__version__}"
