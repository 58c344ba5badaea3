"""The ``anthropic`` provider against a real Anthropic-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from provider_servers import FakeServer, Reply, Stream, anthropic_reply, anthropic_stream, sse

from llmflow.config import Config
from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse
from llmflow.providers.anthropic import AnthropicProvider

KEY = "sk-ant-test-0123456789"


def provider(server: FakeServer, base_suffix: str = "") -> AnthropicProvider:
    return AnthropicProvider(Config(providers={"anthropic": {"base_url": server.url + base_suffix, "api_key": KEY}}))


def ask(target: AnthropicProvider, stream: bool = False, **fields: Any) -> tuple[ChatResponse, list[str]]:
    chunks: list[str] = []
    values: dict[str, Any] = {"model": "claude-test", "messages": ({"role": "user", "content": "hi"},), **fields}

    async def go() -> ChatResponse:
        try:
            return await target.complete(ChatRequest(**values), chunks.append if stream else None)
        finally:
            await target.aclose()

    return asyncio.run(go()), chunks


def test_a_whole_reply_sends_the_messages_api_shape(anthropic_server: FakeServer) -> None:
    reply, _ = ask(
        provider(anthropic_server),
        messages=(
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
        ),
        temperature=0.5,
        stop=("END",),
    )
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.finish_reason) == (
        "echo: again",
        100,
        50,
        "end_turn",
    )
    (request,) = anthropic_server.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": "claude-test",
        "max_tokens": 1024,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "again"},
        ],
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }


def test_cache_tokens_count_as_input(anthropic_server: FakeServer) -> None:
    body = anthropic_reply("ok")
    body["usage"] = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 5,
    }
    anthropic_server.queue(Reply(json=body))
    reply, _ = ask(provider(anthropic_server), max_tokens=99)
    assert (reply.input_tokens, reply.output_tokens) == (60, 5)
    assert anthropic_server.requests[0].body["max_tokens"] == 99


def test_a_stream_yields_text_deltas_and_usage_from_start_and_delta_events(anthropic_server: FakeServer) -> None:
    anthropic_server.queue(anthropic_stream(["Hel", "lo"], usage=(25, 9)))
    reply, chunks = ask(provider(anthropic_server), stream=True)
    assert chunks == ["Hel", "lo"]
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.finish_reason) == ("Hello", 25, 9, "end_turn")
    assert anthropic_server.requests[0].body["stream"] is True


def test_an_overloaded_error_event_in_a_stream_is_retryable(anthropic_server: FakeServer) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    anthropic_server.queue(Stream([*anthropic_stream(["x"]).events[:2], sse("error", overloaded)]))
    with pytest.raises(ProviderError) as caught:
        ask(provider(anthropic_server), stream=True)
    assert caught.value.message == "anthropic/claude-test: the server reported an error: Overloaded"
    assert caught.value.retryable


def test_an_unknown_model_reports_the_servers_message(anthropic_server: FakeServer) -> None:
    error = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-nope"}}
    anthropic_server.queue(Reply(status=404, json=error))
    with pytest.raises(ProviderError) as caught:
        ask(provider(anthropic_server, base_suffix="/v1"))  # a base URL with /v1 is tolerated
    url = anthropic_server.url + "/v1/messages"
    assert caught.value.message == (
        f"anthropic/claude-test: not found (an unknown model, or a wrong base URL) (HTTP 404 from {url}): "
        "model: claude-nope"
    )


def test_a_529_overloaded_reply_is_retryable(anthropic_server: FakeServer) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    anthropic_server.queue(Reply(status=529, json=error, headers={"retry-after": "3"}))
    with pytest.raises(ProviderError) as caught:
        ask(provider(anthropic_server))
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (529, True, 3.0)


def test_the_key_is_required_and_named() -> None:
    with pytest.raises(ProviderError) as caught:
        ask(AnthropicProvider(Config()))
    assert caught.value.message == (
        "ANTHROPIC_API_KEY is not set (needed for model anthropic/claude-test); set it in the environment or .env"
    )
