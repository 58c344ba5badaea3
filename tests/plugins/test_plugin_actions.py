"""``action:`` steps and hooks run an action a plugin registers, by name: their ``with:`` is rendered and handed
over as the configuration; a name no plugin registers stops ``run`` and ``resume`` before anything is written;
``validate``, ``graph`` and ``run --dry-run`` show such steps without importing the plugin."""

from __future__ import annotations

import json

import pytest
from plugin_helpers import Project

from llmflow.errors import PluginError

ACTIONS = """
from pathlib import Path

from llmflow.engine.actions import ActionResult
from llmflow.plugins import hookimpl

(Path(__file__).parent / "imported").write_text("yes")


async def shout(ctx):
    return ActionResult(output=str(ctx.config.get("text", "")).upper() + "!" * int(ctx.config.get("times", 1)))


async def tally(ctx):
    log = ctx.workflow_dir / "tally.log"
    with log.open("a") as stream:
        stream.write(str(ctx.config.get("label", ctx.path)) + "\\n")
    return ActionResult(output=len(log.read_text().splitlines()), extra={"log": log.name})


@hookimpl
def register_actions(registry):
    registry.register("shout", shout)
    registry.register("tally", tally)
"""


def run_files(project: Project, run_id: str) -> dict[str, bytes]:
    """Every file of a run folder with its content."""
    folder = project.state / "runs" / run_id
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def actions(project: Project) -> Project:
    """A project with ``actions.py``, a plugin registering the actions ``shout`` and ``tally``."""
    project.write("actions.py", ACTIONS)
    return project


# -- running -----------------------------------------------------------------------------------------------
def test_an_action_step_runs_the_plugin_action_and_later_steps_see_its_output(actions: Project) -> None:
    summary = actions.run(
        """
        inputs:
          name: {type: string, default: ada}
        plugins: [./actions.py]
        steps:
          - id: loud
            action: shout
            with: {text: "hello {{ inputs.name }}", times: "{{ 1 + 2 }}"}
          - id: echo
            run: echo "{{ steps.loud.output }} said"
          - action: tally
        outputs:
          loud: "{{ steps.loud.output }}"
          echo: "{{ steps.echo.output }}"
          status: "{{ steps.loud.status }}"
        """,
        {"name": "bob"},
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"loud": "HELLO BOB!!!", "echo": "HELLO BOB!!! said", "status": "succeeded"}
    assert actions.lines("tally.log") == ["action-3"]  # no `label`: the action saw an empty `with`
    started = actions.events(summary.run_id, "step.started")
    assert [(event["path"], event["data"]["kind"]) for event in started] == [
        ("loud", "shout"),
        ("echo", "run"),
        ("action-3", "tally"),
    ]
    assert actions.record(summary.run_id, "action-3")["output"] == 1


def test_a_sub_workflow_runs_an_action_its_parent_s_plugin_registers(actions: Project) -> None:
    actions.write(
        "lib/child.yaml",
        """
        version: 1
        name: child
        inputs: {text: string}
        steps:
          - {id: loud, action: shout, with: {text: "{{ inputs.text }}"}}
        outputs: {loud: "{{ steps.loud.output }}"}
        """,
    )
    summary = actions.run(
        """
        plugins: [./actions.py]
        steps:
          - {id: child, workflow: lib/child.yaml, with: {text: inner}}
        outputs: {child: "{{ steps.child.output.loud }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"child": "INNER!"}


def test_a_yaml_hook_runs_a_plugin_action(actions: Project) -> None:
    summary = actions.run(
        """
        plugins: [./actions.py]
        hooks:
          - id: count
            on: step.completed
            steps: "l*"
            action: tally
            with: {label: "{{ event.data.id }}={{ steps[event.data.id].output }}"}
        steps:
          - {id: loud, action: shout, with: {text: hi}}
          - {id: other, run: echo}
          - {id: last, action: shout, with: {text: bye}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert sorted(actions.lines("tally.log")) == ["last=BYE!", "loud=HI!"]
    assert actions.events(summary.run_id, "hook.failed") == []


def test_a_resume_restores_an_action_step_instead_of_running_it_again(actions: Project) -> None:
    summary = actions.run(
        """
        plugins: [./actions.py]
        steps:
          - {id: count, action: tally, with: {label: counted}}
          - {id: gate, run: "test -f go"}
        outputs: {count: "{{ steps.count.output }}"}
        """
    )
    assert summary.status == "failed"
    actions.write("go", "")
    resumed = actions.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"count": 1}
    assert actions.lines("tally.log") == ["counted"]
    (restored,) = actions.events(summary.run_id, "steps.restored")
    assert [(step["path"], step["kind"]) for step in restored["data"]["steps"]] == [("count", "tally")]


def test_an_action_that_returns_no_action_result_fails_its_step_with_one_line(project: Project) -> None:
    project.write(
        "bare.py",
        """
from llmflow.plugins import hookimpl


async def bare(ctx):
    return 5


@hookimpl
def register_actions(registry):
    registry.register("bare", bare)
""",
    )
    project.workflow(
        """
        plugins: [./bare.py]
        steps:
          - id: loud
            action: bare
        """
    )
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "step 'loud': the bare action returned int, not an ActionResult" in done.stderr
    (run_id,) = project.runs()
    assert project.events(run_id, "step.failed")


# -- names no plugin registers -----------------------------------------------------------------------------
def test_an_unknown_action_stops_run_with_one_line_exit_2_and_no_run(actions: Project) -> None:
    actions.workflow(
        """
        plugins: [./actions.py]
        steps:
          - id: before
            run: touch ran
          - id: loud
            action: shuot
            with: {text: hi}
        """
    )
    done = actions.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: step 'loud' at flow.yaml:7:5: no plugin registers the action 'shuot' (did you mean 'shout'?); "
        "plugin actions: shout, tally\n"
    )
    assert not actions.runs()
    assert not (actions.root / "ran").exists()


