"""The built-in template library: metadata checked, placeholders placed by the rules, search ranked, sources ranked."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from llmflow.errors import UsageError
from llmflow.resources import templates_dir
from llmflow.scaffolding import placement_problems
from llmflow.templating import Source, load_library, metadata_problems, read_template, search

BUILT_IN = templates_dir()
FOLDERS = sorted(path for path in BUILT_IN.iterdir() if (path / "template.yaml").is_file())
NAMES = [folder.name for folder in FOLDERS]


def write_template(root: Path, name: str, title: str = "A title", tags: str = "[demo]", extra: str = "") -> Path:
    """A small valid template folder under ``root``."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "template.yaml").write_text(
        f"name: {name}\ntitle: {title}\ndescription: Says hello.\ntags: {tags}\n{extra}", encoding="utf-8"
    )
    (folder / "workflow.yaml").write_text(
        f"version: 1\nname: {name}\nsteps:\n  - id: hello\n    run: echo hello\n", encoding="utf-8"
    )
    return folder


def test_the_library_has_at_least_twelve_templates() -> None:
    assert len(FOLDERS) >= 12
    assert load_library([Source("built-in", BUILT_IN)]).problems == []


@pytest.mark.parametrize("folder", FOLDERS, ids=NAMES)
def test_metadata_follows_the_schema(folder: Path) -> None:
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load((folder / "template.yaml").read_text(encoding="utf-8"))
    assert metadata_problems(data, folder.name) == []
    assert set(data) == {"name", "title", "description", "tags", "parameters"}
    assert data["description"].strip() and data["tags"]
    assert all(tag == tag.lower() for tag in data["tags"])
    for name, spec in data["parameters"].items():
        assert "default" in spec, name
        assert spec["description"].strip(), name
    assert (folder / "workflow.yaml").is_file()


@pytest.mark.parametrize("folder", FOLDERS, ids=NAMES)
def test_placeholders_follow_the_rules_and_every_parameter_is_used(folder: Path) -> None:
    assert placement_problems(read_template(folder, "built-in")) == []


def test_the_scenarios_the_issue_asks_for_are_there() -> None:
    wanted = {
        "summarize-folder": "map",
        "classify-and-route": "switch:",
        "extract-json": "schema:",
        "refine-until-approved": "until:",
        "parallel-reviews": "parallel:",
        "batch-translate": "cache: true",
        "compare-models": "parallel:",
        "deploy-gate": "approval:",
        "webhook-notifier": "hooks:",
        "subworkflow-library": "workflow: lib/",
    }
    for name, marker in wanted.items():
        assert marker in (BUILT_IN / name / "workflow.yaml").read_text(encoding="utf-8"), name
    assert sorted(p.name for p in (BUILT_IN / "subworkflow-library" / "lib").glob("*.yaml"))


def test_metadata_problems_are_each_named() -> None:
    data = {
        "name": "Bad Name",
        "title": "",
        "tags": ["Upper"],
        "extra": 1,
        "parameters": {"x": {"default": 1}, "y": {"description": "why", "type": "integer", "default": "3"}},
    }
    assert metadata_problems(data, "bad") == [
        "unknown key 'extra'",
        "'name' must be a slug ([a-z][a-z0-9_-]*)",
        "'title' must be a non-empty string",
        "'tags' must be a list of lowercase words ([a-z0-9][a-z0-9+.-]*)",
        "parameter 'x': needs a 'description'",
        "parameter 'x': the default 1 is not of type string",
        "parameter 'y': the default '3' is not of type integer",
    ]
    assert metadata_problems({"name": "other", "title": "t"}, "folder") == [
        "'name' is 'other' but the folder is 'folder'"
    ]
    assert metadata_problems([], "x") == ["the metadata must be a mapping"]


