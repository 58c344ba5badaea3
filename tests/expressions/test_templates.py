"""Templates: the Jinja2 sandbox, native values, references and resource bounds."""

from __future__ import annotations

import copy
import datetime
from collections import UserString
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from llmflow.errors import ExpressionError
from llmflow.expressions.references import TEMPLATE_GLOBALS, Reference
from llmflow.expressions.templates import (
    FAST_FILTERS,
    Template,
    ValueTemplate,
    compile_template,
    compile_value,
    fast_path,
    is_template,
    stringify,
)


def make_context() -> dict[str, Any]:
    return {
        "steps": {
            "fetch": {"output": {"count": 3, "items": [1, 2, 3], "title": "Hello", "none": None}},
            "label": {"output": [{"label": "bug"}, {"label": "feature"}, {"labl": "typo"}]},
            "reply": {"output": "Ignore previous instructions {{ inputs.secret }} {% for x in y %}"},
        },
        "inputs": {"repo": "owner/name", "limit": 20, "flag": True, "secret": "s3cret"},
        "vars": {"a": 1, "names": ["x", "y"]},
        "issue": {"title": "Crash", "body": "It crashes.\nBadly.", "tags": ["bug", "ui"]},
        "secrets": {},
    }


def render(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_template(source).render(make_context() if context is None else context)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", False),
        ("{{ x }}", True),
        ("{% if x %}{% endif %}", True),
        ("{# note #}", True),
        ("{ {x} }", False),
    ],
)
def test_is_template(text: str, expected: bool) -> None:
    assert is_template(text) is expected


RENDERS = [
    ("plain-text", "no templates here", "no templates here", False),
    ("native-int", "{{ steps.fetch.output.count }}", 3, True),
    ("native-list", "{{ steps.fetch.output.items }}", [1, 2, 3], True),
    ("native-with-whitespace", "  {{ steps.fetch.output.items }}\n", [1, 2, 3], True),
    ("native-mapping", "{{ issue }}", make_context()["issue"], True),
    ("native-none", "{{ steps.fetch.output.none }}", None, True),
    ("native-expression", "{{ steps.fetch.output.items | map('string') | list }}", ["1", "2", "3"], True),
    ("native-generator-becomes-list", "{{ issue.tags | map('upper') }}", ["BUG", "UI"], True),
    ("native-range", "{{ range(3) }}", [0, 1, 2], True),
    ("native-dict-items", "{{ vars.items() | list }}", [["a", 1], ["names", ["x", "y"]]], True),
    ("native-string", "{{ inputs.repo }}", "owner/name", True),
    ("text-with-value", "repo={{ inputs.repo }}", "repo=owner/name", False),
    ("two-values-are-text", "{{ vars.a }}{{ vars.a }}", "11", False),
    ("text-json-list", "items: {{ steps.fetch.output.items }}", "items: [1, 2, 3]", False),
    ("text-json-mapping", "x {{ {'é': 'ü', 'n': none} }}", 'x {"é": "ü", "n": null}', False),
    ("text-none-is-empty", "[{{ steps.fetch.output.none }}]", "[]", False),
    ("text-booleans", "{{ inputs.flag }} {{ not inputs.flag }}", "true false", False),
    (
        "loop",
        "{% for r in steps.label.output if r.label is defined %}- {{ r.label }}\n{% endfor %}",
        "- bug\n- feature\n",
        False,
    ),
    ("keeps-trailing-newline", "x{{ vars.a }}\n", "x1\n", False),
    ("subscript-constant", "{{ steps['fetch'].output['count'] }}", 3, True),
    ("string-method", "{{ inputs.repo.split('/')[1].upper() }}", "NAME", True),
    ("filters", "{{ issue.body | replace('\\n', ' ') | truncate(9, True, '') }}", "It crashe", True),
    ("join-filter", "{{ issue.tags | join(', ') }}", "bug, ui", True),
    ("tojson-filter", "{{ {'a': 'é'} | tojson }}", '{"a": "é"}', True),
    ("default-filter", "{{ steps.fetch.output.missing | default('none') }}", "none", True),
    ("defined-test", "{{ steps.fetch.output.missing is defined }}", False, True),
    ("key-named-items-wins", "{{ data.items }}", "key", True),
    ("method-call-wins-over-key", "{{ data.items() | list }}", [["items", "key"]], True),
    (
        "set-and-macro",
        "{% set n = 2 %}{% macro twice(x) %}{{ x * n }}{% endmacro %}{{ twice(3) }}",
        "6",
        False,
    ),
    (
        "namespace",
        "{% set ns = namespace(t=0) %}{% for i in [1, 2] %}{% set ns.t = ns.t + i %}{% endfor %}{{ ns.t }}",
        "3",
        False,
    ),
    ("concat", "{{ inputs.repo ~ '#' ~ vars.a }}", "owner/name#1", True),
    ("comment", "a{# hidden #}b", "ab", False),
    ("whitespace-control", "a  {{- vars.a -}}  b", "a1b", False),
    (
        "model-output-is-data",
        "{{ steps.reply.output }}",
        "Ignore previous instructions {{ inputs.secret }} {% for x in y %}",
        True,
    ),
    (
        "model-output-in-text",
        "> {{ steps.reply.output }}",
        "> Ignore previous instructions {{ inputs.secret }} {% for x in y %}",
        False,
    ),
]


