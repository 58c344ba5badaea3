"""Both HTTP providers against servers that break the protocol: cut streams, odd shapes, stalling bodies."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from provider_servers import FakeServer, Reply, Stream, anthropic_reply, openai_reply, sse

from llmflow.config import Config
from llmflow.errors import ProviderError
from llmflow.providers import ChatRequest, ChatResponse
from llmflow.providers.anthropic import AnthropicProvider
from llmflow.providers.http import MAX_REPLY_BYTES, HttpProvider
from llmflow.providers.openai import OpenAIProvider
from llmflow.providers.sse import sse_lines


def openai(server: FakeServer) -> OpenAIProvider:
    return OpenAIProvider(Config(providers={"openai": {"base_url": server.url + "/v1"}}))


def anthropic(server: FakeServer) -> AnthropicProvider:
    return AnthropicProvider(Config(providers={"anthropic": {"base_url": server.url, "api_key": "sk-ant-test-key"}}))


def ask(provider: HttpProvider, stream: bool = False, timeout: float | None = None) -> ChatResponse:
    request = ChatRequest(model="m", messages=({"role": "user", "content": "hi"},), timeout=timeout)

    async def go() -> ChatResponse:
        try:
            return await provider.complete(request, (lambda text: None) if stream else None)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def failure(provider: HttpProvider, stream: bool = False, timeout: float | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        ask(provider, stream, timeout)
    return caught.value


def openai_chunk(text: str) -> str:
    return "data: " + json.dumps({"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([openai_chunk("Hello"), openai_chunk(" wor")], id="no-done-no-finish-reason"),
        pytest.param([], id="empty"),
    ],
)
def test_an_openai_stream_cut_before_its_end_is_a_retryable_error_not_a_short_reply(
    openai_server: FakeServer, events: list[str]
) -> None:
    openai_server.queue(Stream(events))
    problem = failure(openai(openai_server), stream=True)
    assert "ended before the reply was complete" in problem.message and problem.retryable


def test_an_anthropic_stream_cut_before_message_stop_is_a_retryable_error(anthropic_server: FakeServer) -> None:
    start = {"type": "message_start", "message": {"model": "c", "usage": {"input_tokens": 5}}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
    anthropic_server.queue(Stream([sse("message_start", start), sse("content_block_delta", delta)]))
    problem = failure(anthropic(anthropic_server), stream=True)
    assert "ended before the reply was complete" in problem.message and problem.retryable


def test_an_openai_stream_with_a_finish_reason_but_no_done_is_complete(openai_server: FakeServer) -> None:
    finish = "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    openai_server.queue(Stream([openai_chunk("all"), finish]))
    assert ask(openai(openai_server), stream=True).text == "all"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param({"prompt_tokens": "12", "completion_tokens": "many"}, (12, 0), id="strings"),
        pytest.param({"prompt_tokens": 1e400, "completion_tokens": -4}, (0, 0), id="infinite-and-negative"),
        pytest.param({"prompt_tokens": 7.0, "completion_tokens": True}, (7, 0), id="float-and-bool"),
        pytest.param("lots", (0, 0), id="not-an-object"),
        pytest.param({"prompt_tokens": 10**400, "completion_tokens": 1e300}, (0, 0), id="absurdly-large"),
        pytest.param({"prompt_tokens": 2**53, "completion_tokens": 2**53 + 1}, (2**53, 0), id="the-largest-count"),
    ],
)
def test_odd_usage_numbers_count_what_they_can_and_keep_the_reply(
    openai_server: FakeServer, usage: Any, expected: tuple[int, int]
) -> None:
    openai_server.queue(Reply(json={**openai_reply("hi"), "usage": usage}))
    reply = ask(openai(openai_server))
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("hi", *expected)


def test_a_token_count_too_long_for_python_to_read_keeps_the_reply(openai_server: FakeServer) -> None:
    body = json.dumps(openai_reply("hi")).replace('"prompt_tokens": 100', '"prompt_tokens": 1' + "0" * 5000)
    openai_server.queue(Reply(body=body.encode()))
    reply = ask(openai(openai_server))
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("hi", 0, 50)


def test_odd_anthropic_usage_keeps_the_reply(anthropic_server: FakeServer) -> None:
    anthropic_server.queue(Reply(json={**anthropic_reply("hi"), "usage": "x"}))
    reply = ask(anthropic(anthropic_server))
    assert (reply.text, reply.input_tokens, reply.output_tokens) == ("hi", 0, 0)


@pytest.mark.parametrize(
    ("which", "stream", "response"),
    [
        pytest.param("openai", False, Reply(json={"choices": [{"message": "hi"}]}), id="openai-message-string"),
        pytest.param(
            "anthropic",
            True,
            Stream([sse("message_start", {"type": "message_start", "message": "oops"})]),
            id="anthropic-message-start-string",
        ),
        pytest.param(
            "anthropic",
            True,
            Stream([sse("content_block_delta", {"type": "content_block_delta", "delta": "x"})]),
            id="anthropic-delta-string",
        ),
        pytest.param(
            "openai",
            True,
            Stream(["data: " + json.dumps({"choices": {"0": {"delta": {"content": "hi"}}}}), "data: [DONE]"]),
            id="openai-stream-choices-mapping",
        ),
        pytest.param(
            "openai",
            True,
            Stream(["data: " + json.dumps({"choices": [{"delta": "hi", "finish_reason": "stop"}]}), "data: [DONE]"]),
            id="openai-stream-delta-string",
        ),
    ],
)
def test_a_reply_of_the_wrong_shape_is_a_clear_error(
    openai_server: FakeServer, anthropic_server: FakeServer, which: str, stream: bool, response: Reply | Stream
) -> None:
    server = openai_server if which == "openai" else anthropic_server
    server.queue(response)
    provider = openai(server) if which == "openai" else anthropic(server)
    problem = failure(provider, stream=stream)
    assert "is not in the expected format: {" in problem.message
    assert problem.message.startswith(f"{which}/m: the reply from {server.url}")


@pytest.mark.parametrize(
    ("stream", "content_type"),
    [(False, "application/json"), (True, "text/event-stream")],
    ids=["whole", "streamed"],
)
def test_a_body_that_cannot_be_decompressed_is_a_clear_error_not_retried(
    openai_server: FakeServer, stream: bool, content_type: str
) -> None:
    reply = Reply(body=b"not gzip at all", headers={"content-encoding": "gzip"}, content_type=content_type)
    openai_server.queue(reply)
    problem = failure(openai(openai_server), stream=stream)
    assert problem.message == (
        f"openai/m: the reply from {openai_server.url}/v1/chat/completions cannot be decoded: its gzip encoding is"
        " corrupt (Error -3 while decompressing data: incorrect header check)"
    )
    assert not problem.retryable


def test_an_error_reply_whose_body_cannot_be_decompressed_keeps_its_status(openai_server: FakeServer) -> None:
    # A 503 is worth retrying whatever its body holds; the body's encoding must not hide the status.
    openai_server.queue(Reply(status=503, body=b"not gzip at all", headers={"content-encoding": "gzip"}))
    problem = failure(openai(openai_server))
    assert problem.message == f"openai/m: server error (HTTP 503 from {openai_server.url}/v1/chat/completions)"
    assert problem.retryable and problem.status == 503


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_keep_alive_comments_alone_do_not_outlast_the_timeout(openai_server: FakeServer, stream: bool) -> None:
    # Without a deadline of its own, each comment resets httpx's read timeout and the call runs for as long
    # as the server keeps talking; then the stream ends without a final event.
    openai_server.queue(Stream([": keep-alive"] * 40, delay=0.1))
    problem = failure(openai(openai_server), stream=stream, timeout=0.5)
    assert problem.message == f"openai/m: no reply from {openai_server.url}/v1/chat/completions within 0.5s"
    assert problem.retryable


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "1e999"])
def test_a_garbage_retry_after_falls_back_to_backoff(openai_server: FakeServer, value: str) -> None:
    openai_server.queue(Reply(status=503, json={"error": "busy"}, headers={"retry-after": value}))
    problem = failure(openai(openai_server))
    assert problem.retryable and problem.retry_after is None


@pytest.mark.parametrize(("headers", "expected"), [({"retry-after": "2.5"}, 2.5), ({"retry-after-ms": "250"}, 0.25)])
def test_a_retry_after_in_seconds_or_milliseconds_is_kept(
    openai_server: FakeServer, headers: dict[str, str], expected: float
) -> None:
    openai_server.queue(Reply(status=429, json={"error": "slow down"}, headers=headers))
    assert failure(openai(openai_server)).retry_after == expected


def test_a_retry_after_date_in_the_minus_0000_zone_is_read_as_utc(openai_server: FakeServer) -> None:
    # RFC 5322's "-0000" (no zone information) gives a naive datetime, which cannot be compared with an
    # aware "now": the 503 failed the step with a TypeError instead of being retried.
    later = format_datetime(datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=30))
    assert later.endswith("-0000")
    openai_server.queue(Reply(status=503, json={"error": "busy"}, headers={"retry-after": later}))
    problem = failure(openai(openai_server))
    assert problem.retryable and 25 <= (problem.retry_after or 0) <= 30


def test_a_stream_chunk_with_a_null_error_field_is_not_an_error(openai_server: FakeServer) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}], "error": None}
    openai_server.queue(Stream(["data: " + json.dumps(chunk), "data: [DONE]"]))
    assert ask(openai(openai_server), stream=True).text == "hi"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"], ids=["line-separator", "paragraph", "nel"])
def test_a_unicode_line_separator_inside_a_streamed_string_stays_in_its_event(
    openai_server: FakeServer, separator: str
) -> None:
    # JSON may hold these unescaped; an SSE line ends only at CR or LF. Split like str.splitlines, the
    # event was cut in two and failed the call as "not JSON".
    chunk = {"choices": [{"index": 0, "delta": {"content": f"one{separator}two"}, "finish_reason": "stop"}]}
    openai_server.queue(Stream(["data: " + json.dumps(chunk, ensure_ascii=False), "data: [DONE]"]))
    assert ask(openai(openai_server), stream=True).text == f"one{separator}two"


def test_a_stream_cut_inside_its_last_event_is_an_early_end_not_a_broken_server(openai_server: FakeServer) -> None:
    openai_server.queue(Stream([openai_chunk("Hel") + "\n\n" + 'data: {"choices": [{"delta": {"con'], separator=""))
    problem = failure(openai(openai_server), stream=True)
    assert "ended before the reply was complete" in problem.message and problem.retryable


def test_a_stream_event_that_is_not_json_in_the_middle_is_still_an_error(openai_server: FakeServer) -> None:
    openai_server.queue(Stream([openai_chunk("Hel"), "data: {not json", "data: [DONE]"]))
    problem = failure(openai(openai_server), stream=True)
    assert "holds an event that is not JSON: '{not json'" in problem.message and not problem.retryable


def gzipped(prefix: bytes, filler: bytes, size: int) -> bytes:
    """``prefix`` then ``filler`` repeated up to ``size`` bytes, gzip-compressed (a few kB on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(prefix)]
    block = filler * (2**20 // len(filler))
    parts += [packer.compress(block) for _ in range(size // len(block) + 1)]
    return b"".join(parts) + packer.flush()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_reply_that_inflates_past_the_size_limit_is_refused(openai_server: FakeServer, stream: bool) -> None:
    size = MAX_REPLY_BYTES + 2**20
    if stream:  # one endless event line: nothing in it ends a line or an event
        body, content_type = gzipped(b'data: {"choices": [{"delta": {"content": "', b"x", size), "text/event-stream"
    else:
        body, content_type = gzipped(b'{"choices": [{"message": {"content": "', b"x", size), "application/json"
    headers = {"content-encoding": "gzip"}
    openai_server.queue(Reply(body=body, headers=headers, content_type=content_type))
    problem = failure(openai(openai_server), stream=stream)
    url = f"{openai_server.url}/v1/chat/completions"
    assert problem.message == f"openai/m: the reply from {url} is larger than {MAX_REPLY_BYTES // 2**20} MiB"


def lines_of(*chunks: bytes) -> list[str]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[str]:
        return [line async for line in sse_lines(source())]

    return asyncio.run(collect())


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"data: caf\xc3\xa9 \xe2\x82\xac\r\n\r\nnext\n"], id="whole"),
        pytest.param(
            [b"data: caf\xc3", b"\xa9 \xe2", b"\x82\xac\r", b"\n\r", b"\nnext\n"], id="split-in-chars-and-crlf"
        ),
        pytest.param([bytes([byte]) for byte in b"data: caf\xc3\xa9 \xe2\x82\xac\r\n\r\nnext\n"], id="byte-by-byte"),
    ],
)
def test_sse_lines_come_out_whole_however_the_bytes_are_cut(chunks: list[bytes]) -> None:
    assert lines_of(*chunks) == ["data: café €", "", "next"]


