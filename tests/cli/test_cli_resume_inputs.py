"""``llmflow resume`` and the run's stored inputs: only secret inputs are asked for again, and an edited
workflow (``--workflow``) goes on with the inputs it declares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result

CLI = Callable[..., Result]

FLOW = """\
version: 1
name: gated
inputs:
  old: {type: string, default: o}
  pattern: string
steps:
  - id: show
    run: echo "{{ inputs.pattern }}"
  - id: gate
    run: test -f gate
outputs:
  pattern: "{{ steps.show.output }}"
"""


def test_a_plain_input_whose_value_is_three_stars_is_not_taken_for_a_secret(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    workflow(FLOW)
    assert cli("run", "flow.yaml", "-i", "pattern=***").code == 1
    (tmp_path / "gate").touch()
    done = cli("resume", "--last", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["outputs"] == {"pattern": "***"}


def test_resume_with_an_edit_that_dropped_an_input_goes_on_without_it(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    workflow(FLOW)
    assert cli("run", "flow.yaml", "-i", "pattern=x").code == 1
    workflow(FLOW.replace("  old: {type: string, default: o}\n", "  new: {type: integer}\n"), "edited.yaml")
    (tmp_path / "gate").touch()
    refused = cli("resume", "--last", "--workflow", "edited.yaml")
    assert (refused.code, refused.stderr) == (2, "error: missing input 'new': pass it with -i new=VALUE\n")
    done = cli("resume", "--last", "--workflow", "edited.yaml", "-i", "new=4", "--json")
    assert (done.code, done.json()["status"]) == (0, "succeeded"), done.stderr
