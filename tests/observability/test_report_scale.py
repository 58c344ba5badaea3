"""``report``, ``show`` and ``logs`` on big runs: ``events.jsonl`` is read a piece at a time and only the events
of the rows a page lists are kept."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

from observability_helpers import Project

from llmflow.cli.runs import ITEMS_SHOWN
from llmflow.observability.timeline import gather
from llmflow.store import FileRunStore

#: A map whose items write five events each; two items of every 50 fail (tolerated).
MAP = """
steps:
  - id: each
    map:
      items: "{{ range(300) | list }}"
      fail_fast: false
      tolerated_failures: 100%
      concurrency: 1
      steps:
        - id: note
          set: {seen: 1}
        - id: check
          fail: "bad {{ item }}"
          if: item % 50 == 49
"""
#: One streamed reply of 20,000 one-character pieces: 20,000 ``llm.chunk`` events on one step.
STREAM = """
models:
  chatty:
    model: mock/echo
    options: {chunk_size: 1}
steps:
  - id: ask
    llm:
      model: chatty
      prompt: "{{ 'abcdefghij' * 2000 }}"
      stream: true
"""


def cli(project: Project, *args: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "llmflow", *args, "--state-dir", str(project.state)]
    return subprocess.run(command, cwd=project.root, capture_output=True, timeout=120)


def page_of(project: Project, run_id: str) -> str:
    """The report page written by the real CLI, without its footer (the moment it was made)."""
    done = cli(project, "report", run_id, "-o", "-")
    assert done.returncode == 0, done.stderr
    page = done.stdout.decode("utf-8")
    return page[: page.index("<footer>")]


def events_file(project: Project, run_id: str) -> Path:
    return project.state / "runs" / run_id / "events.jsonl"


def test_gathering_a_streamed_reply_holds_far_less_than_its_events_file(project: Project) -> None:
    summary = project.run(project.workflow(STREAM))
    assert summary.status == "succeeded", summary.error
    size = events_file(project, summary.run_id).stat().st_size
    assert size > 2_500_000  # 20,000 llm.chunk lines
    handle = FileRunStore(project.state).open_run(summary.run_id)
    tracemalloc.start()
    try:
        timeline = gather(handle, keep_events=True, fold=ITEMS_SHOWN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading the whole file at once held it twice over (its bytes, then its lines).
    assert peak < size / 4, f"gather held {peak:,} bytes at its peak for a {size:,}-byte events.jsonl"
    (ask,) = timeline.instances
    assert [event["type"] for event in ask.events] == ["step.started", "llm.usage", "step.completed"]


def test_only_the_rows_listed_keep_their_events(project: Project) -> None:
    summary = project.run(project.workflow(MAP))
    assert summary.status == "succeeded", summary.error
    handle = FileRunStore(project.state).open_run(summary.run_id)
    timeline = gather(handle, keep_events=True, fold=5)
    items = [node.path for node in timeline.instances if node.depth == 1]
    assert items == [f"each[{index}]" for index in [*range(5), 49, 99, 149, 199, 249]] + ["each[…]"]
    steps = [node for node in timeline.instances if not node.placeholder]
    assert len(steps) == 1 + 5 * 2 + 5 * 2  # the map, and note and check of each item listed
    for node in steps[1:]:
        types = [event["type"] for event in node.events]
        ending = "step.failed" if node.status == "failed" else "step.completed"
        assert types in (["step.started", ending], ["step.skipped"]), (node.path, types)
        assert all(event["path"] == node.path for event in node.events)
    # The map's own: the openings of its items are those of the items' rows, which are placeholders.
    assert [event["type"] for event in steps[0].events] == ["step.started", "step.completed"]


def test_damaged_lines_in_the_middle_of_a_big_events_file_are_passed_over(project: Project) -> None:
    summary = project.run(project.workflow(MAP))
    assert summary.status == "succeeded", summary.error
    before = page_of(project, summary.run_id)
    path = events_file(project, summary.run_id)
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    damaged = [
        b'{"v":1,"seq":7,"type":"step.completed","path":"each[3]/no',  # cut short
        b"\xff\xfe not UTF-8 \x80",
        b'{"type":"step.failed","path":"each[4]/note","ts":"yesterday","data":{}}',  # passes JSON, wrong shapes
        b"[1, 2, 3]",
        b"",
    ]
    path.write_bytes(b"".join([*lines[:middle], *(line + b"\n" for line in damaged), *lines[middle:]]))
    assert page_of(project, summary.run_id) == before
    shown = cli(project, "logs", summary.run_id, "--json")
    assert shown.returncode == 0
    # Raw, only what is not a JSON object is left out (and said so on stderr, the empty line too).
    expected = [*lines[:middle], damaged[2], *lines[middle:]]
    assert shown.stdout.splitlines() == [line.rstrip(b"\n") for line in expected]
    assert shown.stderr.count(b"not an event") == 4


def test_logs_prints_a_line_longer_than_it_reads_at_a_time(project: Project) -> None:
    summary = project.run(project.workflow("steps:\n  - {id: one, set: {x: 1}}\n"))
    path = events_file(project, summary.run_id)
    big = {"v": 1, "seq": 99, "ts": 1, "type": "note", "path": "one", "attempt": 1, "data": {"t": "x" * 3_000_000}}
    line = json.dumps(big, separators=(",", ":")).encode()
    with path.open("ab") as stream:
        stream.write(line + b"\n")
    shown = cli(project, "logs", summary.run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == line
