"""Conditions: safe Python-syntax expressions evaluated with simpleeval."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmflow.errors import ExpressionError
from llmflow.expressions import conditions as conditions_module
from llmflow.expressions.conditions import FUNCTIONS, Condition, compile_condition
from llmflow.expressions.references import Reference


def make_context() -> dict[str, Any]:
    return {
        "steps": {
            "fetch": {
                "output": {"count": 3, "items": [1, 2, 3], "title": "Hello World", "empty": None},
                "status": "succeeded",
            },
            "label": {"output": [{"label": "bug", "ok": True}, {"label": "feature", "ok": False}]},
        },
        "inputs": {"limit": 20, "repo": "owner/name", "flag": False, "ratio": 0.5},
        "vars": {"a": 1, "names": ["x", "y"]},
        "item": {"title": "  Spaced  ", "n": "42"},
        "index": 2,
        "secrets": {"OTHER": "value"},
    }


def value_of(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_condition(source).value(make_context() if context is None else context)


VALUES = [
    ("comparison", "steps.fetch.output.count > 2", True),
    ("dot-into-mapping", "steps.fetch.output.items", [1, 2, 3]),
    ("key-named-like-a-method", "steps.fetch.output.items[0]", 1),
    ("subscript-constant", "steps['fetch'].output.count", 3),
    ("subscript-variable", "steps[vars.names[0] and 'fetch'].status", "succeeded"),
    ("and-or-not", "inputs.limit > 10 and not inputs.flag or False", True),
    ("or-returns-operand", "steps.fetch.output.empty or 'default'", "default"),
    ("in-list", "'bug' in [r.label for r in steps.label.output]", True),
    ("not-in-string", "'xyz' not in inputs.repo", True),
    ("arithmetic", "(inputs.limit + 1) * 2 - 10 // 3 % 2 + 2**10", 1065),
    ("true-division", "inputs.limit / 8", 2.5),
    ("conditional", "'many' if steps.fetch.output.count > 2 else 'few'", "many"),
    ("slice", "vars.names[::-1]", ["y", "x"]),
    ("string-slice", "inputs.repo[:5]", "owner"),
    ("dict-literal", "{'a': vars.a, 'b': [1, 2]}", {"a": 1, "b": [1, 2]}),
    ("tuple-becomes-list", "(1, 'a')", [1, "a"]),
    ("starred-list", "[*vars.names, 'z']", ["x", "y", "z"]),
    ("list-comprehension", "[x * 2 for x in steps.fetch.output.items if x > 1]", [4, 6]),
    ("nested-comprehension", "[a + b for a in vars.names for b in vars.names]", ["xx", "xy", "yx", "yy"]),
    ("dict-comprehension", "{k: v for k, v in steps.fetch.output.items() if k == 'count'}", {"count": 3}),
    ("generator-in-any", "any(r.ok for r in steps.label.output)", True),
    ("generator-in-all", "all(r.ok for r in steps.label.output)", False),
    ("len", "len(steps.label.output)", 2),
    ("min-max", "[min(3, 1, 2), max(steps.fetch.output.items)]", [1, 3]),
    ("sum", "sum(steps.fetch.output.items)", 6),
    ("sum-start", "sum([0.5, 0.25], 1)", 1.75),
    ("abs-round", "[abs(-2), round(2.567, 2), round(2.5)]", [2, 2.57, 2]),
    ("int-float-str-bool", "[int(item.n), float('1.5'), str(12), bool('')]", [42, 1.5, "12", False]),
    ("sorted-reverse", "sorted(vars.names, reverse=True)", ["y", "x"]),
    ("sorted-key", "sorted(['ccc', 'a', 'bb'], key=len)", ["a", "bb", "ccc"]),
    ("string-methods", "item.title.strip().lower().startswith('spaced')", True),
    ("split", "inputs.repo.split('/')", ["owner", "name"]),
    ("mapping-get", "steps.fetch.output.get('missing', 'fallback')", "fallback"),
    ("keys-are-plain-list", "steps.fetch.output.keys()", ["count", "items", "title", "empty"]),
    ("items-are-plain-lists", "vars.items()", [["a", 1], ["names", ["x", "y"]]]),
    ("list-count", "vars.names.count('x')", 1),
    ("f-string", "f'{inputs.repo}#{index:03d}'", "owner/name#002"),
    ("f-string-repr", "f'{vars.names!r}'", "['x', 'y']"),
    ("chained-comparison", "0 < index < 3", True),
    ("is-none", "steps.fetch.output.empty is None", True),
    ("unary", "[-index, +index, ~index, not index]", [-2, 2, -3, False]),
    ("bit-ops", "[6 & 3, 6 | 3, 6 ^ 3, 1 << 4, 256 >> 4]", [2, 7, 5, 16, 16]),
    ("set-literal", "len({1, 2, 2})", 2),
    ("set-comprehension", "len({x % 2 for x in steps.fetch.output.items})", 2),
    ("big-but-allowed-power", "len(str(2**1000))", 302),
    ("repeat-within-limit", "len('ab' * 50000)", 100000),
    ("multi-line", "steps.fetch.output.count > 2\n  and inputs.limit > 10", True),
    ("surrounding-whitespace", "  index == 2  ", True),
]


@pytest.mark.parametrize(("source", "expected"), [case[1:] for case in VALUES], ids=[case[0] for case in VALUES])
def test_condition_value(source: str, expected: Any) -> None:
    assert value_of(source) == expected


def test_evaluate_returns_a_bool() -> None:
    assert compile_condition("steps.fetch.output.items").evaluate(make_context()) is True
    assert compile_condition("vars.names[5:]").evaluate(make_context()) is False


def test_dot_access_reads_keys_before_methods() -> None:
    context = {"data": {"items": "the key", "get": 5}}
    assert value_of("data.items", context) == "the key"
    assert value_of("data.get", context) == 5


def test_method_call_on_a_mapping_calls_the_method_even_when_a_key_has_its_name() -> None:
    context = {"data": {"items": "the key"}}
    assert value_of("data.items()", context) == [["items", "the key"]]


def test_plugin_functions_are_merged_into_the_whitelist() -> None:
    condition = compile_condition("double(index) == 4 and len('ab') == 2", functions={"double": lambda x: x * 2})
    assert condition.evaluate(make_context()) is True
    assert set(FUNCTIONS) == set(
        ["len", "min", "max", "sum", "any", "all", "abs", "round", "int", "float", "str", "bool", "sorted"]
    )


def test_condition_is_frozen_and_keeps_its_source() -> None:
    condition = compile_condition("index > 1")
    assert isinstance(condition, Condition)
    assert condition.source == "index > 1"
    with pytest.raises(AttributeError):
        condition.source = "x"  # type: ignore[misc]


REFERENCES = [
    ("dotted", "steps.fetch.output.count > 1", {("steps", ("fetch", "output", "count"), 0)}),
    ("constant-subscripts", "steps['fetch'][\"output\"].count", {("steps", ("fetch", "output", "count"), 0)}),
    ("path-capped-at-three", "steps.a.output.b.c", {("steps", ("a", "output", "b"), 0)}),
    ("variable-subscript", "steps[inputs.name].output", {("steps", (), 0), ("inputs", ("name",), 6)}),
    ("integer-subscript-stops-path", "items[0].title", {("items", (), 0)}),
    ("method-call-is-not-a-key", "inputs.repo.split('/')", {("inputs", ("repo",), 0)}),
    ("functions-are-not-references", "len(vars.names) > 0", {("vars", ("names",), 4)}),
    (
        "comprehension-variable-is-bound",
        "[x.a for x in steps.s.output if x.b]",
        {("steps", ("s", "output"), 14)},
    ),
    ("comprehension-shadowing", "[steps for steps in [1]] + [vars.v]", {("vars", ("v",), 28)}),
    ("offset-counts-characters", "'é' == inputs.x", {("inputs", ("x",), 7)}),
    ("offset-with-leading-space", "   index", {("index", (), 3)}),
    ("multi-line-offset", "index > 1\nand vars.a", {("index", (), 0), ("vars", ("a",), 14)}),
]


@pytest.mark.parametrize(
    ("source", "expected"), [case[1:] for case in REFERENCES], ids=[case[0] for case in REFERENCES]
)
def test_condition_references(source: str, expected: set[tuple[str, tuple[str, ...], int]]) -> None:
    assert compile_condition(source).references == {Reference(*item) for item in expected}


COMPILE_ERRORS = [
    ("syntax", "index >", "invalid syntax", 7),
    ("unclosed", "len(index", "was never closed", 3),
    ("empty", "   ", "empty", 0),
    ("lambda", "(lambda: 1)()", "lambda is not allowed", 1),
    ("walrus", "(x := 1)", "assignment (:=) is not allowed", 1),
    ("dunder-chain", "().__class__.__bases__[0].__subclasses__()", "'.__class__' is not allowed", 0),
    ("private-attribute", "vars._secret", "names starting with '_' are private", 0),
    ("unknown-function", "index + open('x')", "unknown function 'open'", 8),
    ("import-builtin", "__import__('os')", "unknown function '__import__'", 0),
    ("mutating-method", "inputs.clear()", "'.clear()' is not allowed", 0),
    ("mutating-update", "vars.update({'a': 2})", "'.update()' is not allowed", 0),
    ("mutating-pop", "steps.pop('fetch')", "'.pop()' is not allowed", 0),
    ("mutating-append", "vars.names.append(1)", "'.append()' is not allowed", 0),
    ("amplifying-ljust", "'x'.ljust(10**9)", "'.ljust()' is not allowed", 0),
    ("format-method", "'{}'.format(1)", "'.format()' is not allowed", 0),
    ("call-of-call", "len(index)(1)", "only functions and allowed methods", 0),
    ("star-args", "max(*vars.names)", "* and ** arguments", 4),
    ("double-star-args", "max(**vars)", "* and ** arguments", 0),
    ("bytes-literal", "b'x'", "bytes literals are not supported", 0),
    ("matmul", "index @ index", "the @ operator", 0),
    ("dynamic-format-spec", "f'{index:{index}}'", "format specification must be constant", None),
    ("huge-format-width", "f'{index:999999999}'", "unsupported f-string format specification", None),
    ("method-not-in-whitelist", "index.bit_length()", "'.bit_length()' is not allowed", 0),
    ("huge-literal", "1" + "0" * 5000, "more than 4000 digits", None),
    ("nul", "index\x00", "NUL character", 5),
    ("too-long", "1 + " * 3000 + "1", "may not be longer than", None),
    ("deeply-nested", "not " * 2400 + "1", "nested too deeply", None),
    ("deep-attribute-chain", "a." * 4000 + "b", "nested too deeply", None),
    ("single-equals", "steps.a.output = 'x'", "invalid syntax: '=' assigns; compare with '=='", 15),
    ("single-equals-after-and", "x == 1 and y = 2", "'=' assigns; compare with '=='", 13),
    ("template-braces", "{{ inputs.flag }}", "not a template: write inputs.flag, without {{ }}", 0),
    ("template-braces-comparison", "{{ index > 1 }} and x", "write index > 1, without {{ }}", 0),
    ("template-braces-mapping", "{{'a': 1}}", "not a template: write it without {{ }}", 0),
]


@pytest.mark.parametrize(
    ("source", "fragment", "offset"),
    [case[1:] for case in COMPILE_ERRORS],
    ids=[case[0] for case in COMPILE_ERRORS],
)
def test_compile_errors(source: str, fragment: str, offset: int | None) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition(source)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.source == source
    if offset is not None:
        assert caught.value.offset == offset


RUNTIME_ERRORS = [
    ("missing-key", "steps.fetch.output.missing", "steps.fetch.output has no key 'missing' (keys: count,"),
    ("missing-subscript-key", "steps['nope']", "steps has no key 'nope'"),
    ("undefined-name", "nothing > 1", "'nothing' is undefined"),
    (
        "attribute-of-null",
        "steps.fetch.output.empty.x",
        "steps.fetch.output.empty is null; it has no attribute 'x'",
    ),
    ("attribute-not-allowed", "index.real", "'.real' is not allowed on an integer in a condition"),
    ("attribute-missing", "vars.names.lower()", "vars.names is a list; it has no attribute 'lower'"),
    ("index-out-of-range", "vars.names[5]", "index 5 is out of range for vars.names (2 items)"),
    ("null-subscript", "steps.fetch.output.empty[0]", "is null; it cannot be indexed"),
    ("division-by-zero", "index / 0", "division by zero"),
    ("type-error", "index + 'a'", "unsupported operand type"),
    ("value-error", "int('abc')", "invalid literal for int()"),
    ("sum-of-strings", "sum(['a', 'b'], '')", "sum() adds numbers only"),
    ("unpack-mismatch", "[a for a, b in [[1, 2, 3]]]", "cannot unpack 3 values into 2 names"),
    ("bare-function-value", "len", "not data"),
    ("bound-method-value", "inputs.repo.upper", "not data"),
    ("complex-result", "(-8) ** 0.5", "complex number"),
    ("float-overflow", "2.0 ** 10000", "the number is too large"),
    ("string-percent-format", "'%999999999d' % 1", "'%' formatting of strings is not supported"),
    ("deep-evaluation", "1 + " * 900 + "1", "recursion is too deep"),
    (
        "unset-secret",
        "secrets.GITHUB_TOKEN != ''",
        "secret 'GITHUB_TOKEN' is not set: set it in the environment, or in the .env file beside .llmflow/",
    ),
    (
        "unset-secret-subscript",
        "secrets['GITHUB_TOKEN']",
        "secret 'GITHUB_TOKEN' is not set: set it in the environment, or in the .env file beside .llmflow/",
    ),
]


@pytest.mark.parametrize(
    ("source", "fragment"), [case[1:] for case in RUNTIME_ERRORS], ids=[case[0] for case in RUNTIME_ERRORS]
)
def test_runtime_errors_are_expression_errors(source: str, fragment: str) -> None:
    condition = compile_condition(source)
    with pytest.raises(ExpressionError) as caught:
        condition.value(make_context())
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.source == source


def test_runtime_error_offset_points_at_the_failing_part() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_condition("index > 1 and steps.fetch.output.nope").value(make_context())
    assert caught.value.offset == 14


def test_evaluate_refuses_a_bare_function() -> None:
    with pytest.raises(ExpressionError, match="is a function"):
        compile_condition("len").evaluate(make_context())


# Each of these must fail fast with a clear message. The real cost is about a millisecond; the test
# allows far more so that it never flakes on a loaded machine.
BOUNDS = [
    ("string-repeat", "'a' * 10**9", "repeating would give 1000000000 characters"),
    ("list-repeat", "[0] * 10**9", "repeating would give 1000000000 items"),
    ("reversed-repeat", "10**9 * 'a'", "repeating would give"),
    ("power-tower", "9**9**9", "more than 4000 digits"),
    ("power-of-powers", "10**10**10", "more than 4000 digits"),
    ("big-base-power", "4000000 ** 4000000", "more than 4000 digits"),
    ("product-of-big-ints", "(10**3000) * (10**3000)", "more than 4000 digits"),
    ("left-shift", "1 << 10**9", "more than 4000 digits"),
    ("ljust", "'x'.ljust(10**9)", None),
    ("concatenation", "'ab' + 'c' * 200000", "repeating would give 200000 characters"),
    ("concatenation-of-halves", "'a' * 60000 + 'b' * 60000", "the result would have 120000 characters"),
    ("aliased-nested-repeat", "[[0] * 100000] * 100000", "builds too much data"),
    ("aliased-comprehension", "[a for a in [[0] * 100000] for i in [0] * 100000]", "builds too much data"),
    ("range-is-not-available", "[x for x in range(10**9)]", "unknown function 'range'"),
    ("long-comprehension", "len([1 for a in 'x' * 100000 for b in 'yy'])", "loops more than 100000 times"),
    ("round-huge-ndigits", "round(5, -10**9)", "round() takes a number of digits"),
    ("int-of-long-text", "int('9' * 5000)", "int() refuses text longer than 4000 digits"),
    ("aliased-repeat-of-context", "[steps] * 50000", "builds too much data"),
    ("str-of-big-value", "str(vars.names * 40000)", "longer than 100000 characters"),
    ("f-string-too-long", 'f\'{"a" * 99999}{"b" * 99999}\'', "longer than 100000 characters"),
]


@pytest.mark.parametrize(("source", "fragment"), [case[1:] for case in BOUNDS], ids=[case[0] for case in BOUNDS])
def test_resource_bounds_fail_fast(source: str, fragment: str | None) -> None:
    with pytest.raises(ExpressionError) as caught:  # the bound trips: the message names it
        compile_condition(source).value(make_context())
    if fragment:
        assert fragment in caught.value.message


def test_runaway_evaluation_hits_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmflow.expressions.evaluator as evaluator

    monkeypatch.setattr(evaluator, "CONDITION_TIME_LIMIT", 0.05)
    context = {"data": list(range(50_000))}
    with pytest.raises(ExpressionError, match="took longer than"):
        compile_condition("[a for a in data if a in data]").value(context)


MUTATIONS = [
    "sorted(vars.names, reverse=True)",
    "vars.names[::-1]",
    "steps.fetch.output.get('count')",
    "[x for x in steps.fetch.output.items]",
    "{**vars, 'a': 2}",
]


@pytest.mark.parametrize("source", MUTATIONS)
def test_conditions_never_change_the_context(source: str) -> None:
    context = make_context()
    before = copy.deepcopy(context)
    result = compile_condition(source).value(context)
    if isinstance(result, (list, dict)):
        result.clear()  # the value is a copy: clearing it leaves the context alone
    assert context == before


def test_value_is_a_copy_of_the_context_data() -> None:
    context = make_context()
    result = compile_condition("steps.fetch.output").value(context)
    result["items"].append(99)
    assert context["steps"]["fetch"]["output"]["items"] == [1, 2, 3]


def test_context_containing_callables_cannot_be_called() -> None:
    with pytest.raises(ExpressionError, match="only functions and allowed methods"):
        compile_condition("hooks[0]()")


def test_functions_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        conditions_module.FUNCTIONS["eval"] = eval  # type: ignore[index]


def test_invalid_plugin_function_name() -> None:
    with pytest.raises(ExpressionError, match="not a valid identifier"):
        compile_condition("1", functions={"not valid": len})
