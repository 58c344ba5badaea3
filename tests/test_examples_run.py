"""Every example runs offline, as the README promises, and gives the outputs it advertises."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "llmflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    return tmp_path


def runnable() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", runnable())
def test_example_runs_offline(project: Path, name: str) -> None:
    args = ["run", f"examples/{name}", "--json", "--state-dir", str(project / ".llmflow")]
    if name == "refine-until-approved.yaml":
        args += ["-i", "auto_approve=true"]
    result = run_cli(*args, cwd=project)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    assert summary["outputs"], "every example declares outputs"


def test_hello_gives_greeting_and_poem(project: Path) -> None:
    result = run_cli("run", "examples/hello.yaml", "-i", "name=Ada", "--json", cwd=project)
    outputs = json.loads(result.stdout)["outputs"]
    assert outputs["greeting"] == "Hello, Ada!"
    assert outputs["poem"].endswith("Hello, Ada!")


def test_approval_example_waits_then_resumes(project: Path) -> None:
    first = run_cli("run", "examples/refine-until-approved.yaml", "--json", cwd=project)
    assert first.returncode == 3, first.stderr
    waiting = json.loads(first.stdout)
    assert waiting["status"] == "waiting" and waiting["waiting_for"]
    second = run_cli("resume", waiting["run_id"], "--approve", "--json", cwd=project)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "succeeded"
