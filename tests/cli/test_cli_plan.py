"""Dry-run plans: values known before a run are shown inline and marked; everything else stays a template."""

from __future__ import annotations

from pathlib import Path

from llmflow.engine.inputs import resolve_inputs
from llmflow.frontend import load_workflow
from llmflow.planning import PlanDetail, plan

FLOW = """\
version: 1
name: planned
inputs:
  who: {type: string, default: world}
  token: {type: string, default: s3cret, secret: true}
vars: {count: 1, label: fixed}
env: {REGION: "eu-{{ inputs.who }}"}
steps:
  - id: call
    http: {url: "https://api.example/{{ inputs.who }}?t={{ inputs.token }}", method: POST}
  - id: shell
    run: echo '{{ env.REGION }}' "n={{ vars.count }}"
  - id: bump
    set: {count: "{{ vars.count + 1 }}"}
  - id: after
    run: echo {{ vars.count }} {{ vars.label }}
  - id: both
    parallel:
      branches:
        left:
          - id: l
            run: echo {{ vars.label }}
        right:
          - id: r
            set: {label: changed}
  - id: sub
    workflow: child.yaml
    with: {name: "{{ inputs.who }}"}
"""

CHILD = """\
version: 1
name: child
inputs:
  name: {type: string}
steps:
  - id: hello
    run: echo "hi {{ inputs.name }}"
"""


def test_plan_renders_known_values_and_defers_the_rest(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    workflow = load_workflow(tmp_path / "flow.yaml")
    entries = plan(workflow, resolve_inputs(workflow.inputs, {"who": "ada"}))
    by_path = {entry.path: entry for entry in entries}
    assert [entry.path for entry in entries] == [
        "call",
        "shell",
        "bump",
        "after",
        "both",
        "both/left/l",
        "both/right/r",
        "sub",
        "sub/hello",
    ]
    assert by_path["call"].details == (PlanDetail("request", "POST https://api.example/ada?t=***"),)
    assert by_path["shell"].details == (PlanDetail("command", "echo '«eu-ada»' \"n=«1»\""),)
    assert by_path["bump"].details == (PlanDetail("set", '{"count": 2}'),)
    # after `bump`, vars.count is no longer the initial value: the template is shown instead
    assert by_path["after"].details == (PlanDetail("command", "echo {{ vars.count }} {{ vars.label }}", True),)
    assert by_path["both/left/l"].details[0].deferred  # the other branch may change vars.label
    assert (by_path["both/left/l"].branch, by_path["both/left/l"].depth) == ("left", 1)
    assert by_path["sub/hello"].details == (PlanDetail("command", 'echo "hi «ada»"'),)
    assert by_path["sub"].kind.startswith("workflow ") and by_path["sub"].kind.endswith("child.yaml")
