"""Interception hooks: real plugin modules named in ``plugins:`` skip, change, replace, retry, recover, fail,
re-route and break node instances; decisions are events and journal entries, and resumes honour them."""

from __future__ import annotations

import json

import pytest
from plugin_helpers import Project

# A plugin module's opening: the imports and a log beside the module (plugins are files in the project).
HEAD = """
from pathlib import Path
from llmflow.plugins import Decision, hookimpl

LOG = Path(__file__).parent / "calls.log"


def log(text):
    with LOG.open("a") as stream:
        stream.write(text + "\\n")
"""


def plugin(project: Project, body: str, name: str = "plugin.py") -> None:
    project.write(name, HEAD + body)


# -- before_step -----------------------------------------------------------------------------------------
def test_before_step_skips_with_an_output_and_the_output_flows_on(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_step(step, context):
    if step.id == "fetch":
        return Decision.skip(output={"items": [1, 2]})
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: fetch, run: "exit 1"}
          - {id: count, set: {n: "{{ steps.fetch.output['items'] | length }}"}}
        outputs: {n: "{{ vars.n }}", status: "{{ steps.fetch.status }}"}
        """
    )
    assert summary.status == "succeeded"
    assert summary.outputs == {"n": 2, "status": "succeeded"}
    record = project.record(summary.run_id, "fetch")
    assert record["output"] == {"items": [1, 2]}
    assert record["x"]["decisions"] == [{"hook": "before_step", "decision": "skip", "output": {"items": [1, 2]}}]
    (decision,) = project.events(summary.run_id, "hook.decision")
    assert decision["path"] == "fetch"
    assert decision["data"] == {
        "id": "fetch",
        "hook": "before_step",
        "decision": {"decision": "skip", "output": {"items": [1, 2]}},
    }
    assert [e["path"] for e in project.events(summary.run_id, "step.started")] == ["count"]


def test_before_step_skip_without_an_output_reads_as_skipped(project: Project) -> None:
    plugin(
        project, "@hookimpl\ndef before_step(step, context):\n    return Decision.skip() if step.id == 'a' else None\n"
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: a, run: "exit 1"}
        outputs: {status: "{{ steps.a.status }}"}
        """
    )
    assert summary.outputs == {"status": "skipped"}
    record = project.record(summary.run_id, "a")
    assert record["s"] == "skipped"
    assert record["x"]["decisions"][0]["decision"] == "skip"
    assert project.events(summary.run_id, "step.skipped")[0]["data"]["decision"] == "skip"


def test_a_skip_with_an_output_that_cannot_be_stored_fails_the_step_not_the_run(project: Project) -> None:
    skip = "Decision.skip(output=10**5000) if step.id == 'a' else None"
    plugin(project, f"@hookimpl\ndef before_step(step, context):\n    return {skip}\n")
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: a, run: "echo a", continue_on_error: true}
          - {id: b, run: "echo b"}
        outputs: {status: "{{ steps.a.status }}", error: "{{ steps.a.error.message }}", b: "{{ steps.b.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    digits = "it holds an integer of more than 4300 digits (give it as text)"
    assert summary.outputs == {
        "status": "failed",
        "error": f"the result of step 'a' cannot be stored: {digits}",
        "b": "b",
    }
    assert project.record(summary.run_id, "a")["s"] == "failed"


def test_before_step_changes_the_rendered_config_of_a_leaf(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_step(step, context):
    if step.id == "save":
        log(context.config["content"])
        return Decision.change(config={"content": context.config["content"].upper()})
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        inputs: {who: {type: string, default: ada}}
        steps:
          - {id: save, write: {path: out.txt, content: "hello {{ inputs.who }}"}}
        """
    )
    assert summary.status == "succeeded"
    assert project.read("out.txt") == "HELLO ADA"
    assert project.lines("calls.log") == ["hello", "ada"]
    decisions = project.record(summary.run_id, "save")["x"]["decisions"]
    assert decisions == [{"hook": "before_step", "decision": "change", "config": {"content": "HELLO ADA"}}]


def test_a_change_applies_to_every_retry(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_step(step, context):
    if step.id == "flaky":
        return Decision.change(config={"argv": ["sh", "-c", "echo x >> tries; test $(wc -l < tries) -ge 2"]})
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: flaky, run: [sh, -c, "exit 9"], retry: {attempts: 3, delay: 0}}
        """
    )
    assert summary.status == "succeeded"
    assert project.lines("tries") == ["x", "x"]


def test_changing_a_composite_fails_the_node_clearly(project: Project) -> None:
    plugin(project, "@hookimpl\ndef before_step(step, context):\n    return Decision.change(config={'a': 1})\n")
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: group, steps: [{run: echo}]}
        """
    )
    assert summary.status == "failed"
    assert (
        summary.error == "step 'group': a plugin can change the configuration of leaf actions only, not of a group step"
    )


def test_before_step_aborts_the_run(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_step(step, context):
    return Decision.abort("budget spent") if step.id == "b" else None
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: a, run: "echo a >> log"}
          - {id: b, run: "echo b >> log"}
          - {id: c, run: "echo c >> log"}
        """
    )
    assert summary.status == "failed"
    assert summary.error == "a plugin aborted the run at step 'b' (before_step): budget spent"
    assert project.lines("log") == ["a"]
    assert project.events(summary.run_id, "hook.decision")[0]["data"]["decision"] == {
        "decision": "abort",
        "message": "budget spent",
    }


