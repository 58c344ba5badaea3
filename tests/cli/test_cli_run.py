"""`llmflow run` end to end: exit codes, the --json object, the event stream, plain progress, inputs, dry runs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result
from typer.testing import CliRunner

from llmflow.cli.app import app

Cli = Callable[..., Result]
Write = Callable[..., Path]

GREET = """\
version: 1
name: greet
inputs:
  who: {type: string, default: world}
  limit: {type: integer, default: 2}
steps:
  - id: greet
    run: echo "hello {{ inputs.who }}"
  - id: skipme
    if: inputs.limit > 5
    run: echo never
  - id: double
    map:
      items: [1, 2]
      steps:
        - id: times
          set: {value: "{{ item * inputs.limit }}"}
      merge: list
outputs:
  text: "{{ steps.greet.output }}"
  values: "{{ vars.value }}"
"""

FAILING = """\
version: 1
name: fragile
steps:
  - id: prepare
    run: echo prepared >> count.txt
  - id: flaky
    run: test -f marker.txt && echo fixed
  - id: after
    run: echo "after {{ steps.flaky.output }}"
outputs:
  result: "{{ steps.after.output }}"
"""


def run_id_in(text: str) -> str:
    found = re.search(r"\b\d{8}-\d{6}-[a-z0-9]{4}\b", text)
    assert found, text
    return found.group(0)


def test_run_prints_plain_progress_and_summary_when_not_a_terminal(cli: Cli, workflow: Write) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "-i", "who=Ada")
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "▶ greet"
    assert lines[1] == "  greet │ hello Ada"
    assert re.fullmatch(r"✓ greet \(\d+\.\d\ds\)", lines[2])
    assert "- skipme skipped" in lines
    assert "▶ double[1]/times" in lines
    assert re.search(r"^✓ succeeded in \d+\.\d\ds · run \d{8}-\d{6}-\w{4}$", result.stderr, re.M)
    outputs = result.stderr[result.stderr.index("outputs:\n") + len("outputs:\n") :]
    assert json.loads(outputs) == {"text": "hello Ada", "values": [2, 4]}


def test_json_prints_exactly_one_object_on_stdout(cli: Cli, workflow: Write) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "--json", "-q")
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document == {
        "run_id": document["run_id"],
        "status": "succeeded",
        "outputs": {"text": "hello world", "values": [2, 4]},
        "error": None,
        "waiting_for": [],
    }
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_events_jsonl_streams_every_event_with_increasing_seq(cli: Cli, workflow: Write) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "--events", "jsonl")
    assert result.code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.completed"
    assert {"v", "seq", "ts", "run_id", "type", "path", "attempt", "data"} <= set(events[0])
    assert "▶ greet" in result.stderr  # people still get progress, on stderr


def test_quiet_prints_only_the_outputs(cli: Cli, workflow: Write) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "-q")
    assert (result.code, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"text": "hello world", "values": [2, 4]}


def test_bad_input_is_one_line_exit_2_and_creates_no_run(cli: Cli, workflow: Write, runs_dir: Path) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "-i", "limit=abc")
    assert result.code == 2
    assert result.stderr == "error: input 'limit': expected an integer, got 'abc'\n"
    assert not runs_dir.exists()


LISTS = """\
version: 1
name: lists
inputs:
  tags: {type: array, default: []}
  labels: {type: object, default: {}}
steps:
  - run: echo "{{ inputs.tags }} {{ inputs.labels }}"
