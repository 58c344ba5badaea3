"""Helpers for CLI tests: run ``python -m llmflow``, and wait for state on disk instead of sleeping."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """What one CLI invocation did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def environment() -> dict[str, str]:
    """The test's environment (LLMFLOW_HOME points into the test's own folder), without colours."""
    env = dict(os.environ)
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1")
    env.pop("FORCE_COLOR", None)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmflow", *args]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` (state on disk, never a guessed delay) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def step_started(runs: Path, path: str) -> Callable[[], bool]:
    """True once some run's events.jsonl records ``step.started`` for ``path``."""
    needle = f'"type":"step.started","path":"{path}"'

    def check() -> bool:
        return any(needle in events.read_text(encoding="utf-8") for events in runs.glob("*/events.jsonl"))

    return check
