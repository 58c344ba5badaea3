"""Short text forms of step outputs for events and listings, at a cost bounded by the preview's length."""

from __future__ import annotations

from itertools import islice
from typing import Any

from llmflow.engine.outcome import json_encoder

#: Characters of an output shown in ``step.completed`` events (what the console and ``logs`` show).
_PREVIEW = 80
#: Items of a list or mapping that are sure to fill a preview (each takes at least 3 characters).
_PREVIEW_ITEMS = 32
_PREVIEW_JSON = json_encoder(", ", ": ", default=str)


def preview(value: Any) -> str:
    """A short text form of a value for events and listings (text as ``stringify`` shows it, cut short).

    The cost is bounded by the preview's length, not the value's: long strings and big lists or mappings
    are clipped before they are encoded.
    """
    kind = type(value)
    if kind is str:
        text: str = value
    elif value is None:
        return ""
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int or kind is float:
        text = str(value)
    elif kind is list or kind is dict:
        text = _PREVIEW_JSON(_clipped(value, 0))
    else:
        from llmflow.expressions import stringify

        text = stringify(value)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _clipped(value: Any, depth: int) -> Any:
    """``value`` with everything past what a preview can show cut off (the JSON's start stays the same)."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= _PREVIEW else value[: _PREVIEW + 1]
    if kind is list:
        return [_clipped(item, depth + 1) for item in value[:_PREVIEW_ITEMS]] if depth < _PREVIEW else []
    if kind is dict:
        if depth >= _PREVIEW:
            return {}
        return {
            key[: _PREVIEW + 1] if type(key) is str else key: _clipped(item, depth + 1)
            for key, item in islice(value.items(), _PREVIEW_ITEMS)
        }
    return value
