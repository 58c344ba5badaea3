"""Files shipped with the package: the workflow JSON Schema and the template library."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_root() -> Path:
    """Where ``schemas/`` and ``templates/`` live.

    A wheel puts them inside the package; a source checkout (and an editable install of it) keeps them beside
    the package. The schema always ships, so its folder tells the two apart; the template library may be
    empty, and an empty folder is in neither a wheel nor a git checkout, so it cannot.
    """
    return _PACKAGE_DIR if (_PACKAGE_DIR / "schemas").is_dir() else _PACKAGE_DIR.parent


def schemas_dir() -> Path:
    """The folder holding ``workflow.schema.json``."""
    return _data_root() / "schemas"


def templates_dir() -> Path:
    """The folder holding the built-in template library (it may not exist while the library is empty)."""
    return _data_root() / "templates"


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
