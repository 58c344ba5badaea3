"""Real HTTP servers on 127.0.0.1 that speak the OpenAI and Anthropic wire formats, with scripted replies."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One whole HTTP reply."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Stream:
    """A streamed reply: each item is one SSE block (``data: ...`` lines, the blank line added here)."""

    events: list[str]
    delay: float = 0.0  # before each event
    status: int = 200
    content_type: str = "text/event-stream"
    separator: str = "\n\n"


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


Response = Reply | Stream
Script = Response | Callable[[Received], Response]


class FakeServer:
    """A threaded HTTP server: answers from a queue of scripted responses, else with ``default``."""

    def __init__(self, default: Callable[[Received], Response]) -> None:
        self.default = default
        self.script: deque[Script] = deque()
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *responses: Script) -> None:
        """Answer the next requests with these, in order."""
        self.script.extend(responses)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, received: Received) -> Response:
        with self._lock:
            self.requests.append(received)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            scripted = self.script.popleft() if self.script else None
        if scripted is None:
            return self.default(received)
        return scripted(received) if callable(scripted) else scripted

    def done(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {name.lower(): value for name, value in self.headers.items()}
            received = Received("POST", self.path, headers, body, time.monotonic())
            try:
                response = server.answer(received)
                if response.delay and isinstance(response, Reply):
                    time.sleep(response.delay)
                if isinstance(response, Stream):
                    self._stream(response)
                else:
                    self._whole(response)
            except OSError:
                pass  # the client gave up (a timeout test)
            finally:
                server.done()

        def _whole(self, reply: Reply) -> None:
            payload = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, stream: Stream) -> None:
            self.send_response(stream.status)
            self.send_header("content-type", stream.content_type)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in stream.events:
                if stream.delay:
                    time.sleep(stream.delay)
                data = (event + stream.separator).encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return Handler


# -- the OpenAI wire format ----------------------------------------------------------------------------
def last_user_text(received: Received) -> str:
    messages = received.body.get("messages") or [] if isinstance(received.body, dict) else []
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def openai_reply(text: str, usage: tuple[int, int] = (100, 50), model: str = "test-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def openai_stream(pieces: list[str], usage: tuple[int, int] | None = (100, 50), variant: str = "openai") -> Stream:
    """Chunks as OpenAI sends them; ``variant`` changes the usage chunk: ``openai`` (``choices: []``),
    ``litellm`` (one empty delta), ``vllm`` (``choices: null``), ``early`` (usage on the finish chunk)."""

    def chunk(choices: Any, usage_value: Any = None) -> str:
        body = {"id": "c1", "object": "chat.completion.chunk", "model": "test-model", "choices": choices}
        body["usage"] = usage_value
        return "data: " + json.dumps(body)

    usage_body = {"prompt_tokens": usage[0], "completion_tokens": usage[1]} if usage else None
    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]) for piece in pieces]
    finish = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    events.append(chunk(finish, usage_body if variant == "early" else None))
    if usage_body and variant == "openai":
        events.append(chunk([], usage_body))
    elif usage_body and variant == "litellm":
        events.append(chunk([{"index": 0, "delta": {}}], usage_body))
    elif usage_body and variant == "vllm":
        events.append(chunk(None, usage_body))
    events.append("data: [DONE]")
    return Stream(events)


def openai_default(received: Received) -> Response:
    """An echoing model: ``echo: <last user message>``, streamed when asked."""
    text = "echo: " + last_user_text(received)
    if isinstance(received.body, dict) and received.body.get("stream"):
        return openai_stream([text[: len(text) // 2], text[len(text) // 2 :]])
    return Reply(json=openai_reply(text))


# -- the Anthropic wire format -------------------------------------------------------------------------
def anthropic_reply(text: str, usage: tuple[int, int] = (100, 50), model: str = "claude-test") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}"


def anthropic_stream(pieces: list[str], usage: tuple[int, int] = (100, 50)) -> Stream:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": usage[0], "output_tokens": 1},
        },
    }
    events = [
        sse("message_start", start),
        sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}),
        sse("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(sse("content_block_delta", delta))
    events += [
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": usage[1]}},
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
    return Stream(events)


def anthropic_default(received: Received) -> Response:
    text = "echo: " + last_user_text(received)
    if isinstance(received.body, dict) and received.body.get("stream"):
        return anthropic_stream([text[: len(text) // 2], text[len(text) // 2 :]])
    return Reply(json=anthropic_reply(text))