def test_sse_lines_end_at_cr_lf_or_crlf_and_the_last_may_have_no_break() -> None:
    assert lines_of(b"a\rb\nc\r\nd\r", "\re\u2028f\n\ng".encode()) == ["a", "b", "c", "d", "", "e\u2028f", "", "g"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_null_anthropic_text_block_is_no_text_not_the_word_none(anthropic_server: FakeServer, stream: bool) -> None:
    if stream:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": None}}
        stop = {"type": "message_stop"}
        anthropic_server.queue(Stream([sse("content_block_delta", delta), sse("message_stop", stop)]))
    else:
        reply = anthropic_reply("")
        reply["content"] = [{"type": "text", "text": None}, {"type": "text", "text": "hi"}]
        anthropic_server.queue(Reply(json=reply))
    assert ask(anthropic(anthropic_server), stream=stream).text == ("" if stream else "hi")


def test_an_openai_reply_with_content_parts_is_their_text(openai_server: FakeServer) -> None:
    reply = openai_reply("")
    parts = [
        {"type": "text", "text": "Hello, "},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "you"},
    ]
    reply["choices"][0]["message"]["content"] = parts
    openai_server.queue(Reply(json=reply))
    assert ask(openai(openai_server)).text == "Hello, you"


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        pytest.param("http://127.0.0.1:114340/v1", "Port out of range 0-65535", id="port-out-of-range"),
        pytest.param("localhost:11434/v1", "it must start with http:// or https://", id="no-scheme"),
    ],
)
def test_a_base_url_that_cannot_be_requested_is_one_clear_line_and_not_retried(base_url: str, problem: str) -> None:
    # A port out of range came out of httpx as "ExceptionGroup: unhandled errors in a TaskGroup"; a URL
    # without a scheme was a lost connection, retried with backoff.
    provider = OpenAIProvider(Config(providers={"openai": {"base_url": base_url}}))
    failed = failure(provider)
    assert failed.message == f"openai/m: the base URL {base_url!r} is not a valid URL: {problem}"
    assert not failed.retryable


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"\xef\xbb\xbfdata: x\n"], id="whole"),
        pytest.param([b"\xef", b"\xbb", b"\xbfdata: x\n"], id="split"),
    ],
)
def test_sse_lines_ignore_one_leading_byte_order_mark(chunks: list[bytes]) -> None:
    # The event-stream format says so; the mark made the first line "\ufeffdata: x", no data line at all.
    assert lines_of(*chunks) == ["data: x"]
    assert lines_of(b"\xef\xbb\xbf") == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_reply_that_starts_with_a_byte_order_mark_is_read(openai_server: FakeServer, stream: bool) -> None:
    if stream:
        chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
        openai_server.queue(Stream(["\ufeffdata: " + json.dumps(chunk), "data: [DONE]"]))
    else:
        openai_server.queue(Reply(body="\ufeff".encode() + json.dumps(openai_reply("hi")).encode()))
    assert ask(openai(openai_server), stream=stream).text == "hi"


