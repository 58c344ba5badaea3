"""YAML hooks: leaf actions run on matching events, without blocking the run, never recursively; failures are
reported (``hook.failed``) and fail the run only when the hook is ``required``; resumes do not re-fire them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from engine_helpers import Flow

import llmflow


def test_a_step_failed_hook_with_step_globs_writes_a_file(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - on: step.failed
            steps: "label*"
            write: {path: alert.txt, content: "{{ event.type }} {{ event.path }} {{ event.data.error.message }}\\n",
                    append: true}
        steps:
          - {id: other, run: "exit 2", continue_on_error: true}
          - {id: label-issues, run: "exit 3"}
        """
    )
    assert summary.status == "failed"
    assert (flow.root / "alert.txt").read_text() == (
        "step.failed label-issues step 'label-issues': command failed with exit code 3\n"
    )


def test_a_run_completed_hook_emits_an_event_after_the_run_s_end(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: announce, on: run.completed, emit: {event: pipeline.done, data: {status: "{{ event.data.status }}"}}}
        steps:
          - {id: a, run: echo}
        """
    )
    assert summary.status == "succeeded"
    types = [event["type"] for event in flow.events(summary.run_id)]
    assert types[-2:] == ["run.completed", "pipeline.done"]
    done = flow.events(summary.run_id, "pipeline.done")[0]
    assert done["path"] == "hooks/announce"
    assert done["data"] == {"status": "succeeded"}
    assert flow.meta(summary.run_id)["last_seq"] == done["seq"]


def test_the_if_of_a_hook_filters_events(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - on: step.completed
            if: "event.data.id == 'b' and steps.b.output == 'bee'"
            write: {path: seen.txt, content: "{{ event.path }} {{ event.seq }}", append: true}
        steps:
          - {id: a, run: echo a}
          - {id: b, run: echo bee}
          - {id: c, run: echo c}
        """
    )
    completed = [e for e in flow.events(summary.run_id, "step.completed") if e["path"] == "b"]
    assert (flow.root / "seen.txt").read_text() == f"b {completed[0]['seq']}"


def test_a_failing_hook_is_reported_and_the_run_goes_on(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: broken, on: step.completed, steps: a, run: "echo nope >&2; exit 5"}
        steps:
          - {id: a, run: echo a}
          - {id: b, run: echo b}
        """
    )
    assert summary.status == "succeeded"
    (failed,) = flow.events(summary.run_id, "hook.failed")
    assert failed["path"] == "a"
    assert failed["data"]["hook"] == "broken"
    assert failed["data"]["event"] == "step.completed"
    assert failed["data"]["error"] == "step 'broken': command failed with exit code 5: nope"


def test_a_hook_whose_template_fails_is_reported_too(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: typo, on: run.started, write: {path: x.txt, content: "{{ event.data.missing.deeper }}"}}
        steps:
          - {id: a, run: echo a}
        """
    )
    assert summary.status == "succeeded"
    (failed,) = flow.events(summary.run_id, "hook.failed")
    assert failed["data"]["hook"] == "typo"
    assert "missing" in failed["data"]["error"]


def test_a_required_hook_that_fails_fails_the_run(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: audit, on: step.completed, steps: a, required: true, run: "exit 7"}
        steps:
          - {id: a, run: echo a}
          - {id: slow, run: "sleep 5"}
          - {id: c, run: "echo c >> log"}
        """
    )
    assert summary.status == "failed"
    assert (
        summary.error
        == "required hook 'audit' failed on step.completed at a: step 'audit': command failed with exit code 7"
    )
    assert not (flow.root / "log").exists()
    assert flow.meta(summary.run_id)["status"] == "failed"
    (failed,) = flow.events(summary.run_id, "hook.failed")
    assert failed["data"]["required"] is True


def test_a_required_hook_that_fails_as_the_run_ends_still_fails_it(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: audit, on: step.completed, steps: last, required: true, run: "sleep 0.2; exit 7"}
        steps:
          - {id: last, run: echo}
        """
    )
    assert summary.status == "failed"
    assert summary.error is not None and summary.error.startswith("required hook 'audit' failed")


