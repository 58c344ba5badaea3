"""Model providers: the chat request/response port, the registry, and the built-in providers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ChunkListener = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One model call, provider-neutral."""

    model: str  # the model name without the provider prefix
    messages: tuple[Mapping[str, str], ...]
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""


@dataclass(slots=True)
class ChatResponse:
    """A model's reply with its token usage."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None


class Provider(Protocol):
    """A model API (OpenAI-compatible, Anthropic, mock …)."""

    name: str

    async def complete(self, request: ChatRequest, on_chunk: ChunkListener | None = None) -> ChatResponse:
        """Send one chat request; call ``on_chunk`` with text as it streams when given."""


class ProviderRegistry:
    """Providers by name; built-ins and plugins register the same way. Created per run, so state
    such as a mock's reply counters or a provider's rate limiter is shared by every step of the run."""

    def __init__(self, factories: Mapping[str, Callable[[], Provider]] | None = None) -> None:
        self._factories: dict[str, Callable[[], Provider]] = dict(factories or {})
        self._instances: dict[str, Provider] = {}

    def register(self, name: str, factory: Callable[[], Provider]) -> None:
        """Add or replace the factory for provider ``name``."""
        self._factories[name] = factory
        self._instances.pop(name, None)

    def names(self) -> list[str]:
        """Every registered provider name."""
        return sorted(self._factories)

    def get(self, name: str) -> Provider:
        """The provider instance for ``name`` (created on first use); ``KeyError`` when unknown."""
        if name not in self._instances:
            self._instances[name] = self._factories[name]()
        return self._instances[name]


def builtin_providers() -> dict[str, Callable[[], Provider]]:
    """The providers that ship with llmflow."""
    from llmflow.providers.mock import MockProvider

    return {"mock": MockProvider}