# -- after_step ------------------------------------------------------------------------------------------
def test_after_step_replaces_the_output(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def after_step(step, context, result):
    if step.id == "greet":
        return Decision.replace(result["output"] + "!")
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: greet, run: echo hi}
        outputs: {greet: "{{ steps.greet.output }}"}
        """
    )
    assert summary.outputs == {"greet": "hi!"}
    record = project.record(summary.run_id, "greet")
    assert record["output"] == "hi!"
    assert record["x"]["decisions"] == [{"hook": "after_step", "decision": "replace", "output": "hi!"}]


# -- on_error --------------------------------------------------------------------------------------------
def test_on_error_retries_beyond_the_step_s_own_retry(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def on_error(step, context, error):
    log(f"{step.id}:{context.attempt}:{error['kind']}")
    if context.attempt < 3:
        return Decision.retry()
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: flaky, run: "echo x >> tries; test $(wc -l < tries) -ge 3"}
        outputs: {attempts: "{{ steps.flaky.attempts }}"}
        """
    )
    assert summary.status == "succeeded"
    assert summary.outputs == {"attempts": 3}
    assert project.lines("calls.log") == ["flaky:1:command", "flaky:2:command"]
    assert [e["data"]["next_attempt"] for e in project.events(summary.run_id, "step.retrying")] == [2, 3]


def test_on_error_recovers_with_a_value(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def on_error(step, context, error):
    return Decision.recover({"fallback": True, "why": error["message"]})
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: broken, run: "exit 4"}
        outputs: {value: "{{ steps.broken.output.fallback }}", status: "{{ steps.broken.status }}"}
        """
    )
    assert summary.status == "succeeded"
    assert summary.outputs == {"value": True, "status": "succeeded"}
    decision = project.record(summary.run_id, "broken")["x"]["decisions"][0]
    assert decision["hook"] == "on_error"
    assert decision["output"]["why"] == "step 'broken': command failed with exit code 4"


@pytest.mark.parametrize("delay", ["float('inf')", "-1", "'soon'"], ids=["infinite", "negative", "text"])
def test_a_retry_after_a_delay_that_is_no_number_of_seconds_fails_the_step(project: Project, delay: str) -> None:
    plugin(
        project,
        f"""
@hookimpl
def on_error(step, context, error):
    log(f"asked {{context.attempt}}")
    return Decision("retry", delay={delay}) if context.attempt == 1 else None
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        limits: {timeout: 10s}
        steps:
          - {id: a, run: "exit 1"}
        """
    )
    assert summary.status == "failed"
    shown = {"float('inf')": "inf", "-1": "-1", "'soon'": "'soon'"}[delay]
    why = f"the delay of a 'retry' decision must be a number of seconds, not {shown}"
    assert summary.error == f"step 'a': the plugin hook on_error: {why}"
    assert project.lines("calls.log") == ["asked", "1"]
    assert project.events(summary.run_id, "step.retrying") == []
    for line in (project.state / "runs" / summary.run_id / "events.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in events.jsonl"))


def test_on_error_fails_at_once_without_the_retries_left(project: Project) -> None:
    plugin(project, "@hookimpl\ndef on_error(step, context, error):\n    return Decision.fail('not worth retrying')\n")
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: broken, run: "echo x >> tries; exit 4", retry: {attempts: 5, delay: 0}}
        """
    )
    assert summary.status == "failed"
    assert summary.error == "not worth retrying"
    assert project.lines("tries") == ["x"]


