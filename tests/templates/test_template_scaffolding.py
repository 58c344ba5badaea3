"""Scaffolding: ``[[ parameter ]]`` placeholders filled in safely, the workflow's own ``{{ }}`` kept byte for byte."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import llmflow
from llmflow.errors import UsageError
from llmflow.resources import templates_dir
from llmflow.scaffolding import (
    parse_assignments,
    placement_problems,
    plan_scaffold,
    render_workflow,
    resolve_values,
    slugify,
    workflow_stem,
)
from llmflow.templating import Template, read_template

BUILT_IN = templates_dir()
FOLDERS = sorted(path for path in BUILT_IN.iterdir() if (path / "template.yaml").is_file())
ENGINE_SYNTAX = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

HOSTILE = [
    "a: b # not a comment \"double\" 'single' \\ backslash",
    "{{ env.HOME }} {% raw %} {# x #} ${HOME} $(id) `id`",
    "two\nlines\r\n\ttab \u2028 \u0085 \ufeff é 😀",
    '"]]" [[ model ]] --- ... &anchor *alias !!python/object:os.system',
    "",
]


def template_in(tmp_path: Path, workflow: str, parameters: str) -> Template:
    """A template folder holding ``workflow`` with ``parameters`` (YAML under ``parameters:``)."""
    folder = tmp_path / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(
        f"name: demo\ntitle: Demo\ndescription: A demo.\ntags: [demo]\nparameters:\n{parameters}", encoding="utf-8"
    )
    (folder / "workflow.yaml").write_text(workflow, encoding="utf-8")
    return read_template(folder, "project")


DEMO = """\
# A demo (comments are copied as they are)
version: 1
name: demo
description: "Notes about [[ topic ]]"
inputs:
  topic: {type: string, default: "[[ topic ]]", description: "What the note is about, e.g. [[ topic ]]"}
  rounds: {type: integer, default: "[[ rounds ]]"}
  loud: {type: boolean, default: "[[ loud ]]"}
models:
  writer: "[[ model ]]"
limits:
  max_iterations: "[[ rounds ]]"
steps:
  - id: say
    run: echo "{{ inputs.topic }} {{ inputs.rounds }} {{ inputs.loud }}"
  - id: note
    llm: {model: writer, prompt: "About {{ inputs.topic }}: [[ undeclared ]] {% if inputs.loud %}LOUD{% endif %}"}
outputs:
  topic: "{{ inputs.topic }}"
  said: "{{ steps.say.output }}"
  note: "{{ steps.note.output }}"
"""
DEMO_PARAMETERS = """\
  topic: {description: The topic, default: release notes}
  rounds: {description: How many rounds, type: integer, default: 3}
  loud: {description: Shout, type: boolean, default: false}
  model: {description: The model, default: mock/echo}
