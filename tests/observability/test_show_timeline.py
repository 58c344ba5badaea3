"""``llmflow show``: a timeline bar per node instance, usage per node, and the ``--json`` fields for both."""

from __future__ import annotations

import json
import re

import pytest
from observability_helpers import Project

from llmflow.cli.runs import show_run
from llmflow.observability.event_log import summarise_events

WORKFLOW = """
steps:
  - id: first
    run: sleep 0.3
  - id: ask
    llm:
      model: mock/echo
      prompt: "say something"
  - id: each
    map:
      items: [1, 2]
      steps:
        - id: shout
          run: echo "item {{ item }}"
  - id: last
    run: sleep 0.3
  - id: boom
    fail: "went wrong"
"""


def show(project: Project, run_id: str, capsys: pytest.CaptureFixture[str], *, as_json: bool = False) -> str:
    assert show_run(run_id, last=False, as_json=as_json, state_dir=str(project.state)) == 0
    return capsys.readouterr().out


def test_each_instance_has_a_bar_placed_by_its_start_and_end(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = project.run(project.workflow(WORKFLOW))
    assert summary.status == "failed"
    _, tree = show(project, summary.run_id, capsys).split("\n\n")
    ruler, *rows = tree.splitlines()
    assert ruler.split()[0] == "0s"
    bars = {}
    for row in rows:
        label = row.split("│")[0].split()[-1]
        bars.setdefault(label, re.search(r"│([^│]*)│", row).group(1))  # type: ignore[union-attr]
    width = len(bars["first"])
    assert width == 32 and all(len(bar) == width for bar in bars.values())
    first, last = bars["first"], bars["last"]
    assert first.rstrip().endswith("█") and last.lstrip().startswith("█")
    assert len(first.rstrip()) <= width - len(last.lstrip()) + 1, "sequential steps do not overlap"
    assert len(first.strip()) >= 4 and len(last.strip()) >= 4, "0.3 s of a ~0.7 s run is several cells"
    assert set(bars["[0]"].strip()) == {"░"}  # an item spans its steps
    (ask,) = [row for row in rows if "│" in row and row.split("│")[0].split()[-1] == "ask"]
    assert re.search(r"\d+ tokens", ask)
    (boom,) = [row for row in rows if row.startswith("✗ boom")]
    assert "error: went wrong" in boom and "█" in boom  # failed steps have no record; the events place them
    assert "\033[" not in tree  # plain when stdout is not a terminal


def test_show_json_adds_usage_and_timeline_to_the_same_shape(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = project.run(project.workflow(WORKFLOW))
    document = json.loads(show(project, summary.run_id, capsys, as_json=True))
    assert set(document) == {"run", "nodes", "timeline"}
    nodes = {node["path"]: node for node in document["nodes"]}
    assert set(nodes) == {"first", "ask", "each", "each[0]/shout", "each[1]/shout", "last", "boom"}
    old_fields = {"path", "status", "started", "ended", "duration", "attempts", "output", "error", "compensated"}
    assert all(old_fields <= set(node) for node in nodes.values())
    usage = nodes["ask"]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["calls"] == 1
    assert usage["model"] == "mock/echo"
    assert nodes["first"]["usage"] is None
    window = document["timeline"]
    assert window["duration"] == pytest.approx(window["end"] - window["start"], abs=1e-3)
    for node in nodes.values():
        span = node["timeline"]
        assert 0 <= span["start"] <= span["end"] <= window["duration"] + 1e-3, node["path"]
    assert nodes["first"]["timeline"]["end"] <= nodes["last"]["timeline"]["start"]
    assert nodes["boom"]["status"] == "failed" and nodes["boom"]["started"] is not None


def test_usage_counts_every_call_of_every_attempt() -> None:
    def usage(seq: int, attempt: int) -> dict[str, object]:
        data = {"input_tokens": 10, "output_tokens": 5, "cost": 0.5, "calls": 1, "model": "m"}
        return {"seq": seq, "ts": seq * 10**9, "type": "llm.usage", "path": "ask", "attempt": attempt, "data": data}

    events = [
        {"seq": 1, "ts": 10**9, "type": "step.started", "path": "ask", "attempt": 1, "data": {"kind": "llm"}},
        usage(2, 1),
        {"seq": 3, "ts": 3 * 10**9, "type": "step.retrying", "path": "ask", "attempt": 1, "data": {}},
        {"seq": 4, "ts": 4 * 10**9, "type": "step.started", "path": "ask", "attempt": 2, "data": {"kind": "llm"}},
        usage(5, 2),
        {"seq": 6, "ts": 6 * 10**9, "type": "step.completed", "path": "ask", "attempt": 2, "data": {"kind": "llm"}},
    ]
    seen = summarise_events(events)["ask"]
    assert seen.usage == {"input_tokens": 20, "output_tokens": 10, "cost": 1.0, "calls": 2, "model": "m"}
    assert (seen.started, seen.ended, seen.attempts, seen.status) == (1.0, 6.0, 2, "succeeded")


def test_steps_that_failed_inside_a_caught_or_continued_composite_show_failed_without_their_failure_events(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run killed right after such a composite's record was written loses the events that followed it: the
    # failures inside it are known from the record alone (they have no record of their own).
    summary = project.run(
        project.workflow(
            """
            steps:
              - id: guarded
                try:
                  - id: inner
                    steps:
                      - {id: ok, run: echo ok}
                      - {id: boom, fail: "went wrong"}
                catch:
                  - {id: handled, run: echo handled}
              - id: tolerant
                continue_on_error: true
                steps:
                  - id: each
                    loop:
                      times: 2
                      steps:
                        - {id: crash, if: "index == 1", fail: "crashed"}
            """
        )
    )
    assert summary.status == "succeeded", summary.error
    events = project.state / "runs" / summary.run_id / "events.jsonl"
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    events.write_text("".join(line for line in lines if '"type":"step.failed"' not in line), encoding="utf-8")

    nodes = {node["path"]: node for node in json.loads(show(project, summary.run_id, capsys, as_json=True))["nodes"]}

    failed = {path: node["error"] for path, node in nodes.items() if node["status"] == "failed"}
    assert failed == {
        "guarded/try/inner": "went wrong",
        "guarded/try/inner/boom": "went wrong",
        "tolerant": "crashed",
        "tolerant/each": "crashed",
        "tolerant/each[1]/crash": "crashed",
    }
    assert "running" not in {node["status"] for node in nodes.values()}
