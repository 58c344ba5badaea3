"""Schema diagnostics: one useful message per location, at the right line and column, with "did you mean"."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from llmflow.diagnostics import Diagnostic
from llmflow.spec.loader import load_text
from llmflow.spec.validator import KIND_KEYS, validate_document


def check(source: str) -> list[Diagnostic]:
    """The schema diagnostics of an inline YAML snippet."""
    return validate_document(load_text(textwrap.dedent(source).lstrip("\n"), "flow.yaml"))


@dataclass(frozen=True)
class Bad:
    """A snippet with exactly one problem, and the diagnostic it must give."""

    source: str
    code: str
    message: str
    line: int
    column: int
    hint: str | None = None


ALL_KINDS = ", ".join(KIND_KEYS)

BAD = {
    # -- unknown keys, with "did you mean" -------------------------------------------------------------
    "unknown-key-top-level": Bad(
        """
        version: 1
        name: t
        stepz:
          - run: echo
        """,
        "unknown-key",
        "unknown key 'stepz' at the top level",
        3,
        1,
        "did you mean 'steps'?",
    ),
    "unknown-key-in-node": Bad(
        """
        version: 1
        name: t
        steps:
          - id: fetch
            run: echo
            parce: json
        """,
        "unknown-key",
        "unknown key 'parce' in step 'fetch'",
        6,
        5,
        "did you mean 'parse'?",
    ),
    "unknown-key-in-unnamed-node": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            shel: bash
        """,
        "unknown-key",
        "unknown key 'shel' in this 'run' step",
        5,
        5,
        "did you mean 'shell'?",
    ),
    "unknown-key-in-llm": Bad(
        """
        version: 1
        name: t
        steps:
          - llm: {promt: hi}
        """,
        "unknown-key",
        "unknown key 'promt' in 'llm'",
        4,
        11,
        "did you mean 'prompt'?",
    ),
    "unknown-key-in-map": Bad(
        """
        version: 1
        name: t
        steps:
          - map:
              items: [1, 2]
              concurency: 2
              steps: [{run: echo}]
        """,
        "unknown-key",
        "unknown key 'concurency' in 'map'",
        6,
        7,
        "did you mean 'concurrency'?",
    ),
    "unknown-key-without-suggestion-lists-allowed": Bad(
        """
        version: 1
        name: t
        defaults:
          colour: red
        steps:
          - run: echo
        """,
        "unknown-key",
        "unknown key 'colour' in 'defaults'; allowed keys: model, retry, shell, timeout",
        4,
        3,
    ),
    "else-beside-a-run-is-unknown": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            else: [{run: echo}]
        """,
        "unknown-key",
        "unknown key 'else' in this 'run' step; allowed keys: cache, compensate, continue_on_error, cwd, "
        "description, env, id, if, name, parse, retry, run, shell, stdin, timeout",
        5,
        5,
    ),
    # -- missing keys ----------------------------------------------------------------------------------
    "missing-key-top-level": Bad(
        """
        version: 1
        name: t
        """,
        "missing-key",
        "the workflow is missing the required key 'steps'",
        1,
        1,
    ),
    "missing-keys-together": Bad(
        """
        version: 1
        name: t
        steps:
          - map: {}
        """,
        "missing-key",
        "'map' is missing the required keys 'items' and 'steps'",
        4,
        5,
    ),
    "missing-key-in-write": Bad(
        """
        version: 1
        name: t
        steps:
          - write: {content: x}
        """,
        "missing-key",
        "'write' is missing the required key 'path'",
        4,
        5,
    ),
    "missing-key-in-case": Bad(
        """
        version: 1
        name: t
        steps:
          - switch:
              cases:
                - steps: [{run: echo}]
        """,
        "missing-key",
        "this case is missing the required key 'when'",
        6,
        11,
    ),
    "then-without-if": Bad(
        """
        version: 1
        name: t
        steps:
          - id: route
            then: [{run: echo}]
        """,
        "missing-key",
        "'then' needs an 'if' condition that chooses between 'then' and 'else'",
        5,
        5,
    ),
    # -- wrong types -----------------------------------------------------------------------------------
    "steps-null": Bad(
        """
        version: 1
        name: t
        steps: null
        """,
        "wrong-type",
        "'steps' must be a list, not null",
        3,
        8,
    ),
    "step-not-a-mapping": Bad(
        """
        version: 1
        name: t
        steps:
          - just a string
        """,
        "wrong-type",
        "this step must be a mapping, not a string",
        4,
        5,
    ),
    "run-not-a-command": Bad(
        """
        version: 1
        name: t
        steps:
          - run: 5
        """,
        "wrong-type",
        "'run' must be a string or a list, not an integer",
        4,
        10,
    ),
    "input-wrong-type": Bad(
        """
        version: 1
        name: t
        inputs:
          limit: 20
        steps:
          - run: echo
        """,
        "wrong-type",
        "input 'limit' must be a string or a mapping, not an integer",
        4,
        10,
    ),
    "catch-not-a-list": Bad(
        """
        version: 1
        name: t
        steps:
          - try: [{run: echo}]
            catch: {run: echo}
        """,
        "wrong-type",
        "'catch' must be a list, not a mapping",
        5,
        12,
    ),
    # -- bad values ------------------------------------------------------------------------------------
    "enum-with-suggestion": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            parse: jsn
        """,
        "bad-value",
        "'parse' must be one of text, json, lines, yaml, not 'jsn' (did you mean 'json'?)",
        5,
        12,
    ),
    "enum-input-type-shorthand": Bad(
        """
        version: 1
        name: t
        inputs:
          topic: strin
        steps:
          - run: echo
        """,
        "bad-value",
        "input 'topic' must be one of string, integer, number, boolean, array, object, not 'strin' "
        "(did you mean 'string'?)",
        4,
        10,
    ),
    "bad-id-pattern": Bad(
        """
        version: 1
        name: t
        steps:
          - id: Fetch_All
            run: echo
        """,
        "bad-value",
        "invalid id 'Fetch_All': use lowercase letters, digits, '-' and '_', starting with a letter",
        4,
        9,
    ),
    "id-too-long": Bad(
        f"""
        version: 1
        name: t
        steps:
          - id: {"a" * 65}
            run: echo
        """,
        "bad-value",
        "'id' is too long: at most 64 characters",
        4,
        9,
    ),
    "bad-workflow-name": Bad(
        """
        version: 1
        name: Triage Issues
        steps:
          - run: echo
        """,
        "bad-value",
        "invalid workflow name 'Triage Issues': use lowercase letters, digits, '-' and '_', starting with a letter",
        2,
        7,
    ),
    "bad-duration": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            timeout: 5 minutes
        """,
        "bad-value",
        "invalid value '5 minutes' for 'timeout': a duration looks like 500ms, 30s, 5m, 1h30m or a number of seconds",
        5,
        14,
    ),
    "negative-duration": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            timeout: -5
        """,
        "bad-value",
        "'timeout' must be at least 0, not -5",
        5,
        14,
    ),
    "below-minimum": Bad(
        """
        version: 1
        name: t
        steps:
          - run: echo
            retry: {attempts: 0}
        """,
        "bad-value",
        "'attempts' must be at least 1, not 0",
        5,
        23,
    ),
    "secret-name-pattern": Bad(
        """
        version: 1
        name: t
        secrets: [github_token]
        steps:
          - run: echo
        """,
        "bad-value",
        "invalid value 'github_token' for 'secrets': secret names are environment variable names: uppercase "
        "letters, digits and '_'",
        3,
        11,
    ),
    "model-pattern": Bad(
        """
        version: 1
        name: t
        models:
          fast: gpt4
        steps:
          - run: echo
        """,
        "bad-value",
        "invalid value 'gpt4' for model 'fast': a model is written provider/model, e.g. openai/gpt-4o-mini",
        4,
        9,
    ),
    "python-call-pattern": Bad(
        """
        version: 1
        name: t
        steps:
          - python: helpers.count
        """,
        "bad-value",
        "invalid value 'helpers.count' for 'python': write a Python function as 'package.module:function', "
        "e.g. helpers:count",
        4,
        13,
    ),
    "event-name-pattern": Bad(
        """
        version: 1
        name: t
        steps:
          - emit: Report Ready
        """,
        "bad-value",
        "invalid value 'Report Ready' for 'emit': an event name uses lowercase letters, digits, '.', '-' and "
        "'_', starting with a letter, e.g. report.ready",
        4,
        11,
    ),
    "reserved-event-name": Bad(
        """
        version: 1
        name: t
        steps:
          - emit: {event: run.started}
        """,
        "bad-value",
        "'run.started' is not allowed for 'event': the prefixes of llmflow's own events (run. step. steps. "
        "branch. loop. map. parallel. stream. llm. checkpoint. hook.) are reserved",
        4,
        19,
    ),
    # Every prefix the emit action refuses at run time is refused by validate too, not only run. and step.
    "reserved-event-prefix-hook": Bad(
        """
        version: 1
        name: t
        steps:
          - emit: hook.failed
        """,
        "bad-value",
        "'hook.failed' is not allowed for 'emit': the prefixes of llmflow's own events (run. step. steps. "
        "branch. loop. map. parallel. stream. llm. checkpoint. hook.) are reserved",
        4,
        11,
    ),
    "integer-or-template": Bad(
        """
        version: 1
        name: t
        steps:
          - map:
              items: [1]
              concurrency: lots
              steps: [{run: echo}]
        """,
        "bad-value",
        "'concurrency' must be an integer or a template such as '{{ inputs.limit }}', not 'lots'",
        6,
        20,
    ),
    "number-or-template": Bad(
        """
        version: 1
        name: t
        steps:
          - llm: {prompt: hi, temperature: hot}
        """,
        "bad-value",
        "'temperature' must be a number or a template such as '{{ inputs.limit }}', not 'hot'",
        4,
        36,
    ),
    "percentage-pattern": Bad(
        """
        version: 1
        name: t
        steps:
          - map:
              items: [1]
              tolerated_failures: some
              steps: [{run: echo}]
        """,
        "bad-value",
        "invalid value 'some' for 'tolerated_failures': give a count such as 2, or a percentage such as '10%'",
        6,
        27,
    ),
    "duplicate-secrets": Bad(
        """
        version: 1
        name: t
        secrets: [A, A]
        steps:
          - run: echo
        """,
        "bad-value",
        "'secrets' has duplicate entries",
        3,
        10,
    ),
    # -- version ---------------------------------------------------------------------------------------
    "bad-version": Bad(
        """
        version: 2
        name: t
        steps:
          - run: echo
        """,
        "bad-version",
        "unsupported version 2: this llmflow reads version 1 workflows",
        1,
        10,
    ),
    "quoted-version": Bad(
        """
        version: "1"
        name: t
        steps:
          - run: echo
        """,
        "bad-version",
        "unsupported version '1': this llmflow reads version 1 workflows (write it without quotes)",
        1,
        10,
    ),
    # -- one of ----------------------------------------------------------------------------------------
    "loop-without-driver": Bad(
        """
        version: 1
        name: t
        steps:
          - loop:
              max_iterations: 3
              steps: [{run: echo}]
        """,
        "one-of",
        "'loop' needs one of for_each, times, while, until",
        4,
        5,
    ),
    "loop-with-two-drivers": Bad(
        """
        version: 1
        name: t
        steps:
          - loop:
              times: 3
              while: vars.more
              steps: [{run: echo}]
        """,
        "one-of",
        "'loop' takes only one of for_each, times, while, until (found times and while)",
        4,
        5,
    ),
    "llm-without-prompt": Bad(
        """
        version: 1
        name: t
        steps:
          - llm: {model: mock/echo}
        """,
        "one-of",
        "'llm' needs one of prompt, messages",
        4,
        5,
    ),
    "stream-with-two-sources": Bad(
        """
        version: 1
        name: t
        steps:
          - stream:
              from: {run: tail log, file: rows.jsonl}
              steps: [{run: echo}]
        """,
        "one-of",
        "'from' takes only one of run, file, items, llm (found run and file)",
        5,
        7,
    ),
    "hook-without-action": Bad(
        """
        version: 1
        name: t
        hooks:
          - on: step.failed
        steps:
          - run: echo
        """,
        "one-of",
        "this hook needs one of run, http, python, write, emit, action",
        4,
        5,
    ),
    "hook-with-misspelt-action": Bad(
        """
        version: 1
        name: t
        hooks:
          - on: step.failed
            emitt: alert
        steps:
          - run: echo
        """,
        "one-of",
        "this hook needs one of run, http, python, write, emit, action",
        4,
        5,
        "did you mean 'emit'?",
    ),
    # -- action: an action a plugin registers -------------------------------------------------------
    "action-number": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            action: 12
        """,
        "wrong-type",
        "'action' must be a string, not an integer",
        5,
        13,
    ),
    "action-without-a-name": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            action:
            with: {text: hi}
        """,
        "wrong-type",
        "'action' must be a string, not null",
        5,
        12,
    ),
    "action-bad-name": Bad(
        """
        version: 1
        name: t
        steps:
          - action: shout loudly
        """,
        "bad-value",
        "invalid value 'shout loudly' for 'action': an action name uses letters, digits, '_', '.' and '-', "
        "starting with a letter or '_', e.g. shout",
        4,
        13,
    ),
    "action-unknown-key": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            action: shout
            text: hi
        """,
        "unknown-key",
        "unknown key 'text' in step 'loud'; allowed keys: action, cache, compensate, continue_on_error, "
        "description, env, id, if, name, retry, timeout, with",
        6,
        5,
    ),
    "action-misspelt-with": Bad(
        """
        version: 1
        name: t
        steps:
          - action: shout
            whit: {text: hi}
        """,
        "unknown-key",
        "unknown key 'whit' in this 'action' step",
        5,
        5,
        "did you mean 'with'?",
    ),
    "action-with-a-list": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            action: shout
            with: [hi]
        """,
        "wrong-type",
        "'with' must be a mapping, not a list",
        6,
        11,
    ),
    "hook-action-unknown-key": Bad(
        """
        version: 1
        name: t
        hooks:
          - on: step.failed
            action: page
            retry: 2
        steps:
          - run: echo
        """,
        "unknown-key",
        "unknown key 'retry' in this hook; allowed keys: action, id, if, name, on, required, steps, timeout, with",
        6,
        5,
    ),
    "action-misspelt-kind-key": Bad(
        """
        version: 1
        name: t
        steps:
          - id: loud
            acton: shout
        """,
        "missing-kind",
        f"this step does not say what to do: it needs one of {ALL_KINDS}",
        5,
        5,
        "did you mean 'action'?",
    ),
    # -- kind keys -------------------------------------------------------------------------------------
    "missing-kind": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            name: does nothing
        """,
        "missing-kind",
        f"this step does not say what to do: it needs one of {ALL_KINDS}",
        4,
        5,
    ),
    "missing-kind-misspelt": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            rn: echo
        """,
        "missing-kind",
        f"this step does not say what to do: it needs one of {ALL_KINDS}",
        5,
        5,
        "did you mean 'run'?",
    ),
    "else-without-then": Bad(
        """
        version: 1
        name: t
        steps:
          - if: vars.ready
            else: [{run: echo}]
        """,
        "missing-kind",
        f"this step does not say what to do: it needs one of {ALL_KINDS}",
        4,
        5,
        "an if/else step needs 'then': the steps run when 'if' is true",
    ),
    "two-kinds": Bad(
        """
        version: 1
        name: t
        steps:
          - id: a
            run: echo
            llm: summarise this
        """,
        "two-kinds",
        "a step does one thing, but this one has 2 kind keys ('run', 'llm'); split it into separate steps",
        6,
        5,
    ),
    # -- names -----------------------------------------------------------------------------------------
    "input-name-starts-with-digit": Bad(
        """
        version: 1
        name: t
        inputs:
          1a: string
        steps:
          - run: echo
        """,
        "invalid-name",
        "'1a' is not a valid name in 'inputs': use letters, digits and '_', not starting with a digit",
        4,
        3,
    ),
    "input-name-with-dash-in-flow-mapping": Bad(
        """
        version: 1
        name: t
        inputs: {repo: string, my-input: string}
        steps:
          - run: echo
        """,
        "invalid-name",
        "'my-input' is not a valid name in 'inputs': use letters, digits and '_', not starting with a digit",
        3,
        24,
    ),
    "branch-name": Bad(
        """
        version: 1
        name: t
        steps:
          - parallel:
              branches:
                code-style: [{run: echo}]
        """,
        "invalid-name",
        "'code-style' is not a valid name in 'branches': use letters, digits and '_', not starting with a digit",
        6,
        9,
    ),
    "set-name": Bad(
        """
        version: 1
        name: t
        steps:
          - set: {my-var: 1}
        """,
        "invalid-name",
        "'my-var' is not a valid name in 'set': use letters, digits and '_', not starting with a digit",
        4,
        11,
    ),
    # -- empty -----------------------------------------------------------------------------------------
    "empty-steps": Bad(
        """
        version: 1
        name: t
        steps: []
        """,
        "empty",
        "'steps' must not be empty",
        3,
        8,
    ),
    "empty-nested-steps": Bad(
        """
        version: 1
        name: t
        steps:
          - steps: []
        """,
        "empty",
        "'steps' must not be empty",
        4,
        12,
    ),
    # -- the one branch the author meant ---------------------------------------------------------------
    "deep-inside-if-then": Bad(
        """
        version: 1
        name: t
        steps:
          - if: vars.ready
            then:
              - run: echo
                timeout: soon
        """,
        "bad-value",
        "invalid value 'soon' for 'timeout': a duration looks like 500ms, 30s, 5m, 1h30m or a number of seconds",
        7,
        18,
    ),
    "deep-inside-parallel-map": Bad(
        """
        version: 1
        name: t
        steps:
          - parallel:
              branches:
                one:
                  - map:
                      items: [1]
                      steps:
                        - http: {url: x, method: GTE}
        """,
        "bad-value",
        "'method' must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, not 'GTE' (did you mean 'GET'?)",
        10,
        42,
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_snippet_gives_exactly_one_diagnostic(case: Bad) -> None:
    found = check(case.source)
    assert [(d.code, d.message, d.line, d.column, d.hint) for d in found] == [
        (case.code, case.message, case.line, case.column, case.hint)
    ]
    assert found[0].file == "flow.yaml"
    assert found[0].severity == "error"


GOOD = {
    "minimal": """
        version: 1
        name: t
        steps:
          - run: echo hi
        """,
    "every-leaf-kind": """
        version: 1
        name: every-leaf
        inputs:
          topic: string
          limit: {type: integer, default: 3, minimum: 1}
        models:
          fast: mock/echo
        defaults: {model: fast, timeout: 2m, retry: {attempts: 3, delay: 1s, backoff: 2, max_delay: 30s}}
        limits: {max_concurrency: 4, max_iterations: 10, timeout: 1h}
        secrets: [GITHUB_TOKEN]
        env: {LC_ALL: C}
        hooks:
          - {on: step.failed, steps: "fetch*", emit: alert}
          - {on: step.completed, action: notify, with: {path: "{{ event.path }}"}}
        steps:
          - {id: shell, run: "echo {{ inputs.topic }}", parse: text}
          - {id: argv, run: [echo, hi]}
          - {id: ask, llm: "Say {{ inputs.topic }}"}
          - {id: get, http: {url: "https://example.com", method: GET}}
          - {id: call, python: "helpers:count", with: {text: hi}}
          - {id: remember, set: {count: 1}}
          - {id: save, write: {path: out.txt, content: hi}}
          - {id: pause, wait: 500ms}
          - {id: ok, approval: "Go on?"}
          - {id: note, emit: {event: report.ready, data: {n: 1}}}
          - {id: mem, memory: {collection: notes, add: hi}}
          - {id: loud, action: shout, with: {text: "{{ inputs.topic }}"}, retry: 2, timeout: 5s}
          - {action: my_team.notify-v2}
        """,
    "patterns": """
        version: 1
        name: patterns
        steps:
          - id: group
            steps: [{run: echo}]
          - id: route
            if: "true"
            then: [{run: echo}]
            else: [{run: echo}]
          - id: pick
            switch:
              cases: [{name: a, when: "true", steps: [{run: echo}]}]
              default: [{run: echo}]
          - id: again
            loop: {times: 2, steps: [{run: echo}]}
          - id: both
            parallel: {branches: {one: [{run: echo}], two: [{run: echo}]}, merge: last}
          - id: each
            map: {items: [1, 2], as: n, concurrency: 2, tolerated_failures: "10%", steps: [{run: echo}]}
          - id: lines
            stream: {from: {file: rows.jsonl}, format: jsonl, steps: [{run: echo}]}
          - id: guarded
            try: [{run: echo}]
            catch: [{run: echo}]
            finally: [{run: echo}]
        """,
    "if-without-then-is-a-plain-condition": """
        version: 1
        name: t
        steps:
          - if: "false"
            run: echo
        """,
}


@pytest.mark.parametrize("source", GOOD.values(), ids=GOOD.keys())
def test_good_snippet_has_no_diagnostics(source: str) -> None:
    assert check(source) == []


def test_misspelt_required_key_is_reported_once_as_unknown_key() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - map:
              itemz: [1]
              steps: [{run: echo}]
        """
    )
    assert [(d.code, d.message, d.line, d.column, d.hint) for d in found] == [
        ("unknown-key", "unknown key 'itemz' in 'map'", 5, 7, "did you mean 'items'?")
    ]


def test_misspelt_one_of_key_is_reported_once_as_unknown_key() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - loop:
              time: 3
              steps: [{run: echo}]
        """
    )
    assert [(d.code, d.message, d.hint) for d in found] == [
        ("unknown-key", "unknown key 'time' in 'loop'", "did you mean 'times'?")
    ]


