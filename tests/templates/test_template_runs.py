"""Every built-in template scaffolds with its defaults into a clean folder, validates, and runs offline as-is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmflow.cli.app import app
from llmflow.resources import templates_dir

NAMES = sorted(path.name for path in templates_dir().iterdir() if (path / "template.yaml").is_file())
#: Templates whose run pauses for a person: they exit 3, then `resume --approve` finishes them.
APPROVAL = {"deploy-gate"}


def llmflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "llmflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.mark.parametrize("name", NAMES)
def test_template_scaffolds_validates_and_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    created = runner.invoke(app, ["new", "my-flow", "--template", name])
    assert created.exit_code == 0, created.output
    assert created.stdout.endswith("my-flow.yaml is valid.\nNext: llmflow run my-flow.yaml\n")
    checked = runner.invoke(app, ["validate", "my-flow.yaml"])
    assert (checked.exit_code, checked.stdout, checked.stderr) == (0, "", "1 file valid\n")

    state = ["--state-dir", str(tmp_path / ".llmflow")]
    result = llmflow("run", "my-flow.yaml", "--json", *state, cwd=tmp_path)
    if name in APPROVAL:
        assert result.returncode == 3, result.stderr
        waiting = summary_of(result)
        assert waiting["status"] == "waiting" and waiting["waiting_for"]
        result = llmflow("resume", waiting["run_id"], "--approve", "--json", *state, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert summary["status"] == "succeeded"
    assert summary["outputs"], "every template declares outputs"
