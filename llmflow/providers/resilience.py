"""Retries with backoff and per-endpoint request limits, the same for every provider."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmflow.durations import parse_duration
from llmflow.errors import ActionError, ProviderError

if TYPE_CHECKING:
    from llmflow.providers import ChatRequest, ChatResponse, ChunkListener, Provider

#: Options (``llmflow.toml`` ``[providers.NAME]`` or a model alias's ``options``) that steer the calls
#: rather than being sent to the model.
POLICY_OPTIONS = (
    "max_retries",
    "retry_delay",
    "max_delay",
    "max_retry_after",
    "max_concurrency",
    "requests_per_minute",
)

RetryListener = Callable[[int, float, ProviderError], None]


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How model calls to one endpoint are retried and limited."""

    max_retries: int = 3  # retries after the first attempt
    retry_delay: float = 1.0  # the first backoff; doubled on each retry
    max_delay: float = 30.0  # the longest backoff
    max_retry_after: float = 60.0  # the longest wait a server's Retry-After can impose
    max_concurrency: int | None = None
    requests_per_minute: float | None = None

    @classmethod
    def from_settings(cls, *layers: Mapping[str, Any]) -> CallPolicy:
        """The policy from settings layers, later layers winning (``llmflow.toml``, then the model alias)."""
        values: dict[str, Any] = {}
        for layer in layers:
            values.update({key: _checked(key, layer[key]) for key in POLICY_OPTIONS if layer.get(key) is not None})
        return cls(**values)

    def delay(self, retry: int, error: ProviderError) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): the server's Retry-After when it gave one
        (capped at ``max_retry_after``), else exponential backoff with jitter."""
        if error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.max_retry_after))
        backoff: float = min(self.max_delay, self.retry_delay * 2 ** (retry - 1))
        return backoff * random.uniform(0.8, 1.0)


_RULES = {
    "max_retries": "a whole number of at least 0",
    "max_concurrency": "a whole number of at least 1",
    "requests_per_minute": "a number above 0",
}


def _checked(key: str, value: Any) -> Any:
    """A policy option's value, or ``ActionError`` saying what it must be."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if key not in _RULES:
            return parse_duration(value)
        number = float(value)
        if key == "requests_per_minute" and number > 0:
            return number
        if number == int(number) and number >= (0 if key == "max_retries" else 1):
            return int(number)
    except (TypeError, ValueError) as error:
        if key not in _RULES:
            raise ActionError(f"model option {key}: {error}") from None
    raise ActionError(f"model option {key} must be {_RULES[key]}, not {value!r}")


class Limiter:
    """At most ``max_concurrency`` requests in flight and ``requests_per_minute`` started, spaced evenly; a
    rate-limited reply pauses every caller of the endpoint for the time the server asked for."""

    def __init__(self, max_concurrency: int | None = None, requests_per_minute: float | None = None) -> None:
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_start = 0.0
        self._paused_until = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot for the duration of the block."""
        if self._slots is not None:
            await self._slots.acquire()
        try:
            await self._wait_turn()
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    def pause(self, seconds: float) -> None:
        """Start no request for ``seconds`` (the server said it is overloaded)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def _wait_turn(self) -> None:
        while True:
            now = time.monotonic()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            if not self._interval:
                return
            start = max(now, self._next_start)
            self._next_start = start + self._interval  # book the turn before sleeping, so callers queue up
            if start > now:
                await asyncio.sleep(start - now)
                if time.monotonic() < self._paused_until:
                    continue  # the endpoint was paused meanwhile: book again after the pause
            return


async def send(
    provider: Provider,
    request: ChatRequest,
    on_chunk: ChunkListener | None,
    *,
    policy: CallPolicy,
    limiter: Limiter,
    on_retry: RetryListener | None = None,
) -> ChatResponse:
    """One model call through the endpoint's limiter, retried on retryable failures (429, 5xx, lost
    connections, timeouts) with backoff that honours Retry-After."""
    retry = 0
    while True:
        try:
            async with limiter.slot():
                return await provider.complete(request, on_chunk)
        except ProviderError as error:
            if not error.retryable:
                raise
            if retry >= policy.max_retries:
                if retry == 0:
                    raise
                message = f"{error.message} (gave up after {retry + 1} attempts)"
                raise ProviderError(
                    message, status=error.status, retryable=True, retry_after=error.retry_after
                ) from None
            retry += 1
            delay = policy.delay(retry, error)
            if error.status == 429:
                limiter.pause(delay)
            if on_retry is not None:
                on_retry(retry, delay, error)
            await asyncio.sleep(delay)
