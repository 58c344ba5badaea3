"""Files shipped with the package: the workflow JSON Schema and the template library."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    # In a wheel the folder is inside the package; in a source checkout it sits beside the package.
    installed = _PACKAGE_DIR / name
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / name


def schemas_dir() -> Path:
    """The folder holding ``workflow.schema.json``."""
    return _locate("schemas")


def templates_dir() -> Path:
    """The folder holding the built-in template library."""
    return _locate("templates")


def schema_path() -> Path:
    """Path of the workflow JSON Schema."""
    return schemas_dir() / "workflow.schema.json"


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The workflow JSON Schema as text."""
    return schema_path().read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def workflow_schema() -> dict[str, Any]:
    """The workflow JSON Schema, parsed."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema
