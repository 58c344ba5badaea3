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
