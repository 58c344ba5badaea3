"""Secret values the run knows (a sub-workflow's ``secrets:``): readable by the steps that declare them, and
masked in everything the run writes or prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result

CLI = Callable[..., Result]

TOKEN = "tok-CHILD-5ecret-42"

PARENT = """\
version: 1
name: parent
steps:
  - id: call
    workflow: lib/child.yaml
outputs:
  said: "{{ steps.call.output.said }}"
"""

CHILD = """\
version: 1
name: child
secrets: [CHILD_TOKEN]
steps:
  - id: use
    run: echo "token={{ secrets.CHILD_TOKEN }}"
outputs:
  said: "{{ steps.use.output }}"
"""


def stored_text(home: Path) -> str:
    """Every file of every run, as one text."""
    return "".join(path.read_text(encoding="utf-8", errors="replace") for path in home.rglob("*") if path.is_file())


def test_a_sub_workflow_reads_the_secrets_it_declares_and_they_are_masked(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib").mkdir()
    workflow(CHILD, "lib/child.yaml")
    workflow(PARENT)
    monkeypatch.setenv("CHILD_TOKEN", TOKEN)
    done = cli("run", "flow.yaml", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["outputs"] == {"said": "token=***"}
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN not in stored_text(runs_dir)
