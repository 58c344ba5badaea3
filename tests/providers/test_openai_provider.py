"""The ``openai`` provider against a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from provider_servers import FakeServer, Reply, Stream, openai_reply, openai_stream

from llmflow.config import Config
from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse
from llmflow.providers.openai import OpenAIProvider

KEY = "sk-test-0123456789abcdef"


def config(server: FakeServer | None = None, **provider: Any) -> Config:
    settings = {"base_url": server.url + "/v1", "api_key_env": "TEST_OPENAI_KEY"} if server else {}
    return Config(providers={"openai": {**settings, **provider}}, dotenv={"TEST_OPENAI_KEY": KEY})


def ask(provider: OpenAIProvider, stream: bool = False, **fields: Any) -> tuple[ChatResponse, list[str]]:
    chunks: list[str] = []
    values: dict[str, Any] = {"model": "test-model", "messages": ({"role": "user", "content": "hi"},), **fields}

    async def go() -> ChatResponse:
        try:
            return await provider.complete(ChatRequest(**values), chunks.append if stream else None)
        finally:
            await provider.aclose()

    return asyncio.run(go()), chunks


def failure(provider: OpenAIProvider, stream: bool = False, **fields: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        ask(provider, stream, **fields)
    return caught.value


def test_a_whole_reply_carries_text_usage_and_every_request_field(openai_server: FakeServer) -> None:
    provider = OpenAIProvider(config(openai_server, headers={"X-Title": "llmflow tests"}))
    reply, _ = ask(
        provider,
        messages=({"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}),
        temperature=0.2,
        max_tokens=64,
        stop=("END",),
        options={"seed": 7, "headers": {"HTTP-Referer": "https://example.org"}},
    )
    assert (reply.text, reply.input_tokens, reply.output_tokens, reply.finish_reason) == (
        "echo: hello",
        100,
        50,
        "stop",
    )
    (request,) = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-title"] == "llmflow tests"
    assert request.headers["http-referer"] == "https://example.org"
    assert request.body == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["END"],
        "seed": 7,
    }


@pytest.mark.parametrize("variant", ["openai", "litellm", "vllm", "early"])
def test_a_stream_yields_its_pieces_and_the_usage_chunk_in_every_variant(
    openai_server: FakeServer, variant: str
) -> None:
    openai_server.queue(openai_stream(["Hel", "lo", " there"], usage=(12, 3), variant=variant))
    reply, chunks = ask(OpenAIProvider(config(openai_server)), stream=True)
    assert chunks == ["Hel", "lo", " there"]
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("Hello there", 12, 3)
    body = openai_server.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_a_stream_request_answered_with_plain_json_is_read_as_a_whole_reply(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(json=openai_reply("all at once", usage=(7, 4))))
    reply, chunks = ask(OpenAIProvider(config(openai_server)), stream=True)
    assert chunks == ["all at once"]
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("all at once", 7, 4)


def test_comments_and_missing_blank_lines_in_a_stream_are_tolerated(openai_server: FakeServer) -> None:
    stream = openai_stream(["a", "b"])
    # OpenRouter sends keep-alive comments; some proxies forget the blank line between events.
    openai_server.queue(Stream([": OPENROUTER PROCESSING", "\n".join(stream.events)]))
    reply, chunks = ask(OpenAIProvider(config(openai_server)), stream=True)
    assert (reply.text, chunks, reply.output_tokens) == ("ab", ["a", "b"], 50)


def test_an_error_event_in_the_middle_of_a_stream_fails_the_call(openai_server: FakeServer) -> None:
    error = {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}
    openai_server.queue(Stream([*openai_stream(["partial"]).events[:2], "data: " + json.dumps(error)]))
    problem = failure(OpenAIProvider(config(openai_server)), stream=True)
    assert problem.message == (
        "openai/test-model: the server reported an error: The server had an error while processing your request."
    )
    assert problem.retryable


def test_a_local_server_needs_no_key(openai_server: FakeServer) -> None:
    reply, _ = ask(OpenAIProvider(Config()), base_url=openai_server.url + "/v1")
    assert reply.text == "echo: hi"
    assert "authorization" not in openai_server.requests[0].headers


def test_a_missing_key_names_the_variable_to_set() -> None:
    assert failure(OpenAIProvider(Config())).message == (
        "OPENAI_API_KEY is not set (needed for model openai/test-model); set it in the environment or .env"
    )
    alias = failure(OpenAIProvider(Config()), base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_KEY")
    assert alias.message.startswith("OPENROUTER_KEY is not set (needed for model openai/test-model)")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(
            401,
            {"error": {"message": "Incorrect API key provided: sk-bad.", "type": "invalid_request_error"}},
            "authentication failed (check TEST_OPENAI_KEY) (HTTP 401 from {url}): Incorrect API key provided: sk-bad.",
            id="401",
        ),
        pytest.param(
            400,
            {"error": {"message": "Invalid proxy server token passed.", "type": "auth_error"}},
            "the server refused the request (HTTP 400 from {url}): Invalid proxy server token passed.",
            id="400-from-a-proxy",
        ),
        pytest.param(
            404,
            {"error": {"message": "The model `nope` does not exist or you do not have access to it."}},
            "not found (an unknown model, or a wrong base URL) (HTTP 404 from {url}): "
            "The model `nope` does not exist or you do not have access to it.",
            id="404",
        ),
        pytest.param(
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "field required", "type": "missing"}]},
            "the server refused the request (HTTP 422 from {url}): field required",
            id="422-fastapi",
        ),
        pytest.param(404, {"error": 'model "nope" not found, try pulling it first'}, None, id="404-ollama"),
    ],
)
def test_http_errors_are_one_line_with_the_servers_own_message(
    openai_server: FakeServer, status: int, body: Any, expected: str | None
) -> None:
    openai_server.queue(Reply(status=status, json=body))
    problem = failure(OpenAIProvider(config(openai_server)))
    url = openai_server.url + "/v1/chat/completions"
    assert "\n" not in problem.message
    assert problem.status == status and not problem.retryable
    if expected is not None:
        assert problem.message == "openai/test-model: " + expected.format(url=url)
    else:
        assert problem.message.endswith('model "nope" not found, try pulling it first')


def test_a_404_from_a_base_url_without_v1_says_so(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=404, body=b"404 page not found", content_type="text/plain"))
    problem = failure(OpenAIProvider(Config()), base_url=openai_server.url)
    assert problem.message.endswith(": 404 page not found (an OpenAI-compatible base URL usually ends in /v1)")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_malformed_json_from_the_server_is_a_clear_error(openai_server: FakeServer, stream: bool) -> None:
    if stream:
        openai_server.queue(Stream(["data: {not json"]))
    else:
        openai_server.queue(Reply(body=b"<html>Bad Gateway</html>"))
    problem = failure(OpenAIProvider(config(openai_server)), stream=stream)
    assert "is not valid JSON" in problem.message or "is not JSON" in problem.message
    assert problem.message.startswith("openai/test-model: ")


def test_a_reply_with_an_error_body_and_status_200_is_an_error(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(json={"error": {"message": "upstream provider failed", "code": 502}}))
    assert failure(OpenAIProvider(config(openai_server))).message.endswith("upstream provider failed")


def test_openais_own_api_gets_max_completion_tokens() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200, json=openai_reply("ok"))

    provider = OpenAIProvider(Config(dotenv={"OPENAI_API_KEY": KEY}), transport=httpx.MockTransport(handler))
    ask(provider, max_tokens=10)
    ((url, body),) = seen
    assert url == "https://api.openai.com/v1/chat/completions"
    assert body["max_completion_tokens"] == 10 and "max_tokens" not in body


def test_the_alias_base_url_wins_over_the_environment_which_wins_over_the_toml(
    openai_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    provider = OpenAIProvider(
        Config(providers={"openai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-from-toml"}})
    )
    ask(provider)
    assert openai_server.requests[-1].headers["authorization"] == "Bearer sk-from-the-environment"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    ask(provider, base_url=openai_server.url + "/v1/")
    assert len(openai_server.requests) == 2


def test_a_stream_nobody_asked_for_is_read_whole(openai_server: FakeServer) -> None:
    openai_server.queue(openai_stream(["un", "asked"]))
    reply, chunks = ask(OpenAIProvider(config(openai_server)))
    assert (reply.text, chunks, reply.input_tokens) == ("unasked", [], 100)
