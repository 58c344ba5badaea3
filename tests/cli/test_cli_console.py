"""The run console in-process: the live tree nests instances by path; plain lines say what happened."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from llmflow.cli.console import MAX_LINE, LiveConsole, PlainConsole, parent_path, segment_label

SECOND = 1_000_000_000


def event(seq: int, type_: str, path: str = "", attempt: int = 1, **data: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": seq,
        "ts": seq * SECOND,
        "run_id": "r",
        "type": type_,
        "path": path,
        "attempt": attempt,
        "data": data,
    }


EVENTS = [
    event(1, "run.started", attempt=0, workflow="demo"),
    event(2, "step.started", "label", kind="map"),
    event(3, "map.item", "label", index=0),
    event(4, "step.started", "label[0]/classify", kind="llm"),
    event(5, "llm.usage", "label[0]/classify", input_tokens=30, output_tokens=12),
    event(6, "step.completed", "label[0]/classify", duration=1.0),
    event(7, "map.item", "label", index=1),
    event(8, "step.started", "label[1]/classify", kind="llm"),
    event(9, "step.retrying", "label[1]/classify", error="HTTP 429", delay=1.0, next_attempt=2),
    event(10, "step.started", "label[1]/classify", attempt=2, kind="llm"),
    event(11, "step.failed", "label[1]/classify", attempt=2, kind="llm", error={"message": "model refused"}),
    event(12, "step.failed", "label", kind="map", error={"message": "map 'label': 1 of 2 items failed"}),
    event(13, "step.skipped", "report", kind="write"),
    event(14, "run.failed", attempt=0, status="failed"),
]


@pytest.mark.parametrize(
    ("path", "parent", "label"),
    [("label", "", "label"), ("label[3]", "label", "[3]"), ("label[3]/classify", "label[3]", "classify")],
    ids=["top", "item", "inside-item"],
)
def test_paths_nest_items_under_their_node(path: str, parent: str, label: str) -> None:
    assert (parent_path(path), segment_label(path)) == (parent, label)


def test_live_tree_nests_instances_and_counts_tokens() -> None:
    stream = io.StringIO()
    console = LiveConsole(stream, attempts=lambda path: 3 if path == "label/classify" else None)
    console.begin("r", Path())
    for item in EVENTS:
        console.put(item)
    console.close()
    console.close()  # the runtime closes its sinks, and so does the CLI
    lines = [line.rstrip() for line in stream.getvalue().splitlines() if line.strip()]
    assert lines == [
        "run r",
        "├── ✗ label  map  10.0s  42 tokens  map 'label': 1 of 2 items failed",
        "│   ├── ✓ [0]  3.00s  42 tokens",
        "│   │   └── ✓ classify  llm  2.00s  42 tokens",
        "│   └── ✗ [1]  4.00s",
        "│       └── ✗ classify  llm  3.00s  attempt 2  model refused",
        "└── - report  write  skipped",
    ]


def test_plain_lines_for_each_kind_of_event() -> None:
    stream = io.StringIO()
    console = PlainConsole(stream, attempts=lambda path: 3 if path == "label/classify" else None)
    for item in EVENTS:
        console.put(item)
    console.output("label[0]/classify", "stdout", "a line of output")
    console.close()
    assert stream.getvalue().splitlines() == [
        "▶ label",
        "▶ label[0]/classify",
        "✓ label[0]/classify (1.00s, 42 tokens)",
        "▶ label[1]/classify",
        "↻ label[1]/classify retry 2/3 in 1.0s: HTTP 429",
        "✗ label[1]/classify: model refused",
        "✗ label: map 'label': 1 of 2 items failed",
        "- report skipped",
        "  label[0]/classify │ a line of output",
    ]


def test_plain_console_prints_streamed_model_text_by_line() -> None:
    stream = io.StringIO()
    console = PlainConsole(stream)
    for item in [
        event(1, "step.started", "talk", kind="llm"),
        event(2, "llm.chunk", "talk", text="line o"),
        event(3, "llm.chunk", "talk", text="ne\nline "),
        event(4, "llm.chunk", "talk", text="two"),
        event(5, "step.completed", "talk", duration=0.5),
    ]:
        console.put(item)
    console.close()
    assert stream.getvalue().splitlines() == ["▶ talk", "  talk │ line one", "  talk │ line two", "✓ talk (0.50s)"]


def test_plain_console_cuts_very_long_output_lines_and_says_how_much_is_left_out() -> None:
    stream = io.StringIO()
    console = PlainConsole(stream)
    console.output("dump", "stdout", "x" * (MAX_LINE + 12_345))
    console.output("dump", "stdout", "y" * MAX_LINE)  # at the limit: whole
    console.put(event(1, "llm.chunk", "talk", text="z" * (MAX_LINE + 1) + "\n"))
    console.close()
    assert stream.getvalue().splitlines() == [
        f"  dump │ {'x' * MAX_LINE} … (12,345 more characters)",
        f"  dump │ {'y' * MAX_LINE}",
        f"  talk │ {'z' * MAX_LINE} … (1 more character)",
    ]


def test_live_console_shows_the_last_streamed_line() -> None:
    console = LiveConsole(io.StringIO())
    console.put(event(1, "step.started", "talk", kind="llm"))
    console.put(event(2, "llm.chunk", "talk", text="first\nsec"))
    console.put(event(3, "llm.chunk", "talk", text="ond"))
    assert console._node("talk").last_line == "second"


HOSTILE = "\x1b[2J\x1b]0;owned\x07\rFAKE\u202e\x9b31m"
ESCAPED = "\\x1b[2J\\x1b]0;owned\\x07\\x0dFAKE\\u202e\\x9b31m"


def test_both_consoles_show_terminal_controls_in_errors_and_output_escaped() -> None:
    hostile = [
        event(1, "step.started", "ask", kind="llm", name="ask"),
        event(2, "step.failed", "ask", kind="llm", error={"message": HOSTILE}),
    ]
    plain_stream, live_stream = io.StringIO(), io.StringIO()
    plain, live = PlainConsole(plain_stream), LiveConsole(live_stream)
    live.begin("r", Path())
    for console in (plain, live):
        for item in hostile:
            console.put(item)
        console.output("ask", "stdout", HOSTILE)
    assert live._node("ask").last_line == ESCAPED
    plain.close()
    live.close()
    assert plain_stream.getvalue().splitlines() == ["▶ ask — ask", f"✗ ask: {ESCAPED}", f"  ask │ {ESCAPED}"]
    assert ESCAPED in live_stream.getvalue()
    assert not any(character in live_stream.getvalue() for character in "\x1b\x07\r\x9b\u202e")