def test_a_broken_template_is_skipped_with_its_problem(tmp_path: Path) -> None:
    write_template(tmp_path, "good")
    write_template(tmp_path, "broken", tags="[Upper]")
    (tmp_path / "no-workflow").mkdir()
    (tmp_path / "no-workflow" / "template.yaml").write_text("name: no-workflow\ntitle: T\n", encoding="utf-8")
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "template.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    (tmp_path / "not-a-template").mkdir()
    library = load_library([Source("project", tmp_path)])
    assert library.names() == ["good"]
    assert [problem.replace(str(tmp_path), "T") for problem in library.problems] == [
        "T/broken/template.yaml: 'tags' must be a list of lowercase words ([a-z0-9][a-z0-9+.-]*)",
        "T/no-workflow/template.yaml: there is no workflow.yaml beside it",
        "T/unreadable/template.yaml: cannot read the template metadata: "
        "line 2: expected ',' or ']', but got '<stream end>'",
    ]


def test_first_source_wins_and_the_rest_are_shadowed(tmp_path: Path) -> None:
    write_template(tmp_path / "project", "alpha", title="Project alpha")
    write_template(tmp_path / "user", "alpha", title="User alpha")
    write_template(tmp_path / "user", "beta", title="User beta")
    write_template(tmp_path / "builtin", "alpha", title="Built-in alpha")
    sources = [
        Source("project", tmp_path / "project"),
        Source("user", tmp_path / "user"),
        Source("missing", tmp_path / "missing"),
        Source("built-in", tmp_path / "builtin"),
    ]
    library = load_library(sources)
    assert {name: (t.title, t.source) for name, t in library.templates.items()} == {
        "alpha": ("Project alpha", "project"),
        "beta": ("User beta", "user"),
    }
    assert [(t.source, t.title) for t in library.shadowing(library.get("alpha"))] == [
        ("user", "User alpha"),
        ("built-in", "Built-in alpha"),
    ]


def test_the_real_sources_are_project_then_user_data_then_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMFLOW_HOME")
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(tmp_path / "data" / appname))
    project = tmp_path / "project"
    nested = project / "src" / "deep"
    nested.mkdir(parents=True)
    write_template(project / ".llmflow" / "templates", "summarize-folder", title="Our own summary")
    write_template(tmp_path / "data" / "llmflow" / "templates", "mine", title="Mine")
    monkeypatch.chdir(nested)  # found like git finds .git: in a parent folder
    library = load_library()
    summary = library.get("summarize-folder")
    assert (summary.title, summary.source) == ("Our own summary", "project")
    assert [t.source for t in library.shadowing(summary)] == ["built-in"]
    assert library.get("mine").source == "user"
    assert library.get("starter").source == "built-in"


def test_unknown_names_suggest_the_closest() -> None:
    library = load_library([Source("built-in", BUILT_IN)])
    with pytest.raises(UsageError, match=r"^unknown template 'sumarize-folder'; did you mean 'summarize-folder'\?$"):
        library.get("sumarize-folder")
    with pytest.raises(UsageError, match=r"^unknown template 'zzz'; see `llmflow templates list`$"):
        library.get("zzz")


def test_search_ranks_name_over_tag_over_title_over_description() -> None:
    library = load_library([Source("built-in", BUILT_IN)])
    assert [t.name for t in search(library, "Summarize")][:2] == ["summarize-folder", "webhook-notifier"]
    assert [t.name for t in search(library, "APPROVAL")] == ["deploy-gate"]
    assert [t.name for t in search(library, "shell approval")] == ["deploy-gate"]
    assert search(library, "no-such-thing") == []
    with pytest.raises(UsageError, match="empty"):
        search(library, "   ")


def test_search_weights(tmp_path: Path) -> None:
    write_template(tmp_path, "widget", title="Plain", tags="[other]")
    write_template(tmp_path, "tagged", title="Plain", tags="[widget]")
    write_template(tmp_path, "titled", title="Build a Widget", tags="[other]")
    folder = write_template(tmp_path, "described", title="Plain", tags="[other]")
    (folder / "template.yaml").write_text(
        "name: described\ntitle: Plain\ndescription: Makes a widget.\ntags: [other]\n", encoding="utf-8"
    )
    write_template(tmp_path, "unrelated", title="Plain", tags="[other]")
    library = load_library([Source("built-in", tmp_path)])
    assert [t.name for t in search(library, "widget")] == ["widget", "tagged", "titled", "described"]