"""


def load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def test_defaults_fill_every_placeholder(tmp_path: Path) -> None:
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    text = render_workflow(template, "my-demo", resolve_values(template, {}))
    assert text.splitlines()[:5] == [
        "# A demo (comments are copied as they are)",
        "version: 1",
        "name: my-demo",
        'description: "Notes about release notes"',
        "inputs:",
    ]
    data = load(text)
    assert data["inputs"]["topic"] == {
        "type": "string",
        "default": "release notes",
        "description": "What the note is about, e.g. release notes",
    }
    assert data["inputs"]["rounds"]["default"] == 3 and data["limits"]["max_iterations"] == 3
    assert data["inputs"]["loud"]["default"] is False
    assert data["models"]["writer"] == "mock/echo"
    assert "[[ undeclared ]]" in data["steps"][1]["llm"]["prompt"]  # not a parameter: ordinary text


def test_set_values_are_converted_to_their_type(tmp_path: Path) -> None:
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    values = resolve_values(template, {"rounds": " 7 ", "loud": "YES", "topic": "42"})
    data = load(render_workflow(template, "demo", values))
    assert data["inputs"]["rounds"]["default"] == 7
    assert data["inputs"]["loud"]["default"] is True
    assert data["inputs"]["topic"]["default"] == "42"  # a string parameter stays a string
    for name, bad, kind in [("rounds", "1.5", "an integer"), ("loud", "maybe", "a boolean")]:
        with pytest.raises(UsageError, match=f"^the value of '{name}' must be {kind}, not '{bad}'$"):
            resolve_values(template, {name: bad})


@pytest.mark.parametrize("value", HOSTILE, ids=["yaml-syntax", "template-and-shell", "whitespace", "tricks", "empty"])
def test_hostile_values_stay_data(tmp_path: Path, value: str) -> None:
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    raw = template.workflow_text()
    text = render_workflow(template, "demo", resolve_values(template, {"topic": value}))
    data = load(text)
    assert data["inputs"]["topic"]["default"] == value
    assert data["description"] == f"Notes about {value}"
    assert len(text.splitlines()) == len(raw.splitlines())  # a value never adds a line
    # The workflow's own templates are exactly the ones written in the template file.
    outside_values = text.replace(_quoted(value), "")
    assert ENGINE_SYNTAX.findall(outside_values) == ENGINE_SYNTAX.findall(raw)


def _quoted(value: str) -> str:
    from llmflow.scaffolding import yaml_quoted_content

    return yaml_quoted_content(value)


def test_a_hostile_value_runs_as_literal_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from llmflow.runtime import RunOptions, start_run

    value = "{{ env.HOME }} \"$(touch PWNED)\" 'x'; touch PWNED # {% if true %}T{% endif %}\nsecond: line"
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    scaffold = plan_scaffold(template, "hostile", tmp_path / "out", {"topic": value})
    scaffold.write()
    assert [str(problem) for problem in llmflow.validate(scaffold.workflow)] == []
    monkeypatch.chdir(tmp_path)
    options = RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False)
    summary = asyncio.run(start_run(llmflow.load(scaffold.workflow), {}, options))
    assert summary.status == "succeeded", summary.error
    assert summary.outputs["topic"] == value
    assert summary.outputs["said"] == f"{value} 3 false"
    assert not (tmp_path / "out" / "PWNED").exists()
    assert summary.outputs["note"] == f"About {value}: [[ undeclared ]] "


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_built_in_templates_keep_their_own_templates_byte_for_byte(folder: Path) -> None:
    template = read_template(folder, "built-in")
    raw = template.workflow_text()
    text = render_workflow(template, "scaffolded", resolve_values(template, {}))
    raw_lines, lines = raw.splitlines(), text.splitlines()
    assert len(lines) == len(raw_lines)
    for before, after in zip(raw_lines, lines, strict=True):
        if "[[" not in before and not before.startswith("name:"):
            assert after == before
    assert ENGINE_SYNTAX.findall(text) == ENGINE_SYNTAX.findall(raw)
    assert load(text)["name"] == "scaffolded"


@pytest.mark.parametrize(
    ("workflow", "problem"),
    [
        ('steps:\n  - run: "echo [[ topic ]]"\n', "line 2: [[ topic ]] is text, allowed only where the engine"),
        ('steps:\n  - llm: {prompt: "[[ topic ]]"}\n', "line 2: [[ topic ]] is text, allowed only where the engine"),
        ('steps:\n  - if: "[[ topic ]]"\n', "line 2: [[ topic ]] is text, allowed only where the engine"),
        ("description: [[ topic ]]\n", "line 1: [[ topic ]] must sit inside a double-quoted YAML value"),
        ("description: '[[ topic ]]'\n", "line 1: [[ topic ]] must sit inside a double-quoted YAML value"),
        ("# [[ topic ]]\ndescription: x\n", "line 1: [[ topic ]] must sit inside a double-quoted YAML value"),
        (
            'limits: {max_iterations: "[[ rounds ]] times"}\n',
            "line 1: [[ rounds ]] (integer) must be the whole quoted value",
        ),
        ("description: x\n", "parameter 'topic' is never used in workflow.yaml"),
    ],
    ids=["run", "prompt", "condition", "plain", "single-quoted", "comment", "typed-partial", "unused"],
)
def test_placeholders_outside_the_rules_are_refused(tmp_path: Path, workflow: str, problem: str) -> None:
    parameters = "  topic: {description: T, default: t}\n"
    if "rounds" in workflow:
        parameters = "  rounds: {description: R, type: integer, default: 2}\n"
    template = template_in(tmp_path, workflow, parameters)
    problems = placement_problems(template)
    assert problems and problems[0].startswith(problem), problems
    with pytest.raises(UsageError, match=r"^template 'demo' is broken: "):
        render_workflow(template, "demo", resolve_values(template, {}))


def test_set_syntax_and_names_are_checked(tmp_path: Path) -> None:
    assert parse_assignments(["a=1", "b==2", "a=3", "c="]) == {"a": "3", "b": "=2", "c": ""}
    for bad in ["novalue", "=x", "bad name=1", "9x=1"]:
        with pytest.raises(UsageError, match=f"^bad --set '{re.escape(bad)}': expected NAME=VALUE$"):
            parse_assignments([bad])
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    with pytest.raises(UsageError, match=r"^template 'demo' has no parameter 'colour'; its parameters are: topic, "):
        resolve_values(template, {"colour": "red"})
    bare = template_in(tmp_path / "bare", "version: 1\nname: demo\nsteps: []\n", "")
    with pytest.raises(UsageError, match=r"it has no parameters$"):
        resolve_values(bare, {"x": "1"})


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("weekly-report", "weekly-report"),
        ("Weekly Report!", "weekly-report"),
        ("my_flow", "my_flow"),
        ("Café déjà vu", "cafe-deja-vu"),
        ("2025 plan", "workflow-2025-plan"),
        ("--x--", "x"),
        ("null", "null"),
    ],
)
def test_slugs(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_a_reserved_word_slug_is_quoted(tmp_path: Path) -> None:
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    assert load(render_workflow(template, "null", resolve_values(template, {})))["name"] == "null"


def test_names_are_file_names() -> None:
    assert workflow_stem("report") == "report"
    assert workflow_stem("report.yaml") == "report"
    for bad in ["a/b", "../x", ".hidden", "", "  ", "a\\b", "tab\there"]:
        with pytest.raises(UsageError):
            workflow_stem(bad)
    with pytest.raises(UsageError, match="no letter or digit"):
        slugify("???")


def test_the_plan_lists_the_workflow_then_the_sample_files(tmp_path: Path) -> None:
    template = template_in(tmp_path, DEMO, DEMO_PARAMETERS)
    (template.folder / "data" / "nested").mkdir(parents=True)
    (template.folder / "data" / "nested" / "a.txt").write_text("a", encoding="utf-8")
    (template.folder / "lib").mkdir()
    (template.folder / "lib" / "sub.yaml").write_text("{{ kept }} [[ topic ]]", encoding="utf-8")
    for skipped in ("out/result.md", ".llmflow/x", "__pycache__/m.pyc", ".hidden"):
        (template.folder / skipped).parent.mkdir(parents=True, exist_ok=True)
        (template.folder / skipped).write_text("x", encoding="utf-8")
    target = tmp_path / "project"
    scaffold = plan_scaffold(template, "notes", target, {})
    assert [path.relative_to(target).as_posix() for path, _ in scaffold.files] == [
        "notes.yaml",
        "data/nested/a.txt",
        "lib/sub.yaml",
    ]
    assert dict(scaffold.files)[target / "lib" / "sub.yaml"] == b"{{ kept }} [[ topic ]]"  # copied as is
    assert scaffold.conflicts() == [] and scaffold.blocked() == []
    (target / "data").mkdir(parents=True)
    (target / "data" / "nested").write_text("a file where a folder goes", encoding="utf-8")
    (target / "notes.yaml").mkdir()
    assert scaffold.blocked() == [target / "data" / "nested", target / "notes.yaml"]
