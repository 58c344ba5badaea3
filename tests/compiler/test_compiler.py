"""The compiler: semantic diagnostics (code, message, line, column) and the shape of the frozen graph."""

from __future__ import annotations

import copy
import dataclasses
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmflow import graphcache
from llmflow.compiler import CompileSession
from llmflow.compiler.core import Compiler, compile_document
from llmflow.compiler.graph import ActionNode, IfNode, LoopNode, MapNode, Workflow, WorkflowNode, evolve
from llmflow.diagnostics import Diagnostic
from llmflow.errors import WorkflowError
from llmflow.frontend import check_workflow, load_workflow
from llmflow.spec.document import Document
from llmflow.spec.loader import load_text
from llmflow.spec.validator import validate_document


def _document(source: str, file: str = "flow.yaml", directory: str = ".") -> Document:
    doc = load_text(textwrap.dedent(source).lstrip("\n"), file, directory=directory)
    assert validate_document(doc) == [], "the snippet must pass the schema"
    return doc


def compile_snippet(source: str) -> Workflow:
    """Compile a snippet that must be valid."""
    return compile_document(_document(source))


def problems(source: str) -> list[Diagnostic]:
    """The compile diagnostics of a snippet that passes the schema but must not compile."""
    with pytest.raises(WorkflowError) as caught:
        compile_document(_document(source))
    return caught.value.diagnostics


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Bad:
    """A snippet with exactly one semantic problem and the diagnostic it must give."""

    source: str
    code: str
    message: str
    line: int
    column: int
    hint: str | None = None


