"""Leaf actions in a run: run (parse, cwd, env, exit codes, timeouts), retry, python, write, emit, limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import Flow, process_gone

import llmflow
from llmflow.errors import ActionError
from llmflow.runtime import start_run


@pytest.mark.parametrize(
    ("command", "parse", "expected"),
    [
        ("printf 'a b\\n\\n'", "text", "a b"),
        ("printf '{\"a\": [1, 2]}\\n'", "json", {"a": [1, 2]}),
        ("printf 'one\\n\\ntwo\\n'", "lines", ["one", "two"]),
        ("printf 'a: 1\\nb: [x, y]\\n'", "yaml", {"a": 1, "b": ["x", "y"]}),
        ("true", "yaml", None),
        ("printf '# only a comment\\n'", "yaml", None),
    ],
    ids=["text", "json", "lines", "yaml", "yaml-empty", "yaml-comment"],
)
def test_run_parses_stdout(flow: Flow, command: str, parse: str, expected: Any) -> None:
    flow.write("cmd.sh", command + "\n")
    summary = flow.run(
        f"""
        steps:
          - {{id: x, run: sh cmd.sh, parse: {parse}}}
        outputs: {{x: "{{{{ steps.x.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"x": expected}


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("python3 -c \"print('[' * 100000 + ']' * 100000)\"", "nested too deeply"),
        ("python3 -c \"print('9' * 5000)\"", "a number has more than 4300 digits"),
    ],
    ids=["deeply-nested", "huge-number"],
)
def test_run_reports_json_it_cannot_read_as_invalid_json(flow: Flow, command: str, problem: str) -> None:
    flow.write("cmd.sh", command + "\n")
    summary = flow.run("steps:\n  - {id: x, run: sh cmd.sh, parse: json}\n")
    assert summary.status == "failed"
    assert summary.error == f"step 'x': stdout is not valid JSON ({problem} at line 1 column 1)"


@pytest.mark.parametrize(
    ("value", "step", "problem"),
    [
        (
            "printf 'a\\000b'",
            '{id: x, run: [echo, "{{ steps.v.output }}"]}',
            "argument 2 of the command contains a NUL",
        ),
        (
            "printf 'a\\000b'",
            '{id: x, run: "echo $FOO", env: {FOO: "{{ steps.v.output }}"}}',
            "environment variable FOO",
        ),
        (
            "head -c 200000 /dev/zero | tr '\\0' z",
            '{id: x, run: [echo, "{{ steps.v.output }}"]}',
            "the command's arguments and environment are too large",
        ),
    ],
    ids=["nul-in-argv", "nul-in-env", "argv-too-large"],
)
def test_a_value_no_command_can_receive_is_a_clear_error(flow: Flow, value: str, step: str, problem: str) -> None:
    flow.write("value.sh", value + "\n")
    summary = flow.run(f"steps:\n  - {{id: v, run: sh value.sh}}\n  - {step}\n")
    assert summary.status == "failed"
    assert summary.error is not None and summary.error.startswith(f"step 'x': {problem}"), summary.error


