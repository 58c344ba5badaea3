"""Token prices: US dollars per million input and output tokens, by ``provider/model``."""

from __future__ import annotations

#: Input and output prices per million tokens; ``llmflow.toml`` can add or override entries.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1-nano": (0.10, 0.40),
    "openai/o4-mini": (1.10, 4.40),
    "anthropic/claude-sonnet-4-5": (3.00, 15.00),
    "anthropic/claude-opus-4-1": (15.00, 75.00),
    "anthropic/claude-haiku-4-5": (1.00, 5.00),
    "anthropic/claude-3-5-haiku-latest": (0.80, 4.00),
}