"""


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("tags=a,b", """error: input 'tags': expected a list, got 'a,b' (write it as JSON: -i tags='["a", "b"]')"""),
        (
            "labels=x",
            """error: input 'labels': expected a mapping, got 'x' (write it as JSON: -i labels='{"key": "value"}')""",
        ),
    ],
    ids=["list", "mapping"],
)
def test_a_list_or_mapping_input_that_is_not_json_says_how_to_write_it(
    cli: Cli, workflow: Write, runs_dir: Path, assignment: str, message: str
) -> None:
    workflow(LISTS)
    result = cli("run", "flow.yaml", "-i", assignment)
    assert (result.code, result.stderr) == (2, message + "\n")
    assert not runs_dir.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes (os.mkfifo) exist on POSIX only")
def test_a_workflow_that_is_a_pipe_is_refused_before_it_is_read(cli: Cli, tmp_path: Path, runs_dir: Path) -> None:
    # A pipe can be read once, and a run reads its workflow twice (to compile it, and to keep a copy to resume
    # from): it is refused at once, and without a writer the refusal must not wait for one.
    os.mkfifo(tmp_path / "flow.yaml")
    result = cli("run", "flow.yaml", timeout=20)
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: flow.yaml is not a regular file: a run keeps a copy of its workflow to resume from, so save it to a "
        "file first (--dry-run and validate read it as it is)"
    ]
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_unknown_input_suggests_the_declared_name(cli: Cli, workflow: Write) -> None:
    workflow(GREET)
    result = cli("run", "flow.yaml", "-i", "wh=x")
    assert result.code == 2
    assert result.stderr == "error: unknown input 'wh' (did you mean 'who'?)\n"


@pytest.mark.parametrize(
    ("name", "text"),
    [("inputs.json", '{"who": "Json", "limit": 3}'), ("inputs.yaml", "who: Yaml\nlimit: 3\n")],
    ids=["json", "yaml"],
)
def test_inputs_file_is_read_and_dash_i_wins(cli: Cli, workflow: Write, tmp_path: Path, name: str, text: str) -> None:
    workflow(GREET)
    (tmp_path / name).write_text(text, encoding="utf-8")
    result = cli("run", "flow.yaml", "--inputs-file", name, "-i", "limit=1", "--json", "-q")
    assert result.code == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs["text"].startswith("hello ") and outputs["text"] != "hello world"
    assert outputs["values"] == [1, 2]


def test_failed_run_exits_1_and_resume_last_finishes_it(cli: Cli, workflow: Write, tmp_path: Path) -> None:
    workflow(FAILING)
    failed = cli("run", "flow.yaml")
    assert failed.code == 1
    run_id = run_id_in(failed.stderr)
    assert "✗ flaky: step 'flaky': command failed with exit code 1" in failed.stderr
    assert "  step: flaky" in failed.stderr
    assert failed.stderr.rstrip().endswith(f"resume with: llmflow resume {run_id}")

    (tmp_path / "marker.txt").write_text("", encoding="utf-8")
    resumed = cli("resume", "--last", "--json")
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"] == {"result": "after fixed"}
    assert json.loads(resumed.stdout)["run_id"] == run_id
    assert "▶ prepare" not in resumed.stderr  # completed steps are restored, not run again
    assert (tmp_path / "count.txt").read_text(encoding="utf-8") == "prepared\n"


def test_retry_and_json_failure_report(cli: Cli, workflow: Write) -> None:
    workflow(
        "version: 1\nname: retry\nsteps:\n"
        "  - id: shaky\n    retry: {attempts: 2, delay: 0s}\n    run: echo oops >&2; exit 3\n"
    )
    result = cli("run", "flow.yaml", "--json")
    assert result.code == 1
    assert "↻ shaky retry 2/2 in 0.0s: step 'shaky': command failed with exit code 3: oops" in result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["error"] == "step 'shaky': command failed with exit code 3: oops"


def test_a_failed_llm_step_reads_like_any_failed_step_everywhere(cli: Cli, workflow: Write) -> None:
    workflow(
        "version: 1\nname: ask\nmodels:\n  broken: {model: mock/asleep, options: {error: the model is asleep}}\n"
        "steps:\n  - id: ask\n    llm: {model: broken, prompt: hi}\n"
    )
    expected = "step 'ask': mock/asleep: the model is asleep"
    result = cli("run", "flow.yaml", "--json")
    assert result.code == 1
    assert json.loads(result.stdout)["error"] == expected
    assert f"✗ ask: {expected}\n" in result.stderr
    assert f"  error: {expected}\n" in result.stderr
    shown = cli("show", "--last")
    assert f"error:    {expected}\n" in shown.stdout  # the step is named once: no "(step ask)" after it
    assert cli("show", "--last", "--json").json()["run"]["error"] == expected


def test_dry_run_shows_the_plan_and_writes_nothing(cli: Cli, workflow: Write, runs_dir: Path, tmp_path: Path) -> None:
    workflow(
        """\