def test_run_keeps_a_stdout_line_longer_than_the_reader_buffer(flow: Flow) -> None:
    # One 3 MB line, as `jq -c` prints a large document; then a last line without a newline.
    flow.write("long.sh", "head -c 3000000 /dev/zero | tr '\\0' z; echo; printf end\n")
    summary = flow.run(
        """
        steps:
          - {id: x, run: sh long.sh, parse: lines}
        outputs: {sizes: "{{ steps.x.output | map('length') | list }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"sizes": [3_000_000, 3]}


@pytest.mark.parametrize(
    ("command", "size"), [("cat", 5_000_000), ("head -c 10", 10)], ids=["echoes-all", "reads-part"]
)
def test_a_large_stdin_is_fed_while_the_output_is_read(flow: Flow, command: str, size: int) -> None:
    # 5 MB is more than the pipes and the output reader buffer together: feeding it all before reading
    # would leave both sides waiting for each other.
    flow.write("big.sh", "head -c 5000000 /dev/zero | tr '\\0' z\n")
    summary = flow.run(
        f"""
        steps:
          - {{id: big, run: sh big.sh}}
          - {{id: x, run: "{command}", stdin: "{{{{ steps.big.output }}}}", timeout: 10s}}
        outputs: {{size: "{{{{ steps.x.output | length }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"size": size}


def test_stdout_and_exit_code_are_visible_for_every_parse(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: t, run: echo hi}
          - {id: j, run: echo 7, parse: json}
        outputs: {t: "{{ steps.t.stdout }}/{{ steps.t.exit_code }}", j: "{{ steps.j.stdout | trim }}"}
        """
    )
    assert summary.outputs == {"t": "hi/0", "j": "7"}


def test_run_cwd_and_env(flow: Flow) -> None:
    (flow.root / "sub").mkdir()
    summary = flow.run(
        """
        env: {TOP: top}
        steps:
          - {id: where, run: pwd, cwd: sub}
          - {id: vars, run: 'echo "$TOP $MINE"', env: {MINE: "{{ 1 + 1 }}"}}
        outputs: {where: "{{ steps.where.output }}", vars: "{{ steps.vars.output }}"}
        """
    )
    assert summary.outputs == {"where": str((flow.root / "sub").resolve()), "vars": "top 2"}


def test_non_zero_exit_carries_exit_code_and_stderr_tail(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: bad, run: 'echo some output; echo "it went wrong" >&2; exit 3', continue_on_error: true}
          - {id: next, run: 'echo "{{ steps.bad.status }} {{ steps.bad.error.exit_code }}"'}
        outputs: {error: "{{ steps.bad.error }}", next: "{{ steps.next.output }}"}
        """
    )
    assert summary.status == "succeeded"
    assert summary.outputs == {
        "next": "failed 3",
        "error": {
            "message": "step 'bad': command failed with exit code 3: it went wrong",
            "kind": "command",
            "step": "bad",
            "exit_code": 3,
            "stderr": "it went wrong",
        },
    }


def test_timeout_kills_the_whole_process_group(flow: Flow) -> None:
    began = time.monotonic()
    summary = flow.run(
        """
        steps:
          - id: slow
            timeout: 500ms
            run: sleep 30 & echo $! > child.tmp; mv child.tmp child.pid; wait
        """
    )
    assert time.monotonic() - began < 10
    assert summary.status == "failed"
    assert summary.error == "step 'slow' timed out after 0.5s"
    failed = flow.events(summary.run_id, "step.failed")
    assert failed[0]["data"]["error"]["kind"] == "timeout"
    assert process_gone(int((flow.root / "child.pid").read_text()))


def test_retry_backs_off_and_then_succeeds(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: flaky
            retry: {attempts: 4, delay: 10ms, backoff: 3}
            run: echo try >> log; test $(wc -l < log) -ge 3
        outputs: {attempts: "{{ steps.flaky.attempts }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"attempts": 3}
    retrying = flow.events(summary.run_id, "step.retrying")
    assert [(event["attempt"], event["data"]["delay"], event["data"]["next_attempt"]) for event in retrying] == [
        (1, 0.01, 2),
        (2, 0.03, 3),
    ]
    assert [event["attempt"] for event in flow.events(summary.run_id, "step.started")] == [1, 2, 3]
    *retries, record = flow.journal(summary.run_id)
    assert record["a"] == 3 and record["s"] == "succeeded"
    # each later attempt is journaled as it begins: a run stopped in it resumes that attempt
    assert [(retry["s"], retry["a"]) for retry in retries] == [("retry", 2), ("retry", 3)]


def test_retry_gives_up_after_the_last_attempt(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: bad, retry: {attempts: 2, delay: 1ms}, run: echo x >> log; exit 1}
        """
    )
    assert summary.status == "failed"
    assert flow.log() == {"x": 2}
    assert len(flow.events(summary.run_id, "step.failed")) == 1


@pytest.mark.parametrize(("on", "tries"), [("[timeout]", 1), ("[command]", 3), ("[any]", 3)])
def test_retry_on_filters_error_kinds(flow: Flow, on: str, tries: int) -> None:
    summary = flow.run(
        f"""
        steps:
          - {{id: bad, retry: {{attempts: 3, delay: 1ms, on: {on}}}, run: echo x >> log; exit 1}}
        """
    )
    assert summary.status == "failed"
    assert flow.log() == {"x": tries}


def test_retry_jitter_stays_in_bounds(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: bad, retry: {attempts: 4, delay: 10ms, backoff: 1, jitter: 0.5}, run: exit 1}
        """
    )
    delays = [event["data"]["delay"] for event in flow.events(summary.run_id, "step.retrying")]
    assert len(delays) == 3
    assert all(0.005 <= delay <= 0.015 for delay in delays)


def test_retry_jitter_never_waits_longer_than_max_delay(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: bad, retry: {attempts: 13, delay: 10ms, backoff: 2, max_delay: 20ms, jitter: 1}, run: exit 1}
        """
    )
    delays = [event["data"]["delay"] for event in flow.events(summary.run_id, "step.retrying")]
    assert len(delays) == 12
    # Ten of them start from max_delay: without the bound, each would exceed it half of the time.
    assert all(0 <= delay <= 0.02 for delay in delays)


def test_run_timeout_limit_fails_the_run(flow: Flow) -> None:
    began = time.monotonic()
    summary = flow.run(
        """
        limits: {timeout: 200ms}
        steps:
          - {id: slow, wait: 20s}
        """
    )
    assert time.monotonic() - began < 10
    assert summary.status == "failed"
    assert summary.error == "the run timed out after 0.2s (limits.timeout)"
    assert flow.meta(summary.run_id)["status"] == "failed"


@pytest.mark.parametrize("target", ["../escape.txt", "sub/../../escape.txt", "/tmp/escape.txt"])
def test_write_refuses_escapes_at_run_time(flow: Flow, target: str) -> None:
    summary = flow.run(
        f"""
        inputs: {{target: {{type: string, default: "{target}"}}}}
        steps:
          - {{id: w, write: {{path: "{{{{ inputs.target }}}}", content: nope}}}}
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "w"
    assert summary.error is not None and "write path" in summary.error
    assert not (flow.root.parent / "escape.txt").exists()


def test_write_inside_the_folder(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: w, write: {path: "out/{{ 'note' }}.txt", content: "hello"}}
        outputs: {w: "{{ steps.w.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert (flow.root / "out" / "note.txt").read_text() == "hello"


@pytest.mark.parametrize("append", [False, True])
def test_content_utf8_cannot_encode_fails_clearly_and_leaves_the_file_as_it_was(flow: Flow, append: bool) -> None:
    flow.write("keep.txt", "precious\n")
    flow.write("hostile.py", "def reply():\n    return 'x\\ud800y'\n")
    summary = flow.run(
        f"""
        steps:
          - {{id: r, python: "hostile:reply"}}
          - {{id: w, write: {{path: keep.txt, content: "{{{{ steps.r.output }}}}", append: {str(append).lower()}}}}}
        """
    )
    assert summary.status == "failed"
    assert (
        summary.error
        == "step 'w': the content holds a lone surrogate (U+D800 at character 1), which UTF-8 cannot encode"
    )
    assert (flow.root / "keep.txt").read_text() == "precious\n"


def test_write_path_with_a_nul_character_fails_clearly(flow: Flow) -> None:
    flow.write("value.sh", "printf 'a\\000b'\n")
    summary = flow.run("steps:\n  - {id: v, run: sh value.sh}\n  - {id: w, write: {path: '{{ steps.v.output }}'}}\n")
    assert summary.status == "failed"
    assert summary.error == "step 'w': write path 'a\\x00b' contains a NUL character"


def test_python_steps_sync_and_async_from_a_module_beside_the_workflow(flow: Flow) -> None:
    flow.write(
        "helpers.py",
        """
        import asyncio


        def add(a, b):
            return a + b


        async def pair(a, b):
            await asyncio.sleep(0)
            return (a, b)
        """,
    )
    summary = flow.run(
        """
        steps:
          - {id: s, python: "helpers:add", with: {a: 2, b: 3}}
          - {id: a, python: {call: "helpers:pair", with: {a: "{{ steps.s.output }}", b: x}}}
        outputs: {s: "{{ steps.s.output }}", a: "{{ steps.a.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"s": 5, "a": [5, "x"]}


def test_python_modules_of_the_same_name_in_two_folders_stay_apart(flow: Flow) -> None:
    for name in ("one", "two"):
        flow.write(f"{name}/helpers.py", f"def who():\n    return {name!r}\n")
        flow.workflow(
            'steps:\n  - {id: w, python: "helpers:who"}\noutputs: {w: "{{ steps.w.output }}"}\n', f"{name}/f.yaml"
        )
    assert flow.run(flow.root / "one" / "f.yaml").outputs == {"w": "one"}
    assert flow.run(flow.root / "two" / "f.yaml").outputs == {"w": "two"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "helpres:count",
            "step 'p': cannot import 'helpres': there is no helpres.py (or package) beside the workflow, in {root}, "
            "nor an installed module of that name",
        ),
        ("helpers:cuont", "step 'p': 'helpers' has no function 'cuont' (did you mean 'count'?)"),
        ("helpers:total", "step 'p': 'helpers' has no function 'total' (it has count, first)"),
    ],
    ids=["missing-module", "misspelt-function", "missing-function"],
)
def test_python_step_naming_a_missing_module_or_function_says_where_it_looked(
    flow: Flow, call: str, message: str
) -> None:
    flow.write("helpers.py", "def count(x):\n    return len(x)\n\n\ndef first(x):\n    return x[0]\n")
    summary = flow.run(f"steps:\n  - {{id: p, python: '{call}'}}\n")
    assert summary.status == "failed"
    assert summary.error == message.format(root=flow.root)


def test_python_step_returning_an_object_fails_clearly(flow: Flow) -> None:
    flow.write("helpers.py", "def thing():\n    return object()\n")
    summary = flow.run("steps:\n  - {id: t, python: 'helpers:thing'}\n")
    assert summary.status == "failed"
    assert summary.error == "the output of step 't' holds a value of type object, which cannot be stored as JSON"


def test_python_step_returning_a_huge_integer_fails_the_step_not_the_run(flow: Flow) -> None:
    # factorial(2000) has 5736 digits: more than Python writes as text, so no journal could hold it.
    flow.write("helpers.py", "import math\n\n\ndef big(n):\n    return {'rows': [1, math.factorial(n)]}\n")
    summary = flow.run(
        """
        steps:
          - id: t
            try:
              - {id: f, python: {call: "helpers:big", with: {n: 2000}}}
            catch:
              - {id: c, set: {caught: "{{ error.message }}"}}
        outputs: {caught: "{{ vars.caught }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {
        "caught": "the result of step 'f' cannot be stored: it holds an integer of more than 4300 digits "
        "(give it as text)"
    }


UNSTORABLE_PLUGIN = """
from llmflow.engine.actions import ActionResult
from llmflow.plugins import hookimpl


async def unstorable(ctx):
    if ctx.config.get("kind") == "in-writes":
        return ActionResult(output="fine", writes={"n": [10 ** 5000]})
    return ActionResult(output={"n": 10 ** 5000})


@hookimpl
def register_actions(registry):
    registry.register("unstorable", unstorable)
"""


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("in-output", "it holds an integer of more than 4300 digits (give it as text)"),
        ("in-writes", "it holds an integer of more than 4300 digits (give it as text)"),
    ],
)
def test_any_action_whose_result_cannot_be_journaled_fails_its_step_not_the_run(
    flow: Flow, kind: str, reason: str
) -> None:
    flow.write("unstorable.py", UNSTORABLE_PLUGIN)
    summary = flow.run(
        f"""
        plugins: [./unstorable.py]
        steps:
          - {{id: u, action: unstorable, with: {{kind: {kind}}}, continue_on_error: true}}
          - {{id: after, set: {{status: "{{{{ steps.u.status }}}}", why: "{{{{ steps.u.error.message }}}}"}}}}
        outputs: {{status: "{{{{ vars.status }}}}", why: "{{{{ vars.why }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"status": "failed", "why": f"the result of step 'u' cannot be stored: {reason}"}
    assert [record["s"] for record in flow.journal(summary.run_id) if record["p"] == "u"] == ["failed"]


def test_a_timed_out_sync_python_step_does_not_hold_the_process(flow: Flow) -> None:
    flow.write("slow.py", "import time\n\n\ndef nap():\n    time.sleep(120)\n    return 'woke'\n")
    path = flow.workflow(
        """
        steps:
          - {id: nap, python: "slow:nap", timeout: 300ms, continue_on_error: true}
          - {id: after, run: echo after}
        outputs: {after: "{{ steps.after.output }}", nap: "{{ steps.nap.status }}"}
        """
    )
    env = {**os.environ, "LLMFLOW_HOME": str(flow.root / "state")}
    # The function sleeps for two minutes; the process must exit long before (a joined thread would hold it).
    done = subprocess.run(
        [sys.executable, "-m", "llmflow", "run", str(path), "--json"],
        cwd=flow.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"after": "after", "nap": "failed"}


def test_a_sync_python_step_that_calls_sys_exit_fails_the_step_only(flow: Flow) -> None:
    flow.write("quits.py", "import sys\n\n\ndef quit():\n    sys.exit(3)\n")
    summary = flow.run(
        """
        steps:
          - {id: q, python: "quits:quit", continue_on_error: true}
          - {id: after, run: echo after}
        outputs: {error: "{{ steps.q.error.message }}", after: "{{ steps.after.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"error": "step 'q': RuntimeError: the function raised SystemExit: 3", "after": "after"}


def test_an_async_python_step_that_calls_sys_exit_fails_the_step_only(flow: Flow) -> None:
    flow.write("quits.py", "import sys\n\n\nasync def quit():\n    sys.exit(3)\n")
    summary = flow.run(
        """
        steps:
          - {id: q, python: "quits:quit", continue_on_error: true}
          - {id: after, run: echo after}
        outputs: {error: "{{ steps.q.error.message }}", after: "{{ steps.after.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"error": "step 'q': RuntimeError: the function raised SystemExit: 3", "after": "after"}


def test_set_with_a_non_json_value_converts_or_fails_clearly(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: s, set: {r: "{{ range(3) }}"}}
        outputs: {r: "{{ vars.r }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"r": [0, 1, 2]}


def test_emit_sends_a_custom_event(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: e, emit: {event: deploy.done, data: {n: 3}}}
        """
    )
    (event,) = flow.events(summary.run_id, "deploy.done")
    assert event["path"] == "e" and event["data"] == {"n": 3}


def test_cancelling_a_step_while_its_process_starts_stops_the_whole_group(flow: Flow) -> None:
    path = flow.workflow("steps: [{id: bg, run: 'sleep 30 & echo $! > child.tmp; mv child.tmp child.pid; wait'}]")

    async def cancel_at_start() -> None:
        loop = asyncio.get_running_loop()
        task: asyncio.Future[Any] | None = None

        class CancelOnStart:
            def put(self, event: dict[str, Any]) -> None:
                if event["type"] == "step.started" and task is not None:
                    loop.call_soon(task.cancel)

            def close(self) -> None:
                pass

        task = asyncio.ensure_future(start_run(llmflow.load(path), {}, flow.options(sinks=[CancelOnStart()])))
        with pytest.raises(asyncio.CancelledError):
            await task

    began = time.monotonic()
    asyncio.run(cancel_at_start())
    assert time.monotonic() - began < 10
    pid_file = flow.root / "child.pid"
    assert not pid_file.exists() or process_gone(int(pid_file.read_text()))
    assert flow.meta(flow.only_run())["status"] == "interrupted"


def test_a_condition_that_cannot_be_evaluated_fails_the_step_once(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: odd, if: "1 / 0 > 1", run: echo no, continue_on_error: true, retry: {attempts: 3, delay: 1ms}}
          - {id: after, run: 'echo "{{ steps.odd.status }}"'}
        outputs: {after: "{{ steps.after.output }}", error: "{{ steps.odd.error.message }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs is not None and summary.outputs["after"] == "failed"
    assert "step 'odd', field 'if'" in summary.outputs["error"]
    assert len(flow.events(summary.run_id, "step.failed")) == 1
    assert not flow.events(summary.run_id, "step.retrying")


def test_a_sub_workflow_runs_with_its_own_env(flow: Flow) -> None:
    flow.workflow(
        """
        inputs: {who: {type: string}}
        env: {GREETING: "hi {{ inputs.who }}"}
        steps: [{id: say, run: 'echo "$GREETING $TOP"'}]
        outputs: {said: "{{ steps.say.output }}"}
        """,
        name="lib/sub.yaml",
    )
    summary = flow.run(
        """
        env: {TOP: top, GREETING: outer}
        steps:
          - {id: sub, workflow: lib/sub.yaml, with: {who: ada}}
          - {id: here, run: 'echo "$GREETING"'}
        outputs: {sub: "{{ steps.sub.output.said }}", here: "{{ steps.here.output }}"}
        """
    )
    assert summary.outputs == {"sub": "hi ada top", "here": "outer"}


def test_cache_memoizes_a_step_across_runs_by_its_rendered_action(flow: Flow) -> None:
    body = """
        inputs: {n: {type: integer, default: 1}}
        steps:
          - {id: slow, cache: true, run: 'echo ran >> log; echo "result {{ inputs.n }}"'}
        outputs: {slow: "{{ steps.slow.output }}", cached: "{{ steps.slow.cached | default(false) }}"}
        """
    first = flow.run(body)
    second = flow.run(body)
    other = flow.run(body, {"n": 2})
    assert first.outputs == {"slow": "result 1", "cached": False}
    assert second.outputs == {"slow": "result 1", "cached": True}
    assert other.outputs == {"slow": "result 2", "cached": False}
    assert flow.log() == {"ran": 2}


def test_write_with_artifact_keeps_a_copy_in_the_run(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: w, write: {path: out/report.md, content: "# hi", artifact: true}}
          - {id: check, run: cat out/report.md}
        outputs: {check: "{{ steps.check.output }}", written: "{{ steps.w.output }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs is not None and summary.outputs["check"] == "# hi"
    assert summary.outputs["written"].endswith("out/report.md")
    kept = flow.run_dir(summary.run_id) / "artifacts" / "out" / "report.md"
    assert kept.read_text() == "# hi"
    (record,) = [record for record in flow.journal(summary.run_id) if record["p"] == "w"]
    assert record["x"]["artifact"] == str(kept.resolve())


def test_session_scope_fails_its_step_with_a_clear_message(flow: Flow) -> None:
    summary = flow.run("steps:\n  - {id: keep, set: {x: 1}, scope: session}\n")
    assert summary.status == "failed"
    assert summary.error == (
        "step 'keep': scope: session is not available in this version of llmflow (sessions are not built yet);"
        " use scope: run"
    )


def test_an_action_that_cannot_encode_a_lone_surrogate_names_it_in_one_line(flow: Flow) -> None:
    flow.write(
        "encoding.py",
        "from llmflow.plugins import hookimpl\n\n\n"
        "async def send(ctx):\n    ctx.config['text'].encode('utf-8')\n\n\n"
        "@hookimpl\ndef register_actions(registry):\n    registry.register('send', send)\n",
    )
    flow.write("helpers.py", "def text():\n    return 'a\\udc80b'\n")
    summary = flow.run(
        """
        plugins: [./encoding.py]
        steps:
          - {id: t, python: "helpers:text"}
          - {id: s, action: send, with: {text: "{{ steps.t.output }}"}}
        """
    )
    assert summary.status == "failed"
    assert summary.error == (
        "step 's': the send action failed: its input holds text that is not valid Unicode ('\\udc80'), "
        "which cannot be sent"
    )


@pytest.mark.skipif(os.name != "posix", reason="folders opened relative to one another: POSIX")
@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_write_refuses_a_symbolic_link_swapped_in_after_the_path_was_checked(tmp_path: Path, swapped: str) -> None:
    from llmflow.actions.files import write_inside

    root, outside = tmp_path / "project", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("keep")
    # As checked, the target was root/out/secret.txt; then a link appeared in its place (or its folder's).
    if swapped == "file":
        (root / "out").mkdir()
        (root / "out" / "secret.txt").symlink_to(outside / "secret.txt")
    else:
        (root / "out").symlink_to(outside)
    with pytest.raises(ActionError, match=r"now leads through a symbolic link .*nothing was written"):
        write_inside(root, root / "out" / "secret.txt", b"pwned", append=False, step_id="w")
    assert (outside / "secret.txt").read_text() == "keep"


def test_write_through_a_file_where_a_folder_should_be_fails_clearly(flow: Flow) -> None:
    flow.write("out", "a file\n")
    summary = flow.run("steps:\n  - {id: w, write: {path: out/note.txt, content: x}}\n")
    assert summary.status == "failed"
    assert summary.error == "step 'w': write path 'out/note.txt': 'out' is not a folder"


@pytest.mark.skipif(os.name != "posix", reason="making symbolic links needs extra rights on Windows")
def test_write_through_a_link_that_stays_inside_the_project_writes_where_it_points(flow: Flow) -> None:
    (flow.root / "real").mkdir()
    (flow.root / "link").symlink_to(flow.root / "real")
    summary = flow.run("steps:\n  - {id: w, write: {path: link/note.txt, content: hi}}\n")
    assert summary.status == "succeeded", summary.error
    assert (flow.root / "real" / "note.txt").read_text() == "hi"


@pytest.mark.parametrize("target", ["state/runs/forged.json", "state/lock", "state"])
def test_write_refuses_the_run_store_inside_the_project(flow: Flow, target: str) -> None:
    summary = flow.run(f"steps:\n  - {{id: w, write: {{path: '{target}', content: hi}}}}\n")
    assert summary.status == "failed"
    assert summary.error == (
        f"step 'w': write path {target!r} is inside the run store {flow.state.resolve()}; "
        "use artifact: true to keep a copy with the run"
    )
    assert not (flow.state / "runs" / "forged.json").exists()
    assert not (flow.state / "lock").exists()
    assert flow.state.is_dir()


@pytest.mark.parametrize("target", ["sub/.llmflow/runs/forged.json", ".llmflow/x.txt", "sub/.LLMFLOW/x.txt"])
def test_write_refuses_any_llmflow_folder(flow: Flow, target: str) -> None:
    """Not only the run's own store: a new ``.llmflow`` below the project is what commands run there use."""
    summary = flow.run(f"steps:\n  - {{id: w, write: {{path: '{target}', content: hi}}}}\n")
    assert summary.status == "failed"
    assert summary.error == f"step 'w': write path {target!r} is inside a .llmflow folder (a run store)"
    assert not (flow.root / target).exists()


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("flow.yaml", "a source file of the running workflow"),
        ("lib/../flow.yaml", "a source file of the running workflow"),
        ("lib/child.yaml", "a source file of the running workflow"),
        ("llmflow.toml", "the project's llmflow.toml"),
        (".env", "the project's .env"),
    ],
)
def test_write_refuses_the_workflows_own_files_and_the_project_settings(
    flow: Flow, target: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path from a model's output must not rewrite what the next run runs, nor where it sends API keys."""
    monkeypatch.chdir(flow.root)  # the project (whose settings the run reads) is the current folder
    flow.write("lib/child.yaml", "version: 1\nname: child\ninputs: {p: {type: string}}\nsteps:\n  - run: 'true'\n")
    body = (
        "inputs: {p: {type: string}}\nsteps:\n  - {id: child, workflow: lib/child.yaml, with: {p: x}}\n"
        "  - {id: w, write: {path: '{{ inputs.p }}', content: hostile, append: true}}\n"
    )
    source = flow.workflow(body)
    before = {path: path.read_bytes() for path in (source, flow.root / "lib" / "child.yaml")}
    summary = flow.run(source, {"p": target})
    assert summary.status == "failed"
    assert summary.error == f"step 'w': write path {target!r} is {what}, which a step may not overwrite"
    assert {path: path.read_bytes() for path in before} == before
    assert not (flow.root / "llmflow.toml").exists() and not (flow.root / ".env").exists()


def test_write_refuses_the_workflow_file_when_the_run_goes_on_from_its_frozen_copy(flow: Flow) -> None:
    source = flow.workflow(
        "inputs: {p: {type: string}}\nsteps:\n  - {id: gate, run: test -f gate}\n"
        "  - {id: w, write: {path: '{{ inputs.p }}', content: hostile}}\n"
    )
    before = source.read_bytes()
    failed = flow.run(source, {"p": "flow.yaml"})
    assert failed.status == "failed"
    flow.touch("gate")
    resumed = flow.resume(failed.run_id)
    assert resumed.status == "failed"
    assert (
        resumed.error
        == "step 'w': write path 'flow.yaml' is a source file of the running workflow, which a step may not overwrite"
    )
    assert source.read_bytes() == before


def test_write_refuses_a_hard_link_to_the_workflow_file(flow: Flow) -> None:
    source = flow.workflow("steps:\n  - {id: w, write: {path: copy.yaml, content: hostile}}\n")
    os.link(source, flow.root / "copy.yaml")
    before = source.read_bytes()
    summary = flow.run(source)
    assert summary.status == "failed"
    assert summary.error == (
        "step 'w': write path 'copy.yaml' is a source file of the running workflow, which a step may not overwrite"
    )
    assert source.read_bytes() == before


def test_write_to_a_folder_fails_clearly(flow: Flow) -> None:
    (flow.root / "out").mkdir()
    summary = flow.run("steps:\n  - {id: w, write: {path: out, content: x}}\n")
    assert summary.status == "failed"
    assert summary.error == "step 'w': write path 'out' is a folder"


@pytest.mark.parametrize("target", [".git/hooks/pre-commit", ".git/config", "sub/.GIT/hooks/post-checkout", ".git"])
def test_write_refuses_a_git_folder(flow: Flow, target: str) -> None:
    """git runs what its hooks and config name: a path from a model's output must not plant a command there."""
    (flow.root / ".git" / "hooks").mkdir(parents=True)
    summary = flow.run(f"steps:\n  - {{id: w, write: {{path: '{target}', content: 'touch pwned'}}}}\n")
    assert summary.status == "failed"
    assert summary.error == f"step 'w': write path {target!r} is inside a .git folder (git runs what it holds)"
    assert not (flow.root / ".git" / "config").exists()
    assert list((flow.root / ".git" / "hooks").iterdir()) == []


def test_write_with_artifact_keeps_its_copy_in_the_run_store(flow: Flow) -> None:
    summary = flow.run("steps:\n  - {id: w, write: {path: out/note.txt, content: hi, artifact: true}}\n")
    assert summary.status == "succeeded", summary.error
    assert (flow.run_dir(summary.run_id) / "artifacts" / "out" / "note.txt").read_text() == "hi"
