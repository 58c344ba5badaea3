"""Filters and condition functions the compiler does not know: an error with a hint in a file without
``plugins:``; in a file that names plugins, names recorded on its graph (with where they are used) for the run
to check, while every other rule is still checked when compiling."""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import llmflow
from llmflow import graphcache
from llmflow.compiler.core import compile_document
from llmflow.compiler.graph import Workflow, WorkflowNode
from llmflow.errors import WorkflowError
from llmflow.runtime import RunOptions, start_run
from llmflow.spec.loader import load_text
from llmflow.spec.validator import validate_document

FILTER_HINT = " (a plugin's filter? name the plugin in plugins:)"
FUNCTION_HINT = " (a plugin's function? name the plugin in plugins:)"
FUNCTIONS = "abs, all, any, bool, float, int, len, max, min, round, sorted, str, sum"


def compile_snippet(source: str) -> Workflow:
    doc = load_text(textwrap.dedent(source).lstrip("\n"), "flow.yaml")
    assert validate_document(doc) == [], "the snippet must pass the schema"
    return compile_document(doc)


def problems(source: str) -> list[tuple[str, str, int, int]]:
    with pytest.raises(WorkflowError) as caught:
        compile_snippet(source)
    return [(d.code, d.message, d.line, d.column) for d in caught.value.diagnostics]


def recorded(workflow: Workflow) -> list[tuple[str, str, str, str]]:
    return [(used.kind, used.name, str(used.location), used.owner) for used in workflow.plugin_names]


# -- without plugins: an error, with a hint ------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    """A snippet using one name nobody knows, and the one diagnostic it must give."""

    source: str
    code: str
    message: str
    line: int
    column: int


WITHOUT_PLUGINS = {
    "filter-in-run": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo "{{ 'hi' | shout }}"
        """,
        "bad-template",
        f"unknown filter 'shout' (did you mean 'sort'?){FILTER_HINT}",
        4,
        26,
    ),
    "filter-in-set": Bad(
        """
        version: 1
        name: t
        steps:
          - set: {loud: "{{ 'hi' | trim | slugify(sep='-') }}"}
        """,
        "bad-template",
        f"unknown filter 'slugify'{FILTER_HINT}",
        4,
        35,
    ),
    "filter-in-outputs": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
        outputs:
          loud: "{{ 'hi' | loudly }}"
        """,
        "bad-template",
        f"unknown filter 'loudly'{FILTER_HINT}",
        6,
        20,
    ),
    "filter-block": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {path: out.txt, content: "{% filter shout %}hi{% endfilter %}"}
        """,
        "bad-template",
        f"unknown filter 'shout' (did you mean 'sort'?){FILTER_HINT}",
        4,
        48,
    ),
    "function-in-if": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: score('x') > 1
        """,
        "bad-condition",
        f"unknown function 'score' (functions: {FUNCTIONS}){FUNCTION_HINT}",
        5,
        9,
    ),
    "function-in-switch": Bad(
        """
        version: 1
        name: t
        steps:
          - switch:
              cases:
                - when: len('ab') == 2 and is_urgent('x')
                  steps: [{run: echo}]
        """,
        "bad-condition",
        f"unknown function 'is_urgent' (functions: {FUNCTIONS}){FUNCTION_HINT}",
        6,
        36,
    ),
    "function-in-loop-while": Bad(
        """
        version: 1
        name: t
        steps:
          - loop:
              while: keep_going(loop)
              max_iterations: 3
              steps: [{run: echo}]
        """,
        "bad-condition",
        f"unknown function 'keep_going' (functions: {FUNCTIONS}){FUNCTION_HINT}",
        5,
        14,
    ),
    "filter-in-hook": Bad(
        """
        version: 1
        name: t
        hooks:
          - {on: step.failed, write: {path: log.txt, content: "{{ event.path | shout }}"}}
        steps:
          - run: echo
        """,
        "bad-template",
        f"unknown filter 'shout' (did you mean 'sort'?){FILTER_HINT}",
        4,
        72,
    ),
}


@pytest.mark.parametrize("case", WITHOUT_PLUGINS.values(), ids=WITHOUT_PLUGINS.keys())
def test_an_unknown_name_without_plugins_is_an_error_with_a_hint(case: Bad) -> None:
    assert problems(case.source) == [(case.code, case.message, case.line, case.column)]


