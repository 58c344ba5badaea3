"""The ``anthropic`` provider: the Anthropic Messages API (``/v1/messages``), whole or streamed."""

from __future__ import annotations

from typing import Any

from llmflow.errors import ProviderError
from llmflow.providers import KEY_VARIABLES, ChatRequest, ChatResponse, ChunkListener
from llmflow.providers.http import Endpoint, HttpProvider, StreamReader
from llmflow.providers.replies import token_count

#: The API version every request names (the header is required).
API_VERSION = "2023-06-01"
#: ``max_tokens`` is required by the Messages API; this is sent when the step gives none.
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(HttpProvider):
    """Messages API over HTTP: ``x-api-key`` and ``anthropic-version`` headers, the system prompt as a
    top-level field. The base URL has no ``/v1`` (``https://api.anthropic.com``)."""

    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    key_variable = KEY_VARIABLES["anthropic"]
    base_variable = "ANTHROPIC_BASE_URL"
    path = "/v1/messages"

    def normalize_base(self, base_url: str) -> str:
        return base_url.rstrip("/").removesuffix("/v1")  # the path adds /v1; tolerate it in the base too

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if endpoint.api_key:
            headers["x-api-key"] = endpoint.api_key
        return headers

    def body(self, request: ChatRequest, endpoint: Endpoint, stream: bool) -> dict[str, Any]:
        system = [str(m.get("content", "")) for m in request.messages if m.get("role") == "system"]
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": m.get("role", "user"), "content": m.get("content", "")}
                for m in request.messages
                if m.get("role") != "system"
            ],
        }
        if system:
            body["system"] = "\n\n".join(system)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        return body

    def reply(self, request: ChatRequest, data: Any) -> ChatResponse:
        content = data.get("content") if isinstance(data, dict) else None
        if not isinstance(content, list):
            raise ProviderError(
                f"anthropic/{request.model}: the reply has no content; is this an Anthropic-compatible server?"
            )
        text = "".join(_text(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text")
        usage = _usage(data)
        return ChatResponse(
            text=text,
            input_tokens=_input_tokens(usage),
            output_tokens=token_count(usage.get("output_tokens")),
            model=str(data.get("model") or ""),
            finish_reason=data.get("stop_reason"),
        )

    def reader(self, on_chunk: ChunkListener) -> StreamReader:
        return _EventReader(on_chunk)


class _EventReader(StreamReader):
    """``message_start`` (input usage), ``content_block_delta`` (``text_delta``), ``message_delta`` (stop
    reason and cumulative output usage), ``message_stop``; ``ping`` and other events are ignored."""

    def feed(self, event: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type", event)
        if kind == "message_start":
            message = data.get("message") or {}
            self.model = str(message.get("model") or "")
            usage = _usage(message)
            self.input_tokens = _input_tokens(usage)
            self.output_tokens = token_count(usage.get("output_tokens"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.text(_text(delta.get("text")))
        elif kind == "message_delta":
            usage = _usage(data)
            self.output_tokens = token_count(usage.get("output_tokens")) or self.output_tokens
            if usage.get("input_tokens") is not None:  # newer servers repeat the cumulative input count
                self.input_tokens = max(self.input_tokens, _input_tokens(usage))
            self.finish_reason = (data.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif kind == "message_stop":
            self.done = True


def _text(value: Any) -> str:
    """A text block's text: ``null`` (or a missing one) is no text, not the word "None"."""
    return "" if value is None else str(value)


def _usage(data: dict[str, Any]) -> dict[str, Any]:
    usage = data.get("usage")
    return usage if isinstance(usage, dict) else {}


def _input_tokens(usage: dict[str, Any]) -> int:
    """Every prompt token: uncached, written to the cache and read from it (all billed, at different rates)."""
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(token_count(usage.get(key)) for key in keys)
