"""Fixtures for plugin tests: a project folder to write workflows and plugin modules in, run and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A fresh project folder for workflows, plugin files and their runs."""
    return Project(tmp_path)
