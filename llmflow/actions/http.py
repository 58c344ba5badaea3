"""The ``http`` action: one HTTP request; the output is the parsed JSON or text of the reply."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from llmflow.actions.json_text import load_json
from llmflow.durations import parse_duration
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError, ProviderError

_DEFAULT_TIMEOUT = 30.0
_MAX_BYTES = 10 * 1024 * 1024
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_BODY_TAIL = 300
#: The step's own headers that still go along when a redirect leads to another origin; any other (an
#: ``Authorization``, an ``X-Api-Key``, a cookie, a token under a name of its own) is for the first one only.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "content-type", "idempotency-key", "user-agent"})


def _expected(expect: Any) -> set[int] | None:
    if expect is None:
        return None
    values = expect if isinstance(expect, list) else [expect]
    return {int(value) for value in values}


def _origin(url: Any) -> tuple[str, str, int | None]:
    """Scheme, host and port of an ``httpx.URL`` (the default port spelled out), as browsers compare them."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _redirect_guard(headers: dict[str, str]) -> Any:
    """An httpx request hook: on a redirect to another origin (host, port or scheme, so also from https to
    http), drop the step's own headers that may carry credentials. httpx itself drops only
    ``Authorization`` and cookies."""
    private = {name.lower() for name in headers} - _CROSS_ORIGIN_HEADERS
    first: list[tuple[str, str, int | None]] = []  # the origin of the request the step asked for

    async def guard(request: Any) -> None:
        origin = _origin(request.url)
        if not first:
            first.append(origin)
        elif origin != first[0]:
            for name in private:
                request.headers.pop(name, None)

    return guard


def _encoding(charset: str | None) -> str:
    """The codec for a reply's ``charset`` (UTF-8 without one, or for one Python does not know; ``_text``
    also falls back to UTF-8 for a codec that does not turn bytes into text)."""
    if charset:
        import codecs

        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _text(body: bytes, encoding: str) -> str:
    """The reply as text in ``encoding``, or in UTF-8 when the server named a codec that is no text encoding
    (``zlib``, ``rot13``, ``base64`` …) or cannot decode with replacement characters (``idna``)."""
    try:
        return body.decode(encoding, "replace")
    except (LookupError, UnicodeError, ValueError):
        return body.decode("utf-8", "replace")


def _decode(body: bytes, content_type: str, how: str, step_id: str, encoding: str) -> Any:
    text = _text(body, encoding).removeprefix("\ufeff")  # a byte order mark is no part of the text
    wants_json = how == "json" or (how == "auto" and "json" in content_type.lower())
    if not wants_json:
        return text
    if not text.strip() and how == "auto":
        return None
    try:
        return load_json(text)
    except json.JSONDecodeError as error:
        raise ActionError(
            f"step '{step_id}': the reply is not valid JSON ({error.msg} at line {error.lineno})"
        ) from None


async def send_request(ctx: ActionContext) -> ActionResult:
    """Send the request; a status outside ``expect`` (default: 2xx) fails the step with the server's words."""
    import httpx

    from llmflow.providers.http import content_encoding, retry_after, shown_url, url_problem

    config = ctx.config
    node_id = ctx.node.id
    url = str(config.get("url", ""))
    if not url.lower().startswith(("http://", "https://")):
        raise ActionError(f"step '{node_id}': url {url!r} must start with http:// or https://", path=ctx.path)
    problem = url_problem(url)
    if problem:
        raise ActionError(f"step '{node_id}': url {shown_url(url)!r} is not a valid URL: {problem}", path=ctx.path)
    shown = shown_url(url)  # the URL in messages
    method = str(config.get("method", "GET")).upper()
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    for name, value in headers.items():
        if not value.isascii():
            odd = next(char for char in value if not char.isascii())
            raise ActionError(
                f"step '{node_id}': header {name!r} holds {odd!r}; an HTTP header value can only be ASCII",
                path=ctx.path,
            )
    if method not in _SAFE_METHODS and not any(k.lower() == "idempotency-key" for k in headers):
        headers["Idempotency-Key"] = ctx.idempotency_key
    timeout = parse_duration(config["timeout"]) if config.get("timeout") is not None else _DEFAULT_TIMEOUT
    request: dict[str, Any] = {"headers": headers, "params": config.get("params") or None}
    if "json" in config:
        request["json"] = config["json"]
    elif config.get("body") is not None:
        body = config["body"]
        request["content"] = body if isinstance(body, str) else json.dumps(body)

    allowed = _expected(config.get("expect"))

    def refused(status: int) -> bool:
        return (allowed is not None and status not in allowed) or (allowed is None and not 200 <= status < 300)

    async def fetch() -> tuple[httpx.Response, bytes]:
        async with (
            httpx.AsyncClient(
                timeout=timeout, follow_redirects=True, event_hooks={"request": [_redirect_guard(headers)]}
            ) as client,
            client.stream(method, url, **request) as response,
        ):
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > _MAX_BYTES:
                        limit = f"{_MAX_BYTES // 2**20} MiB"
                        raise ActionError(
                            f"step '{node_id}': {method} {shown}: the reply is larger than {limit}", path=ctx.path
                        )
                    chunks.append(chunk)
            except httpx.DecodingError as error:
                if refused(response.status_code):
                    return response, b""  # the status says what went wrong (and whether to retry)
                # The server's bytes do not match its Content-Encoding: the same request gets the same bytes,
                # so this is a reply that cannot be read (like one that is not valid JSON), not a lost connection.
                raise ActionError(
                    f"step '{node_id}': {method} {shown}: the reply's {content_encoding(response)} encoding is"
                    f" corrupt ({error})",
                    path=ctx.path,
                ) from None
        return response, b"".join(chunks)

    try:
        # httpx's timeout is per network read; a server trickling its reply would never trip it.
        response, body = await asyncio.wait_for(fetch(), timeout)
    except (httpx.TimeoutException, asyncio.TimeoutError):
        raise ProviderError(
            f"step '{node_id}': {method} {shown} timed out after {timeout:g}s", retryable=True
        ) from None
    except httpx.HTTPError as error:
        reason = str(error) or f"the connection was lost ({type(error).__name__})"  # a reset has no text
        message = f"step '{node_id}': {method} {shown} failed: {reason}"
        raise ProviderError(message, retryable=True) from None
    status = response.status_code
    encoding = _encoding(response.charset_encoding)
    if refused(status):
        tail = " ".join(_text(body, encoding)[: _BODY_TAIL * 4].split())[:_BODY_TAIL]  # one line
        message = f"step '{node_id}': {method} {shown} answered {status}" + (f": {tail}" if tail else "")
        retryable = status == 429 or status >= 500
        raise ProviderError(
            message,
            path=ctx.path,
            status=status,
            retryable=retryable,
            retry_after=retry_after(response.headers) if retryable else None,
        )
    how = str(config.get("parse", "auto"))
    output = _decode(body, response.headers.get("content-type", ""), how, node_id, encoding)
    extra = {"status_code": status, "headers": {k.lower(): v for k, v in response.headers.items()}}
    return ActionResult(output=output, extra=extra)
