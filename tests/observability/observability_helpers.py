"""Helpers for observability tests: a project to run workflows in, and a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import llmflow
from llmflow.runtime import RunOptions, RunSummary, start_run


class Project:
    """A folder with workflow files, and the run store beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def workflow(self, body: str, name: str = "flow.yaml") -> Path:
        """Write a workflow: ``version`` and ``name`` go in front of ``body``."""
        path = self.root / name
        path.write_text("version: 1\nname: observed\n" + textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
        return path

    def run(self, path: Path, sinks: list[Any] | None = None, **inputs: Any) -> RunSummary:
        """Run a workflow file to its end state with ``sinks`` attached."""
        options = RunOptions(state_dir=str(self.state), sinks=list(sinks or []), handle_signals=False)
        return asyncio.run(start_run(llmflow.load(path), inputs, options))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's ``events.jsonl``."""
        text = (self.state / "runs" / run_id / "events.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line]


class Endpoint:
    """What a test HTTP endpoint received: every request's parsed JSON body, in arrival order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bodies: list[Any] = []
        self.requests = 0
        self.lock = threading.Lock()

    def events(self) -> list[dict[str, Any]]:
        """Every event of every accepted batch."""
        with self.lock:
            return [event for body in self.bodies for event in body["events"]]


@contextmanager
def endpoint(*, status: int = 200, delay: float = 0.0) -> Iterator[Endpoint]:
    """A real HTTP server on 127.0.0.1 that answers every POST with ``status`` after ``delay`` seconds."""
    record: list[Endpoint] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            target = record[0]
            with target.lock:
                target.requests += 1
            if delay:
                time.sleep(delay)
            if status < 300:
                with target.lock:
                    target.bodies.append(json.loads(body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False  # a handler still sleeping must not hold the test up
    record.append(Endpoint(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record[0]
    finally:
        server.shutdown()
        server.server_close()


def set_steps(count: int) -> str:
    """A workflow body of ``count`` cheap ``set`` steps."""
    return "steps:\n" + "".join(f"  - {{id: s{index}, set: {{x: {index}}}}}\n" for index in range(count))