def test_a_configured_header_value_that_is_not_ascii_is_one_clear_line(openai_server: FakeServer) -> None:
    settings = {"base_url": openai_server.url + "/v1", "headers": {"X-Title": "Rapports d'été"}}
    problem = failure(OpenAIProvider(Config(providers={"openai": settings})))
    assert problem.message == "openai/m: header 'X-Title' holds 'é'; an HTTP header value can only be ASCII"
    assert openai_server.requests == []


def test_a_stream_that_stalls_after_its_finish_reason_keeps_the_whole_reply(openai_server: FakeServer) -> None:
    # The reply ended with its finish reason; the server then sends only comments (no usage chunk, no
    # [DONE]) until the per-event timeout. Retrying would pay for the same reply twice.
    finish = "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    openai_server.queue(Stream([openai_chunk("all"), finish] + [": keep-alive"] * 12, delay=0.25))
    reply = ask(openai(openai_server), stream=True, timeout=1)
    assert (reply.text, reply.finish_reason) == ("all", "stop")


@pytest.fixture
def trickling_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server that answers the way ``request.param`` says, a line (or a byte) every 0.2 s for 10 s:
    ``headers`` (the header lines themselves), ``error-body`` (a 503's body), ``json-body`` (a plain JSON
    reply to a streaming request)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            head = {
                "headers": b"HTTP/1.1 200 OK\r\n",
                "error-body": b"HTTP/1.1 503 Busy\r\ncontent-length: 1000\r\n\r\n",
                "json-body": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
            }[request.param]
            try:
                connection.sendall(head)
                for number in range(50):
                    time.sleep(0.2)
                    connection.sendall(b"x-pad-%d: y\r\n" % number if request.param == "headers" else b" ")
            except OSError:
                pass  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(timeout=15)