# -- on_branch -------------------------------------------------------------------------------------------
def test_on_branch_overrides_a_switch_and_an_if(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def on_branch(step, context, branch):
    log(f"{step.id}:{branch}")
    return Decision.take_branch("slow" if step.id == "route" else "else")
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - id: route
            switch:
              cases:
                - {name: fast, when: "1 == 1", steps: [{id: f, set: {lane: fast}}]}
                - {name: slow, when: "1 == 2", steps: [{id: s, set: {lane: slow}}]}
          - id: check
            if: "1 == 1"
            then: [{set: {checked: yes}}]
            else: [{set: {checked: no}}]
        outputs: {lane: "{{ vars.lane }}", checked: "{{ vars.checked }}", branch: "{{ steps.route.branch }}"}
        """
    )
    assert summary.outputs == {"lane": "slow", "checked": "no", "branch": "slow"}
    assert project.lines("calls.log") == ["route:fast", "check:then"]
    decided = [r for r in project.journal(summary.run_id) if r["s"] == "decided"]
    assert [(r["p"], r["h"], r["d"]) for r in decided] == [
        ("route", "on_branch", {"decision": "branch", "branch": "slow"}),
        ("check", "on_branch", {"decision": "branch", "branch": "else"}),
    ]


def test_a_branch_that_does_not_exist_fails_the_switch(project: Project) -> None:
    plugin(project, "@hookimpl\ndef on_branch(step, context, branch):\n    return Decision.take_branch('nope')\n")
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - id: route
            switch:
              cases: [{name: a, when: "1 == 1", steps: [{run: echo}]}]
              default: [{run: echo}]
        """
    )
    assert summary.status == "failed"
    assert summary.error == "step 'route': a plugin chose branch 'nope', which is not one of a, default"


# -- before_iteration ------------------------------------------------------------------------------------
def test_before_iteration_breaks_a_loop(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_iteration(step, context, iteration):
    log(f"{iteration}:{context.locals['item']}")
    if iteration == 3:
        return Decision.break_loop()
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - id: each
            loop: {for_each: [a, b, c, d], steps: [{set: {last: "{{ item }}"}}]}
        outputs: {iterations: "{{ steps.each.iterations }}", last: "{{ vars.last }}"}
        """
    )
    assert summary.outputs == {"iterations": 2, "last": "b"}
    assert project.lines("calls.log") == ["1:a", "2:b", "3:c"]
    (decided,) = [r for r in project.journal(summary.run_id) if r["s"] == "decided"]
    assert decided["d"] == {"decision": "break", "iteration": 3}


# -- several plugins, broken plugins ---------------------------------------------------------------------
def test_the_first_decision_wins_and_later_plugins_are_asked_first(project: Project) -> None:
    plugin(
        project,
        "@hookimpl\ndef before_step(step, context):\n    log('one')\n    return Decision.skip('one')\n",
        "one.py",
    )
    plugin(project, "@hookimpl\ndef before_step(step, context):\n    log('two')\n    return None\n", "two.py")
    plugin(project, "@hookimpl\ndef before_step(step, context):\n    log('three')\n    return None\n", "three.py")
    summary = project.run(
        """
        plugins: [./one.py, ./two.py, ./three.py]
        steps:
          - {id: a, run: "exit 1"}
        outputs: {a: "{{ steps.a.output }}"}
        """
    )
    assert summary.outputs == {"a": "one"}
    assert project.lines("calls.log") == ["three", "two", "one"]


def test_a_plugin_that_raises_fails_the_node_naming_the_hook(project: Project) -> None:
    plugin(project, "@hookimpl\ndef before_step(step, context):\n    raise KeyError('oops')\n")
    summary = project.run(
        """
        plugins: [./plugin.py]
        steps:
          - {id: a, run: echo, retry: {attempts: 3, delay: 0}}
        """
    )
    assert summary.status == "failed"
    assert summary.error == "step 'a': the plugin hook before_step failed: KeyError: 'oops'"
    assert project.events(summary.run_id, "step.started") == []


def test_a_decision_the_hook_may_not_make_is_refused(project: Project) -> None:
    plugin(project, "@hookimpl\ndef after_step(step, context, result):\n    return Decision.skip('late')\n")
    summary = project.run("plugins: [./plugin.py]\nsteps:\n  - {id: a, run: echo}\n")
    assert summary.status == "failed"
    assert summary.error == "step 'a': the plugin hook after_step may decide abort, replace, not 'skip'"


def test_a_hook_that_returns_something_else_is_refused(project: Project) -> None:
    plugin(project, "@hookimpl\ndef before_step(step, context):\n    return 'skip'\n")
    summary = project.run("plugins: [./plugin.py]\nsteps:\n  - {id: a, run: echo}\n")
    assert summary.error == "step 'a': the plugin hook before_step returned str, not a Decision"


def test_the_context_shows_the_node_s_names_read_only(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def before_step(step, context):
    if step.id == "last":
        seen = [context.path, context.attempt, context.inputs["n"], context.vars["x"], context.steps["a"]["output"]]
        log(" ".join(str(value) for value in seen))
        try:
            context.vars["x"] = 2
        except TypeError:
            log("read-only")
""",
    )
    summary = project.run(
        """
        plugins: [./plugin.py]
        inputs: {n: {type: integer, default: 7}}
        steps:
          - {id: a, set: {x: 1}}
          - {id: last, run: "echo {{ inputs.n }}"}
        """
    )
    assert summary.status == "succeeded"
    assert project.read("calls.log").splitlines() == ["last 1 7 1 {'x': 1}", "read-only"]


