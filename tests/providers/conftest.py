"""Fixtures for provider tests: OpenAI- and Anthropic-compatible servers, and a project to run workflows in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from provider_project import Project
from provider_servers import FakeServer, anthropic_default, openai_default


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    """An OpenAI-compatible server on 127.0.0.1 (base URL: ``openai_server.url + "/v1"``)."""
    server = FakeServer(openai_default).start()
    yield server
    server.stop()


@pytest.fixture
def anthropic_server() -> Iterator[FakeServer]:
    """An Anthropic-compatible server on 127.0.0.1 (base URL: ``anthropic_server.url``)."""
    server = FakeServer(anthropic_default).start()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh project folder (its ``llmflow.toml`` and ``.env`` are the ones the run reads)."""
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "LLMFLOW_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return Project(tmp_path)