BAD = {
    "duplicate-id": Bad(
        """
        version: 1
        name: t
        steps:
          - id: fetch
            run: echo one
          - id: fetch
            run: echo two
        """,
        "duplicate-id",
        "duplicate id 'fetch' (first used at line 4); ids must be unique in the file",
        6,
        9,
    ),
    "duplicate-id-nested": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            run: echo
          - parallel:
              branches:
                one: [{id: a, run: echo}]
        """,
        "duplicate-id",
        "duplicate id 'a' (first used at line 4); ids must be unique in the file",
        8,
        20,
    ),
    "duplicate-id-nested-first": Bad(
        """
        version: 1
        name: t
        steps:
          - id: group
            steps:
              - {id: a, run: echo}
          - id: a
            run: echo
        """,
        "duplicate-id",
        "duplicate id 'a' (first used at line 6); ids must be unique in the file",
        7,
        9,
    ),
    "unknown-input": Bad(
        """
        version: 1
        name: t
        inputs:
          repo: string
        steps:
          - run: echo {{ inputs.repo }} {{ inputs.rep }}
        """,
        "unknown-input",
        "unknown input 'rep'",
        6,
        36,
        "did you mean 'repo'?",
    ),
    "unknown-step": Bad(
        """
        version: 1
        name: t
        steps:
          - id: fetch
            run: echo
          - run: echo {{ steps.fech.output }}
        """,
        "unknown-step",
        "unknown step 'fech'",
        6,
        18,
        "did you mean 'fetch'?",
    ),
    "unknown-step-in-block-scalar": Bad(
        """
        version: 1
        name: t
        steps:
          - id: fetch
            run: echo
          - run: |
              echo start
              echo {{ steps.fetsh.output }}
        """,
        "unknown-step",
        "unknown step 'fetsh'",
        8,
        15,
        "did you mean 'fetch'?",
    ),
    "unknown-variable": Bad(
        """
        version: 1
        name: t
        vars: {count: 0}
        steps:
          - set: {total: "{{ vars.cont + 1 }}"}
        """,
        "unknown-variable",
        "unknown variable 'cont': no 'set' step or 'vars' entry defines it",
        5,
        22,
        "did you mean 'count'?",
    ),
    "unknown-secret": Bad(
        """
        version: 1
        name: t
        secrets: [GITHUB_TOKEN]
        steps:
          - http: {url: "https://api.github.com", headers: {Authorization: "Bearer {{ secrets.GITHUB_TOKN }}"}}
        """,
        "unknown-secret",
        "unknown secret 'GITHUB_TOKN': declare it in 'secrets'",
        5,
        79,
        "did you mean 'GITHUB_TOKEN'?",
    ),
    "unknown-name": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo {{ stpes.fetch.output }}
        """,
        "unknown-name",
        "unknown name 'stpes'",
        4,
        18,
        "did you mean 'steps'?",
    ),
    "unknown-name-in-condition": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: vars and stepz.fetch.output
        """,
        "unknown-name",
        "unknown name 'stepz'",
        5,
        18,
        "did you mean 'steps'?",
    ),
    "unknown-field": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            run: echo
          - run: echo {{ steps.a.outptu }}
        """,
        "unknown-field",
        "steps.a has no field 'outptu'",
        6,
        18,
        "did you mean 'output'?",
    ),
    "forward-reference": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            run: echo
            if: steps.b.output == 'x'
          - id: b
            run: echo
        """,
        "forward-reference",
        "step 'b' runs after 'a'",
        6,
        9,
    ),
    "self-reference": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            run: echo
            if: len(steps.a.output) > 0
        """,
        "self-reference",
        "step 'a' cannot refer to its own result here",
        6,
        13,
    ),
    "ancestor-reference": Bad(
        """
        version: 1
        name: t
        steps:
          - id: outer
            steps:
              - run: echo {{ steps.outer.output }}
        """,
        "ancestor-reference",
        "step 'outer' has not finished when this runs: it contains it",
        6,
        22,
    ),
    "out-of-scope-map-body-used-after": Bad(
        """
        version: 1
        name: t
        steps:
          - id: label
            map:
              items: [1, 2]
              steps:
                - {id: classify, run: "echo {{ item }}"}
          - run: echo {{ steps.classify.output }}
        """,
        "out-of-scope",
        "step 'classify' runs inside map 'label'; from outside it use steps.label.output",
        9,
        18,
    ),
    "out-of-scope-loop-body-used-after": Bad(
        """
        version: 1
        name: t
        steps:
          - id: again
            loop:
              times: 2
              steps: [{id: inner, run: echo}]
          - run: echo {{ steps.inner.output }}
        """,
        "out-of-scope",
        "step 'inner' runs inside loop 'again'; from outside it use steps.again.output",
        8,
        18,
    ),
    "out-of-scope-in-outputs": Bad(
        """
        version: 1
        name: t
        steps:
          - id: label
            map:
              items: [1, 2]
              steps: [{id: classify, run: "echo {{ item }}"}]
        outputs:
          labels: "{{ steps.classify.output }}"
        """,
        "out-of-scope",
        "step 'classify' runs inside map 'label'; from outside it use steps.label.output",
        9,
        15,
    ),
    "concurrent-reference": Bad(
        """
        version: 1
        name: t
        steps:
          - parallel:
              branches:
                security:
                  - {id: scan, run: echo}
                style:
                  - {id: lint, run: "echo {{ steps.scan.output }}"}
        """,
        "concurrent-reference",
        "step 'scan' runs in parallel branch 'security', at the same time as 'lint' in branch 'style'",
        9,
        38,
    ),
    "bad-condition-syntax": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: "vars.a ==="
        """,
        "bad-condition",
        "the condition has invalid syntax",
        5,
        19,
    ),
    "bad-condition-escape": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: ().__class__.__bases__[0].__subclasses__()
        """,
        "bad-condition",
        "'.__class__' is not allowed: names starting with '_' are private (read such a mapping key with ['...'])",
        5,
        9,
    ),
    "bad-condition-template-braces": Bad(
        """
        version: 1
        name: t
        inputs: {flag: {type: boolean, default: false}}
        steps:
          - run: echo
            if: "{{ inputs.flag }}"
        """,
        "bad-condition",
        "a condition is an expression, not a template: write inputs.flag, without {{ }}",
        6,
        10,
    ),
    "hook-on-an-event-llmflow-never-emits": Bad(
        """
        version: 1
        name: t
        hooks:
          - on: [run.completed, step.faild]
            run: echo
        steps:
          - {id: a, run: echo}
        """,
        "unknown-event",
        "llmflow emits no event 'step.faild', so this hook would never run",
        4,
        25,
        hint="did you mean 'step.failed'?",
    ),
    "hook-for-a-step-the-file-does-not-have": Bad(
        """
        version: 1
        name: t
        hooks:
          - on: step.failed
            steps: fetch_al
            run: echo
        steps:
          - {id: fetch_all, run: echo}
        """,
        "unknown-step",
        "the hook is for step 'fetch_al', which this file does not have",
        5,
        12,
        hint="did you mean 'fetch_all'?",
    ),
    "llm-schema-with-an-unknown-type": Bad(
        """
        version: 1
        name: t
        steps:
          - llm:
              prompt: Label it
              schema: {type: object, properties: {label: {type: strng}}}
        """,
        "bad-schema",
        "'schema' is not a valid JSON Schema (draft 2020-12): unknown type 'strng' (did you mean 'string'? types: "
        "array, boolean, integer, null, number, object, string)",
        6,
        57,
    ),
    "llm-schema-that-breaks-the-meta-schema": Bad(
        """
        version: 1
        name: t
        steps:
          - llm:
              prompt: Label it
              schema: {type: object, required: label}
        """,
        "bad-schema",
        "'schema' is not a valid JSON Schema (draft 2020-12): 'label' is not of type 'array'",
        6,
        40,
    ),
    "bad-condition-unknown-function": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: lenght(vars) > 0
        """,
        "bad-condition",
        "unknown function 'lenght' (functions: abs, all, any, bool, float, int, len, max, min, round, sorted, str, "
        "sum) (a plugin's function? name the plugin in plugins:)",
        5,
        9,
    ),
    "bad-template-syntax": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {path: out.txt, content: "total: {{ vars.x "}
        """,
        "bad-template",
        "unexpected end of template, expected 'end of print statement'.",
        4,
        38,
    ),
    "bad-template-escape": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {path: out.txt, content: "{{ ''.__class__.__mro__ }}"}
        """,
        "bad-template",
        "'.__class__' is not allowed: names starting with '_' are private",
        4,
        38,
    ),
    "bad-template-shell-arithmetic": Bad(
        """
        version: 1
        name: t
        inputs:
          n: integer
        steps:
          - run: "echo $(( {{ inputs.n }} + 1 ))"
        """,
        "bad-template",
        "{{ inputs.n }} cannot be used inside shell arithmetic ($((...)), ((...)) or $[...]): bash evaluates the "
        "value as an expression, and an expression like a[$(cmd)] runs a command",
        6,
        20,
    ),
    "unknown-model": Bad(
        """
        version: 1
        name: t
        models:
          fast: openai/gpt-4o-mini
        steps:
          - llm: {model: fats, prompt: hi}
        """,
        "unknown-model",
        "unknown model 'fats': not an alias in 'models' (fast) nor provider/model",
        6,
        18,
        "did you mean 'fast'?",
    ),
    "unknown-default-model": Bad(
        """
        version: 1
        name: t
        defaults: {model: quick}
        steps:
          - llm: hi
        """,
        "unknown-model",
        "unknown model 'quick': not an alias in 'models' (none declared) nor provider/model",
        3,
        19,
    ),
    "unsafe-path-parent": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {path: ../x, content: hi}
        """,
        "unsafe-path",
        "write path '../x' leaves the project folder; use a relative path without '..'",
        4,
        19,
    ),
    "unsafe-path-absolute": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {path: /etc/passwd, content: hi}
        """,
        "unsafe-path",
        "write path '/etc/passwd' leaves the project folder; use a relative path without '..'",
        4,
        19,
    ),
    "unbounded-loop": Bad(
        """
        version: 1
        name: t
        steps:
          - loop:
              while: true
              steps: [{run: echo}]
        """,
        "unbounded-loop",
        "'while: true' never ends; give the loop a max_iterations",
        5,
        14,
    ),
    "bad-default": Bad(
        """
        version: 1
        name: t
        inputs:
          limit: {type: integer, default: many}
        steps:
          - run: echo {{ inputs.limit }}
        """,
        "bad-default",
        "the default of input 'limit' is 'many', which is not of type integer",
        4,
        35,
    ),
    "duplicate-case": Bad(
        """
        version: 1
        name: t
        steps:
          - switch:
              cases:
                - {name: bug, when: "true", steps: [{run: echo}]}
                - {name: bug, when: "false", steps: [{run: echo}]}
        """,
        "duplicate-case",
        "two cases are named 'bug'",
        7,
        18,
    ),
    "bad-duration-infinite": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            timeout: .inf
        """,
        "bad-duration",
        "'timeout' must be a finite duration, not inf",
        5,
        14,
    ),
    "bad-duration-too-large": Bad(
        f"""
        version: 1
        name: t
        steps:
          - wait: 1{"0" * 400}
        """,
        "bad-duration",
        "'wait' is too large to be a duration",
        4,
        11,
    ),
    "bad-duration-nan-delay": Bad(
        """
        version: 1
        name: t
        defaults:
          retry: {attempts: 3, delay: .nan}
        steps:
          - run: echo
        """,
        "bad-duration",
        "'delay' must be a finite duration, not nan",
        4,
        31,
    ),
    "nan-jitter": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            retry: {attempts: 2, jitter: .nan}
        """,
        "bad-value",
        "'jitter' must be a finite number, not nan",
        5,
        34,
    ),
    "nan-max-cost": Bad(
        """
        version: 1
        name: t
        limits: {max_cost: .nan}
        steps:
          - run: echo
        """,
        "bad-value",
        "'max_cost' must be a finite number, not nan",
        3,
        20,
    ),
    "nan-temperature": Bad(
        """
        version: 1
        name: t
        steps:
          - llm: {prompt: hi, temperature: .nan}
        """,
        "bad-value",
        "'temperature' must be a finite number, not nan",
        4,
        36,
    ),
    "nan-input-bound": Bad(
        """
        version: 1
        name: t
        inputs:
          limit: {type: integer, maximum: .nan}
        steps:
          - run: echo {{ inputs.limit }}
        """,
        "bad-value",
        "'maximum' of input 'limit' must be a finite number, not nan",
        4,
        35,
    ),
    "bad-pattern": Bad(
        """
        version: 1
        name: t
        inputs:
          repo: {type: string, pattern: "[a-z"}
        steps:
          - run: echo {{ inputs.repo }}
        """,
        "bad-pattern",
        "the pattern of input 'repo' is not a valid regular expression: unterminated character set at position 0",
        4,
        33,
    ),
    "bad-default-enum": Bad(
        """
        version: 1
        name: t
        inputs:
          level: {type: string, enum: [low, high], default: medium}
        steps:
          - run: echo {{ inputs.level }}
        """,
        "bad-default",
        "the default of input 'level' is 'medium', which is not one of 'low', 'high'",
        4,
        53,
    ),
    "bad-default-below-minimum": Bad(
        """
        version: 1
        name: t
        inputs:
          limit: {type: integer, minimum: 1, default: 0}
        steps:
          - run: echo {{ inputs.limit }}
        """,
        "bad-default",
        "the default of input 'limit' is 0, below its minimum 1",
        4,
        47,
    ),
    "bound-on-a-string": Bad(
        """
        version: 1
        name: t
        inputs:
          name: {type: string, minimum: 3}
        steps:
          - run: echo {{ inputs.name }}
        """,
        "bad-constraint",
        "'minimum' does not apply to input 'name' of type string, only to integer or number",
        4,
        33,
    ),
    "length-of-an-integer": Bad(
        """
        version: 1
        name: t
        inputs:
          limit: {type: integer, min_length: 2, default: 5}
        steps:
          - run: echo {{ inputs.limit }}
        """,
        "bad-constraint",
        "'min_length' does not apply to input 'limit' of type integer, only to string or array",
        4,
        38,
    ),
    "bad-default-pattern": Bad(
        """
        version: 1
        name: t
        inputs:
          repo: {type: string, pattern: "^[a-z]+/[a-z]+$", default: nope}
        steps:
          - run: echo {{ inputs.repo }}
        """,
        "bad-default",
        "the default of input 'repo' is 'nope', which does not match its pattern '^[a-z]+/[a-z]+$'",
        4,
        61,
    ),
    "bad-default-too-long": Bad(
        """
        version: 1
        name: t
        inputs:
          code: {type: string, max_length: 2, default: abc}
        steps:
          - run: echo {{ inputs.code }}
        """,
        "bad-default",
        "the default of input 'code' is 'abc', longer than its max_length 2",
        4,
        48,
    ),
    "bad-workflow-path": Bad(
        """
        version: 1
        name: t
        steps:
          - workflow: "lib/{{ vars.name }}.yaml"
        """,
        "bad-workflow-path",
        "a sub-workflow path must be a plain path, not a template",
        4,
        15,
    ),
    "workflow-not-found": Bad(
        """
        version: 1
        name: t
        steps:
          - workflow: lib/missing.yaml
        """,
        "workflow-not-found",
        "sub-workflow file 'lib/missing.yaml' does not exist",
        4,
        15,
    ),
    "plugin-not-found": Bad(
        """
        version: 1
        name: t
        plugins: [./missing_plugin.py]
        steps:
          - run: echo
        """,
        "plugin-not-found",
        "plugin file './missing_plugin.py' does not exist",
        3,
        11,
    ),
    "builtin-action": Bad(
        """
        version: 1
        name: t
        steps:
          - id: listing
            action: run
            with: {argv: [ls]}
        """,
        "builtin-action",
        "'run' is a built-in kind, not a plugin action: write the step with its own key (run: ...)",
        5,
        13,
    ),
    "builtin-action-in-hook": Bad(
        """
        version: 1
        name: t
        hooks:
          - {on: run.completed, action: emit, with: {event: done}}
        steps:
          - run: echo
        """,
        "builtin-action",
        "'emit' is a built-in kind, not a plugin action: write the step with its own key (emit: ...)",
        4,
        33,
    ),
    "unknown-step-in-action-with": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            action: shout
            with:
              text: "{{ steps.nope.output }}"
        """,
        "unknown-step",
        "unknown step 'nope'",
        7,
        17,
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_snippet_gives_exactly_one_diagnostic(case: Bad) -> None:
    found = problems(case.source)
    assert [(d.code, d.message, d.line, d.column, d.hint) for d in found] == [
        (case.code, case.message, case.line, case.column, case.hint)
    ]
    assert found[0].file == "flow.yaml"


