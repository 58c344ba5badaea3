"""What the HTTP providers share: endpoint and key resolution, the client, reading replies and streams within
their limits, and one-line errors (``replies`` reads what the server said)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from llmflow import __version__
from llmflow.config import Config
from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse, ChunkListener
from llmflow.providers.replies import (
    decode_reply,
    error_message,
    event_payloads,
    json_or_text,
    plain_error,
    reported_error,
    unexpected_reply,
)
from llmflow.providers.resilience import POLICY_OPTIONS
from llmflow.providers.sse import sse_events, sse_lines

#: Options that configure the HTTP call rather than being sent in the request body.
CALL_OPTIONS = frozenset({*POLICY_OPTIONS, "headers", "timeout"})
_REASONS = {
    400: "the server refused the request",
    401: "authentication failed",
    403: "access denied",
    404: "not found (an unknown model, or a wrong base URL)",
    408: "the server timed out",
    413: "the request is too large",
    422: "the server refused the request",
    429: "rate limited",
}
#: The most a reply may hold, decompressed (a whole JSON reply, or all the events of a stream): a broken or
#: hostile server, or a small compressed body that inflates to gigabytes, must not exhaust memory.
MAX_REPLY_BYTES = 64 * 1024 * 1024
#: The most of an error reply that is read: only its first words are shown.
_ERROR_BYTES = 64 * 1024
_Item = TypeVar("_Item")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a request goes and with which key."""

    base_url: str
    api_key: str | None
    key_variable: str


