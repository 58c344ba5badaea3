"""The threaded event sinks: events written in order as JSON lines, without blocking the emitter."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from llmflow.engine.events import EventBus
from llmflow.sinks import FileEventSink, StreamEventSink, ThreadedSink


def test_every_event_is_written_in_order_by_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    bus = EventBus("run-1")
    bus.add(FileEventSink(path))
    for index in range(5000):
        bus.emit("step.completed", f"s{index}", {"preview": "é" * (index % 7)}, 1)
    bus.close()
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [event["seq"] for event in events] == list(range(1, 5001))
    assert events[10]["data"] == {"preview": "ééé"} and events[10]["run_id"] == "run-1"
    assert path.read_text(encoding="utf-8").startswith('{"v":1,"seq":1,"ts":')


def test_events_reach_the_stream_soon_without_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileEventSink(path)
    sink.put({"seq": 1, "type": "run.started"})
    deadline = time.monotonic() + 10
    while not path.read_text():
        assert time.monotonic() < deadline, "the event was not written"
        time.sleep(0.005)
    assert json.loads(path.read_text()) == {"seq": 1, "type": "run.started"}
    sink.put({"seq": 2, "type": "run.completed"})
    sink.close()
    assert len(path.read_text().splitlines()) == 2


def test_an_event_that_cannot_be_encoded_is_dropped_and_counted_the_rest_are_kept() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    sink = ThreadedSink(stream, close_stream=False)
    circular: dict[str, object] = {"seq": 2}
    circular["self"] = circular
    sink.put({"seq": 1})
    sink.put(circular)
    sink.put({"seq": 3, "text": "\udcff"})  # a lone surrogate: not UTF-8, so written as its JSON escape
    sink.put({"seq": 4, "when": object()})  # not JSON: written as its str()
    sink.close()
    stream.seek(0)
    lines = [json.loads(line) for line in stream.read().splitlines()]
    assert [line["seq"] for line in lines] == [1, 3, 4]
    assert lines[1]["text"] == "\udcff"
    assert sink.dropped == 1 and sink.written == 3


def test_put_never_blocks_and_drops_past_the_capacity() -> None:
    stream = io.StringIO()
    sink = ThreadedSink(stream, capacity=10, close_stream=False, linger=60)  # the writer waits a minute
    for seq in range(30):  # a put that waited for room would never drop one
        sink.put({"seq": seq})
    sink.close()  # cuts the linger short
    assert sink.dropped == 20 and sink.written == 10
    assert [json.loads(line)["seq"] for line in stream.getvalue().splitlines()] == list(range(10))


def test_the_stream_sink_leaves_the_stream_open() -> None:
    stream = io.StringIO()
    sink = StreamEventSink(stream)
    sink.put({"seq": 1})
    sink.close()
    sink.close()  # closing twice is harmless
    assert stream.getvalue() == '{"seq":1}\n'


def test_a_failed_encoding_does_not_spoil_the_next_one_of_the_same_value() -> None:
    stream = io.StringIO()
    sink = ThreadedSink(stream, close_stream=False)
    event = {"seq": 1, "data": {"when": _FailsOnce()}}
    sink.put(event)  # fails half-way, inside two open containers
    sink.put(event)  # the same objects again: must not look circular now
    sink.close()
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [{"seq": 1, "data": {"when": "later"}}]
    assert sink.dropped == 1


class _FailsOnce:
    def __init__(self) -> None:
        self.failed = False

    def __str__(self) -> str:
        if not self.failed:
            self.failed = True
            raise TypeError("not yet")
        return "later"