def test_bad_call_is_refused_even_without_the_schema() -> None:
    # The schema refuses such a call first; the compiler keeps its own check for documents built in code.
    doc = load_text("version: 1\nname: t\nsteps:\n  - python: {call: helpers.count}\n", "flow.yaml")
    with pytest.raises(WorkflowError) as caught:
        compile_document(doc)
    assert [(d.code, d.message, d.line, d.column) for d in caught.value.diagnostics] == [
        ("bad-call", "python call 'helpers.count' must look like 'package.module:function'", 4, 13)
    ]


def test_every_problem_in_a_file_is_reported_together() -> None:
    found = problems(
        """
        version: 1
        name: t
        inputs:
          repo: string
        steps:
          - id: a
            run: echo {{ inputs.rep }}
          - id: a
            run: echo {{ steps.zz.output }}
          - id: c
            if: "x ==="
            run: echo
          - write: {path: /etc/x, content: a}
          - loop:
              while: true
              steps: [{run: echo}]
        """
    )
    assert sorted((d.line, d.code) for d in found) == [
        (7, "unknown-input"),
        (8, "duplicate-id"),
        (9, "unknown-step"),
        (11, "bad-condition"),
        (13, "unsafe-path"),
        (15, "unbounded-loop"),
    ]


def test_a_bounded_endless_loop_is_fine() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        steps:
          - id: poll
            loop: {while: true, max_iterations: 5, steps: [{run: echo}]}
        """
    )
    loop = workflow.node("poll")
    assert isinstance(loop, LoopNode)
    assert loop.max_iterations == 5


# -- sub-workflows --------------------------------------------------------------------------------------


def test_include_cycle_lists_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "version: 1\nname: a\nsteps:\n  - workflow: lib/b.yaml\n")
    write(tmp_path, "lib/b.yaml", "version: 1\nname: b\nsteps:\n  - workflow: ../a.yaml\n")
    workflow, found = check_workflow(tmp_path / "a.yaml", display_name="a.yaml")
    assert workflow is None
    assert [(d.file, d.line, d.column, d.code, d.message) for d in found] == [
        ("a.yaml", 4, 15, "invalid-workflow", "sub-workflow 'lib/b.yaml' is not valid (1 problem)"),
        (
            "lib/b.yaml",
            4,
            15,
            "include-cycle",
            "sub-workflows include each other in a cycle: a.yaml -> lib/b.yaml -> a.yaml",
        ),
    ]


def test_a_workflow_including_itself_is_a_cycle(tmp_path: Path) -> None:
    write(tmp_path, "self.yaml", "version: 1\nname: me\nsteps:\n  - workflow: self.yaml\n")
    _, found = check_workflow(tmp_path / "self.yaml", display_name="self.yaml")
    assert [(d.code, d.message) for d in found] == [
        ("include-cycle", "sub-workflows include each other in a cycle: self.yaml -> self.yaml")
    ]


def test_invalid_sub_workflow_reports_its_own_file_and_lines(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        """
        version: 1
        name: parent
        steps:
          - id: first
            workflow: lib/child.yaml
            with: {text: a}
          - id: second
            workflow: lib/child.yaml
            with: {text: b}
        """,
    )
    write(
        tmp_path,
        "lib/child.yaml",
        """
        version: 1
        name: child
        inputs:
          text: string
        steps:
          - run: echo {{ inputs.txt }}
        """,
    )
    _, found = check_workflow(tmp_path / "parent.yaml", display_name="parent.yaml")
    assert [(d.file, d.line, d.column, d.code, d.message, d.hint) for d in found] == [
        ("lib/child.yaml", 6, 18, "unknown-input", "unknown input 'txt'", "did you mean 'text'?"),
        ("parent.yaml", 5, 15, "invalid-workflow", "sub-workflow 'lib/child.yaml' is not valid (1 problem)", None),
        ("parent.yaml", 8, 15, "invalid-workflow", "sub-workflow 'lib/child.yaml' is not valid (1 problem)", None),
    ]


def test_sub_workflow_with_a_schema_error(tmp_path: Path) -> None:
    write(tmp_path, "parent.yaml", "version: 1\nname: parent\nsteps:\n  - workflow: child.yaml\n")
    write(tmp_path, "child.yaml", "version: 1\nname: child\nsteps:\n  - rn: echo\n")
    _, found = check_workflow(tmp_path / "parent.yaml", display_name="parent.yaml")
    assert [(d.file, d.line, d.column, d.code) for d in found] == [
        ("child.yaml", 4, 5, "missing-kind"),
        ("parent.yaml", 4, 15, "invalid-workflow"),
    ]


def test_sub_workflow_inputs_are_checked(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        """
        version: 1
        name: parent
        steps:
          - workflow: lib/normalize.yaml
            with:
              txt: hello
        """,
    )
    write(
        tmp_path,
        "lib/normalize.yaml",
        """
        version: 1
        name: normalize
        inputs:
          text: string
          mode: {type: string, default: lower}
        steps:
          - run: echo {{ inputs.text }} {{ inputs.mode }}
        """,
    )
    _, found = check_workflow(tmp_path / "parent.yaml", display_name="parent.yaml")
    assert [(d.line, d.column, d.code, d.message, d.hint) for d in found] == [
        (4, 15, "missing-input", "sub-workflow 'lib/normalize.yaml' needs the input 'text'", None),
        (6, 7, "unknown-input", "sub-workflow 'lib/normalize.yaml' has no input 'txt'", "did you mean 'text'?"),
    ]


def test_sub_workflow_inputs_written_as_literals_are_checked_against_their_types(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        """
        version: 1
        name: parent
        steps:
          - workflow: lib/count.yaml
            with: {limit: 1.5, label: 7, note: null}
          - workflow: lib/count.yaml
            with: {limit: "{{ 2 }}", label: "7", flags: [1, 2]}
        """,
    )
    write(
        tmp_path,
        "lib/count.yaml",
        """
        version: 1
        name: count
        inputs:
          limit: {type: integer, minimum: 1}
          label: string
          note: {type: string, default: none}
          flags: {type: array, default: []}
        steps:
          - run: echo {{ inputs.limit }} {{ inputs.label }} {{ inputs.note }} {{ inputs.flags }}
        """,
    )
    _, found = check_workflow(tmp_path / "parent.yaml", display_name="parent.yaml")
    prefix = "sub-workflow 'lib/count.yaml': the input"
    assert [(d.line, d.column, d.code, d.message) for d in found] == [
        (5, 19, "bad-input", f"{prefix} 'limit' is 1.5, which is not of type integer"),
        (5, 31, "bad-input", f"{prefix} 'label' is 7, which is not of type string"),
    ]


def test_hooks_may_name_globs_custom_events_and_the_steps_of_sub_workflows(tmp_path: Path) -> None:
    write(tmp_path, "lib/child.yaml", "version: 1\nname: child\nsteps:\n  - {id: mark_one, run: echo}\n")
    parent = write(
        tmp_path,
        "parent.yaml",
        """
        version: 1
        name: parent
        hooks:
          - on: ["step.*", "*", report.ready, llm.fallback]
            steps: [mark_one, call/mark_one, call, "label[0]/*", "m*"]
            run: echo
        steps:
          - id: call
            workflow: lib/child.yaml
        """,
    )
    workflow = load_workflow(parent)
    assert workflow.hooks[0].step_globs == ("mark_one", "call/mark_one", "call", "label[0]/*", "m*")


def test_sub_workflow_nodes_have_their_own_relative_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        """
        version: 1
        name: parent
        steps:
          - id: outer
            steps:
              - id: child
                workflow: lib/child.yaml
        outputs:
          result: "{{ steps.child.output }}"
        """,
    )
    child_file = write(
        tmp_path,
        "lib/child.yaml",
        """
        version: 1
        name: child
        steps:
          - id: group
            steps: [{id: leaf, run: echo}]
        outputs:
          leaf: "{{ steps.leaf.output }}"
        """,
    )
    workflow = load_workflow(tmp_path / "parent.yaml")
    node = workflow.node("outer/child")
    assert isinstance(node, WorkflowNode)
    assert list(node.workflow.nodes) == ["group", "group/leaf"]
    assert node.workflow.name == "child"
    assert str(child_file.resolve()) in workflow.sources
    assert len(workflow.sources) == 2


# -- the graph ------------------------------------------------------------------------------------------

PATTERNS = """
version: 1
name: shapes
models:
  fast: openai/gpt-4o-mini