class StreamReader:
    """Turns one provider's streamed events into text chunks and a final reply (one per request)."""

    def __init__(self, on_chunk: ChunkListener) -> None:
        self.on_chunk = on_chunk
        self.parts: list[str] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.model = ""
        self.finish_reason: str | None = None
        self.done = False

    def text(self, piece: str) -> None:
        """Pass on a piece of the reply."""
        if piece:
            self.parts.append(piece)
            self.on_chunk(piece)

    def feed(self, event: str, data: Any) -> None:
        """Take one parsed event (``event`` is the SSE ``event:`` name, ``message`` when there is none)."""
        raise NotImplementedError

    def response(self) -> ChatResponse:
        """The whole reply."""
        return ChatResponse(
            text="".join(self.parts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model=self.model,
            finish_reason=self.finish_reason,
        )


class HttpProvider:
    """A provider that speaks JSON over HTTP (subclasses say how to build requests and read replies)."""

    name = ""
    default_base_url = ""
    key_variable = ""
    base_variable = ""
    path = ""

    def __init__(self, config: Config | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config if config is not None else Config()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    # -- what subclasses provide ---------------------------------------------------------------------
    def normalize_base(self, base_url: str) -> str:
        """The base URL as the provider's paths expect it."""
        return base_url.rstrip("/")

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        """Authentication and version headers."""
        raise NotImplementedError

    def body(self, request: ChatRequest, endpoint: Endpoint, stream: bool) -> dict[str, Any]:
        """The JSON request body."""
        raise NotImplementedError

    def reply(self, request: ChatRequest, data: Any) -> ChatResponse:
        """A whole (non-streamed) reply."""
        raise NotImplementedError

    def reader(self, on_chunk: ChunkListener) -> StreamReader:
        """A reader for one streamed reply."""
        raise NotImplementedError

    def hint(self, status: int, endpoint: Endpoint) -> str:
        """Extra advice for an HTTP error, or ``""``."""
        return ""

    # -- the call ----------------------------------------------------------------------------------
    def endpoint(self, request: ChatRequest) -> Endpoint:
        """Base URL and key: the model alias's own, else the environment (or ``.env``), else ``llmflow.toml``,
        else the provider's defaults. ``ProviderError`` when a needed key is missing."""
        settings = self.config.provider(self.name)
        base = (
            request.base_url or self.config.env(self.base_variable) or settings.get("base_url") or self.default_base_url
        )
        base = self.normalize_base(str(base))
        problem = url_problem(base)
        if problem:
            raise ProviderError(
                f"{self.name}/{request.model}: the base URL {shown_url(base)!r} is not a valid URL: {problem}"
            )
        named = request.api_key_env or settings.get("api_key_env")
        variable = str(named or self.key_variable)
        key = self.config.env(variable) or (None if request.api_key_env else settings.get("api_key"))
        # A local server (Ollama, llama.cpp, vLLM …) needs no key; the provider's own API always does.
        if not key and (named or base == self.normalize_base(self.default_base_url)):
            raise ProviderError(
                f"{variable} is not set (needed for model {self.name}/{request.model}); "
                "set it in the environment or .env"
            )
        return Endpoint(base, str(key) if key else None, variable)

    async def complete(self, request: ChatRequest, on_chunk: ChunkListener | None = None) -> ChatResponse:
        """Send one request; stream when ``on_chunk`` is given."""
        endpoint = self.endpoint(request)
        url = endpoint.base_url + self.path
        headers = {"user-agent": f"llmflow/{__version__}", **self.headers(endpoint)}
        headers.update(self.config.provider(self.name).get("headers") or {})
        headers.update(request.options.get("headers") or {})
        for name, value in headers.items():
            if not str(value).isascii():  # httpx would fail with a bare UnicodeEncodeError
                odd = next(char for char in str(value) if not char.isascii())
                raise ProviderError(
                    f"{self.name}/{request.model}: header {name!r} holds {odd!r}; an HTTP header value can only be"
                    " ASCII"
                )
        body = self.body(request, endpoint, stream=on_chunk is not None)
        body.update({k: v for k, v in request.options.items() if k not in CALL_OPTIONS})
        body = {key: value for key, value in body.items() if value is not None}
        seconds = request.timeout or self.config.request_timeout
        timeout = httpx.Timeout(seconds)
        label = f"{self.name}/{request.model}"
        client = self._http()
        try:
            # httpx's read timeout is per network read: a server that trickles bytes or sends keep-alive
            # comments would never trip it. A streamed reply is bounded per event (in _read_stream), any
            # other request as a whole.
            sending = self._send(request, on_chunk, client, url, body, headers, timeout, endpoint)
            return await (sending if on_chunk is not None else asyncio.wait_for(sending, seconds))
        except (httpx.TimeoutException, asyncio.TimeoutError):
            url = shown_url(url)
            raise ProviderError(f"{label}: no reply from {url} within {seconds:g}s", retryable=True) from None
        except httpx.TransportError as error:
            url = shown_url(url)
            reason = str(error) or type(error).__name__
            what = "cannot connect to" if isinstance(error, httpx.ConnectError) else "the connection failed to"
            raise ProviderError(f"{label}: {what} {url}: {reason}", retryable=True) from None

    async def _send(
        self,
        request: ChatRequest,
        on_chunk: ChunkListener | None,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        timeout: httpx.Timeout,
        endpoint: Endpoint,
    ) -> ChatResponse:
        label = f"{self.name}/{request.model}"
        # Everything but the events of a stream (the headers, an error reply, a reply that is not a stream) is
        # bounded as a whole, also when streaming: a server may trickle its headers a line at a time.
        seconds = timeout.read
        deadline = asyncio.get_running_loop().time() + seconds if seconds is not None else None
        outgoing = client.build_request("POST", url, json=body, headers=headers, timeout=timeout)
        url = shown_url(url)  # from here on, only for messages
        response = await _before(deadline, client.send(outgoing, stream=True))
        try:
            if response.status_code >= 300:
                try:
                    raw = await _before(deadline, _head(response.aiter_bytes(), _ERROR_BYTES))
                except httpx.DecodingError:
                    raw = b""  # the status tells what went wrong (and whether to retry); the body adds nothing
                raise self._http_error(label, response, url, endpoint, raw)
            if "text/event-stream" in response.headers.get("content-type", ""):  # even when not asked for
                return await self._read_stream(label, response, url, self.reader(on_chunk or _ignore), seconds)
            raw = await _before(deadline, _whole(label, url, response.aiter_bytes()))
            data = decode_reply(label, raw, url, response.status_code)
            if isinstance(data, dict) and data.get("error"):
                raise reported_error(label, data)  # a proxy that reports a failure with HTTP 200
            try:
                reply = self.reply(request, data)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError):
                raise unexpected_reply(label, url, data) from None
            if on_chunk is not None and reply.text:
                on_chunk(reply.text)  # a server that ignored `stream`: the whole reply is one chunk
            return reply
        except httpx.DecodingError as error:
            # The bytes do not match the reply's Content-Encoding: asking again gets the same bytes.
            encoding = content_encoding(response)
            raise ProviderError(
                f"{label}: the reply from {url} cannot be decoded: its {encoding} encoding is corrupt ({error})"
            ) from None
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport)
        return self._client

    async def _read_stream(
        self,
        label: str,
        response: httpx.Response,
        url: str,
        reader: StreamReader,
        event_timeout: float | None = None,
    ) -> ChatResponse:
        try:
            finished = await self._read_events(label, response, url, reader, event_timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException, httpx.TransportError):
            if not (reader.finish_reason or reader.done):
                raise
            # The reply is whole: only what may follow its end (the usage chunk, [DONE]) never came, the
            # server stalling or dropping the connection instead. Trying again would pay for it twice.
            finished = True
        if not (finished or reader.done or reader.finish_reason):
            # The connection closed cleanly but early (a proxy's idle timeout, a crashed worker): the text
            # so far is a fragment, not the reply. Retried like a lost connection.
            raise ProviderError(
                f"{label}: the stream from {url} ended before the reply was complete (no final event)",
                retryable=True,
            )
        return reader.response()

    async def _read_events(
        self, label: str, response: httpx.Response, url: str, reader: StreamReader, event_timeout: float | None
    ) -> bool:
        """Feed the stream's events to ``reader``; true when it ended with ``[DONE]``."""
        head = _Head(_ERROR_BYTES)
        lines = sse_lines(head.keep(_limited(label, url, response.aiter_bytes())))
        seen = False
        async for event in _bounded(sse_events(lines), event_timeout):
            seen = True
            if event.data.strip() == "[DONE]":
                return True
            try:
                payloads = event_payloads(label, event.data, url)
            except ProviderError:
                if event.complete:
                    raise
                break  # the stream was cut inside its last event: an early end (see _read_stream)
            for payload in payloads:
                if isinstance(payload, dict) and (payload.get("error") or payload.get("type") == "error"):
                    raise reported_error(label, payload)
                try:
                    reader.feed(event.name, payload)
                except (AttributeError, TypeError, ValueError, KeyError, IndexError):
                    raise unexpected_reply(label, url, payload) from None
            if reader.done:
                break
        if not seen:
            # Some proxies answer a streaming request with a plain JSON error body under this content type:
            # it holds no event, and reporting only an early end would lose the server's own words.
            problem = plain_error(label, bytes(head.data))
            if problem is not None:
                raise problem
        return False

    def _http_error(
        self, label: str, response: httpx.Response, url: str, endpoint: Endpoint, raw: bytes
    ) -> ProviderError:
        status = response.status_code
        reason = _REASONS.get(status) or ("server error" if status >= 500 else "the request failed")
        if status < 400:
            reason = f"redirected to {response.headers.get('location', '?')}; give that address as the base URL"
        if status == 401:
            reason += f" (check {endpoint.key_variable})"
        message = error_message(json_or_text(raw))
        if endpoint.api_key:
            message = message.replace(endpoint.api_key, "***")  # some proxies echo the key back
        text = f"{label}: {reason} (HTTP {status} from {url})" + (f": {message}" if message else "")
        hint = self.hint(status, endpoint)
        retryable = status in (408, 409, 429) or status >= 500
        return ProviderError(
            text + (f" ({hint})" if hint else ""),
            status=status,
            retryable=retryable,
            retry_after=retry_after(response.headers) if retryable else None,
        )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asks to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)  # garbage such as "nan" or "-5" gives None: backoff, not an immediate retry
    if seconds is not None:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

    if moment.tzinfo is None:  # "-0000", RFC 5322's "no zone information": the date is UTC all the same
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _seconds(value: str | None) -> float | None:
    """A header's number when it is finite and at least 0, else ``None``."""
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def content_encoding(response: httpx.Response) -> str:
    """The ``Content-Encoding`` a reply names (``gzip``, ``br`` …), for a message about a body that does not
    decode."""
    return " ".join(response.headers.get("content-encoding", "").split()) or "content"


