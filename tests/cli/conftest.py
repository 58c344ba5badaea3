"""Fixtures for CLI tests: the real CLI run in the test's folder, and small workflow files written there."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result, command, environment


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Result]:
    """Run the real CLI in ``tmp_path``."""

    def run(*args: str, timeout: float = 60) -> Result:
        done = subprocess.run(
            command(*args), cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=timeout
        )
        return Result(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def workflow(tmp_path: Path) -> Callable[..., Path]:
    """Write a workflow file into ``tmp_path``."""

    def write(text: str, name: str = "flow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def runs_dir() -> Path:
    """Where runs of the test go (the autouse fixture points LLMFLOW_HOME at a folder of its own)."""
    return Path(os.environ["LLMFLOW_HOME"]) / "runs"