defaults:
  model: fast
  timeout: 2m
  retry: {attempts: 3, delay: 1s}
steps:
  - run: echo first
  - id: run-3
    run: echo named like a generated id
  - run: echo third
  - id: label
    map:
      items: [1]
      steps:
        - id: classify
          llm: "hi {{ item }}"
  - id: sw
    switch:
      cases:
        - {name: bug, when: "true", steps: [{id: x1, run: echo}]}
        - {when: "false", steps: [{id: x2, run: echo}]}
      default: [{id: x3, run: echo}]
  - id: iff
    if: "true"
    then: [{id: y1, run: echo}]
    else: [{id: y2, run: echo}]
  - id: t
    try: [{id: body, run: "false"}]
    catch: [{id: handler, run: "echo {{ error.message }} {{ steps.body.error }}"}]
    finally: [{id: cleanup, run: echo}]
  - id: p
    parallel:
      branches:
        left: [{id: l1, run: echo}]
        right: [{id: r1, run: echo}]
  - id: x
    run: echo
    compensate: [{id: undo, run: "echo {{ steps.x.output }}"}]
  - id: refine
    loop:
      until: "'OK' in steps.critic.output"
      max_iterations: 3
      steps: [{id: critic, llm: {model: openai/gpt-4o, prompt: judge}}]
  - steps: [{run: echo}]
