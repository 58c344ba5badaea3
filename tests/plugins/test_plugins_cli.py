"""``llmflow plugins`` lists what a run loads and from where; a plugin that does not load is one line and exit 2
for every command; ``validate`` and ``run --dry-run`` never import plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_helpers import Project

from llmflow.actions import builtin_actions

PLUGIN = """
from pathlib import Path
from llmflow.plugins import Decision, hookimpl

(Path(__file__).parent / "imported").write_text("yes")


@hookimpl
def before_step(step, context):
    return None


@hookimpl
def on_error(step, context, error):
    return None
"""


def builtin_lines() -> list[str]:
    return [
        "built-in     llmflow.actions",
        "             hooks: register_actions",
        f"             actions: {', '.join(sorted(builtin_actions()))}",
        "built-in     llmflow.providers",
        "             hooks: register_providers",
        "             providers: anthropic, mock, openai",
    ]


def test_plugins_lists_the_built_ins_and_a_workflow_s_files(project: Project) -> None:
    plugin = project.write("hooks.py", PLUGIN)
    project.workflow("plugins: [./hooks.py]\nsteps: [{run: echo}]\n")
    done = project.cli("plugins", "flow.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        *builtin_lines(),
        f"file         {plugin}",
        "             hooks: before_step, on_error",
    ]
    assert done.stderr == ""


def test_plugins_json_names_where_each_plugin_comes_from(project: Project) -> None:
    plugin = project.write("hooks.py", PLUGIN)
    project.workflow("plugins: [./hooks.py]\nsteps: [{run: echo}]\n")
    done = project.cli("plugins", "flow.yaml", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["plugins"]
    assert [(p["name"], p["source"]) for p in listed] == [
        ("llmflow.actions", "builtin"),
        ("llmflow.providers", "builtin"),
        (str(plugin), "file"),
    ]
    assert listed[2] == {
        "name": str(plugin),
        "source": "file",
        "path": str(plugin),
        "hooks": ["before_step", "on_error"],
        "actions": [],
        "providers": [],
        "filters": [],
        "functions": [],
    }


def test_plugins_shows_an_entry_point_with_its_distribution(project: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "tidy_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tidy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[llmflow]\ntidy = tidy_plugin\n")
    (site / "tidy_plugin.py").write_text(
        "from llmflow.plugins import hookimpl\n\n@hookimpl\ndef register_sinks(sinks):\n    pass\n"
    )
    done = project.cli("plugins", pythonpath=site)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[len(builtin_lines()) :] == [
        "entry point  tidy = tidy_plugin  (tidy-plugin 1.0)",
        "             hooks: register_sinks",
    ]


def test_a_broken_entry_point_is_one_line_and_exit_2(project: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "oops_plugin-2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: oops-plugin\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[llmflow]\noops = oops_plugin\n")
    (site / "oops_plugin.py").write_text("raise RuntimeError('half installed')\n")
    project.workflow("steps: [{run: echo}]\n")
    expected = (
        "error: plugin entry point 'oops = oops_plugin' (oops-plugin 2.0): importing it failed: "
        "RuntimeError: half installed\n"
    )
    for args in (["plugins"], ["run", "flow.yaml"]):
        done = project.cli(*args, pythonpath=site)
        assert (done.returncode, done.stderr) == (2, expected), args


def test_run_with_a_plugin_that_fails_to_import_exits_2_without_a_traceback(project: Project) -> None:
    bad = project.write("bad.py", "import os\n\nvalue = undefined_name + 1\n")
    project.workflow("plugins: [./bad.py]\nsteps: [{run: echo}]\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert done.returncode == 2
    why = "importing it failed: line 3: NameError: name 'undefined_name' is not defined"
    assert done.stderr == f"error: plugin ./bad.py ({bad}) at flow.yaml:3:11: {why}\n"
    assert not (project.root / "state" / "runs").exists() or not any((project.root / "state" / "runs").iterdir())


def test_validate_and_dry_run_never_import_plugins(project: Project) -> None:
    project.write("hooks.py", PLUGIN)
    project.workflow("plugins: [./hooks.py]\nsteps: [{run: echo}]\n")
    assert project.cli("validate", "flow.yaml").returncode == 0
    assert project.cli("run", "flow.yaml", "--dry-run").returncode == 0
    assert not (project.root / "imported").exists()
    assert project.cli("run", "flow.yaml", "-q").returncode == 0
    assert (project.root / "imported").exists()


def test_plugins_of_an_invalid_workflow_shows_its_diagnostics(project: Project) -> None:
    project.workflow("plugins: [./missing.py]\nsteps: [{run: echo}]\n")
    done = project.cli("plugins", "flow.yaml")
    assert done.returncode == 2
    assert "plugin file './missing.py' does not exist" in done.stderr


EXITING = """
import os
import sys