def test_an_emit_hook_on_every_event_does_not_trigger_itself(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - {id: echo, on: "*", emit: {event: mirror, data: {of: "{{ event.type }}"}}}
        steps:
          - {id: a, run: echo a}
        """
    )
    assert summary.status == "succeeded"
    events = flow.events(summary.run_id)
    mirrored = [e["data"]["of"] for e in events if e["type"] == "mirror"]
    originals = [e["type"] for e in events if e["type"] != "mirror"]
    assert sorted(mirrored) == sorted(originals)


def test_a_hook_never_blocks_the_step_after_the_event(flow: Flow) -> None:
    # The hook waits for a file the next step writes: were the run waiting for the hook, neither would end.
    summary = flow.run(
        """
        hooks:
          - on: step.completed
            steps: a
            run: >-
              for i in $(seq 400); do test -f b.done && break; sleep 0.025; done;
              test -f b.done && echo ok > hook.out
        steps:
          - {id: a, run: echo a}
          - {id: b, run: "touch b.done"}
        """
    )
    assert summary.status == "succeeded"
    assert (flow.root / "hook.out").read_text() == "ok\n"  # and the run waited for the hook before it ended


def test_hooks_see_map_items_by_static_path_and_id(flow: Flow) -> None:
    summary = flow.run(
        """
        hooks:
          - on: step.completed
            steps: label/classify
            write: {path: by-path.txt, content: "path={{ event.path }}\\n", append: true}
          - on: step.completed
            steps: classify
            write: {path: by-id.txt, content: "id={{ event.path }}\\n", append: true}
        steps:
          - id: label
            map: {items: [x, y], concurrency: 1, steps: [{id: classify, run: "echo {{ item }}"}]}
        """
    )
    assert summary.status == "succeeded"
    assert (flow.root / "by-path.txt").read_text().split() == ["path=label[0]/classify", "path=label[1]/classify"]
    assert (flow.root / "by-id.txt").read_text().split() == ["id=label[0]/classify", "id=label[1]/classify"]


def test_a_resume_does_not_fire_hooks_again_for_restored_steps(flow: Flow) -> None:
    body = """
        hooks:
          - {on: step.completed, write: {path: log, content: "{{ event.path }} {{ event.type }}\\n", append: true}}
          - {on: run.resumed, write: {path: resumed, content: "{{ event.data | tojson }}"}}
        steps:
          - {id: a, run: echo a}
          - {id: gate, run: "test -f marker"}
          - {id: c, run: echo c}
        """
    summary = flow.run(body)
    assert summary.status == "failed"
    flow.touch("marker")
    resumed = flow.resume(summary.run_id)
    assert resumed.status == "succeeded"
    assert flow.log() == {"a": 1, "gate": 1, "c": 1, "step.completed": 3}
    assert json.loads((flow.root / "resumed").read_text())["workflow"] == "test"


def test_hooks_see_the_inputs_vars_run_and_event(flow: Flow) -> None:
    summary = flow.run(
        """
        inputs: {who: {type: string, default: ada}}
        hooks:
          - on: step.completed
            steps: v
            run: "echo {{ inputs.who }} {{ vars.x }} {{ run.id }} {{ event.attempt }} {{ event.data.kind }} > seen"
        steps:
          - {id: v, set: {x: 5}}
        """
    )
    assert (flow.root / "seen").read_text() == f"ada 5 {summary.run_id} 1 set\n"


def test_ctrl_c_while_the_run_waits_for_a_hook_stops_the_hook(flow: Flow) -> None:
    flow.workflow(
        """
        hooks:
          - {on: step.completed, steps: a, run: "touch hook.started; sleep 60; touch hook.finished"}
        steps:
          - {id: a, run: echo a}
        """
    )
    env = dict(os.environ, NO_COLOR="1")
    command = [sys.executable, "-m", "llmflow", "run", "flow.yaml", "-q", "--state-dir", str(flow.state)]
    process = subprocess.Popen(command, cwd=flow.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (flow.root / "hook.started").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the hook never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0  # every step had finished: only the hook was stopped
    assert not (flow.root / "hook.finished").exists()
    run_id = flow.only_run()
    assert flow.meta(run_id)["status"] == "succeeded"


SUB_WITH_HOOKS = """
version: 1
name: child
hooks:
  - on: step.completed
    steps: "mark*"
    write: {path: child-hooks.txt, content: "{{ event.path }} {{ steps.mark_one.output }}\\n", append: true}
  - on: step.failed
    write: {path: child-failed.txt, content: "failed {{ event.data.id }}\\n", append: true}
steps:
  - {id: mark_one, run: echo one}
  - {id: other, run: echo other}
  - {id: mark_two, run: echo two}
  - {id: maybe, if: "inputs.fail", run: "exit 4"}
inputs:
  fail: {type: boolean, default: false}
"""


def test_a_sub_workflow_s_hooks_see_its_own_steps_with_relative_globs(flow: Flow) -> None:
    flow.write("lib/child.yaml", SUB_WITH_HOOKS)
    summary = flow.run(
        """
        steps:
          - {id: mark_outside, run: echo outside}
          - {id: call, workflow: lib/child.yaml}
          - {id: again, workflow: lib/child.yaml}
        """
    )
    assert summary.status == "succeeded", summary.error
    lines = (flow.root / "lib" / "child-hooks.txt").read_text().splitlines()
    # The main workflow's mark_outside is not the child's business; each call's steps are, named by full path.
    assert sorted(lines) == ["again/mark_one one", "again/mark_two one", "call/mark_one one", "call/mark_two one"]
    assert not (flow.root / "lib" / "child-failed.txt").exists()


def test_a_failing_sub_workflow_still_runs_its_hooks(flow: Flow) -> None:
    flow.write("lib/child.yaml", SUB_WITH_HOOKS)
    summary = flow.run(
        """
        steps:
          - {id: call, workflow: lib/child.yaml, with: {fail: true}}
        """
    )
    assert summary.status == "failed"
    assert (flow.root / "lib" / "child-failed.txt").read_text() == "failed maybe\n"


def test_a_required_hook_of_a_sub_workflow_fails_its_node(flow: Flow) -> None:
    flow.write(
        "lib/strict.yaml",
        """
version: 1
name: strict
hooks:
  - {id: must, on: step.completed, required: true, run: "exit 9"}
steps:
  - {id: inner, run: echo inner}
""",
    )
    summary = flow.run(
        """
        steps:
          - {id: call, workflow: lib/strict.yaml, continue_on_error: true}
          - {id: after, run: echo after}
        outputs:
          error: "{{ steps.call.error.message }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs["error"].startswith("sub-workflow 'call': required hook 'must' failed on step.completed")


def test_a_hook_that_outlives_its_timeout_is_stopped_and_reported(flow: Flow) -> None:
    started = time.monotonic()
    summary = flow.run(
        """
        hooks:
          - {id: slow, on: step.completed, timeout: 300ms, run: "echo $$ > hook.pid; exec sleep 30"}
        steps:
          - {id: a, run: echo a}
        """
    )
    assert summary.status == "succeeded"
    assert time.monotonic() - started < 20  # the run did not wait for the 30 s command
    failed = flow.events(summary.run_id, "hook.failed")
    assert [(e["data"]["hook"], e["data"]["kind"], e["data"]["error"]) for e in failed] == [
        ("slow", "timeout", "hook 'slow' ran longer than its timeout of 0.3s")
    ]
    pid = int((flow.root / "hook.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the command's process was stopped with the hook
        os.kill(pid, 0)


def test_a_hook_timeout_must_be_a_duration(flow: Flow) -> None:
    path = flow.workflow(
        """
        hooks:
          - {on: step.completed, timeout: soon, run: echo}
        steps:
          - {id: a, run: echo a}
        """
    )
    diagnostics = llmflow.validate(path)
    assert [(d.code, d.line, d.column) for d in diagnostics] == [("bad-value", 4, 35)]
    assert diagnostics[0].message.startswith("invalid value 'soon' for 'timeout': a duration looks like 500ms")
