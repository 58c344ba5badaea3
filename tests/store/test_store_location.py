"""Finding the store folder: --state-dir, then LLMFLOW_HOME, then the nearest .llmflow/ like git."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmflow.store import find_store_root, project_root


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMFLOW_HOME", raising=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if any((folder / ".llmflow").is_dir() for folder in tmp_path.parents):
        pytest.skip("a parent of the temporary folder already holds a .llmflow store")
    deep = tmp_path / "project" / "src" / "deep"
    deep.mkdir(parents=True)
    return tmp_path / "project"


def test_the_override_wins_over_the_environment_and_a_nearby_store(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".llmflow").mkdir()
    monkeypatch.setenv("LLMFLOW_HOME", str(project / "from-env"))
    assert find_store_root(project, override=project / "flag") == project / "flag"


def test_a_relative_override_is_taken_from_the_current_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "src")
    assert find_store_root(project / "src" / "deep", override="state/../st") == project / "src" / "st"


def test_the_environment_wins_over_a_nearby_store(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".llmflow").mkdir()
    monkeypatch.setenv("LLMFLOW_HOME", str(project / "from-env"))
    assert find_store_root(project) == project / "from-env"


@pytest.mark.usefixtures("no_home")
def test_the_nearest_store_in_a_parent_is_found(project: Path) -> None:
    (project / ".llmflow").mkdir()
    assert find_store_root(project / "src" / "deep") == project / ".llmflow"
    (project / "src" / ".llmflow").mkdir()
    assert find_store_root(project / "src" / "deep") == project / "src" / ".llmflow"


@pytest.mark.usefixtures("no_home")
def test_a_file_named_like_the_store_is_not_a_store(project: Path) -> None:
    (project / ".llmflow").mkdir()
    (project / "src" / ".llmflow").write_text("not a folder")
    assert find_store_root(project / "src") == project / ".llmflow"


@pytest.mark.usefixtures("no_home")
def test_without_a_store_it_is_planned_in_the_start_folder_but_not_created(project: Path) -> None:
    assert find_store_root(project / "src") == project / "src" / ".llmflow"
    assert not (project / "src" / ".llmflow").exists()


@pytest.mark.usefixtures("no_home")
def test_the_start_folder_defaults_to_the_current_one(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".llmflow").mkdir()
    monkeypatch.chdir(project / "src" / "deep")
    assert find_store_root() == project / ".llmflow"


def test_project_root_is_the_parent_of_a_dot_llmflow_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert project_root(tmp_path / "proj" / ".llmflow") == tmp_path / "proj"
    monkeypatch.chdir(tmp_path)
    assert project_root(tmp_path / "elsewhere" / "state") == tmp_path