from llmflow.engine.actions import ActionResult
from llmflow.plugins import hookimpl

WHERE = os.environ["EXIT_IN"]


def stop(where):
    if WHERE == where:
        sys.exit(7)


async def shout(ctx):
    stop("action")
    return ActionResult(output="HI")


def loud(value):
    stop("filter")
    return str(value).upper()


def ready():
    stop("function")
    return True


@hookimpl
def register_actions(registry):
    stop("register_actions")
    registry.register("shout", shout)


@hookimpl
def register_filters(filters):
    filters.register("loud", loud)


@hookimpl
def register_functions(functions):
    functions.register("ready", ready)


@hookimpl
def before_step(step, context):
    if step.id == "b":
        stop("before_step")
"""


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("action", "step 'a': the shout action failed: SystemExit: 7"),
        ("filter", "step 'b', field 'run': plugin filter 'loud' failed: SystemExit: 7"),
        ("function", "step 'b', field 'if': plugin function 'ready' failed: SystemExit: 7"),
        ("before_step", "step 'b': the plugin hook before_step failed: SystemExit: 7"),
    ],
    ids=["action", "filter", "function", "before_step"],
)
def test_a_plugin_that_calls_sys_exit_fails_its_step_not_the_process(project: Project, where: str, error: str) -> None:
    project.write("exiting.py", EXITING)
    project.workflow(
        """
        plugins: [./exiting.py]
        steps:
          - {id: a, action: shout}
          - {id: b, if: ready(), run: "echo {{ steps.a.output | loud }}"}
        """
    )
    done = project.cli("run", "flow.yaml", "--state-dir", "state", "-q", env={"EXIT_IN": where})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"error: {error}" in done.stderr
    (run_id,) = project.runs()
    run = json.loads((project.state / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
    assert (run["status"], run["error"]) == ("failed", error)


def test_a_registration_hook_that_calls_sys_exit_is_one_line_and_exit_2(project: Project) -> None:
    plugin = project.write("exiting.py", EXITING)
    project.workflow("plugins: [./exiting.py]\nsteps: [{id: a, action: shout}]\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state", env={"EXIT_IN": "register_actions"})
    assert done.returncode == 2
    why = "register_actions failed: SystemExit: 7"
    assert done.stderr == f"error: plugin ./exiting.py ({plugin}) at flow.yaml:3:11: {why}\n"
    assert project.runs() == []


def test_a_plugin_that_does_not_load_is_named_with_the_plugins_entry_that_lists_it(project: Project) -> None:
    project.write("sub.yaml", "version: 1\nname: sub\nplugins:\n  - team.missing_hooks\nsteps: [{run: echo}]\n")
    project.workflow("steps:\n  - {id: call, workflow: ./sub.yaml}\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert done.returncode == 2
    assert done.stderr == (
        "error: plugin module team.missing_hooks at sub.yaml:4:5: importing it failed: "
        "ModuleNotFoundError: No module named 'team'\n"
    )
    assert project.runs() == []
