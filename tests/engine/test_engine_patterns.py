"""Sequences, groups, if/else, switch and loops: outputs, statuses and the names each pattern sees."""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import Flow

CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "group-output-is-last-non-skipped-step",
        """
        steps:
          - id: g
            steps:
              - {id: a, run: echo first}
              - {id: b, run: echo second}
              - {id: c, if: "False", run: echo never}
        outputs: {g: "{{ steps.g.output }}"}
        """,
        {"g": "second"},
    ),
    (
        "if-false-skips-the-step",
        """
        steps:
          - {id: x, if: "1 > 2", run: echo no}
          - {id: y, run: 'echo "{{ steps.x.status }}"'}
        outputs: {status: "{{ steps.y.output }}", output: "{{ steps.x.output }}"}
        """,
        {"status": "skipped", "output": None},
    ),
    (
        "if-then-branch",
        """
        inputs: {n: {type: integer, default: 5}}
        steps:
          - id: x
            if: inputs.n > 3
            then: [{id: big, run: echo big}]
            else: [{id: small, run: echo small}]
        outputs: {out: "{{ steps.x.output }}", branch: "{{ steps.x.branch }}", other: "{{ steps.small.status }}"}
        """,
        {"out": "big", "branch": "then", "other": "skipped"},
    ),
    (
        "if-else-branch",
        """
        inputs: {n: {type: integer, default: 1}}
        steps:
          - id: x
            if: inputs.n > 3
            then: [{id: big, run: echo big}]
            else: [{id: small, run: echo small}]
        outputs: {out: "{{ steps.x.output }}", branch: "{{ steps.x.branch }}"}
        """,
        {"out": "small", "branch": "else"},
    ),
    (
        "if-without-else-outputs-null",
        """
        steps:
          - id: x
            if: "False"
            then: [{id: big, run: echo big}]
        outputs: {out: "{{ steps.x.output }}", branch: "{{ steps.x.branch }}"}
        """,
        {"out": None, "branch": "else"},
    ),
    (
        "switch-first-true-case-wins",
        """
        steps:
          - id: s
            switch:
              cases:
                - {name: no, when: "False", steps: [{id: a, run: echo a}]}
                - {name: first, when: "True", steps: [{id: b, run: echo b}]}
                - {name: second, when: "True", steps: [{id: c, run: echo c}]}
              default: [{id: d, run: echo d}]
        outputs: {out: "{{ steps.s.output }}", branch: "{{ steps.s.branch }}", later: "{{ steps.c.status }}"}
        """,
        {"out": "b", "branch": "first", "later": "skipped"},
    ),
    (
        "switch-default",
        """
        steps:
          - id: s
            switch:
              cases: [{when: "False", steps: [{id: a, run: echo a}]}]
              default: [{id: d, run: echo d}]
        outputs: {out: "{{ steps.s.output }}", branch: "{{ steps.s.branch }}"}
        """,
        {"out": "d", "branch": "default"},
    ),
    (
        "switch-no-match-outputs-null",
        """
        steps:
          - id: s
            switch:
              cases: [{when: "False", steps: [{id: a, run: echo a}]}]
        outputs: {out: "{{ steps.s.output }}", branch: "{{ steps.s.branch }}"}
        """,
        {"out": None, "branch": None},
    ),
    (
        "for-each-list-with-as-index-and-iteration",
        """
        steps:
          - id: l
            loop:
              for_each: [a, b, c]
              as: letter
              steps:
                - {id: x, run: 'echo "{{ letter }}{{ index }}{{ loop.iteration }}"'}
        outputs: {out: "{{ steps.l.output }}", n: "{{ steps.l.iterations }}"}
        """,
        {"out": ["a01", "b12", "c23"], "n": 3},
    ),
    (
        "for-each-mapping-gives-key-value-items",
        """
        vars: {m: {k1: 1, k2: 2}}
        steps:
          - id: l
            loop:
              for_each: "{{ vars.m }}"
              steps:
                - {id: x, run: 'echo "{{ item.key }}={{ item.value }}"'}
        outputs: {out: "{{ steps.l.output }}"}
        """,
        {"out": ["k1=1", "k2=2"]},
    ),
    (
        "for-each-over-a-range-expression",
        """
        steps:
          - id: l
            loop:
              for_each: "{{ range(2) }}"
              steps:
                - {id: x, run: 'echo "n{{ item }}"'}
        outputs: {out: "{{ steps.l.output }}"}
        """,
        {"out": ["n0", "n1"]},
    ),
    (
        "times",
        """
        steps:
          - id: l
            loop:
              times: 3
              steps:
                - {id: x, run: 'echo "{{ item }}/{{ index }}"'}
        outputs: {out: "{{ steps.l.output }}"}
        """,
        {"out": ["0/0", "1/1", "2/2"]},
    ),
    (
        "while-is-checked-before-each-iteration",
        """
        vars: {n: 5}
        steps:
          - id: l
            loop:
              while: vars.n < 3
              max_iterations: 10
              steps:
                - {id: inc, set: {n: "{{ vars.n + 1 }}"}}
        outputs: {out: "{{ steps.l.output }}", n: "{{ vars.n }}"}
        """,
        {"out": [], "n": 5},
    ),
    (
        "while-counts-up",
        """
        vars: {n: 0}
        steps:
          - id: l
            loop:
              while: vars.n < 3
              max_iterations: 10
              steps:
                - {id: inc, set: {n: "{{ vars.n + 1 }}"}}
        outputs: {n: "{{ vars.n }}", iterations: "{{ steps.l.iterations }}"}
        """,
        {"n": 3, "iterations": 3},
    ),
    (
        "until-is-checked-after-and-sees-the-iteration-steps",
        """
        vars: {n: 10}
        steps:
          - id: l
            loop:
              until: steps.inc.output.n >= 3
              max_iterations: 10
              steps:
                - {id: inc, set: {n: "{{ vars.n + 1 }}"}}
        outputs: {n: "{{ vars.n }}", iterations: "{{ steps.l.iterations }}"}
        """,
        {"n": 11, "iterations": 1},
    ),
    (
        "iterations-see-variables-left-by-the-previous-one",
        """
        vars: {acc: []}
        steps:
          - id: l
            loop:
              for_each: [1, 2, 3]
              steps:
                - {id: add, set: {acc: "{{ vars.acc + [item] }}"}}
        outputs: {acc: "{{ vars.acc }}"}
        """,
        {"acc": [1, 2, 3]},
    ),
    (
        "set-then-vars-in-later-steps",
        """
        steps:
          - {id: s, set: {greeting: hello, count: 3}}
          - {id: r, run: 'echo "{{ vars.greeting }} x{{ vars.count }}"'}
        outputs: {r: "{{ steps.r.output }}", s: "{{ steps.s.output }}"}
        """,
        {"r": "hello x3", "s": {"greeting": "hello", "count": 3}},
    ),
    (
        "nested-group-steps-are-visible-after-the-group",
        """
        steps:
          - id: g
            steps:
              - id: inner
                if: "True"
                then: [{id: deep, run: echo deep}]
          - {id: after, run: 'echo "{{ steps.deep.output }}"'}
        outputs: {after: "{{ steps.after.output }}"}
        """,
        {"after": "deep"},
    ),
]


