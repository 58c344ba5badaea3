"""``llmflow templates list|show|search`` and ``llmflow new``: whole outputs and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pytest
from typer.testing import CliRunner

import llmflow.resources
from llmflow.cli.app import app

HELLO_WORKFLOW = """\
version: 1
name: hello
description: "Greets everyone in [[ names ]]."
inputs:
  names: {type: string, description: A file of names, default: "[[ names ]]"}
  greeting: {type: string, description: "How to greet", default: "[[ greeting ]]"}
steps:
  - id: people
    run: [cat, "{{ inputs.names }}"]
    parse: lines
  - id: greet
    map:
      items: "{{ steps.people.output }}"
      steps:
        - run: echo "{{ inputs.greeting }}, {{ item }}!"
outputs:
  greetings: "{{ steps.greet.output }}"
"""


@dataclass
class Library:
    builtin: Path
    user: Path
    project: Path


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def template(root: Path, name: str, title: str, tags: str, parameters: str = "", workflow: str = "") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "template.yaml").write_text(
        f"name: {name}\ntitle: {title}\ndescription: >-\n  The {title.lower()} template.\ntags: {tags}\n{parameters}",
        encoding="utf-8",
    )
    body = workflow or f"version: 1\nname: {name}\nsteps:\n  - id: say\n    run: echo {name}\n"
    (folder / "workflow.yaml").write_text(body, encoding="utf-8")
    return folder


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Library]:
    """Three sources with known templates; the current folder is an empty project folder."""
    builtin, user = tmp_path / "builtin", tmp_path / "userdata" / "llmflow" / "templates"
    project = Path(os.environ["LLMFLOW_HOME"]) / "templates"
    hello = template(
        builtin,
        "hello",
        "Say hello",
        "[demo, shell]",
        "parameters:\n"
        "  names: {description: The default file of names, default: data/names.txt}\n"
        "  greeting: {description: The default greeting, default: Hello}\n",
        HELLO_WORKFLOW,
    )
    (hello / "data").mkdir()
    (hello / "data" / "names.txt").write_text("Ada\nGrace\n", encoding="utf-8")
    template(builtin, "report", "Write a report", "[report, demo]")
    template(user, "notes", "Team notes", "[notes]")
    template(project, "report", "Our report", "[report, ours]")
    monkeypatch.setattr(llmflow.resources, "templates_dir", lambda: builtin)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda appname: str(tmp_path / "userdata" / appname))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield Library(builtin, user, project)


def cli(*args: str) -> Outcome:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def test_list_shows_each_name_once_with_its_source(library: Library) -> None:
    result = cli("templates", "list")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == (
        "name    title       tags          source\n"
        "hello   Say hello   demo, shell   built-in\n"
        "notes   Team notes  notes         user\n"
        "report  Our report  report, ours  project\n"
    )


def test_list_json(library: Library) -> None:
    result = cli("templates", "list", "--json")
    assert result.code == 0
    assert json.loads(result.stdout) == [
        {
            "name": "hello",
            "title": "Say hello",
            "description": "The say hello template.",
            "tags": ["demo", "shell"],
            "source": "built-in",
        },
        {
            "name": "notes",
            "title": "Team notes",
            "description": "The team notes template.",
            "tags": ["notes"],
            "source": "user",
        },
        {
            "name": "report",
            "title": "Our report",
            "description": "The our report template.",
            "tags": ["report", "ours"],
            "source": "project",
        },
    ]


def test_list_warns_about_a_broken_template_and_lists_the_rest(library: Library) -> None:
    (library.user / "broken").mkdir()
    (library.user / "broken" / "template.yaml").write_text("name: broken\n", encoding="utf-8")
    result = cli("templates", "list", "--json")
    assert result.code == 0
    assert [item["name"] for item in json.loads(result.stdout)] == ["hello", "notes", "report"]
    assert result.stderr == (
        f"warning: skipped a template: {library.user}/broken/template.yaml: 'title' must be a non-empty string; "
        "there is no workflow.yaml beside it\n"
    )


def test_show_prints_metadata_parameters_files_then_the_workflow(library: Library) -> None:
    result = cli("templates", "show", "hello")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == (
        "hello: Say hello\n"
        f"source: built-in ({library.builtin / 'hello'})\n"
        "tags: demo, shell\n"
        "\n"
        "The say hello template.\n"
        "\n"
        "Parameters (set with --set NAME=VALUE):\n"
        "  names     The default file of names\n"
        '            default: "data/names.txt"\n'
        "  greeting  The default greeting\n"
        '            default: "Hello"\n'
        "\n"
        "Files copied beside the workflow:\n"
        "  data/names.txt\n"
        "\n"
        "--- workflow.yaml ---\n" + HELLO_WORKFLOW
    )


def test_show_names_what_a_template_shadows(library: Library) -> None:
    result = cli("templates", "show", "report")
    assert result.code == 0
    assert result.stdout.splitlines()[:4] == [
        "report: Our report",
        f"source: project ({library.project / 'report'})",
        f"shadows: built-in ({library.builtin / 'report'})",
        "tags: report, ours",
    ]
    assert "Parameters (set with --set NAME=VALUE):\n  (none)\n" in result.stdout


def test_show_an_unknown_template(library: Library) -> None:
    assert cli("templates", "show", "helo") == Outcome(2, "", "error: unknown template 'helo'; did you mean 'hello'?\n")


def test_search_ranks_and_prints_a_table(library: Library) -> None:
    result = cli("templates", "search", "REPORT")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == ("name    title       tags          source\nreport  Our report  report, ours  project\n")
    result = cli("templates", "search", "demo", "--json")
    assert [item["name"] for item in json.loads(result.stdout)] == ["hello"]  # the project's report has no demo tag
    assert cli("templates", "search", "nothing-like-it") == Outcome(0, "", "No template matches 'nothing-like-it'.\n")
    assert cli("templates", "search", "nothing-like-it", "--json") == Outcome(0, "[]\n", "")


def test_new_writes_validates_and_prints_the_next_command(library: Library) -> None:
    result = cli("new", "Team Greeting", "--template", "hello", "--set", "greeting=Hi: there")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == (
        "Created from template 'hello' (built-in):\n"
        "  Team Greeting.yaml\n"
        "  data/names.txt\n"
        "Team Greeting.yaml is valid.\n"
        "Next: llmflow run 'Team Greeting.yaml'\n"
    )
    text = Path("Team Greeting.yaml").read_text(encoding="utf-8")
    assert text == HELLO_WORKFLOW.replace("name: hello", "name: team-greeting").replace(
        "[[ names ]]", "data/names.txt"
    ).replace("[[ greeting ]]", "Hi: there")
    assert Path("data/names.txt").read_text(encoding="utf-8") == "Ada\nGrace\n"


def test_new_into_a_folder(library: Library) -> None:
    result = cli("new", "flow", "-t", "hello", "--dir", "sub/dir")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[1:3] == ["  sub/dir/flow.yaml", "  sub/dir/data/names.txt"]
    assert result.stdout.endswith("Next: llmflow run sub/dir/flow.yaml\n")
    assert Path("sub/dir/flow.yaml").is_file() and Path("sub/dir/data/names.txt").is_file()


def test_new_without_a_template_uses_the_starter(library: Library) -> None:
    result = cli("new", "x")
    assert result == Outcome(2, "", "error: unknown template 'starter'; see `llmflow templates list`\n")


def test_new_refuses_to_overwrite_and_writes_nothing(library: Library) -> None:
    Path("data").mkdir()
    Path("data/names.txt").write_text("mine\n", encoding="utf-8")
    result = cli("new", "flow", "-t", "hello")
    assert result == Outcome(
        1, "", "error: data/names.txt already exists; nothing was written (use --force to overwrite)\n"
    )
    assert not Path("flow.yaml").exists()
    assert Path("data/names.txt").read_text(encoding="utf-8") == "mine\n"
    Path("flow.yaml").write_text("mine\n", encoding="utf-8")
    result = cli("new", "flow.yaml", "-t", "hello")
    assert result.stderr == (
        "error: flow.yaml, data/names.txt already exist; nothing was written (use --force to overwrite)\n"
    )
    result = cli("new", "flow", "-t", "hello", "--force")
    assert result.code == 0
    assert result.stdout.splitlines()[1:3] == ["  flow.yaml  (overwritten)", "  data/names.txt  (overwritten)"]
    assert Path("data/names.txt").read_text(encoding="utf-8") == "Ada\nGrace\n"


def test_new_with_force_replaces_a_symbolic_link_instead_of_writing_where_it_points(library: Library) -> None:
    outside = Path("..", "outside.txt").resolve()
    outside.write_text("keep me\n", encoding="utf-8")
    Path("flow.yaml").symlink_to(outside)
    result = cli("new", "flow", "-t", "hello", "--force")
    assert result.code == 0, result.stderr
    assert outside.read_text(encoding="utf-8") == "keep me\n"
    assert not Path("flow.yaml").is_symlink()
    assert Path("flow.yaml").read_text(encoding="utf-8").startswith("version: 1")
    assert sorted(path.name for path in Path().glob(".*.tmp")) == []


def test_new_cannot_replace_a_folder_even_with_force(library: Library) -> None:
    Path("flow.yaml").mkdir()
    assert cli("new", "flow", "-t", "hello", "--force") == Outcome(
        1, "", "error: cannot write here: flow.yaml is in the way\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "helo"], "error: unknown template 'helo'; did you mean 'hello'?"),
        (
            ["-t", "hello", "--set", "colour=red"],
            "error: template 'hello' has no parameter 'colour'; its parameters are: names, greeting",
        ),
        (["-t", "hello", "--set", "greeting"], "error: bad --set 'greeting': expected NAME=VALUE"),
        (["-t", "hello", "--set", "=Hi"], "error: bad --set '=Hi': expected NAME=VALUE"),
    ],
    ids=["unknown-template", "unknown-parameter", "no-equals", "no-name"],
)
def test_new_usage_errors(library: Library, args: list[str], message: str) -> None:
    assert cli("new", "flow", *args) == Outcome(2, "", message + "\n")
    assert list(Path().iterdir()) == []


def test_new_refuses_a_path_as_name(library: Library) -> None:
    result = cli("new", "../escape", "-t", "hello")
    assert result == Outcome(
        2, "", "error: '../escape' is not a workflow name: give a file name without folders (use --dir for those)\n"
    )


def test_new_reports_an_invalid_result(library: Library) -> None:
    broken = "version: 1\nname: bad\nsteps:\n  - id: x\n    nope: 1\n"
    template(library.project, "bad", "Bad", "[broken]", workflow=broken)
    result = cli("new", "flow", "-t", "bad")
    assert result.code == 1
    assert result.stdout == "Created from template 'bad' (project):\n  flow.yaml\n"
    assert result.stderr.startswith("flow.yaml:4:5: error[missing-kind]: this step does not say what to do")
    assert result.stderr.endswith("error: flow.yaml is not valid; fix the problems above before running it\n")


def test_a_project_template_shadows_the_built_in_one_when_scaffolding(library: Library) -> None:
    result = cli("new", "mine", "-t", "report")
    assert result.code == 0
    assert result.stdout.startswith("Created from template 'report' (project):\n")
    assert "run: echo report" in Path("mine.yaml").read_text(encoding="utf-8")


def test_the_commands_are_in_the_help() -> None:
    result = cli("--help")
    assert "new " in result.stdout and "templates " in result.stdout
    result = cli("templates", "--help")
    assert all(name in result.stdout for name in ("list", "show", "search"))


def real_cli(cwd: Path, *args: str) -> Outcome:
    """The real CLI in a subprocess, with the test's LLMFLOW_HOME (so its project templates)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "llmflow", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def test_titles_are_shown_as_written_not_read_as_markup_or_terminal_controls(tmp_path: Path) -> None:
    project = Path(os.environ["LLMFLOW_HOME"]) / "templates"
    title = '"Fix [/] and [bold]names[/bold] \\e]0;owned\\a"'
    template(project, "odd", title, "[odd]")
    expected_title = "Fix [/] and [bold]names[/bold] \\x1b]0;owned\\x07"
    for args in (("templates", "list"), ("templates", "search", "odd")):
        result = real_cli(tmp_path, *args)
        assert (result.code, result.stderr) == (0, ""), args
        row = next(line for line in result.stdout.splitlines() if line.startswith("odd "))
        assert re.split(r"  +", row) == ["odd", expected_title, "odd", "project"], args
        assert "\x1b" not in result.stdout
    result = real_cli(tmp_path, "templates", "show", "odd")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"odd: {expected_title}\n")
    assert "\x1b" not in result.stdout and "\a" not in result.stdout