version: 1
name: planned
inputs:
  who: {type: string, default: world}
vars: {greeting: hi}
steps:
  - id: greet
    run: echo "{{ vars.greeting }}, {{ inputs.who }}" > out.txt
  - id: each
    if: inputs.who != ""
    loop:
      for_each: [a, b]
      steps:
        - id: show
          run: echo {{ item }}
  - id: later
    write: {path: "{{ steps.greet.output }}.txt", content: x}
"""
    )
    result = cli("run", "flow.yaml", "--dry-run", "-i", "who=Ada")
    assert result.code == 0, result.stderr
    body = result.stdout.split("\n\n", 1)[1]
    assert body == (
        "• greet [run]\n"
        '    $ echo "«hi», «Ada»" > out.txt\n'
        '• each [loop for_each as item (max 100)] if inputs.who != ""\n'
        '    for_each: ["a", "b"]\n'
        "    • show [run]\n"
        "        $ echo {{ item }}  (rendered at run time)\n"
        "• later [write]\n"
        "    path: {{ steps.greet.output }}.txt  (rendered at run time)\n"
    )
    assert not runs_dir.exists() and not (tmp_path / ".llmflow").exists()
    assert not (tmp_path / "out.txt").exists()


def test_invalid_workflow_exits_2_with_diagnostics(cli: Cli, workflow: Write) -> None:
    workflow("version: 1\nname: broken\nsteps:\n  - id: a\n    runn: echo\n")
    result = cli("run", "flow.yaml")
    assert result.code == 2
    assert "flow.yaml:5:5" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "flow.yaml", "--events", "xml"],
        ["run", "flow.yaml", "--durability", "sometimes"],
        ["runs", "--status", "sleeping"],
        ["resume"],
        ["resume", "x", "--approve", "--reject"],
        ["resume", "x", "--comment", "why"],
        ["run", "flow.yaml", "--json", "--events", "jsonl"],
        ["gc", "--older-than", "soon"],
    ],
    ids=[
        "events-format",
        "durability",
        "status",
        "no-run-id",
        "approve-and-reject",
        "comment-alone",
        "two-on-stdout",
        "gc",
    ],
)
def test_usage_errors_exit_2(args: list[str], workflow: Write, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from llmflow.cli.exits import exit_code_for
    from llmflow.errors import UsageError

    workflow(GREET)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    if isinstance(result.exception, UsageError):  # raised for run_app to print as one line
        assert exit_code_for(result.exception) == 2
    else:
        assert result.exit_code == 2, result.output


def test_compensation_lines_say_when_a_compensation_failed(cli: Cli, workflow: Write) -> None:
    workflow(
        "version: 1\nname: saga\nsteps:\n"
        "  - id: one\n    run: echo one\n    compensate: [{id: undo-one, run: echo undone}]\n"
        "  - id: two\n    run: echo two\n    compensate: [{id: undo-two, fail: cannot}]\n"
        "  - {id: bad, fail: stop}\n"
    )
    result = cli("run", "flow.yaml")
    assert result.code == 1
    assert "↺ two compensation failed" in result.stderr
    assert "↺ one compensated" in result.stderr
    assert "↺ two compensated" not in result.stderr