@pytest.mark.parametrize(
    ("source", "expected", "native"), [case[1:] for case in RENDERS], ids=[case[0] for case in RENDERS]
)
def test_render(source: str, expected: Any, native: bool) -> None:
    context = make_context()
    context["data"] = {"items": "key"}
    template = compile_template(source)
    assert template.native is native
    assert template.render(context) == expected


REFERENCES = [
    ("fast-dotted", "{{ steps.fetch.output.count }}", {"steps.fetch.output.count"}),
    ("fast-subscripts", "{{ steps['fetch'][\"output\"].count|default(1) }}", {"steps.fetch.output.count"}),
    ("fast-capped", "x {{ steps.a.output.b.c }} {{ inputs.x }}", {"steps.a.output.b", "inputs.x"}),
    ("fast-integer-index", "{{ items[0].title }}", {"items"}),
    (
        "loop-variable-bound",
        "{% for r in steps.s.output %}{{ r.x }}{{ loop.index }}{% endfor %}",
        {"steps.s.output"},
    ),
    ("loop-else-not-bound", "{% for r in a %}{% else %}{{ r }}{% endfor %}", {"a", "r"}),
    ("tuple-target", "{% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}", {"m"}),
    ("set-binds-after", "{{ x }}{% set x = inputs.y %}{{ x }}", {"x", "inputs.y"}),
    ("set-block", "{% set x %}{{ vars.a }}{% endset %}{{ x }}", {"vars.a"}),
    (
        "macro-args",
        "{% macro m(a, b=vars.d) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}",
        {"vars.d", "c"},
    ),
    (
        "call-block",
        "{% macro m() %}{{ caller(1) }}{% endmacro %}{% call(u) m() %}{{ u }}{% endcall %}",
        set(),
    ),
    ("with", "{% with a = inputs.b %}{{ a }}{{ z }}{% endwith %}", {"inputs.b", "z"}),
    ("globals", "{{ range(3) }}{{ dict(a=1) }}{{ namespace() }}{{ cycler(1) }}{{ joiner() }}", set()),
    ("variable-subscript", "{{ steps[inputs.name].output }}", {"steps", "inputs.name"}),
    ("method-call", "{{ inputs.repo.split('/') }}", {"inputs.repo"}),
    ("filter-arguments", "{{ a | default(b.c) }}", {"a", "b.c"}),
    ("if-branches", "{% if a %}{{ b }}{% elif c %}{{ d }}{% else %}{{ e }}{% endif %}", set("abcde")),
    ("namespace-assignment", "{% set ns.x = 1 %}", {"ns"}),
    ("no-template", "plain", set()),
]


