"""Retries (429, 5xx, lost connections, timeouts; Retry-After honoured) and per-endpoint request limits."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from provider_servers import FakeServer, Reply, openai_reply

from llmflow.config import Config
from llmflow.errors import ActionError, ProviderError
from llmflow.providers import ChatRequest, ChatResponse
from llmflow.providers.http import retry_after
from llmflow.providers.openai import OpenAIProvider
from llmflow.providers.resilience import CallPolicy, Limiter, send

FAST = CallPolicy(retry_delay=0.01, max_delay=0.05)


def request(server_url: str, **fields: Any) -> ChatRequest:
    values: dict[str, Any] = {"model": "m", "messages": ({"role": "user", "content": "hi"},), **fields}
    return ChatRequest(base_url=server_url + "/v1", **values)


def call(
    url: str, policy: CallPolicy = FAST, times: int = 1, limiter: Limiter | None = None, **fields: Any
) -> tuple[list[ChatResponse], list[tuple[int, float, int | None]]]:
    """``times`` calls at once through one provider and limiter; returns replies and the retries seen."""
    retries: list[tuple[int, float, int | None]] = []
    provider = OpenAIProvider(Config())
    shared = limiter or Limiter(policy.max_concurrency, policy.requests_per_minute)

    def on_retry(number: int, delay: float, error: ProviderError) -> None:
        retries.append((number, delay, error.status))

    async def go() -> list[ChatResponse]:
        try:
            calls = [
                send(provider, request(url, **fields), None, policy=policy, limiter=shared, on_retry=on_retry)
                for _ in range(times)
            ]
            return list(await asyncio.gather(*calls))
        finally:
            await provider.aclose()

    return asyncio.run(go()), retries


def test_a_429_is_retried_after_the_seconds_in_retry_after(openai_server: FakeServer) -> None:
    openai_server.queue(
        Reply(status=429, json={"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "0.2"})
    )
    (reply,), retries = call(openai_server.url)
    assert reply.text == "echo: hi"
    assert retries == [(1, 0.2, 429)]
    first, second = openai_server.requests
    assert second.at - first.at >= 0.19


def test_retry_after_may_be_an_http_date_or_milliseconds() -> None:
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after({"retry-after": later}) or 0) <= 30
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_a_long_retry_after_is_capped(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=429, json={}, headers={"Retry-After": "3600"}))
    _, retries = call(openai_server.url, CallPolicy(max_retry_after=0.05))
    assert retries == [(1, 0.05, 429)]


def test_server_errors_are_retried_with_backoff_until_one_succeeds(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=500, json={}), Reply(status=503, body=b"upstream down", content_type="text/plain"))
    (reply,), retries = call(openai_server.url)
    assert reply.text == "echo: hi"
    assert [(number, status) for number, _, status in retries] == [(1, 500), (2, 503)]
    assert all(0 < delay <= 0.05 for _, delay, _ in retries)


def test_giving_up_says_how_many_attempts_were_made(openai_server: FakeServer) -> None:
    openai_server.queue(*[Reply(status=502, json={"error": {"message": "Bad gateway"}})] * 3)
    with pytest.raises(ProviderError) as caught:
        call(openai_server.url, CallPolicy(max_retries=2, retry_delay=0.01))
    assert caught.value.message.endswith("Bad gateway (gave up after 3 attempts)")
    assert caught.value.status == 502
    assert len(openai_server.requests) == 3


def test_a_refused_request_is_not_retried(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=400, json={"error": {"message": "bad"}}))
    with pytest.raises(ProviderError):
        call(openai_server.url)
    assert len(openai_server.requests) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ProviderError) as caught:
        call(url, CallPolicy(max_retries=1, retry_delay=0.01))
    assert caught.value.message.startswith(f"openai/m: cannot connect to {url}/v1/chat/completions: ")
    assert caught.value.message.endswith("(gave up after 2 attempts)")


def test_a_slow_reply_times_out(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(json=openai_reply("late"), delay=1.0))
    with pytest.raises(ProviderError) as caught:  # not the late reply: the call gave up first
        call(openai_server.url, CallPolicy(max_retries=0), timeout=0.2)
    assert caught.value.message == f"openai/m: no reply from {openai_server.url}/v1/chat/completions within 0.2s"
    assert caught.value.retryable


def test_max_concurrency_bounds_the_requests_in_flight(openai_server: FakeServer) -> None:
    openai_server.queue(*[Reply(json=openai_reply("ok"), delay=0.1)] * 6)
    replies, _ = call(openai_server.url, CallPolicy(max_concurrency=2), times=6)
    assert len(replies) == 6
    assert openai_server.max_in_flight == 2


def test_requests_per_minute_spaces_the_requests(openai_server: FakeServer) -> None:
    started = time.monotonic()
    call(openai_server.url, CallPolicy(requests_per_minute=600), times=4)  # one every 0.1 s
    arrivals = sorted(received.at for received in openai_server.requests)
    # A lower bound only (a loaded machine makes every arrival later, never earlier): the fourth request
    # cannot start before its turn at 0.3 s; without the limiter all four arrive at once.
    assert len(arrivals) == 4 and arrivals[-1] - started >= 0.29


def test_a_429_pauses_every_caller_of_the_endpoint(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=429, json={}, headers={"Retry-After": "0.3"}))
    limiter = Limiter(max_concurrency=1)
    call(openai_server.url, CallPolicy(max_concurrency=1), times=3, limiter=limiter)
    first, *rest = sorted(received.at for received in openai_server.requests)
    assert len(rest) == 3 and min(rest) - first >= 0.29


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_retries": -1}, "model option max_retries must be a whole number of at least 0, not -1"),
        ({"max_concurrency": 0}, "model option max_concurrency must be a whole number of at least 1, not 0"),
        ({"requests_per_minute": "lots"}, "model option requests_per_minute must be a number above 0, not 'lots'"),
        ({"retry_delay": "soon"}, "model option retry_delay: 'soon' is not a duration"),
    ],
)
def test_bad_policy_options_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ActionError) as caught:
        CallPolicy.from_settings(settings)
    assert caught.value.message.startswith(message)


def test_policy_layers_later_wins() -> None:
    policy = CallPolicy.from_settings({"max_retries": 5, "retry_delay": "2s"}, {"max_retries": 1})
    assert (policy.max_retries, policy.retry_delay, policy.max_concurrency) == (1, 2.0, None)
