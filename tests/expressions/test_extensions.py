"""Plugin filters and condition functions at the expression level: compiled once with their names recorded,
looked up in the current run's set when called, on plain copies of the arguments."""

from __future__ import annotations

from typing import Any

import pytest

from llmflow.errors import ExpressionError
from llmflow.expressions import compile_condition, compile_shell, compile_template
from llmflow.expressions.extensions import Extensions, extensions_of_run


def test_names_are_recorded_once_each_with_the_offset_of_their_first_use() -> None:
    condition = compile_condition("score(a) > 1 and score(b) < rank(c, d=1)", plugins=True)
    assert condition.plugin_functions == (("score", 0), ("rank", 28))
    source = "{{ a | shout }}\n{% filter shout(2) %}{{ b | whisper }}{% endfilter %}"
    assert compile_template(source, True).plugin_filters == (("shout", 7), ("whisper", 44))
    assert compile_shell("echo {{ a | trim | shout }}", True).plugin_filters == (("shout", 19),)


def test_plugin_calls_see_the_current_run_s_functions_and_copies_of_the_data() -> None:
    seen: list[Any] = []

    def grab(value: list[Any]) -> int:
        seen.append(value)
        value.append("changed")
        return len(value)

    context = {"vars": {"items": [1, 2]}}
    condition = compile_condition("grab(vars.items) == 3", plugins=True)
    template = compile_template("{{ vars.items | pick }}", True)
    with extensions_of_run(Extensions({"pick": grab}, {"grab": grab})):
        assert condition.evaluate(context) is True
        assert template.render(context) == 3
    assert context == {"vars": {"items": [1, 2]}}
    assert seen == [[1, 2, "changed"], [1, 2, "changed"]]
    assert seen[0] is not seen[1]


def test_outside_a_run_no_plugin_name_is_known() -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_condition("score(1)", plugins=True).evaluate({})
    assert raised.value.message == "unknown function 'score': no plugin of this run registers it"


def test_the_run_s_set_is_restored_when_its_block_ends() -> None:
    template = compile_template("{{ 1 | tag }}", True)
    with extensions_of_run(Extensions({"tag": lambda value: f"outer {value}"})):
        with extensions_of_run(Extensions({"tag": lambda value: f"inner {value}"})):
            assert template.render({}) == "inner 1"
        assert template.render({}) == "outer 1"
    with pytest.raises(ExpressionError, match="no plugin of this run registers it"):
        template.render({})


def test_a_filter_that_is_not_a_plugin_s_is_still_refused_when_compiled() -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_template("{{ a | _private }}", True)
    assert raised.value.message == "unknown filter '_private'"
    with pytest.raises(ExpressionError) as raised:
        compile_template("{{ a is shouty }}", True)
    assert raised.value.message == "unknown test 'shouty'"