def test_names_that_cannot_be_a_plugin_s_get_no_hint() -> None:
    found = problems(
        """
        version: 1
        name: t
        steps:
          - run: echo
            if: __import__('os')
        """
    )
    assert found == [("bad-condition", f"unknown function '__import__' (functions: {FUNCTIONS})", 5, 9)]


# -- with plugins: recorded where they are used ------------------------------------------------------------------
def test_unknown_names_of_a_file_with_plugins_are_recorded_with_their_places() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        inputs:
          name: {type: string, default: ada}
        plugins: [text_tools]
        hooks:
          - id: note
            on: step.completed
            if: is_loud(event.path)
            write: {path: log.txt, content: "{{ event.path | shout }}"}
        steps:
          - id: greet
            run: echo "{{ inputs.name | shout(2) }}"
          - id: keep
            if: score(steps.greet.output) > 1 and score(inputs.name) > 0
            set: {loud: "{{ inputs.name | upper | whisper }}"}
          - id: route
            switch:
              cases:
                - when: is_loud(vars.loud)
                  steps: [{id: one, run: echo one}]
          - id: again
            loop:
              while: keep_going(inputs.name)
              max_iterations: 3
              steps: [{run: echo}]
        outputs:
          loud: "{{ vars.loud | shout }}"
        """
    )
    assert recorded(workflow) == [  # in the order they are compiled: steps, hooks, outputs
        ("filter", "shout", "flow.yaml:13:33", "step 'greet'"),
        ("function", "score", "flow.yaml:15:9", "step 'keep'"),  # each name once per expression
        ("filter", "whisper", "flow.yaml:16:43", "step 'keep'"),
        ("function", "is_loud", "flow.yaml:20:17", "step 'route'"),
        ("function", "keep_going", "flow.yaml:24:14", "step 'again'"),
        ("filter", "shout", "flow.yaml:10:54", "hook 'note'"),
        ("function", "is_loud", "flow.yaml:9:9", "hook 'note'"),
        ("filter", "shout", "flow.yaml:28:25", "outputs"),
    ]


def test_a_file_without_unknown_names_records_none() -> None:
    workflow = compile_snippet(
        """
        version: 1
        name: t
        plugins: [text_tools]
        steps:
          - {id: a, run: "echo {{ 'x' | upper }}", if: "len('ab') == 2"}
        """
    )
    assert workflow.plugin_names == ()


WITH_PLUGINS_STILL_CHECKED = {
    "template-syntax": (
        "- {run: echo, if: \"len('x')\"}\n  - write: {path: o.txt, content: \"{{ 'x' | shout \"}\n",
        ("bad-template", "unexpected end of template, expected 'end of print statement'.", 6, 36),
    ),
    "private-attribute": (
        "- write: {path: o.txt, content: \"{{ ''.__class__ | shout }}\"}\n",
        ("bad-template", "'.__class__' is not allowed: names starting with '_' are private", 5, 36),
    ),
    "private-function": (
        '- {run: echo, if: "_peek(vars)"}\n',
        ("bad-condition", f"unknown function '_peek' (functions: {FUNCTIONS})", 5, 22),
    ),
    "condition-sandbox": (
        '- {run: echo, if: "score(lambda: 1)"}\n',
        ("bad-condition", "lambda is not allowed in a condition", 5, 28),
    ),
    "dotted-filter": (
        "- write: {path: o.txt, content: \"{{ 'x' | text.shout }}\"}\n",
        ("bad-template", "unknown filter 'text.shout'", 5, 45),
    ),
    "unknown-test": (
        "- write: {path: o.txt, content: \"{{ 'x' is shouty }}\"}\n",
        ("bad-template", "unknown test 'shouty'", 5, 36),
    ),
    "unknown-step": (
        '- write: {path: o.txt, content: "{{ steps.nope.output | shout }}"}\n',
        ("unknown-step", "unknown step 'nope'", 5, 39),
    ),
    "shell-placement": (
        '- run: "echo $(( {{ 1 | shout }} + 1 ))"\n',
        (
            "bad-template",
            "a template value cannot be used inside shell arithmetic ($((...)), ((...)) or $[...]): bash evaluates "
            "the value as an expression, and an expression like a[$(cmd)] runs a command",
            5,
            11,
        ),
    ),
}


@pytest.mark.parametrize(
    ("steps", "expected"), WITH_PLUGINS_STILL_CHECKED.values(), ids=WITH_PLUGINS_STILL_CHECKED.keys()
)
def test_every_other_rule_still_holds_for_expressions_with_plugin_names(
    steps: str, expected: tuple[str, str, int, int]
) -> None:
    source = "version: 1\nname: t\nplugins: [text_tools]\nsteps:\n  " + steps
    assert problems(source) == [expected]


# -- sub-workflows have their own plugins --------------------------------------------------------------------------
def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_sub_workflow_records_its_own_names_under_its_own_plugins(tmp_path: Path) -> None:
    write(tmp_path, "lib/tools.py", "")
    write(
        tmp_path,
        "lib/child.yaml",
        """
        version: 1
        name: child
        plugins: [./tools.py]
        steps:
          - {id: inner, set: {x: "{{ 'a' | shout }}"}}
        """,
    )
    main = write(tmp_path, "main.yaml", "version: 1\nname: main\nsteps:\n  - {id: call, workflow: lib/child.yaml}\n")
    workflow = llmflow.load(main)
    assert workflow.plugin_names == ()
    node = workflow.node("call")
    assert isinstance(node, WorkflowNode)
    child = tmp_path / "lib" / "child.yaml"
    assert recorded(node.workflow) == [("filter", "shout", f"{child}:5:36", "step 'inner'")]


def test_a_sub_workflow_without_plugins_cannot_use_its_parent_s(tmp_path: Path) -> None:
    write(tmp_path, "tools.py", "")
    write(tmp_path, "lib/child.yaml", "version: 1\nname: child\nsteps:\n  - {id: inner, if: score(1), run: echo}\n")
    main = write(
        tmp_path,
        "main.yaml",
        "version: 1\nname: main\nplugins: [./tools.py]\nsteps:\n  - {id: call, workflow: lib/child.yaml}\n",
    )
    with pytest.raises(WorkflowError) as caught:
        llmflow.load(main)
    found = [(d.file, d.code, d.message, d.line, d.column) for d in caught.value.diagnostics]
    assert found[0] == (
        str(tmp_path / "lib" / "child.yaml"),
        "bad-condition",
        f"unknown function 'score' (functions: {FUNCTIONS}){FUNCTION_HINT}",
        4,
        21,
    )
    assert [item[1] for item in found] == ["bad-condition", "invalid-workflow"]


# -- the graph cache -----------------------------------------------------------------------------------------------
TOOLS = """
from llmflow.plugins import hookimpl


