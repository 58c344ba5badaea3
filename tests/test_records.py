"""``llmflow.records``: the repr, equality, hashing and immutability a dataclass would give."""

from __future__ import annotations

import pytest

from llmflow.cli.run import Reporting
from llmflow.engine.interception import Decision
from llmflow.engine.outcome import Outcome


def test_a_record_compares_and_shows_its_fields() -> None:
    assert Outcome("succeeded", output=1) == Outcome("succeeded", output=1)
    assert Outcome("succeeded", output=1) != Outcome("succeeded", output=2)
    assert Outcome("succeeded") != "succeeded"
    assert "output=1" in repr(Outcome("succeeded", output=1)) and repr(Outcome("x")).startswith("Outcome(")
    with pytest.raises(TypeError):
        hash(Outcome("succeeded"))


def test_defaults_are_not_shared() -> None:
    first, second = Outcome("succeeded"), Outcome("succeeded")
    first.writes["a"] = 1
    assert second.writes == {}


def test_a_frozen_record_cannot_change_and_hashes_by_its_fields() -> None:
    decision = Decision.skip(output=3)
    with pytest.raises(AttributeError):
        decision.output = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del decision.kind  # type: ignore[misc]
    assert hash(Reporting(quiet=True)) == hash(Reporting(quiet=True)) and Reporting(quiet=True) != Reporting()
    assert decision == Decision("skip", output=3) and decision.output == 3


def test_frozen_records_survive_pickle_and_copy_though_they_refuse_setattr() -> None:
    import copy
    import dataclasses
    import pickle

    from llmflow.expressions import compile_condition, compile_template
    from llmflow.expressions.references import Reference

    reference = Reference("steps", ("fetch", "output"), 4)
    template = compile_template("{{ steps.fetch.output | upper }}")  # no parsed tree: that holds the sandbox
    condition = compile_condition("steps.fetch.output > 1")
    for value in (reference, template, Decision.skip(output=3)):
        for copied in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert copied == value and type(copied) is type(value) and hash(copied) == hash(value)
    # A condition holds the sandbox's functions, which only the graph cache knows how to store.
    assert copy.copy(condition) == condition
    assert copy.copy(condition).evaluate({"steps": {"fetch": {"output": 2}}})
    assert str(pickle.loads(pickle.dumps(reference))) == "steps.fetch.output"
    with pytest.raises(dataclasses.FrozenInstanceError):
        reference.root = "inputs"  # type: ignore[misc]


def test_parsed_trees_and_evaluator_pools_are_left_out_of_equality_and_repr() -> None:
    from llmflow.expressions import compile_condition, compile_template
    from llmflow.expressions.templates import Template

    template = compile_template("{% if x %}y{% endif %}")
    assert template._tree is not None
    bare = Template(template.source, template.native, template.references, None, template.plugin_filters)
    assert bare == template and hash(bare) == hash(template) and "_tree" not in repr(template)
    condition = compile_condition("x > 1")
    condition.evaluate({"x": 2})  # leaves an idle evaluator behind
    assert condition == compile_condition("x > 1") and "_idle" not in repr(condition)
    shown = "Condition(source='x > 1', references=frozenset({Reference(root='x', path=(), offset=0)}), "
    assert repr(condition) == shown + "plugin_functions=())"
