"""The graph's classes: built, compared, copied and stored like the frozen dataclasses they replace."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmflow import graphcache
from llmflow.compiler.graph import (
    EMPTY,
    ActionNode,
    Frozen,
    Limits,
    Location,
    Node,
    RetryPolicy,
    Tolerance,
    Workflow,
    evolve,
)
from llmflow.frontend import check_workflow

#: A workflow with an object of every class of the graph (the test checks that it has).
EVERYTHING = """\
version: 1
name: everything
description: one of each
inputs:
  word: {type: string, default: hi, description: a word}
  count: {type: integer, minimum: 1, default: 2}
models:
  fast: mock/echo
defaults:
  model: fast
  retry: {attempts: 2, delay: 1s}
limits: {max_concurrency: 2, max_iterations: 7, timeout: 1h}
secrets: [TOKEN]
env: {MODE: "{{ inputs.word }}"}
plugins: [shout.py]
hooks:
  - id: note
    on: step.failed
    steps: "a*"
    run: echo failed
steps:
  - id: a
    run: echo {{ inputs.word | shout }}
    timeout: 5s
  - id: g
    steps: [{id: g1, set: {x: 1}}]
    compensate: [{id: undo, run: echo undo}]
  - id: i
    if: "inputs.count > 1"
    then: [{id: t1, set: {y: 2}}]
    else: [{id: e1, set: {y: 3}}]
  - id: s
    switch:
      cases:
        - {name: one, when: "inputs.count == 1", steps: [{id: c1, set: {z: 1}}]}
      default: [{id: d1, set: {z: 2}}]
  - id: l
    loop:
      times: 2
      steps: [{id: l1, set: {w: "{{ item }}"}}]
  - id: p
    parallel:
      branches:
        left: [{id: pl, set: {v: 1}}]
        right: [{id: pr, set: {u: 1}}]
  - id: m
    map:
      items: [1, 2]
      fail_fast: false
      tolerated_failures: 10%
      steps: [{id: m1, llm: "say {{ item }}"}]
  - id: st
    stream:
      from: {items: [1, 2]}
      batch: 2
      steps: [{id: st1, set: {q: "{{ item }}"}}]
  - id: tr
    try: [{id: b1, run: "false"}]
    catch: [{id: h1, set: {caught: true}}]
    finally: [{id: f1, set: {done: true}}]
  - id: sub
    workflow: lib/sub.yaml
    with: {word: "{{ inputs.word }}"}
outputs:
  said: "{{ steps.a.output }}"
"""

SUB = """\
version: 1
name: sub
inputs:
  word: {type: string}
steps:
  - id: up
    set: {shout: "{{ inputs.word | upper }}"}
outputs:
  shout: "{{ vars.shout }}"
"""

PLUGIN = """\
import llmflow


@llmflow.hookimpl
def register_filters(filters):
    filters["shout"] = lambda text: str(text).upper()
