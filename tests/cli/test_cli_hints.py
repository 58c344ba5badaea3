"""The commands the CLI suggests (``resume with: ...``, ``Next: ...``) work when pasted into a shell."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result

CLI = Callable[..., Result]


def suggested(text: str, label: str) -> list[str]:
    """The arguments after ``llmflow`` of the command on the line starting with ``label``, as a shell reads it."""
    line = next(line for line in text.splitlines() if line.startswith(label))
    words = shlex.split(line.removeprefix(label))
    assert words[0] == "llmflow", line
    return words[1:]


def test_the_resume_hint_quotes_a_state_dir_with_a_space(cli: CLI, workflow: Callable[..., Path]) -> None:
    workflow("version: 1\nname: x\nsteps:\n  - id: a\n    fail: boom\n")
    ran = cli("run", "flow.yaml", "--state-dir", "my runs")
    assert ran.code == 1
    assert ran.stderr.endswith(" --state-dir 'my runs'\n")
    resumed = cli(*suggested(ran.stderr, "resume with: "))
    assert (resumed.code, "boom" in resumed.stderr) == (1, True)


def test_the_next_command_after_new_runs_a_name_that_starts_with_a_dash(cli: CLI) -> None:
    created = cli("new", "--", "-draft")
    assert created.code == 0, created.stderr
    assert created.stdout.endswith("Next: llmflow run ./-draft.yaml\n")
    ran = cli(*suggested(created.stdout, "Next: "), "-q")
    assert ran.code == 0, ran.stderr