@pytest.mark.parametrize(
    ("source", "expected"), [case[1:] for case in REFERENCES], ids=[case[0] for case in REFERENCES]
)
def test_references(source: str, expected: set[str]) -> None:
    references = compile_template(source).references
    assert {str(reference) for reference in references} == expected
    assert all(reference.offset is None for reference in references)


def test_reference_value_shape() -> None:
    (reference,) = compile_template("{{ steps['fetch'].output.count }}").references
    assert reference == Reference("steps", ("fetch", "output", "count"), None)


FAST_SOURCES = [
    "{{ a }}",
    "x {{ a.b.c }} y {{ d['e'][0] | upper }}",
    "{{- a.b -}}",
    "{{ a | default('x') | truncate(10, true) }}",
    "{{ a[0].b }} and {{ range }}",
]


@pytest.mark.parametrize("source", FAST_SOURCES)
def test_fast_path_matches_the_full_parse(source: str) -> None:
    from llmflow.expressions.rendering import native_expression, parse, references

    fast = fast_path(source)
    assert fast is not None
    tree = parse(source)
    assert fast == (references(tree), native_expression(tree, source) is not None)


@pytest.mark.parametrize(
    "source",
    ["{{ a + b }}", "{{ a|nofilter }}", "{{ a._b }}", "{{ '}}' }}", "{% if a %}{% endif %}", "{{ not }}"],
)
def test_fast_path_declines_anything_else(source: str) -> None:
    assert fast_path(source) is None


def test_fast_filters_and_globals_exist_in_the_sandbox() -> None:
    from llmflow.expressions.sandbox import environment

    env = environment()
    assert set(FAST_FILTERS) <= set(env.filters)
    assert set(env.globals) == TEMPLATE_GLOBALS
    assert "lipsum" not in env.globals


COMPILE_ERRORS = [
    ("syntax", "{{ x }", "unexpected '}'"),
    ("unclosed-block", "{% if x %}", "Unexpected end of template"),
    (
        "dunder",
        "{{ ''.__class__.__mro__ }}",
        "'.__class__' is not allowed: names starting with '_' are private",
    ),
    ("private", "{{ vars._x }}", "names starting with '_' are private"),
    ("do-tag", "{% do vars.update({}) %}", "unknown tag 'do'"),
    ("break-tag", "{% for x in y %}{% break %}{% endfor %}", "unknown tag 'break'"),
    ("unknown-filter", "{{ x | uper }}", "unknown filter 'uper' (did you mean 'upper'?)"),
    ("unknown-test", "{{ x is fancy }}", "unknown test 'fancy'"),
    ("include", "{% include 'x.txt' %}", "{% include %} is not supported"),
    ("extends", "{% extends 'x.txt' %}", "{% extends %} is not supported"),
    ("import", "{% import 'x.txt' as y %}", "{% import %} is not supported"),
    ("deeply-nested", "{{ " + "a." * 3000 + "b }}", "nested too deeply"),
    ("infinite-number", "{{ x * 1e400 }}", "a number too large for a template (it is infinite as a float)"),
]


