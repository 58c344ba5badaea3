"""Starting values in ``vars:`` may be templates over inputs, env and run; never over steps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import llmflow
from llmflow.errors import WorkflowError
from llmflow.runtime import RunOptions, start_run

WORKFLOW = """
version: 1
name: starting-vars
inputs:
  who: {type: string, default: world}
  n: {type: integer, default: 2}
vars:
  greeting: "hello {{ inputs.who }}"
  count: "{{ inputs.n * 10 }}"
  plain: unchanged
steps:
  - set: {count: "{{ vars.count + 1 }}"}
outputs:
  greeting: "{{ vars.greeting }}"
  count: "{{ vars.count }}"
  plain: "{{ vars.plain }}"
"""


def test_vars_templates_render_before_the_first_step(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    options = RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False)
    summary = asyncio.run(start_run(llmflow.load(path), {"who": "Ada"}, options))
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"greeting": "hello Ada", "count": 21, "plain": "unchanged"}


def test_vars_cannot_use_steps(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nname: t\nvars:\n  x: '{{ steps.a.output }}'\nsteps:\n  - id: a\n    run: echo hi\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkflowError) as caught:
        llmflow.load(path)
    [problem] = [d for d in caught.value.diagnostics if d.code == "early-reference"]
    assert (problem.line, problem.message) == (4, "the starting value of vars.x cannot use steps: no step has run yet")