"""


def compiled(folder: Path) -> Workflow:
    (folder / "lib").mkdir(parents=True, exist_ok=True)
    (folder / "lib" / "sub.yaml").write_text(SUB, encoding="utf-8")
    (folder / "shout.py").write_text(PLUGIN, encoding="utf-8")
    main = folder / "main.yaml"
    main.write_text(EVERYTHING, encoding="utf-8")
    workflow, diagnostics = check_workflow(main)
    assert workflow is not None, diagnostics
    return workflow


def described(value: Any, seen: set[type]) -> Any:
    """A plain structure with everything a graph object holds (its class included), to compare two graphs."""
    if isinstance(value, (Frozen, Location)):
        seen.add(type(value))
        return (type(value).__name__, {name: described(getattr(value, name), seen) for name in value._fields})
    if isinstance(value, (tuple, list)):
        return [described(item, seen) for item in value]
    if isinstance(value, Mapping):
        return {key: described(item, seen) for key, item in value.items()}
    if isinstance(value, (str, int, float, bool, type(None), frozenset, Path)):
        return value
    transient = ("_tree", "_idle")  # parsed again when used; a condition's pool of idle evaluators
    slots = [name for cls in type(value).__mro__ for name in getattr(cls, "__slots__", ()) if name not in transient]
    if slots:  # templates and conditions: every part but those
        return (type(value).__name__, {name: described(getattr(value, name), seen) for name in slots})
    if hasattr(value, "__dict__") and not callable(value):  # a condition's positions
        return (type(value).__name__, described(vars(value), seen))
    return (type(value).__name__, repr(value), getattr(value, "source", None))


def every_class() -> set[type]:
    """Every class of the graph but ``Node`` (the base of the node classes); ``Location`` is a tuple."""
    found: set[type] = {Location}
    stack: list[type] = [Frozen]
    while stack:
        for cls in stack.pop().__subclasses__():
            found.add(cls)
            stack.append(cls)
    return found - {Node}


def test_the_test_workflow_has_an_object_of_every_class(tmp_path: Path) -> None:
    seen: set[type] = set()
    described(compiled(tmp_path), seen)
    assert seen == every_class()
    assert len(seen) == 21


def test_a_cached_graph_holds_every_field_of_every_object(tmp_path: Path) -> None:
    first = compiled(tmp_path)
    entry = graphcache.entry(tmp_path / "main.yaml", str(tmp_path / "main.yaml"))
    assert entry is not None and entry.file.is_file()
    remembered = graphcache.recall(entry)
    assert remembered is not None
    seen: set[type] = set()
    assert described(remembered[0], seen) == described(first, set())
    assert seen == every_class()


def test_objects_are_frozen() -> None:
    location = Location("flow.yaml", 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        location.line = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del location.line  # type: ignore[misc]


def test_values_compare_and_hash_by_their_fields_and_nodes_by_identity() -> None:
    assert Location("f", 1, 2) == Location("f", line=1, column=2)
    assert hash(Location("f", 1, 2)) == hash(Location("f", 1, 2))
    assert Location("f", 1, 2) != Location("f", 1, 3)
    assert Location("f", 1, 2) != ("f", 1, 2)
    assert {Limits(), Limits()} == {Limits()}
    assert Tolerance(count=2) != Tolerance()
    where = Location("f", 1, 2)
    node = ActionNode(kind="set", id="a", path="a", location=where, action="set", config=None)  # type: ignore[arg-type]
    twin = ActionNode(kind="set", id="a", path="a", location=where, action="set", config=None)  # type: ignore[arg-type]
    assert node == node and node != twin and len({node, twin}) == 2


def test_constructors_take_defaults_and_refuse_what_dataclasses_refuse() -> None:
    assert RetryPolicy() == RetryPolicy(1, 1.0, 2.0, 60.0, 0.0, frozenset({"any"}))
    node = ActionNode(kind="set", id="a", path="a", location=Location("f", 1, 2), action="set", config=None)  # type: ignore[arg-type]
    assert (node.named, node.options, node.compensate, node.retry) == (False, EMPTY, (), None)
    with pytest.raises(TypeError):
        ActionNode(kind="set", id="a", path="a", location=Location("f", 1, 2), action="set")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Location("f", 1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Location("f", 1, line=2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Location("f", 1, 2, colour=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ActionNode("set", "a")  # type: ignore[misc]


def test_evolve_changes_only_the_fields_given() -> None:
    policy = RetryPolicy(attempts=3)
    assert evolve(policy, delay=5.0) == RetryPolicy(attempts=3, delay=5.0)
    assert policy.delay == 1.0
    assert repr(evolve(policy, on=frozenset({"timeout"}))).startswith("RetryPolicy(attempts=3, delay=1.0")


def test_values_survive_plain_pickle_and_copy() -> None:
    location = Location("flow.yaml", 3, 5)
    assert pickle.loads(pickle.dumps(location)) == location
    assert copy.copy(location) == location
    assert copy.deepcopy(RetryPolicy(attempts=3)) == RetryPolicy(attempts=3)