def test_an_unknown_action_without_any_plugin_action_says_so(project: Project) -> None:
    project.workflow("steps:\n  - {id: loud, action: shout}\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stderr) == (
        2,
        "error: step 'loud' at flow.yaml:4:5: no plugin registers the action 'shout'; no plugin registers any action\n",
    )
    assert not project.runs()


def test_an_unknown_action_in_a_sub_workflow_names_its_file(actions: Project) -> None:
    actions.write("lib/child.yaml", "version: 1\nname: child\nsteps:\n  - id: inner\n    action: tallly\n")
    with pytest.raises(PluginError) as raised:
        actions.run("plugins: [./actions.py]\nsteps:\n  - {id: child, workflow: lib/child.yaml}\n")
    assert str(raised.value) == (
        f"step 'inner' at {actions.root / 'lib' / 'child.yaml'}:4:5: no plugin registers the action 'tallly' "
        "(did you mean 'tally'?); plugin actions: shout, tally"
    )
    assert actions.runs() == []


def test_an_unknown_action_in_a_sub_workflow_hook_is_refused_too(actions: Project) -> None:
    actions.write(
        "lib/child.yaml",
        "version: 1\nname: child\nhooks:\n  - {id: note, on: step.completed, action: shoutt}\nsteps:\n  - run: echo\n",
    )
    with pytest.raises(PluginError) as raised:
        actions.run("plugins: [./actions.py]\nsteps:\n  - {id: child, workflow: lib/child.yaml}\n")
    assert str(raised.value) == (
        f"hook 'note' at {actions.root / 'lib' / 'child.yaml'}:4:5: no plugin registers the action 'shoutt' "
        "(did you mean 'shout'?); plugin actions: shout, tally"
    )
    assert actions.runs() == []


def test_an_unknown_action_in_a_hook_is_refused_too(actions: Project) -> None:
    with pytest.raises(PluginError) as raised:
        actions.run(
            """
            plugins: [./actions.py]
            hooks:
              - {id: page, on: run.failed, action: pager}
            steps:
              - run: echo
            """
        )
    assert str(raised.value) == (
        f"hook 'page' at {actions.root / 'flow.yaml'}:5:5: no plugin registers the action 'pager'; "
        "plugin actions: shout, tally"
    )
    assert actions.runs() == []


def test_a_resume_whose_plugin_no_longer_registers_the_action_leaves_the_run_as_it_was(actions: Project) -> None:
    actions.workflow(
        """
        plugins: [./actions.py]
        steps:
          - {id: gate, run: "test -f go"}
          - {id: loud, action: shout, with: {text: hi}}
        """
    )
    first = actions.cli("run", "flow.yaml", "--state-dir", "state", "--json")
    summary = json.loads(first.stdout)
    assert (first.returncode, summary["status"]) == (1, "failed")
    run_id = summary["run_id"]
    before = run_files(actions, run_id)
    actions.write("actions.py", ACTIONS.replace('registry.register("shout", shout)\n', ""))
    actions.write("go", "")
    done = actions.cli("resume", run_id, "--state-dir", "state")
    assert (done.returncode, done.stderr) == (
        2,
        "error: step 'loud' at flow.yaml:6:5: no plugin registers the action 'shout'; plugin actions: tally\n",
    )
    assert run_files(actions, run_id) == before
    meta = json.loads((actions.state / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "failed"


# -- without the plugin ------------------------------------------------------------------------------------
def test_validate_graph_and_dry_run_show_action_steps_without_importing_the_plugin(actions: Project) -> None:
    actions.workflow(
        """
        inputs:
          name: {type: string, default: ada}
        plugins: [./actions.py]
        steps:
          - id: loud
            action: shout
            with: {text: "hello {{ inputs.name }}"}
          - action: not_registered_anywhere
        """
    )
    assert actions.cli("validate", "flow.yaml").returncode == 0
    graph = actions.cli("graph", "flow.yaml")
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.splitlines() == [
        "test (flow.yaml)",
        "├── loud  [shout]",
        "└── action-2  [not_registered_anywhere]",
    ]
    plan = actions.cli("run", "flow.yaml", "--dry-run", "--state-dir", "state")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[lines.index("• loud [shout]") + 1] == '    with: {"text": "hello ada"}'
    assert lines[-1] == "• action-2 [not_registered_anywhere]"
    assert not (actions.root / "imported").exists()
    assert not actions.runs()