def url_problem(url: str) -> str:
    """Why ``url`` cannot be requested (a port out of range, a broken IPv6 address …), or ``""``. httpx
    reports some of these only from deep inside the connection, as ``ExceptionGroup: unhandled errors in a
    TaskGroup``."""
    if not url.lower().startswith(("http://", "https://")):
        return "it must start with http:// or https://"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as error:
        return str(error)
    return "" if parts.hostname else "it names no host"


def shown_url(url: str) -> str:
    """``url`` fit for a message: a password in it (``https://user:password@host``) becomes ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))


def _ignore(text: str) -> None:
    """A chunk listener for a stream nobody asked for."""


class _Head:
    """The first ``limit`` bytes of a body, kept as its chunks pass through ``keep``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    async def keep(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, unchanged."""
        async for chunk in chunks:
            if len(self.data) < self.limit:
                self.data += chunk[: self.limit - len(self.data)]
            yield chunk


async def _bounded(events: AsyncIterator[_Item], seconds: float | None) -> AsyncIterator[_Item]:
    """``events``, raising ``asyncio.TimeoutError`` when the next one takes longer than ``seconds``."""
    while True:
        try:
            item = await asyncio.wait_for(events.__anext__(), seconds)
        except StopAsyncIteration:
            return
        yield item


async def _limited(label: str, url: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks``, failing the call once they add up to more than ``MAX_REPLY_BYTES``."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise ProviderError(f"{label}: the reply from {url} is larger than {MAX_REPLY_BYTES // 2**20} MiB")
        yield chunk


async def _before(deadline: float | None, work: Awaitable[_Item]) -> _Item:
    """``work``, raising ``asyncio.TimeoutError`` when it is not done by ``deadline`` (loop time)."""
    if deadline is None:
        return await work
    return await asyncio.wait_for(work, max(0.0, deadline - asyncio.get_running_loop().time()))


async def _whole(label: str, url: str, chunks: AsyncIterator[bytes]) -> bytes:
    """All of ``chunks`` (at most ``MAX_REPLY_BYTES``)."""
    return b"".join([chunk async for chunk in _limited(label, url, chunks)])


async def _head(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of ``chunks`` (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]