def test_several_missing_keys_at_one_place_make_one_diagnostic() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - loop: {}
        """
    )
    assert [(d.code, d.message, d.line, d.column) for d in found] == [
        ("missing-key", "'loop' is missing the required key 'steps' and one of for_each, times, while, until", 4, 5)
    ]


def test_a_node_with_a_kind_problem_reports_nothing_else_inside_it() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - run: echo
            llm: {promt: hi}
            timeout: soon
        """
    )
    assert [d.code for d in found] == ["two-kinds"]


def test_problems_at_different_places_are_all_reported() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - run: echo
            parce: json
            shell: zsh
          - wait: forever
        """
    )
    assert sorted((d.line, d.column, d.code) for d in found) == [
        (5, 5, "unknown-key"),
        (6, 12, "bad-value"),
        (7, 11, "bad-value"),
    ]


def test_no_message_shows_a_raw_regular_expression() -> None:
    from llmflow.resources import workflow_schema
    from llmflow.spec.validator import _PATTERN_HELP

    patterns: set[str] = set()
    stack: list[object] = [workflow_schema()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("pattern"), str):
                patterns.add(item["pattern"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    # Only used under `not`, explained by its own message.
    patterns.discard(r"^(run|steps?|branch|loop|map|parallel|stream|llm|checkpoint|hook)\.")
    assert sorted(patterns - set(_PATTERN_HELP)) == []


def test_a_document_that_is_not_a_mapping_inside_is_tolerated() -> None:
    found = check(
        """
        version: 1
        name: t
        steps:
          - parallel: {branches: [one, two]}
        """
    )
    assert [(d.code, d.message) for d in found] == [("wrong-type", "'branches' must be a mapping, not a list")]
