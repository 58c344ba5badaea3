"""The http action against a real server on 127.0.0.1: methods, bodies, expect, errors and retries."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote

import pytest

import llmflow
from llmflow.runtime import RunOptions, RunSummary, start_run


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []
    flaky_left = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        type(self).seen.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        )
        if self.path.startswith("/json"):
            self._reply(200, json.dumps({"ok": True, "echo": body}).encode())
        elif self.path.startswith("/text"):
            self._reply(200, b"plain words", "text/plain")
        elif self.path.startswith("/latin1"):  # a reply in the charset its Content-Type names
            self._reply(200, "café crème, 5 €".encode("cp1252"), "text/plain; charset=windows-1252")
        elif self.path.startswith("/utf16json"):
            self._reply(200, '{"name": "Zoë"}'.encode("utf-16"), "application/json; charset=utf-16")
        elif self.path.startswith("/oddcharset"):  # a charset nobody knows: read as UTF-8
            self._reply(200, "naïve".encode(), "text/plain; charset=x-no-such-thing")
        elif self.path.startswith("/gone-latin1"):
            self._reply(410, "déjà supprimé".encode("latin-1"), "text/plain; charset=ISO-8859-1")
        elif self.path.startswith("/redirect?to="):  # to the address after "to=", as it is
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/busy?retry-after="):  # rate limited, with the Retry-After given
            self.send_response(429)
            self.send_header("Retry-After", unquote(self.path.removeprefix("/busy?retry-after=")))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/charset?name="):  # JSON, said to be in the charset given
            charset = self.path.removeprefix("/charset?name=")
            self._reply(200, '{"name": "Zoë"}'.encode(), f"application/json; charset={charset}")
        elif self.path.startswith("/bom"):  # JSON after a UTF-8 byte order mark, as some servers send it
            self._reply(200, b"\xef\xbb\xbf" + b'{"ok": true}')
        elif self.path.startswith("/gzip-bomb"):  # 11 MiB of zeros in about 11 kB of gzip
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            body = b"".join(packer.compress(bytes(2**20)) for _ in range(11)) + packer.flush()
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/bad-gzip"):  # said to be gzip, but is not (with the status after "?")
            self.send_response(int(self.path.partition("?")[2] or 200))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.write(b"not gzip at all")
        elif self.path.startswith("/html-error"):  # a proxy's error page, over several lines
            self._reply(502, b"<html>\r\n<body>\n\t<h1>Bad gateway</h1>\n</body>\n</html>\n", "text/html")
        elif self.path.startswith("/missing"):
            self._reply(404, b'{"error": "no such thing"}')
        elif self.path.startswith("/flaky"):
            if type(self).flaky_left > 0:
                type(self).flaky_left -= 1
                self._reply(503, b"try later", "text/plain")
            else:
                self._reply(200, b'{"finally": true}')
        elif self.path.startswith("/trickle"):  # a byte at a time: each read is quick, the whole is not
            body = json.dumps({"slow": "x" * 30}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                time.sleep(0.05)
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif self.path.startswith("/reset"):  # half a body, then a TCP reset
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"half":')
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self._reply(500, b"boom", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def _serve() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    yield from _serve()


@pytest.fixture
def other_server() -> Iterator[str]:
    """A second server (another port: another origin), answering as the first does."""
    yield from _serve()


def run(tmp_path: Path, text: str, **inputs: Any) -> RunSummary:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    options = RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False)
    return asyncio.run(start_run(llmflow.load(path), inputs, options))


WORKFLOW = """
version: 1
name: http-test
inputs:
  base: {type: string}
steps:
  - id: get
    http: "{{ inputs.base }}/json?q=1"
  - id: post
    http:
      url: "{{ inputs.base }}/json"
      method: POST
      json: {name: "{{ steps.get.output.ok }}"}
  - id: text
    http: {url: "{{ inputs.base }}/text", params: {a: "b c"}}
  - id: missing-ok
    http: {url: "{{ inputs.base }}/missing", expect: [404]}