"""


@pytest.fixture(scope="module")
def shapes() -> Workflow:
    return compile_snippet(PATTERNS)


def test_node_paths_are_as_documented_and_in_document_order(shapes: Workflow) -> None:
    assert list(shapes.nodes) == [
        "run-1",
        "run-3",
        "run-3x",
        "label",
        "label/classify",
        "sw",
        "sw/bug/x1",
        "sw/case-2/x2",
        "sw/default/x3",
        "iff",
        "iff/then/y1",
        "iff/else/y2",
        "t",
        "t/try/body",
        "t/catch/handler",
        "t/finally/cleanup",
        "p",
        "p/left/l1",
        "p/right/r1",
        "x",
        "x/compensate/undo",
        "refine",
        "refine/critic",
        "group-11",
        "group-11/run-1",
    ]
    assert [node.path for node in shapes.walk()] == list(shapes.nodes)


def test_node_paths_are_stable_across_compiles(shapes: Workflow) -> None:
    again = compile_snippet(PATTERNS)
    assert list(again.nodes) == list(shapes.nodes)
    assert [node.location.line for node in again.walk()] == [node.location.line for node in shapes.walk()]


def test_nodes_follow_the_file_even_when_branches_are_written_out_of_order() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        steps:
          - id: guarded
            compensate: [{id: undo, run: echo}]
            catch: [{id: handler, run: echo}]
            try: [{id: body, run: echo}]
          - id: after
            run: echo
        """
    )
    assert list(workflow.nodes) == [
        "guarded",
        "guarded/compensate/undo",
        "guarded/catch/handler",
        "guarded/try/body",
        "after",
    ]