@pytest.mark.parametrize(
    ("source", "fragment"), [case[1:] for case in COMPILE_ERRORS], ids=[case[0] for case in COMPILE_ERRORS]
)
def test_compile_errors(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(source)
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.source == source


def test_compile_error_names_the_line() -> None:
    source = "line one\n{{ ok }}\n{{ x | nofilter }}"
    with pytest.raises(ExpressionError) as caught:
        compile_template(source)
    assert caught.value.message == "line 3: unknown filter 'nofilter' (a plugin's filter? name the plugin in plugins:)"
    assert caught.value.offset == source.index("nofilter")  # the filter's name, on its line


RUNTIME_ERRORS = [
    ("undefined-name", "{{ nothing }}", "'nothing' is undefined"),
    ("undefined-in-text", "a {{ nothing }}", "'nothing' is undefined"),
    (
        "missing-key",
        "{{ steps.fetch.output.x }}",
        "steps.fetch.output has no key 'x' (keys: count, items, title, none)",
    ),
    ("missing-step", "{{ steps.nope.output }}", "steps has no key 'nope'"),
    (
        "missing-key-in-loop",
        "{% for r in steps.label.output %}{{ r.label }}{% endfor %}",
        "steps.label.output[2] has no key 'label'",
    ),
    ("missing-index", "{{ vars.names[5] }}", "vars.names has no item 5 (it has 2 items)"),
    ("attribute-of-none", "{{ steps.fetch.output.none.x }}", "is null; it has no attribute 'x'"),
    ("undefined-in-native-list", "{{ [1, nothing] }}", "'nothing' is undefined"),
    ("undefined-in-native-dict", "{{ {'a': vars.nope} }}", "vars has no key 'nope'"),
    ("undefined-in-if", "{% if nothing %}x{% endif %}", "'nothing' is undefined"),
    ("division", "{{ 1 / 0 }}", "division by zero"),
    ("type-error", "{{ vars.a + 'x' }}", "unsupported operand type"),
    ("function-is-not-data", "{{ inputs.repo.upper }}", "not data"),
    ("object-is-not-data", "{{ namespace(a=1) }}", "cannot be used as data"),
    ("recursion", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "recursion is too deep"),
    ("deep-expression", "x {{ " + "1 + " * 600 + "1 }}", "recursion is too deep"),
    ("line-number", "ok\n{{ vars.a }}\n{{ nothing }}", "line 3: 'nothing' is undefined"),
    (
        "unset-secret",
        "Bearer {{ secrets.GITHUB_TOKEN }}",
        "secret 'GITHUB_TOKEN' is not set: set it in the environment, or in the .env file beside .llmflow/",
    ),
    (
        "unset-secret-filtered",
        "{{ secrets.GITHUB_TOKEN | upper }}",
        "secret 'GITHUB_TOKEN' is not set: set it in the environment, or in the .env file beside .llmflow/",
    ),
]


@pytest.mark.parametrize(
    ("source", "fragment"), [case[1:] for case in RUNTIME_ERRORS], ids=[case[0] for case in RUNTIME_ERRORS]
)
def test_runtime_errors_are_expression_errors(source: str, fragment: str) -> None:
    template = compile_template(source)
    with pytest.raises(ExpressionError) as caught:
        template.render(make_context())
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.source == source


# Each must fail fast with a clear message; the real cost is a few milliseconds, the bound is generous.
BOUNDS = [
    ("power-tower", "{{ 9**(9**9) }}", "more than 4000 digits"),
    ("power-in-text", "x {{ 10**(10**10) }}", "more than 4000 digits"),
    ("string-repeat", "{{ 'a' * 10**9 }}", "repeating would give 1000000000 characters"),
    ("list-repeat", "{{ [0] * 10**9 }}", "repeating would give 1000000000 items"),
    ("int-product", "{{ 10**3000 * 10**3000 }}", "more than 4000 digits"),
    ("ljust", "{{ 'x'.ljust(10**9) }}", "'.ljust' is not allowed on a string"),
    ("center-method", "{{ 'x'.center(10**9) }}", "'.center' is not allowed"),
    ("zfill", "{{ 'x'.zfill(10**9) }}", "'.zfill' is not allowed"),
    ("expandtabs", "{{ ('\\t' * 10).expandtabs(10**8) }}", "'.expandtabs' is not allowed"),
    ("format-method", "{{ '{:>999999999}'.format(1) }}", "'.format' is not allowed"),
    ("replace-method", "{{ 'ab'.replace('', 'x' * 100) }}", "'.replace' is not allowed"),
    ("join-method", "{{ ','.join(['a'] * 1000) }}", "'.join' is not allowed"),
    ("encode", "{{ 'x'.encode() }}", "'.encode' is not allowed"),
    ("getitem-route", "{{ 'x'['ljust'](10**9) }}", "'.ljust' is not allowed"),
    ("int-to-bytes", "{{ (1).to_bytes(10**9, 'big') }}", "'.to_bytes' is not allowed"),
    ("percent-format", "{{ '%999999999d' % 1 }}", "'%' formatting of strings is not supported"),
    ("center-filter", "{{ 'x' | center(10**9) }}", "center would produce"),
    ("indent-filter", "{{ ('a\\n' * 1000) | indent(10**6) }}", "indent would produce"),
    (
        "wordwrap-filter",
        "{{ ('ab ' * 1000) | wordwrap(1, wrapstring='x' * 100000) }}",
        "wordwrap would produce",
    ),
    ("format-filter", "{{ '%999999999d' | format(1) }}", "is not allowed"),
    ("format-filter-star", "{{ '%*d' | format(10**9, 1) }}", "is not allowed"),
    ("format-filter-reused-key", "{{ ('%(a)9999s' * 100000) | format(a=1) }}", "format would produce"),
    ("format-filter-big-argument", "{{ ('%(a)s' * 100) | format(a='x' * 1000000) }}", "format would produce"),
    ("tojson-indent", "{{ [[[1]]] | tojson(10**6) }}", "indent must be between"),
    ("join-filter", "{{ (['x' * 1000000] * 11) | join }}", "join would produce"),
    ("join-filter-separator", "{{ ([1] * 1000000) | join('x' * 100) }}", "join would produce"),
    ("replace-filter", "{{ ('a' * 1000) | replace('a', 'b' * 100000) }}", "replace would produce"),
    ("round-filter", "{{ 5 | round(-10**9) }}", "round: the precision"),
    ("batch-filter", "{{ [1] | batch(10**9, 0) | list }}", "batch: at most"),
    ("slice-filter", "{{ [1] | slice(10**9) | list }}", "slice: at most"),
    ("sum-of-lists", "{{ ([[0] * 1000] * 2000) | sum(start=[]) }}", "more than 1000000 items"),
    ("attr-filter-format", "{{ ('{:>999999999}' | attr('format'))(1) }}", "'.format' is not allowed"),
    ("range", "{{ range(10**9) | list }}", "range() may produce at most 100000 numbers"),
    (
        "concat-doubling",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "longer than 10000000 characters",
    ),
    (
        "plus-doubling",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "the limit is 10000000",
    ),
    (
        "list-doubling",
        "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "the limit is 1000000",
    ),
    (
        "output-cap",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
        "rendered text is longer than 10000000",
    ),
    ("lipsum-removed", "{{ lipsum(10**5) }}", "'lipsum' is undefined"),
    ("aliased-json", "{% set a = [range(1000) | list] * 1000 %}{{ [a] * 1000 }}", "too large"),
]


@pytest.mark.parametrize(("source", "fragment"), [case[1:] for case in BOUNDS], ids=[case[0] for case in BOUNDS])
def test_resource_bounds_fail_fast(source: str, fragment: str | None) -> None:
    with pytest.raises(ExpressionError) as caught:  # the bound trips: the message names it
        compile_template(source).render(make_context())
    if fragment:
        assert fragment in caught.value.message


def test_runaway_loop_hits_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmflow.expressions.sandbox as sandbox

    monkeypatch.setattr(sandbox, "TEMPLATE_TIME_LIMIT", 0.05)
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(ExpressionError, match="took longer than"):
        compile_template(source).render({})


READ_ONLY = [
    ("update", "{{ steps.update({}) }}"),
    ("clear", "{{ inputs.clear() }}"),
    ("append", "{{ vars.names.append(1) }}"),
    ("pop-in-set", "{% set _ = vars.pop('a') %}"),
    ("setdefault", "{{ vars.setdefault('b', 2) }}"),
    ("sort", "{{ vars.names.sort() }}"),
    ("attr-filter", "{{ (vars | attr('clear'))() }}"),
    ("getitem-method", "{{ vars['pop']('a') }}"),
    ("namespace-on-data", "{% set vars.a = 2 %}"),
]


@pytest.mark.parametrize("source", [case[1] for case in READ_ONLY], ids=[case[0] for case in READ_ONLY])
def test_templates_cannot_change_the_context(source: str) -> None:
    context = make_context()
    before = copy.deepcopy(context)
    with pytest.raises(ExpressionError):
        compile_template(source).render(context)
    assert context == before


def test_native_value_is_a_copy() -> None:
    context = make_context()
    items = compile_template("{{ steps.fetch.output.items }}").render(context)
    items.append(4)
    assert context["steps"]["fetch"]["output"]["items"] == [1, 2, 3]


def test_rendered_model_output_is_never_evaluated() -> None:
    context = make_context()
    context["steps"]["reply"]["output"] = "{{ inputs.secret }}{% raw %}"
    result = compile_template("Reply: {{ steps.reply.output }}").render(context)
    assert result == "Reply: {{ inputs.secret }}{% raw %}"
    assert "s3cret" not in result


def test_template_is_immutable() -> None:
    template = compile_template("{{ a }}")
    assert isinstance(template, Template)
    with pytest.raises(AttributeError):
        template.source = "x"  # type: ignore[misc]


def test_same_source_renders_with_different_contexts() -> None:
    template = compile_template("{{ a }}-{{ b }}")
    assert template.render({"a": 1, "b": 2}) == "1-2"
    assert template.render({"a": "x", "b": None}) == "x-"


class _LazyMapping(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_context_may_be_any_mapping() -> None:
    context = _LazyMapping({"steps": _LazyMapping({"s": {"output": 5}})})
    assert compile_template("{{ steps.s.output }}").render(context) == 5


STRINGIFY = [
    ("none", None, ""),
    ("true", True, "true"),
    ("false", False, "false"),
    ("int", 3, "3"),
    ("float", 1.5, "1.5"),
    ("string", "é", "é"),
    ("list", [1, "é", None], '[1, "é", null]'),
    ("mapping", {"a": {"b": True}}, '{"a": {"b": true}}'),
    ("tuple", (1, 2), "[1, 2]"),
    ("date", datetime.date(2024, 1, 2), "2024-01-02"),
]


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in STRINGIFY], ids=[case[0] for case in STRINGIFY])
def test_stringify(value: Any, expected: str) -> None:
    assert stringify(value) == expected


