"""Hostile text coming back from models and commands, shown by the CLI: the terminal must never act on it and
no character may crash a command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result

CLI = Callable[..., Result]

# A reply that would clear the screen, set the window title, return the cursor to overwrite the line and
# forge a success line, if written to a terminal as it is.
SPOOF = "\x1b[2J\x1b]0;owned\x07\rFAKE \u2713 succeeded\x9b31m"


def test_terminal_controls_in_outputs_and_errors_are_shown_escaped(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "replies.json").write_text(json.dumps([SPOOF]), encoding="utf-8")
    workflow(
        """
        version: 1
        name: spoof
        models:
          m: {model: mock/x, options: {replies_file: replies.json}}
        steps:
          - id: ask
            llm: {model: m, prompt: hi}
          - id: echo
            run: "printf '%s\\\\n' {{ steps.ask.output }}"
          - id: stop
            fail: "model said {{ steps.ask.output }}"
        """.replace("\n        ", "\n")
    )
    ran = cli("run", "flow.yaml")
    assert ran.code == 1
    shown = cli("show", "--last")
    logs = cli("logs", "--last")
    for result in (ran, shown, logs):
        text = result.stdout + result.stderr
        assert not any(character in text for character in "\x1b\x07\r\x9b"), text
    assert "  echo │ \\x1b[2J\\x1b]0;owned\\x07\\x0dFAKE \u2713 succeeded\\x9b31m\n" in ran.stderr
    assert "  error: model said \\x1b[2J\\x1b]0;owned\\x07\\x0dFAKE" in ran.stderr
    assert "error:    model said \\x1b[2J" in shown.stdout
    assert "step.failed     stop  model said \\x1b[2J" in logs.stdout


def test_a_lone_surrogate_in_an_output_reaches_json_and_show_intact(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    # A JSON file is the way a lone surrogate gets into a reply: YAML cannot spell one.
    (tmp_path / "replies.json").write_text('["x\\ud800y"]', encoding="utf-8")
    workflow(
        """
        version: 1
        name: surrogate
        models:
          m: {model: mock/x, options: {replies_file: replies.json}}
        steps:
          - id: ask
            llm: {model: m, prompt: hi}
        outputs:
          said: "{{ steps.ask.output }}"
        """.replace("\n        ", "\n")
    )
    ran = cli("run", "flow.yaml", "--json")
    assert ran.code == 0, ran.stderr
    assert ran.json()["outputs"] == {"said": "x\ud800y"}
    shown = cli("show", "--last", "--json")
    assert shown.code == 0, shown.stderr
    assert [node["output"] for node in shown.json()["nodes"]] == ["x\ud800y"]
    text = cli("show", "--last")
    assert text.code == 0, text.stderr
    assert "→ x\\ud800y" in text.stdout


def _acts_on_terminal(text: str) -> bool:
    return any(character in text for character in "\x1b\x07\r\x9b")


def test_a_control_character_in_a_workflow_file_is_shown_escaped_with_the_caret_on_it(cli: CLI, tmp_path: Path) -> None:
    # The diagnostic is about that very character; the source line under it used to carry it raw.
    (tmp_path / "flow.yaml").write_bytes(b"version: 1\nname: x\nsteps:\n  - id: a # \x1b[2J\x1b]0;owned\x07 \x1b\n")
    done = cli("validate", "flow.yaml")
    assert (done.code, _acts_on_terminal(done.stdout + done.stderr)) == (1, False)
    assert done.stdout.splitlines()[:3] == [
        "flow.yaml:4:13: error[control-character]: the control character U+001B is not allowed in a workflow file",
        "    4 |   - id: a # \\x1b[2J\\x1b]0;owned\\x07 \\x1b",
        "      |             ^",
    ]


def test_a_file_name_with_terminal_controls_is_shown_escaped(cli: CLI, tmp_path: Path) -> None:
    name = "evil\x1b]0;owned\x07\x1b[2J.yaml"
    (tmp_path / name).write_text("version: 1\nname: x\nsteps:\n  - id: A\n    run: echo\n", encoding="utf-8")
    checked = cli("validate", name)
    ran = cli("run", name)
    missing = cli("run", "gone\x1b[2J.yaml")
    for result in (checked, ran, missing):
        assert not _acts_on_terminal(result.stdout + result.stderr), result
    assert checked.stdout.startswith("evil\\x1b]0;owned\\x07\\x1b[2J.yaml:4:9: error[")
    assert ran.stderr.startswith("evil\\x1b]0;owned\\x07\\x1b[2J.yaml:4:9: error[")
    assert missing.stderr.startswith("gone\\x1b[2J.yaml:1:1: error[file-not-found]: file not found: gone\\x1b[2J")


def test_step_names_and_values_from_a_workflow_are_shown_escaped_by_graph_and_dry_run(
    cli: CLI, workflow: Callable[..., Path]
) -> None:
    workflow(
        'version: 1\nname: x\ninputs:\n  who: {type: string, default: "w\\e[2J"}\n'
        'steps:\n  - id: a\n    name: "nm\\e]0;owned\\a"\n    run: echo {{ inputs.who }}\n'
    )
    drawn = [cli("graph", "flow.yaml", "-f", form) for form in ("text", "mermaid", "dot")]
    planned = cli("run", "flow.yaml", "--dry-run")
    for result in (*drawn, planned):
        assert result.code == 0 and not _acts_on_terminal(result.stdout + result.stderr), result
    assert "nm\\x1b]0;owned\\x07  [run]" in drawn[0].stdout
    assert "• nm\\x1b]0;owned\\x07 [run]" in planned.stdout
    assert "w\\x1b[2J" in planned.stdout


def test_a_value_typed_on_the_command_line_is_quoted_escaped_in_the_error(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("version: 1\nname: x\nsteps:\n  - id: a\n    run: echo\n", encoding="utf-8")
    assert cli("run", "flow.yaml", "-i", "who\x1b[2J=1").stderr == (
        "error: unknown input 'who\\x1b[2J'; declared inputs: none\n"
    )
    assert cli("show", "\x1b[2J").stderr.startswith("error: no run matches '\\x1b[2J' in ")
    assert cli("templates", "show", "\x1b[2J").stderr == (
        "error: unknown template '\\x1b[2J'; see `llmflow templates list`\n"
    )
    assert cli("runs", "--status", "\x1b[2J").stderr.startswith("error: python -m llmflow runs: invalid value for")
    assert "'\\x1b[2J' is not one of" in cli("runs", "--status", "\x1b[2J").stderr


def test_json_output_escapes_c1_controls_and_bidi_overrides_and_stays_the_same_json(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    # json.dumps escapes C0 controls itself, not a C1 CSI (``\x9b``), DEL or a bidirectional override.
    reply = "\x9b2J\x7f\u202eevil"
    (tmp_path / "replies.json").write_text(json.dumps([reply]), encoding="utf-8")
    workflow(
        """
        version: 1
        name: csi
        models:
          m: {model: mock/x, options: {replies_file: replies.json}}
        steps:
          - id: ask
            llm: {model: m, prompt: hi}
          - id: stop
            if: "steps.ask.output == 'never'"
            fail: no
        outputs:
          said: "{{ steps.ask.output }}"
        """.replace("\n        ", "\n")
    )
    ran = cli("run", "flow.yaml", "--json", "-q")
    quiet = cli("run", "flow.yaml", "-q")
    streamed = cli("run", "flow.yaml", "--events", "jsonl", "-q")
    shown = cli("show", "--last", "--json")
    logs = cli("logs", "--last", "--json")
    listed = cli("runs", "--json")
    for result in (ran, quiet, streamed, shown, logs, listed):
        assert result.code == 0, result.stderr
        assert not any(character in result.stdout for character in "\x9b\x7f\u202e"), result.stdout
    assert "\\u009b2J\\u007f\\u202eevil" in quiet.stdout
    assert ran.json()["outputs"] == json.loads(quiet.stdout) == {"said": reply}
    assert [node["output"] for node in shown.json()["nodes"]] == [reply, None]
    for stream in (streamed, logs):
        events = [json.loads(line) for line in stream.stdout.splitlines()]
        assert next(event["data"]["preview"] for event in events if event["type"] == "step.completed") == reply
    assert isinstance(listed.json(), list)


def test_run_json_and_event_text_in_runs_gc_and_the_show_tree_is_shown_escaped(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path
) -> None:
    workflow("version: 1\nname: plain\nsteps:\n  - id: hello\n    run: echo hello\n")
    run_id = cli("run", "flow.yaml", "--json", "-q").json()["run_id"]
    folder = runs_dir / run_id
    meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    (folder / "run.json").write_text(json.dumps({**meta, "workflow": f"[bold]{SPOOF}"}), encoding="utf-8")
    events = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    started = {**json.loads(events[1]), "path": f"x{SPOOF}"}  # a step that never ended, by the events
    (folder / "events.jsonl").write_text("".join([*events, json.dumps(started) + "\n"]), encoding="utf-8")
    listed, shown, collected = cli("runs"), cli("show", run_id), cli("gc", "--older-than", "0s", "--dry-run")
    for result in (listed, shown, collected):
        text = result.stdout + result.stderr
        assert result.code == 0 and not any(character in text for character in "\x1b\x07\r\x9b"), text
    escaped = "\\x1b[2J\\x1b]0;owned\\x07\\x0dFAKE \u2713 succeeded\\x9b31m"
    assert f"  [bold]{escaped}  succeeded  " in listed.stdout
    assert f"⊘ x{escaped}  │" in shown.stdout  # its run is over: it did not finish
    assert collected.stdout == f"would remove {run_id}  [bold]{escaped}  succeeded\n"