def test_generated_ids_name_the_kind_and_position_and_never_take_a_user_id(shapes: Workflow) -> None:
    generated = {node.path: node.id for node in shapes.walk() if not node.named}
    assert generated == {"run-1": "run-1", "run-3x": "run-3x", "group-11": "group-11", "group-11/run-1": "run-1"}
    named = shapes.node("run-3")
    assert named.named and isinstance(named, ActionNode)
    assert shapes.find("run-3") is named


def test_the_graph_is_immutable(shapes: Workflow) -> None:
    node = shapes.node("iff")
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.id = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        shapes.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        shapes.nodes["new"] = node  # type: ignore[index]
    assert isinstance(node, IfNode)
    assert isinstance(node.then, tuple)


def test_defaults_apply_to_leaves_only(shapes: Workflow) -> None:
    leaf = shapes.node("sw/bug/x1")
    assert leaf.timeout == 120.0
    assert leaf.retry is not None and leaf.retry.attempts == 3 and leaf.retry.delay == 1.0
    for pattern in ("label", "sw", "iff", "t", "p", "refine"):
        assert shapes.node(pattern).timeout is None
        assert shapes.node(pattern).retry is None


def test_a_step_overrides_the_defaults() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        defaults: {timeout: 2m, retry: 3}
        steps:
          - {id: quick, run: echo, timeout: 1500ms, retry: {attempts: 5, delay: 2s, jitter: true}}
        """
    )
    node = workflow.node("quick")
    assert node.timeout == 1.5
    assert node.retry is not None
    assert (node.retry.attempts, node.retry.delay, node.retry.jitter) == (5, 2.0, 0.5)


def test_model_aliases_resolve(shapes: Workflow) -> None:
    classify = shapes.node("label/classify")
    critic = shapes.node("refine/critic")
    assert isinstance(classify, ActionNode) and isinstance(critic, ActionNode)
    assert classify.config.render({"item": 1})["model"] == "openai/gpt-4o-mini"  # the default alias
    assert critic.config.render({})["model"] == "openai/gpt-4o"
    assert shapes.default_model == "fast"
    assert shapes.models["fast"].model == "openai/gpt-4o-mini"


def test_map_and_loop_bodies_see_their_variables(shapes: Workflow) -> None:
    label = shapes.node("label")
    refine = shapes.node("refine")
    assert isinstance(label, MapNode) and label.variable == "item"
    assert isinstance(refine, LoopNode) and refine.until is not None and refine.max_iterations == 3


def test_compiling_leaves_the_document_untouched() -> None:
    doc = _document(
        """
        version: 1
        name: t
        models: {fast: openai/gpt-4o-mini, slow: openai/o1}
        steps:
          - llm: {model: fast, prompt: hi, fallback: [slow]}
        """
    )
    before = repr(doc.data)
    first = compile_document(doc, session=CompileSession())
    second = compile_document(doc, session=CompileSession())
    assert repr(doc.data) == before
    node = first.steps[0]
    assert isinstance(node, ActionNode) and isinstance(second.steps[0], ActionNode)
    assert node.config.render({})["fallback"] == ["openai/o1"]


def test_unused_input_is_a_warning_that_does_not_stop_compiling() -> None:
    doc = _document(
        """
        version: 1
        name: t
        inputs:
          topic: string
          leftover: {type: integer, default: 1}
        steps:
          - run: echo {{ inputs.topic }}
        """
    )
    compiler = Compiler(doc, CompileSession())
    workflow = compiler.compile()
    assert set(workflow.inputs) == {"topic", "leftover"}
    assert [(d.severity, d.code, d.message, d.line, d.column) for d in compiler.diagnostics] == [
        ("warning", "unused-input", "input 'leftover' is declared but never used", 5, 3)
    ]


def test_session_scope_is_a_warning_until_sessions_exist() -> None:
    doc = _document(
        """
        version: 1
        name: t
        steps:
          - id: keep
            set: {x: 1}
            scope: session
        """
    )
    compiler = Compiler(doc, CompileSession())
    compiler.compile()
    assert [(d.severity, d.code, d.message, d.line, d.column) for d in compiler.diagnostics] == [
        (
            "warning",
            "unsupported",
            "session variables are not available in this version of llmflow: this step fails when it runs",
            6,
            12,
        )
    ]


def test_a_stream_from_a_model_is_a_warning_until_model_streams_exist() -> None:
    doc = _document(
        """
        version: 1
        name: t
        steps:
          - id: chunks
            stream:
              from: {llm: {model: mock/echo, prompt: hi}}
              steps: [{run: echo}]
        """
    )
    compiler = Compiler(doc, CompileSession())
    compiler.compile()
    assert [(d.severity, d.code, d.message, d.line) for d in compiler.diagnostics] == [
        (
            "warning",
            "unsupported",
            "streaming from a model is not available in this version of llmflow: this stream fails when it runs",
            6,
        )
    ]


def test_an_input_misspelt_where_it_is_read_is_not_also_unused() -> None:
    found = problems(
        """
        version: 1
        name: t
        inputs:
          repo: string
        steps:
          - run: echo {{ inputs.rep }}
        """
    )
    assert [d.code for d in found] == ["unknown-input"]


@pytest.mark.parametrize(
    "source",
    [
        "steps:\n  - run: echo {{ inputs }}\n",
        "plugins: [plugin.py]\nsteps:\n  - run: echo\n",
    ],
    ids=["whole-inputs-read", "plugins-may-read-inputs"],
)
def test_no_unused_input_warning_when_inputs_may_be_read_elsewhere(tmp_path: Path, source: str) -> None:
    (tmp_path / "plugin.py").write_text("", encoding="utf-8")
    path = write(tmp_path, "flow.yaml", "version: 1\nname: t\ninputs: {a: string}\n" + source)
    assert check_workflow(path)[1] == []


GOOD_REFERENCES = {
    "catch-reads-error-and-the-failed-body": """
        steps:
          - id: guarded
            try: [{id: body, run: "false"}]
            catch: [{run: "echo {{ error.message }} {{ steps.body.error }} {{ steps.body.status }}"}]
        """,
    "until-reads-the-loop-body": """
        steps:
          - loop:
              until: "'OK' in steps.critic.output and loop.iteration < 5"
              max_iterations: 5
              steps: [{id: critic, run: echo OK}]
        """,
    "compensation-reads-its-step": """
        steps:
          - id: create
            run: echo made
            compensate: [{run: "echo undo {{ steps.create.output }}"}]
        """,
    "map-body-reads-item-and-earlier-steps": """
        steps:
          - id: fetch
            run: echo
          - map:
              items: "{{ steps.fetch.output }}"
              as: issue
              steps:
                - {id: first, run: "echo {{ issue.title }} {{ index }}"}
                - {run: "echo {{ steps.first.output }} {{ steps.fetch.output }}"}
        """,
    "after-a-pattern-reads-its-output": """
        steps:
          - id: each
            map: {items: [1], steps: [{run: echo}]}
          - id: both
            parallel: {branches: {one: [{id: a, run: echo}], two: [{run: echo}]}}
          - run: echo {{ steps.each.output }} {{ steps.a.output }} {{ steps.both.output.one }}
        outputs:
          all: "{{ steps.each.output }}"
        """,
    "hooks-read-the-event-and-any-step": """
        hooks:
          - {on: step.failed, if: "event.attempt > 1", emit: {event: alert, data: "{{ steps.late.output }}"}}
        steps:
          - {id: late, run: echo}
        """,
    "secrets-and-vars": """
        secrets: [GITHUB_TOKEN]
        vars: {count: 0}
        steps:
          - set: {total: "{{ vars.count + 1 }}"}
          - run: echo {{ vars.total }}
            env: {TOKEN: "{{ secrets.GITHUB_TOKEN }}"}
        """,
    "bool-conditions": """
        steps:
          - {run: echo, if: false}
          - {if: true, then: [{run: echo}]}
        """,
}


@pytest.mark.parametrize("body", GOOD_REFERENCES.values(), ids=GOOD_REFERENCES.keys())
def test_good_references_compile(body: str) -> None:
    compile_snippet("version: 1\nname: t\n" + textwrap.dedent(body).lstrip("\n"))


def test_an_action_step_runs_the_registered_name_with_its_with_mapping() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        inputs:
          who: {type: string, default: ada}
        defaults: {timeout: 2m}
        hooks:
          - {id: page, on: step.failed, action: pager.send, with: {text: "{{ event.path }}"}}
        steps:
          - id: loud
            action: shout
            with: {text: "hello {{ inputs.who }}", times: 2}
          - action: whisper
        """
    )
    loud = workflow.node("loud")
    assert isinstance(loud, ActionNode)
    assert (loud.kind, loud.action, loud.timeout) == ("shout", "shout", 120.0)
    assert loud.config.render({"inputs": {"who": "bob"}}) == {"text": "hello bob", "times": 2}
    assert (loud.location.line, loud.location.column) == (9, 5)
    quiet = workflow.node("action-2")
    assert isinstance(quiet, ActionNode)
    assert (quiet.kind, quiet.action, quiet.named) == ("whisper", "whisper", False)
    assert quiet.config.render({}) == {}
    (hook,) = workflow.hooks
    assert (hook.id, hook.kind, hook.action) == ("page", "pager.send", "pager.send")
    assert hook.config.render({"event": {"path": "loud"}}) == {"text": "loud"}


