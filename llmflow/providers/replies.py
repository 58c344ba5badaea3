"""What a server answered, read: JSON bodies (with absurd numbers tamed), the events of a stream, token
counts, and the server's own words when it reports an error."""

from __future__ import annotations

import json
import math
from typing import Any

from llmflow.errors import ProviderError

#: The most of a server's error message that is quoted.
_MESSAGE_LIMIT = 300
#: The largest token count believed (2**53, the largest whole number a JSON reader keeps exactly).
MAX_TOKENS = 2**53


def error_message(data: Any) -> str:
    """The server's own words from an error body (OpenAI, Anthropic, Ollama, FastAPI shapes, or text)."""
    message: Any = data
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("type") or error
        elif error:
            message = error
        else:
            message = data.get("message") or data.get("detail") or data
    if isinstance(message, list) and message:
        first = message[0]
        message = first.get("msg", first) if isinstance(first, dict) else first
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def reported_error(label: str, payload: dict[str, Any]) -> ProviderError:
    """An error inside a successful reply: an event in a stream (Anthropic ``overloaded_error``, an OpenAI
    ``error`` chunk) or a proxy's HTTP 200 with an ``error`` body."""
    error = payload.get("error")
    kind = str(error.get("type") or error.get("code") or "") if isinstance(error, dict) else ""
    retryable = kind in ("overloaded_error", "api_error", "rate_limit_error", "server_error")
    return ProviderError(f"{label}: the server reported an error: {error_message(payload)}", retryable=retryable)


def plain_error(label: str, raw: bytes) -> ProviderError | None:
    """The error in ``raw`` when it is a whole JSON error body (``{"error": …}``), read as the same body
    would be in a reply that is not a stream; else ``None``."""
    try:
        data = loads(raw.decode("utf-8-sig", errors="replace"))
    except ValueError:
        return None
    if isinstance(data, dict) and (data.get("error") or data.get("type") == "error"):
        return reported_error(label, data)
    return None


def unexpected_reply(label: str, url: str, data: Any) -> ProviderError:
    """A reply that is JSON but not in the provider's format (a string where an object belongs …)."""
    sample = " ".join(json.dumps(data, ensure_ascii=False)[:120].split())
    return ProviderError(f"{label}: the reply from {url} is not in the expected format: {sample}")


def token_count(value: Any) -> int:
    """A token count from a server's ``usage``: a whole number of at least 0; anything else (a string, a
    negative, non-finite or absurdly large number, a list) counts 0 rather than failing a reply that has its
    text. Beyond ``MAX_TOKENS`` a number is no count: its cost would overflow to ``inf``, which no journal
    can hold."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    if isinstance(value, int):
        return value if 0 < value <= MAX_TOKENS else 0
    if isinstance(value, float) and math.isfinite(value) and 0 < value <= MAX_TOKENS:
        return int(value)
    return 0


def _whole_number(digits: str) -> int | float:
    """A JSON integer; one too long for Python to read (over 4300 digits) is infinite, so that a reply with
    such a token count keeps its text instead of being refused as not JSON."""
    return int(digits) if len(digits) <= 4000 else (-math.inf if digits.startswith("-") else math.inf)


def loads(text: str) -> Any:
    """``json.loads``, with an integer too long for Python to read taken as infinite (``_whole_number``)."""
    return json.loads(text, parse_int=_whole_number)


def json_or_text(raw: bytes) -> Any:
    """An error body as JSON when it is JSON, else as text (for ``error_message``)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return loads(text)
    except ValueError:
        return text


def decode_reply(label: str, raw: bytes, url: str, status: int) -> Any:
    """A whole reply's JSON; a reply that is not JSON is a ``ProviderError`` quoting its start."""
    try:
        return loads(raw.decode("utf-8-sig", errors="replace"))  # a byte order mark may be ignored (RFC 8259)
    except ValueError:
        sample = " ".join(raw[:80].decode("utf-8", errors="replace").split())
        raise ProviderError(
            f"{label}: the reply from {url} (HTTP {status}) is not valid JSON: {sample!r}", status=status
        ) from None


def event_payloads(label: str, data: str, url: str) -> list[Any]:
    """The JSON value(s) of one event; a server that forgets the blank line between events sends several."""
    try:
        return [loads(data)]
    except ValueError:
        pass
    try:
        return [loads(line) for line in data.split("\n") if line.strip() and line.strip() != "[DONE]"]
    except ValueError:
        sample = " ".join(data[:80].split())
        raise ProviderError(f"{label}: the stream from {url} holds an event that is not JSON: {sample!r}") from None