# -- resume ----------------------------------------------------------------------------------------------
COUNTING = """
@hookimpl
def before_step(step, context):
    log(context.path)

@hookimpl
def after_step(step, context, result):
    log("after:" + context.path)
"""


def test_a_resume_does_not_ask_plugins_about_restored_nodes(project: Project) -> None:
    plugin(project, COUNTING)
    body = """
        plugins: [./plugin.py]
        steps:
          - {id: a, run: echo a}
          - {id: gate, run: "test -f marker"}
          - {id: c, run: echo c}
        """
    summary = project.run(body)
    assert summary.status == "failed"
    project.write("marker", "")
    resumed = project.resume(summary.run_id)
    assert resumed.status == "succeeded"
    assert project.lines("calls.log") == ["a", "after:a", "gate", "gate", "after:gate", "c", "after:c"]


def test_a_switch_override_is_honoured_by_a_resume_without_asking_again(project: Project) -> None:
    plugin(
        project,
        """
@hookimpl
def on_branch(step, context, branch):
    choice = (Path(__file__).parent / "choice").read_text().strip()
    log("asked:" + choice)
    return Decision.take_branch(choice)
""",
    )
    project.write("choice", "other")
    body = """
        plugins: [./plugin.py]
        steps:
          - id: route
            switch:
              cases:
                - {name: usual, when: "1 == 1", steps: [{id: u, run: "echo usual >> log"}]}
                - name: other
                  when: "1 == 2"
                  steps:
                    - {id: o1, run: "echo o1 >> log"}
                    - {id: o2, run: "test -f marker && echo o2 >> log"}
        outputs: {branch: "{{ steps.route.branch }}"}
        """
    summary = project.run(body)
    assert summary.status == "failed"
    project.write("choice", "usual")  # the plugin would now choose differently
    project.write("marker", "")
    resumed = project.resume(summary.run_id)
    assert resumed.status == "succeeded"
    assert resumed.outputs == {"branch": "other"}
    assert project.lines("log") == ["o1", "o2"]
    assert project.lines("calls.log") == ["asked:other"]
    replayed = project.events(summary.run_id, "hook.decision")[-1]
    assert replayed["data"]["decision"] == {"decision": "branch", "branch": "other", "replayed": True}


def test_a_resumed_loop_asks_only_about_iterations_that_had_not_begun(project: Project) -> None:
    plugin(project, "@hookimpl\ndef before_iteration(step, context, iteration):\n    log(str(iteration))\n")
    body = """
        plugins: [./plugin.py]
        steps:
          - id: each
            loop:
              times: 3
              steps:
                - {run: "echo {{ index }} >> log"}
                - {run: "test {{ index }} -ne 1 || test -f marker"}
        """
    summary = project.run(body)
    assert summary.status == "failed"
    project.write("marker", "")
    assert project.resume(summary.run_id).status == "succeeded"
    assert project.lines("calls.log") == ["1", "2", "3"]
    assert project.lines("log") == ["0", "1", "2"]
