"""The offline ``mock`` provider: echoes prompts or replays scripted replies, deterministically."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse, ChunkListener


def count_tokens(text: str) -> int:
    """A rough, deterministic token count: about four characters per token."""
    return max(1, (len(text) + 3) // 4) if text else 0


class MockProvider:
    """``mock/echo`` returns the last user message; any mock model with ``options.replies`` (a list) or
    ``options.replies_file`` (a JSON or YAML list, relative to the workflow) returns them in order (the last
    one repeats). Options: ``latency`` (seconds), ``chunk_size`` (streamed pieces), ``fail_times`` (the first
    N attempts raise a retryable 503), ``rate_limit_times`` (the first N attempts raise a retryable 429),
    ``retry_after`` (seconds those failures ask to wait), ``error`` (always raise this message)."""

    name = "mock"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self._files: dict[Path, list[Any]] = {}

    async def complete(self, request: ChatRequest, on_chunk: ChunkListener | None = None) -> ChatResponse:
        options: dict[str, Any] = dict(request.options)
        label = f"mock/{request.model}"
        index = int(options.get("call_index", self.calls.get(request.model, 0)))
        self.calls[request.model] = index + 1
        # Failures count attempts, not calls: a retried call is the same call (same reply index).
        attempt = self.attempts.get(request.model, 0)
        self.attempts[request.model] = attempt + 1
        if options.get("error"):
            raise ProviderError(f"{label}: {options['error']}", status=400)
        wait = float(options["retry_after"]) if options.get("retry_after") is not None else None
        limited = int(options.get("rate_limit_times", 0))
        if attempt < limited:
            message = f"{label}: rate limited (HTTP 429, simulated, attempt {attempt + 1})"
            raise ProviderError(message, status=429, retryable=True, retry_after=wait)
        if attempt < limited + int(options.get("fail_times", 0)):
            message = f"{label}: simulated outage (HTTP 503, attempt {attempt + 1})"
            raise ProviderError(message, status=503, retryable=True, retry_after=wait)
        latency = float(options.get("latency", 0))
        if latency:
            await asyncio.sleep(latency)
        text = self._reply(request, options, index)
        if on_chunk is not None:
            size = max(1, int(options.get("chunk_size", 8)))
            for start in range(0, len(text), size):
                on_chunk(text[start : start + size])
                await asyncio.sleep(0)
        prompt = "".join(str(message.get("content", "")) for message in request.messages)
        return ChatResponse(
            text=text,
            input_tokens=count_tokens(prompt),
            output_tokens=count_tokens(text),
            model=label,
            finish_reason="stop",
        )

    def _reply(self, request: ChatRequest, options: dict[str, Any], index: int) -> str:
        replies = options.get("replies")
        if options.get("replies_file"):
            replies = self._replies_file(request, str(options["replies_file"]))
        if isinstance(replies, list) and replies:
            reply = replies[min(index, len(replies) - 1)]
            return reply if isinstance(reply, str) else json.dumps(reply, default=str)
        for message in reversed(request.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    def _replies_file(self, request: ChatRequest, name: str) -> list[Any]:
        """The list in a JSON or YAML file (read once per run)."""
        path = Path(name).expanduser()
        if not path.is_absolute() and request.base_dir:
            path = Path(request.base_dir) / path
        if path not in self._files:
            label = f"mock/{request.model}"
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as error:
                raise ProviderError(f"{label}: cannot read replies_file {path}: {error.strerror}") from None
            try:
                if path.suffix == ".json":
                    replies = json.loads(text)
                else:
                    from ruamel.yaml import YAML

                    replies = YAML(typ="safe", pure=True).load(text)
            except Exception as error:  # any parse error is reported the same way
                reason = " ".join(str(error).split())[:200]
                raise ProviderError(f"{label}: replies_file {path} does not parse: {reason}") from None
            if not isinstance(replies, list) or not replies:
                raise ProviderError(f"{label}: replies_file {path} must hold a non-empty list of replies")
            self._files[path] = replies
        return self._files[path]