@pytest.mark.parametrize(("body", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_pattern_outputs(flow: Flow, body: str, expected: dict[str, Any]) -> None:
    summary = flow.run(body)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == expected


def test_skipped_step_is_journaled_as_skipped_without_a_duration(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - {id: x, if: "False", run: echo no}
        """
    )
    (record,) = flow.journal(summary.run_id)
    assert {key: value for key, value in record.items() if key != "c"} == {"p": "x", "s": "skipped"}
    assert [event["path"] for event in flow.events(summary.run_id, "step.skipped")] == ["x"]


@pytest.mark.parametrize(
    ("loop", "message"),
    [
        ("times: 5", "would run 5 iterations, over its max_iterations (3)"),
        ("for_each: [1, 2, 3, 4]", "would run 4 iterations, over its max_iterations (3)"),
        ('until: "False"', "stopped after max_iterations (3) without finishing"),
        ('while: "True"', "stopped after max_iterations (3) without finishing"),
    ],
    ids=["times", "for-each", "until", "while"],
)
def test_max_iterations_is_enforced_with_a_clear_error(flow: Flow, loop: str, message: str) -> None:
    summary = flow.run(
        f"""
        steps:
          - id: l
            loop:
              {loop}
              max_iterations: 3
              steps:
                - {{id: x, run: "true"}}
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "l"
    assert summary.error is not None and message in summary.error
    assert f"loop 'l' {message.split(' ')[0]}" in summary.error


@pytest.mark.parametrize(
    "loop",
    ['while: "vars.n < 3"', 'until: "vars.n >= 3"', "times: 3", "for_each: [a, b, c]"],
    ids=["while", "until", "times", "for-each"],
)
def test_a_loop_that_ends_after_exactly_max_iterations_succeeds(flow: Flow, loop: str) -> None:
    summary = flow.run(
        f"""
        vars: {{n: 0}}
        steps:
          - id: l
            loop:
              {loop}
              max_iterations: 3
              steps:
                - set: {{n: "{{{{ vars.n + 1 }}}}"}}
        outputs: {{n: "{{{{ vars.n }}}}", iterations: "{{{{ steps.l.output | length }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"n": 3, "iterations": 3}


@pytest.mark.parametrize(
    "condition", ['while: "index < 3"', 'while: "loop.iteration <= 3"', 'until: "loop.iteration == 3"']
)
def test_while_and_until_see_the_iteration_as_the_body_does(flow: Flow, condition: str) -> None:
    summary = flow.run(
        f"""
        steps:
          - id: l
            loop:
              {condition}
              steps:
                - run: "echo {{{{ index }}}}-{{{{ loop.iteration }}}}"
        outputs: {{l: "{{{{ steps.l.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"l": ["0-1", "1-2", "2-3"]}


def test_loop_instance_paths_carry_the_iteration(flow: Flow) -> None:
    summary = flow.run(
        """
        steps:
          - id: outer
            loop:
              times: 2
              steps:
                - id: inner
                  loop:
                    times: 2
                    steps:
                      - {id: leaf, run: "true"}
        """
    )
    paths = [record["p"] for record in flow.journal(summary.run_id)]
    assert paths == [
        "outer[0]/inner[0]/leaf",
        "outer[0]/inner[1]/leaf",
        "outer[0]/inner",
        "outer[1]/inner[0]/leaf",
        "outer[1]/inner[1]/leaf",
        "outer[1]/inner",
        "outer",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("times", "2.5", "loop 'l': times must be a whole number, not 2.5"),
        ("times", "true", "loop 'l': times must be a whole number, not True"),
        ("times", "inputs.big * 10", "loop 'l': times must be a whole number, not inf"),
        ("concurrency", "1.5", "'l': concurrency must be a whole number, not 1.5"),
        ("concurrency", "inputs.big * 10", "'l': concurrency must be a whole number, not inf"),
    ],
    ids=["times-fraction", "times-boolean", "times-infinite", "concurrency-fraction", "concurrency-infinite"],
)
def test_counts_from_templates_must_be_whole_numbers(flow: Flow, field: str, value: str, message: str) -> None:
    pattern = "loop: {times: COUNT" if field == "times" else "map: {items: [1, 2], concurrency: COUNT"
    summary = flow.run(
        """
        inputs: {big: {type: number, default: 1e308}}
        steps:
          - id: l
            PATTERN, steps: [{run: echo hi}]}
        """.replace("PATTERN", pattern).replace("COUNT", f'"{{{{ {value} }}}}"')
    )
    assert summary.status == "failed"
    assert summary.failed_step == "l"
    assert summary.error == message


@pytest.mark.parametrize("condition", ["until: 1 / 0 > 1", "while: 1 / 0 > 1"], ids=["until", "while"])
def test_a_failing_loop_condition_names_the_loop_instance(flow: Flow, condition: str) -> None:
    summary = flow.run(
        f"""
        steps:
          - id: outer
            loop:
              times: 1
              steps:
                - id: l
                  loop:
                    {condition}
                    max_iterations: 3
                    steps: [{{run: echo hi}}]
        """
    )
    assert summary.status == "failed"
    assert summary.failed_step == "outer[0]/l"
    assert summary.error == f"step 'l', field '{condition.split(':')[0]}': division by zero"
    (failed,) = [event for event in flow.events(summary.run_id, "step.failed") if event["path"] == "outer[0]/l"]
    assert failed["data"]["error"]["step"] == "outer[0]/l"