@hookimpl
def register_functions(functions):
    functions.register("score", lambda value: value + 1)
    functions.register("is_loud", lambda text: text.isupper())
"""


def test_a_graph_from_the_cache_keeps_the_recorded_names_and_runs_like_a_fresh_one(tmp_path: Path) -> None:
    write(tmp_path, "tools.py", TOOLS)
    main = write(
        tmp_path,
        "main.yaml",
        """
        version: 1
        name: main
        inputs: {x: {type: string, default: a}}
        plugins: [./tools.py]
        steps:
          - {id: a, if: "score(1) > 0", run: "echo {{ inputs.x | upper }}"}
          - id: route
            switch:
              cases:
                - {when: "is_loud('X')", steps: [{run: echo}]}
        outputs: {branch: "{{ steps.route.branch }}", a: "{{ steps.a.output }}"}
        """,
    )
    fresh = llmflow.load(main)
    entry = graphcache.entry(main, str(main))
    assert entry is not None
    remembered = graphcache.recall(entry)
    assert remembered is not None
    cached = remembered[0]
    assert cached is not fresh
    assert (
        recorded(cached)
        == recorded(fresh)
        == [
            ("function", "score", f"{main}:6:18", "step 'a'"),
            ("function", "is_loud", f"{main}:10:19", "step 'route'"),
        ]
    )
    condition, fresh_condition = cached.node("a").condition, fresh.node("a").condition
    assert condition is not None and fresh_condition is not None
    assert condition.plugin_functions == fresh_condition.plugin_functions == (("score", 0),)
    for workflow in (fresh, cached):
        summary = asyncio.run(
            start_run(workflow, {}, RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False))
        )
        assert (summary.status, summary.outputs) == ("succeeded", {"branch": "case-1", "a": "A"})