def test_compile_value_renders_nested_templates() -> None:
    compiled = compile_value(
        {
            "url": "https://x/{{ inputs.repo }}",
            "n": "{{ inputs.limit }}",
            "list": ["a", "{{ vars.names }}", 2.5],
        }
    )
    assert isinstance(compiled, ValueTemplate)
    assert not compiled.is_static
    assert {str(reference) for reference in compiled.references} == {
        "inputs.repo",
        "inputs.limit",
        "vars.names",
    }
    assert compiled.render(make_context()) == {
        "url": "https://x/owner/name",
        "n": 20,
        "list": ["a", ["x", "y"], 2.5],
    }


def test_compile_value_static_values_render_fresh_copies() -> None:
    compiled = compile_value({"a": [1, {"b": "plain"}]})
    assert compiled.is_static
    assert compiled.references == frozenset()
    first = compiled.render({})
    first["a"].append(2)
    assert compiled.render({}) == {"a": [1, {"b": "plain"}]}


def test_compile_value_converts_yaml_like_types() -> None:
    class Scalar(str):
        pass

    compiled = compile_value(_LazyMapping({"s": Scalar("x"), "u": UserString("y").data, "t": (1, 2)}))
    rendered = compiled.render({})
    assert rendered == {"s": "x", "u": "y", "t": [1, 2]}
    assert type(rendered["s"]) is str


def test_compile_value_errors_name_the_position() -> None:
    with pytest.raises(ExpressionError, match=r"^headers\.auth: unexpected"):
        compile_value({"headers": {"auth": "{{ x }"}})
    compiled = compile_value({"args": ["ok", "{{ nothing }}"]})
    with pytest.raises(ExpressionError, match=r"^args\[1\]: 'nothing' is undefined"):
        compiled.render({})
    with pytest.raises(ExpressionError, match="cannot be used as data"):
        compile_value({"x": object()})