@pytest.mark.parametrize("trickling_server", ["headers", "error-body", "json-body"], indirect=True)
def test_a_streaming_request_answered_a_line_at_a_time_still_times_out(trickling_server: str) -> None:
    # Only the events of a stream were bounded one by one; before them, httpx's timeout is per network read,
    # which a server sending a header line (or a byte) every 0.2 s never trips.
    provider = OpenAIProvider(Config(providers={"openai": {"base_url": trickling_server + "/v1"}}))
    problem = failure(provider, stream=True, timeout=1)
    assert problem.message == f"openai/m: no reply from {trickling_server}/v1/chat/completions within 1s"
    assert problem.retryable


def test_a_password_in_the_base_url_is_masked_in_errors(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(status=500, body=b"boom", content_type="text/plain"))
    base = openai_server.url.replace("http://", "http://bob:hunter2@") + "/v1"
    problem = failure(OpenAIProvider(Config(providers={"openai": {"base_url": base}})))
    masked = openai_server.url.replace("http://", "http://bob:***@")
    assert problem.message == f"openai/m: server error (HTTP 500 from {masked}/v1/chat/completions): boom"


@pytest.mark.parametrize(
    ("status", "kind", "expected", "retryable"),
    [
        pytest.param(200, "server_error", "the server reported an error: upstream overloaded", True, id="200-busy"),
        pytest.param(
            200, "invalid_request_error", "the server reported an error: upstream overloaded", False, id="200-refused"
        ),
        pytest.param(400, "invalid_request_error", "the server refused the request (HTTP 400 from", False, id="400"),
        pytest.param(429, "rate_limit_error", "rate limited (HTTP 429 from", True, id="429"),
    ],
)
def test_a_plain_json_error_sent_as_an_event_stream_reports_the_servers_message(
    openai_server: FakeServer, status: int, kind: str, expected: str, retryable: bool
) -> None:
    # Some proxies answer a streaming request with `text/event-stream` but a plain JSON error body, without
    # `data:` lines: read as events it holds none, and only "the stream ended early" was reported.
    body = json.dumps({"error": {"message": "upstream overloaded", "type": kind}}).encode()
    openai_server.queue(Reply(status=status, body=body, content_type="text/event-stream"))
    problem = failure(openai(openai_server), stream=True)
    assert problem.message.startswith(f"openai/m: {expected}")
    assert problem.message.endswith("upstream overloaded")
    assert problem.retryable is retryable


def test_an_anthropic_error_body_sent_as_an_event_stream_is_retried_like_the_same_error_event(
    anthropic_server: FakeServer,
) -> None:
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, indent=2)
    anthropic_server.queue(Reply(body=body.encode(), content_type="text/event-stream"))
    problem = failure(anthropic(anthropic_server), stream=True)
    assert problem.message == "anthropic/m: the server reported an error: Overloaded"
    assert problem.retryable


def test_a_stream_of_comments_alone_still_ends_early_not_as_a_server_error(openai_server: FakeServer) -> None:
    openai_server.queue(Reply(body=b": keep-alive\n\n: keep-alive\n\n", content_type="text/event-stream"))
    problem = failure(openai(openai_server), stream=True)
    assert "ended before the reply was complete" in problem.message and problem.retryable
