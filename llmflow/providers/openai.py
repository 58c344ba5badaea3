"""The ``openai`` provider: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Ollama, vLLM, …)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from llmflow.providers import KEY_VARIABLES, ChatRequest, ChatResponse, ChunkListener
from llmflow.providers.http import Endpoint, HttpProvider, StreamReader
from llmflow.providers.replies import token_count


class OpenAIProvider(HttpProvider):
    """Chat Completions over HTTP. The base URL includes ``/v1`` (``http://localhost:11434/v1`` for Ollama);
    the key goes in ``Authorization: Bearer`` and is optional for servers other than OpenAI's own."""

    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    key_variable = KEY_VARIABLES["openai"]
    base_variable = "OPENAI_BASE_URL"
    path = "/chat/completions"

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        return {"authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}

    def body(self, request: ChatRequest, endpoint: Endpoint, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in request.messages],
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            # OpenAI's own API has replaced max_tokens (refused by its reasoning models); other servers
            # (Ollama, llama.cpp, older vLLM) know only max_tokens.
            official = urlsplit(endpoint.base_url).hostname == "api.openai.com"
            body["max_completion_tokens" if official else "max_tokens"] = request.max_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def reply(self, request: ChatRequest, data: Any) -> ChatResponse:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _malformed(request, "no choices")
        message = choices[0].get("message") or {}
        usage = _usage(data.get("usage"))
        return ChatResponse(
            text=_content(message.get("content")),
            input_tokens=usage[0],
            output_tokens=usage[1],
            model=str(data.get("model") or ""),
            finish_reason=choices[0].get("finish_reason"),
        )

    def reader(self, on_chunk: ChunkListener) -> StreamReader:
        return _ChunkReader(on_chunk)

    def hint(self, status: int, endpoint: Endpoint) -> str:
        if status == 404 and not endpoint.base_url.endswith("/v1"):
            return "an OpenAI-compatible base URL usually ends in /v1"
        return ""


class _ChunkReader(StreamReader):
    """``chat.completion.chunk`` objects: text in ``choices[].delta.content``; usage on any chunk, usually a
    last one with ``choices: []`` (OpenAI, llama.cpp), ``choices: null`` (vLLM) or one empty ``delta``
    (LiteLLM)."""

    def feed(self, event: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        self.model = str(data.get("model") or self.model)
        if isinstance(data.get("usage"), dict):
            self.input_tokens, self.output_tokens = _usage(data["usage"])
        choices = data.get("choices") or []
        if not isinstance(choices, list):  # a mapping or a string: no chunk of this format
            raise TypeError("choices is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):  # its text would be lost without a word
                raise TypeError("delta is not an object")
            if isinstance(delta.get("content"), str):
                self.text(delta["content"])
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])


def _content(content: Any) -> str:
    """A message's text: a string, or a list of content parts (``{"type": "text", "text": ...}``) as some
    servers send, whose text parts are joined; ``null`` is no text."""
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return "" if content is None else str(content)


def _usage(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    return token_count(usage.get("prompt_tokens")), token_count(usage.get("completion_tokens"))


def _malformed(request: ChatRequest, what: str) -> Exception:
    from llmflow.errors import ProviderError

    return ProviderError(f"openai/{request.model}: the reply has {what}; is this an OpenAI-compatible server?")
