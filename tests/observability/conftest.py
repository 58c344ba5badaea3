"""Fixtures for observability tests: a project folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from observability_helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project folder for workflows and their runs."""
    return Project(tmp_path)
