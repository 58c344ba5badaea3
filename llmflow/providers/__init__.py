"""Model providers: the chat request/response port, the registry, and the built-in providers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from llmflow.config import Config
from llmflow.plugins.manager import builtin_hook
from llmflow.records import FrozenRecord, Record

if TYPE_CHECKING:
    from llmflow.providers.resilience import Limiter
    from llmflow.redaction import Redactor

ChunkListener = Callable[[str], None]


class ChatRequest(FrozenRecord):
    """One model call, provider-neutral."""

    __slots__ = (
        "api_key_env",
        "base_dir",
        "base_url",
        "idempotency_key",
        "json_schema",
        "max_tokens",
        "messages",
        "model",
        "options",
        "stop",
        "temperature",
        "timeout",
    )
    model: str  # the model name without the provider prefix
    messages: tuple[Mapping[str, str], ...]
    temperature: float | None
    max_tokens: int | None
    stop: tuple[str, ...]
    json_schema: Mapping[str, Any] | None
    timeout: float | None
    options: Mapping[str, Any]
    idempotency_key: str
    base_url: str | None  # a model alias's own endpoint (``models: {x: {base_url: ...}}``)
    api_key_env: str | None  # a model alias's own key variable
    base_dir: str  # the folder relative paths in ``options`` start from (the workflow's)

    def __init__(
        self,
        model: str,
        messages: tuple[Mapping[str, str], ...],
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        json_schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str = "",
        base_url: str | None = None,
        api_key_env: str | None = None,
        base_dir: str = "",
    ) -> None:
        self._set(
            model=model,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            json_schema=json_schema,
            timeout=timeout,
            options=options if options is not None else {},
            idempotency_key=idempotency_key,
            base_url=base_url,
            api_key_env=api_key_env,
            base_dir=base_dir,
        )


class ChatResponse(Record):
    """A model's reply with its token usage."""

    __slots__ = ("finish_reason", "input_tokens", "model", "output_tokens", "text")

    def __init__(
        self,
        text: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str = "",
        finish_reason: str | None = None,
    ) -> None:
        self.text = text
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.model = model
        self.finish_reason = finish_reason


class Provider(Protocol):
    """A model API (OpenAI-compatible, Anthropic, mock …). It may also have ``async aclose()``, called when
    the run ends. Raise ``ProviderError`` with ``retryable=True`` (and ``retry_after``) for failures worth
    retrying: the caller retries them with backoff and keeps the run's rate limits."""

    name: str

    async def complete(self, request: ChatRequest, on_chunk: ChunkListener | None = None) -> ChatResponse:
        """Send one chat request; call ``on_chunk`` with text as it streams when given."""


class ProviderRegistry:
    """Providers by name; built-ins and plugins register the same way. Created per run, so state such as a
    mock's reply counters, HTTP connections and the request limiters is shared by every step of the run."""

    def __init__(
        self, factories: Mapping[str, Callable[[], Provider]] | None = None, config: Config | None = None
    ) -> None:
        self._factories: dict[str, Callable[[], Provider]] = dict(factories or {})
        self._instances: dict[str, Provider] = {}
        self._limiters: dict[tuple[Any, ...], Limiter] = {}
        self.config = config if config is not None else Config()
        self.redactor: Redactor | None = None  # set when the run has secrets: streamed text is masked too

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

    def limiter(self, key: tuple[Any, ...], max_concurrency: int | None, requests_per_minute: float | None) -> Limiter:
        """The run's limiter for one endpoint and its limits (created on first use, then shared)."""
        from llmflow.providers.resilience import Limiter

        full = (*key, max_concurrency, requests_per_minute)
        if full not in self._limiters:
            self._limiters[full] = Limiter(max_concurrency, requests_per_minute)
        return self._limiters[full]

    async def aclose(self) -> None:
        """Close what the providers hold open (HTTP connections)."""
        instances, self._instances = list(self._instances.values()), {}
        for provider in instances:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()


def builtin_providers(config: Config | None = None) -> dict[str, Callable[[], Provider]]:
    """The providers that ship with llmflow (imported when first used: the HTTP ones pull in httpx)."""
    settings = config if config is not None else Config()

    def mock() -> Provider:
        from llmflow.providers.mock import MockProvider

        return MockProvider()

    def openai() -> Provider:
        from llmflow.providers.openai import OpenAIProvider

        return OpenAIProvider(settings)

    def anthropic() -> Provider:
        from llmflow.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings)

    return {"mock": mock, "openai": openai, "anthropic": anthropic}


@builtin_hook  # before every other plugin, so that a plugin may replace a built-in provider
def register_providers(registry: ProviderRegistry) -> None:
    """Register the built-in providers (the HTTP ones are imported when first used)."""
    for name, factory in builtin_providers(registry.config).items():
        registry.register(name, factory)


#: The environment variable each built-in HTTP provider reads its key from.
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def key_values(config: Config, aliases: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """Every API key the built-in providers could send in this run: the standard variables, those named by
    ``[providers.*] api_key_env`` and by model aliases, and keys written in ``llmflow.toml``."""
    names = set(KEY_VARIABLES.values())
    found: list[str] = []
    for settings in config.providers.values():
        if settings.get("api_key_env"):
            names.add(str(settings["api_key_env"]))
        if settings.get("api_key"):
            found.append(str(settings["api_key"]))
    names.update(str(options["api_key_env"]) for options in aliases if options.get("api_key_env"))
    found.extend(value for name in sorted(names) if (value := config.env(name)))
    return found
