"""The offline ``mock`` provider: echoes prompts or replays scripted replies, deterministically."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse, ChunkListener


def count_tokens(text: str) -> int:
    """A rough, deterministic token count: about four characters per token."""
    return max(1, (len(text) + 3) // 4) if text else 0


class MockProvider:
    """``mock/echo`` returns the last user message; any mock model with ``options.replies`` returns them in
    order (the last one repeats). Options: ``latency`` (seconds), ``chunk_size`` (streamed pieces),
    ``fail_times`` (first N calls raise a retryable 503), ``error`` (always raise this message)."""

    name = "mock"

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def complete(self, request: ChatRequest, on_chunk: ChunkListener | None = None) -> ChatResponse:
        options: dict[str, Any] = dict(request.options)
        index = int(options.get("call_index", self.calls.get(request.model, 0)))
        self.calls[request.model] = index + 1
        if options.get("error"):
            raise ProviderError(f"mock/{request.model}: {options['error']}", status=400)
        if index < int(options.get("fail_times", 0)):
            raise ProviderError(
                f"mock/{request.model}: simulated outage (call {index + 1})", status=503, retryable=True
            )
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
            model=f"mock/{request.model}",
            finish_reason="stop",
        )

    @staticmethod
    def _reply(request: ChatRequest, options: dict[str, Any], index: int) -> str:
        replies = options.get("replies")
        if isinstance(replies, list) and replies:
            reply = replies[min(index, len(replies) - 1)]
            return reply if isinstance(reply, str) else json.dumps(reply)
        for message in reversed(request.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""
