"""Event emission cost with sinks attached: the run's file sink, ``--events jsonl`` to /dev/null, and a webhook.

Run: ``python benchmarks/bench_events.py [--events N] [--repeat N]``. Every ``EventBus.emit`` is timed on its
own (``perf_counter_ns`` around the call), so the p99 shows the stalls a sink could cause: a lock, a full
queue, waiting for the interpreter lock while a sink's thread encodes or sends. The webhook posts to an HTTP
server in a separate process on 127.0.0.1 (in this process it would compete for the interpreter lock with the
emitter and be measured as the sinks' cost).

Two emission patterns:

* **back to back**: events emitted in a tight loop, the worst case for the sinks' threads, which work while
  the emitter emits;
* **paced**: one event every ~50 µs of busy work, like a run of fast steps.

The webhook is measured receiving every event (``event_types=("*",)``), far more than its default
``run.*``/``step.failed``. Target (DESIGN.md §9): p99 < 1 ms per emit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_P99_US = 1000.0
SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
DATA = {"id": "summarise", "kind": "llm", "duration": 0.012345, "preview": "The quick brown fox " * 4}


def quantile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(label: str, samples_ns: list[float], *, webhook: Any = None) -> None:
    median, worst = statistics.median(samples_ns) / 1e3, quantile(samples_ns, 0.99) / 1e3
    rare, most = quantile(samples_ns, 0.999) / 1e3, max(samples_ns) / 1e3
    verdict = "ok" if worst < TARGET_P99_US else "OVER"
    print(
        f"  {label:38s} median {median:6.2f} us  p99 {worst:7.2f} us  p99.9 {rare:8.1f} us  max {most:8.1f} us"
        f"  target p99 < {TARGET_P99_US:g} us  {verdict}"
    )
    if webhook is not None:
        print(f"  {'':38s} webhook delivered {webhook.delivered}, undelivered {webhook.undelivered}")


def busy(microseconds: float) -> None:
    end = time.perf_counter_ns() + microseconds * 1000
    while time.perf_counter_ns() < end:
        pass


def measure(folder: Path, url: str | None, events: int, paced: bool) -> tuple[list[float], Any]:
    """Per-emit nanoseconds for one bus with the file, stream and (when ``url``) webhook sinks."""
    from llmflow.engine.events import EventBus
    from llmflow.observability.webhook import WebhookSink
    from llmflow.sinks import FileEventSink, StreamEventSink

    bus = EventBus("20261126-114807-k3f9")
    path = folder / "events.jsonl"
    bus.add(FileEventSink(path))
    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed below, after the sink)
    bus.add(StreamEventSink(devnull))
    webhook = None
    if url is not None:
        webhook = WebhookSink(url, event_types=("*",), capacity=1_000_000, close_timeout=30)
        bus.add(webhook)
    samples: list[float] = []
    clock = time.perf_counter_ns
    emit = bus.emit
    for index in range(events):
        start = clock()
        emit("step.completed", f"step{index}", DATA, 1)
        samples.append(clock() - start)
        if paced:
            busy(50)
    bus.close()
    devnull.close()
    path.unlink()
    return samples, webhook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per case, pooled (default 3)")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/hook"
        with tempfile.TemporaryDirectory(prefix="llmflow-bench-") as name:
            folder = Path(name)
            measure(folder, url, 2000, paced=False)  # warm up imports, the client and the server
            print(f"EventBus.emit of a step.completed event, each call timed ({args.events} x {args.repeat}):")
            for paced in (False, True):
                pattern = "paced 50 us" if paced else "back to back"
                for sinks, target in (("file + stream", None), ("file + stream + webhook", url)):
                    pooled: list[float] = []
                    webhook = None
                    for _ in range(max(1, args.repeat)):
                        samples, webhook = measure(folder, target, args.events, paced)
                        pooled += samples
                    report(f"{pattern}, {sinks}", pooled, webhook=webhook)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
