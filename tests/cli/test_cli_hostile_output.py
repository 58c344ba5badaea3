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
