"""Fixtures for engine tests: a project folder per test to write, run and resume workflows in."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import Flow


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    """A fresh project folder for workflows and their runs."""
    return Flow(tmp_path)