outputs:
  ok: "{{ steps.get.output.ok }}"
  echo: "{{ steps.post.output.echo }}"
  status: "{{ steps.post.status_code }}"
  text: "{{ steps.text.output }}"
  missing: "{{ steps['missing-ok'].output.error }}"
"""


def test_requests_and_replies(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, WORKFLOW, base=server)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {
        "ok": True,
        "echo": '{"name":true}',
        "status": 200,
        "text": "plain words",
        "missing": "no such thing",
    }
    post = _Handler.seen[1]
    assert post["method"] == "POST"
    assert post["headers"]["idempotency-key"] == f"{summary.run_id}:post"
    assert "idempotency-key" not in _Handler.seen[0]["headers"]
    assert _Handler.seen[2]["path"] == "/text?a=b+c"


def test_replies_are_read_in_the_charset_their_content_type_names(tmp_path: Path, server: str) -> None:
    workflow = """
version: 1
name: charsets
inputs:
  base: {type: string}
steps:
  - {id: latin, http: "{{ inputs.base }}/latin1"}
  - {id: wide, http: "{{ inputs.base }}/utf16json"}
  - {id: odd, http: "{{ inputs.base }}/oddcharset"}
outputs:
  latin: "{{ steps.latin.output }}"
  name: "{{ steps.wide.output.name }}"
  odd: "{{ steps.odd.output }}"