def test_action_keeps_the_other_kinds_named_after_their_key() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        steps:
          - {id: a, action: shout}
          - {id: b, run: echo}
          - {id: c, write: {path: out.txt, content: hi}}
        """
    )
    assert [(node.kind, getattr(node, "action", None)) for node in workflow.walk()] == [
        ("shout", "shout"),
        ("run", "run"),
        ("write", "write"),
    ]


def test_workflows_lists_each_sub_workflow_once_at_any_depth(tmp_path: Path) -> None:
    leaf = "version: 1\nname: leaf\nsteps:\n  - set: {a: 1}\n"
    (tmp_path / "leaf.yaml").write_text(leaf, encoding="utf-8")
    middle = "version: 1\nname: middle\nsteps:\n  - {id: l1, workflow: leaf.yaml}\n  - {id: l2, workflow: leaf.yaml}\n"
    (tmp_path / "middle.yaml").write_text(middle, encoding="utf-8")
    top = (
        "version: 1\nname: top\nsteps:\n"
        "  - {id: m, workflow: middle.yaml}\n  - {id: l, workflow: leaf.yaml}\n  - {id: m2, workflow: middle.yaml}\n"
    )
    (tmp_path / "top.yaml").write_text(top, encoding="utf-8")
    workflow = load_workflow(tmp_path / "top.yaml")
    assert [flow.name for flow in workflow.workflows()] == ["top", "middle", "leaf"]


def test_what_a_workflow_works_out_once_stays_out_of_its_copies_and_its_cache_entry(tmp_path: Path) -> None:
    (tmp_path / "leaf.yaml").write_text("version: 1\nname: leaf\nsteps:\n  - {id: w, write: {path: o, content: x}}\n")
    (tmp_path / "top.yaml").write_text("version: 1\nname: top\nsteps:\n  - {id: l, workflow: leaf.yaml}\n")
    workflow = load_workflow(tmp_path / "top.yaml")
    assert [flow.name for flow in workflow.workflows()] == ["top", "leaf"]
    assert workflow.action_names() == {"write"}
    # The remembered list starts with the workflow itself: a copy must not take it along, but work out its own.
    copied = copy.copy(workflow)
    assert "memo:workflows" not in copied.__dict__
    assert next(copied.workflows()) is copied
    assert copied.action_names() == {"write"}
    assert evolve(workflow, name="other").name == "other"
    entry = graphcache.entry(tmp_path / "top.yaml", "top.yaml")
    assert entry is not None
    graphcache.remember(entry, workflow, [])
    recalled = graphcache.recall(entry)
    assert recalled is not None
    assert "memo:workflows" not in recalled[0].__dict__
    assert next(recalled[0].workflows()) is recalled[0]
