"""Every workflow in ``examples/`` and in the template library validates cleanly (no errors, no warnings)."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmflow

ROOT = Path(__file__).resolve().parents[1]


def workflow_files(folder: Path) -> list[Path]:
    """The workflow files under ``folder``: YAML, except workflow tests (``*.test.yaml``) and ``data/``."""
    if not folder.is_dir():
        return []
    found = [*folder.rglob("*.yaml"), *folder.rglob("*.yml")]
    return sorted(
        path
        for path in found
        if not path.name.endswith((".test.yaml", ".test.yml")) and "data" not in path.relative_to(folder).parts
    )


EXAMPLES = workflow_files(ROOT / "examples")
# A template's own workflow.yaml holds [[ parameter ]] placeholders and is checked once scaffolded
# (tests/templates/test_template_runs.py); the sub-workflows it ships are plain workflows, checked here.
TEMPLATE_LIBRARIES = sorted((ROOT / "templates").glob("*/lib/*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_example_is_valid(path: Path) -> None:
    assert [str(d) for d in llmflow.validate(path, display_name=str(path.relative_to(ROOT)))] == []


@pytest.mark.parametrize("path", TEMPLATE_LIBRARIES, ids=[str(p.relative_to(ROOT)) for p in TEMPLATE_LIBRARIES])
def test_template_sub_workflow_is_valid(path: Path) -> None:
    assert [str(d) for d in llmflow.validate(path, display_name=str(path.relative_to(ROOT)))] == []


def test_examples_load_into_a_graph() -> None:
    for path in EXAMPLES:
        workflow = llmflow.load(path)
        assert workflow.nodes, path
        assert all(node.path for node in workflow.walk())