"""
    summary = run(tmp_path, workflow, base=server)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"latin": "café crème, 5 €", "name": "Zoë", "odd": "naïve"}
    failed = run(
        tmp_path,
        'version: 1\nname: gone\nsteps:\n  - {id: g, http: "{{ inputs.base }}/gone-latin1"}\n'
        "inputs: {base: {type: string}}\n",
        base=server,
    )
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.endswith("answered 410: déjà supprimé")


def test_unexpected_status_fails_with_the_servers_words(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, 'version: 1\nname: t\nsteps:\n  - id: get\n    http: "' + server + '/missing"\n')
    assert summary.status == "failed"
    assert summary.error is not None
    assert "answered 404" in summary.error and "no such thing" in summary.error


def test_retry_on_provider_errors(tmp_path: Path, server: str) -> None:
    _Handler.flaky_left = 2
    text = (
        "version: 1\nname: t\nsteps:\n  - id: get\n"
        f'    http: "{server}/flaky"\n    retry: {{attempts: 3, delay: 10ms, on: [provider]}}\n'
        'outputs:\n  attempts: "{{ steps.get.attempts }}"\n'
    )
    summary = run(tmp_path, text)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"attempts": 3}


def test_refuses_other_schemes(tmp_path: Path) -> None:
    summary = run(tmp_path, 'version: 1\nname: t\nsteps:\n  - http: "file:///etc/passwd"\n')
    assert summary.status == "failed"
    assert summary.error is not None and "must start with http://" in summary.error


def test_a_reply_trickled_a_byte_at_a_time_still_times_out(tmp_path: Path, server: str) -> None:
    text = f'version: 1\nname: t\nsteps:\n  - id: get\n    http: {{url: "{server}/trickle", timeout: 0.5s}}\n'
    summary = run(tmp_path, text)
    assert summary.status == "failed"
    assert summary.error == f"step 'get': GET {server}/trickle timed out after 0.5s"


def test_a_connection_reset_mid_body_says_so(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, f'version: 1\nname: t\nsteps:\n  - id: get\n    http: "{server}/reset"\n')
    assert summary.status == "failed"
    prefix = f"step 'get': GET {server}/reset failed: "
    assert summary.error is not None and summary.error.startswith(prefix)
    assert summary.error.removeprefix(prefix)  # httpx's ReadError after a reset has no text of its own


def test_a_corrupt_gzip_body_fails_at_once_naming_the_request(tmp_path: Path, server: str) -> None:
    # The same request gets the same bytes: retrying it as if the connection were lost only repeats it.
    text = (
        "version: 1\nname: t\nsteps:\n  - id: get\n"
        f'    http: "{server}/bad-gzip"\n    retry: {{attempts: 3, delay: 10ms, on: [provider]}}\n'
    )
    summary = run(tmp_path, text)
    assert summary.status == "failed"
    assert summary.error == (
        f"step 'get': GET {server}/bad-gzip: the reply's gzip encoding is corrupt"
        " (Error -3 while decompressing data: incorrect header check)"
    )
    assert [seen["path"] for seen in _Handler.seen] == ["/bad-gzip"]


def test_an_error_reply_whose_body_is_corrupt_gzip_still_reports_its_status(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, f'version: 1\nname: t\nsteps:\n  - id: get\n    http: "{server}/bad-gzip?503"\n')
    assert summary.status == "failed"
    assert summary.error == f"step 'get': GET {server}/bad-gzip?503 answered 503"


def test_an_error_page_over_several_lines_is_quoted_on_one_line(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, f'version: 1\nname: t\nsteps:\n  - id: get\n    http: "{server}/html-error"\n')
    assert summary.status == "failed"
    expected = f"step 'get': GET {server}/html-error answered 502: <html> <body> <h1>Bad gateway</h1> </body> </html>"
    assert summary.error == expected


CREDENTIALS = {"Authorization": "Bearer tok-1", "X-Api-Key": "key-2", "X-Session-Token": "tok-3", "Accept": "x/y"}


@pytest.mark.parametrize("same_origin", [True, False], ids=["same-origin", "other-port"])
def test_a_redirect_to_another_origin_does_not_carry_the_steps_credentials(
    tmp_path: Path, server: str, other_server: str, same_origin: bool
) -> None:
    target = (server if same_origin else other_server) + "/json"
    workflow = {
        "version": 1,
        "name": "t",
        "steps": [{"id": "get", "http": {"url": f"{server}/redirect?to={target}", "headers": CREDENTIALS}}],
    }
    summary = run(tmp_path, json.dumps(workflow))
    assert summary.status == "succeeded", summary.error
    first, landed = _Handler.seen
    assert landed["path"] == "/json"
    sent = {name: first["headers"].get(name.lower()) for name in CREDENTIALS}
    assert sent == CREDENTIALS
    carried = {name: landed["headers"].get(name.lower()) for name in CREDENTIALS}
    if same_origin:
        assert carried == CREDENTIALS
    else:  # httpx alone dropped only Authorization: the key and the token went to the other server
        assert carried == {"Authorization": None, "X-Api-Key": None, "X-Session-Token": None, "Accept": "x/y"}


@pytest.mark.parametrize(
    ("retry_after", "max_delay", "expected"),
    [
        pytest.param("1", 30, 1.0, id="seconds"),
        pytest.param("3600", 0.2, 0.2, id="capped-by-max-delay"),
        pytest.param("in-a-while", 30, 0.01, id="garbage-is-the-steps-own-delay"),
        pytest.param(
            format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True), 0.3, 0.3, id="date"
        ),
    ],
)
def test_a_retried_step_waits_as_long_as_the_servers_retry_after_asks(
    tmp_path: Path, server: str, retry_after: str, max_delay: float, expected: float
) -> None:
    retry = {"attempts": 2, "delay": "10ms", "max_delay": max_delay}
    url = f"{server}/busy?retry-after={quote(retry_after)}"
    workflow = {"version": 1, "name": "t", "steps": [{"id": "get", "http": url, "retry": retry}]}
    summary = run(tmp_path, json.dumps(workflow))
    assert summary.status == "failed"
    assert summary.error == f"step 'get': GET {url} answered 429"
    events = (tmp_path / "state" / "runs" / summary.run_id / "events.jsonl").read_text(encoding="utf-8")
    (retrying,) = [event for event in map(json.loads, events.splitlines()) if event["type"] == "step.retrying"]
    assert retrying["data"]["delay"] == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("http://127.0.0.1:99999/x", "Port out of range 0-65535", id="port-out-of-range"),
        pytest.param("http://[::1/x", "Invalid IPv6 URL", id="broken-ipv6"),
        pytest.param("https://", "it names no host", id="no-host"),
    ],
)
def test_a_url_that_cannot_be_requested_is_one_clear_line(tmp_path: Path, url: str, problem: str) -> None:
    # The port out of range came out of httpx as "ExceptionGroup: unhandled errors in a TaskGroup".
    workflow = {"version": 1, "name": "t", "steps": [{"id": "get", "http": url}]}
    summary = run(tmp_path, json.dumps(workflow))
    assert summary.status == "failed"
    assert summary.error == f"step 'get': url {url!r} is not a valid URL: {problem}"


def test_a_header_value_that_is_not_ascii_is_one_clear_line(tmp_path: Path, server: str) -> None:
    step = {"id": "get", "http": {"url": f"{server}/json", "headers": {"X-Name": "Zoë"}}}
    summary = run(tmp_path, json.dumps({"version": 1, "name": "t", "steps": [step]}))
    assert summary.status == "failed"
    assert summary.error == "step 'get': header 'X-Name' holds 'ë'; an HTTP header value can only be ASCII"
    assert _Handler.seen == []


@pytest.mark.parametrize("charset", ["zlib", "rot13", "base64", "idna", "undefined"])
def test_a_charset_that_is_no_text_encoding_is_read_as_utf8(tmp_path: Path, server: str, charset: str) -> None:
    # Python knows these names, but as codecs that do not turn bytes into text (or refuse to replace what
    # they cannot read): decoding with them failed the step with "LookupError: 'zlib' is not a text encoding".
    workflow = {
        "version": 1,
        "name": "t",
        "steps": [{"id": "get", "http": f"{server}/charset?name={charset}"}],
        "outputs": {"name": "{{ steps.get.output.name }}"},
    }
    summary = run(tmp_path, json.dumps(workflow))
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"name": "Zoë"}


def test_a_json_reply_after_a_byte_order_mark_is_read(tmp_path: Path, server: str) -> None:
    workflow = {
        "version": 1,
        "name": "t",
        "steps": [{"id": "get", "http": f"{server}/bom"}],
        "outputs": {"ok": "{{ steps.get.output.ok }}"},
    }
    summary = run(tmp_path, json.dumps(workflow))
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"ok": True}


def test_a_reply_that_inflates_past_the_limit_fails_the_step(tmp_path: Path, server: str) -> None:
    summary = run(tmp_path, f'version: 1\nname: t\nsteps:\n  - id: get\n    http: "{server}/gzip-bomb"\n')
    assert summary.status == "failed"
    assert summary.error == f"step 'get': GET {server}/gzip-bomb: the reply is larger than 10 MiB"


def test_a_password_in_the_url_is_masked_in_the_error_and_everything_stored(tmp_path: Path, server: str) -> None:
    url = server.replace("http://", "http://bob:hunter2@") + "/missing"
    summary = run(tmp_path, json.dumps({"version": 1, "name": "t", "steps": [{"id": "get", "http": url}]}))
    assert summary.status == "failed"
    masked = server.replace("http://", "http://bob:***@")
    assert summary.error == f'step \'get\': GET {masked}/missing answered 404: {{"error": "no such thing"}}'
    assert _Handler.seen[0]["headers"]["authorization"] == "Basic Ym9iOmh1bnRlcjI="  # it was sent, as Basic auth
    run_dir = tmp_path / "state" / "runs" / summary.run_id
    stored = [path for path in run_dir.rglob("*") if path.is_file() and "source" not in path.parts]
    assert stored and [path.name for path in stored if b"hunter2" in path.read_bytes()] == []
