"""Tests of the YAML loader: good and bad snippets, positions, merges, aliases and limits, on both parsers."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import pytest

from llmflow.diagnostics import Diagnostic
from llmflow.errors import WorkflowError
from llmflow.spec.document import Document, Position
from llmflow.spec.loader import Backend, LoadLimits, load_file, load_text
from llmflow.spec.yaml_events import SPLIT_HINT


def _has_c_parser() -> bool:
    try:
        import _ruamel_yaml  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = [
    pytest.param("c", id="c", marks=pytest.mark.skipif(not _has_c_parser(), reason="no ruamel.yaml.clib")),
    pytest.param("pure", id="pure"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test using this fixture runs once with the C parser and once with the pure-Python one."""
    value: Backend = request.param
    return value


def load(source: str | bytes, backend: Backend, **options: Any) -> Document:
    return load_text(source, "wf.yaml", _backend=backend, **options)


def refusal(source: str | bytes, backend: Backend, **options: Any) -> list[Diagnostic]:
    with pytest.raises(WorkflowError) as caught:
        load(source, backend, **options)
    assert caught.value.diagnostics, "a WorkflowError must carry diagnostics"
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.file == "wf.yaml"
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert "\n" not in diagnostic.message
    return caught.value.diagnostics


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijk"
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def workflow(steps: int) -> str:
    lines = ["version: 1", "name: generated", "inputs:", "  topic: {type: string, default: tea}", "steps:"]
    for index in range(steps):
        lines += [
            f"  - id: step_{index}",
            "    llm:",
            f'      prompt: "Summarise {{{{ steps.step_{index - 1}.output }}}} about {{{{ inputs.topic }}}}"',
            "      model: gpt-4o-mini",
        ]
    return "\n".join(lines) + "\n"


# -- good snippets ----------------------------------------------------------------------------------

GOOD = [
    pytest.param("a: 1\nb: x\n", {"a": 1, "b": "x"}, id="simple-mapping"),
    pytest.param("%YAML 1.2\n---\na: 1\n", {"a": 1}, id="yaml-1.2-directive"),
    pytest.param("# comment\n---\na: 1\n...\n", {"a": 1}, id="explicit-start-and-end"),
    pytest.param(
        "a: [~, null, Null, NULL, '', true, True, TRUE, false, FALSE]\n",
        {"a": [None, None, None, None, "", True, True, True, False, False]},
        id="core-null-bool",
    ),
    pytest.param(
        "a: [0, -12, +3, 007, 0o17, 0x1F, 1.5, .5, 1., -1e3, +.5e-3, -.inf, .Inf]\n",
        {"a": [0, -12, 3, 7, 15, 31, 1.5, 0.5, 1.0, -1000.0, 0.0005, -math.inf, math.inf]},
        id="core-numbers",
    ),
    pytest.param(
        "a: [yes, no, on, off, 1_000, 2001-01-01, 0b101, 1.2.3, nan, nULL, tRue, -0x1, 0o8]\n",
        {
            "a": [
                "yes",
                "no",
                "on",
                "off",
                "1_000",
                "2001-01-01",
                "0b101",
                "1.2.3",
                "nan",
                "nULL",
                "tRue",
                "-0x1",
                "0o8",
            ]
        },
        id="yaml-1.1-lookalikes-stay-strings",
    ),
    pytest.param(
        "a: '1'\nb: \"true\"\nc: |\n  12\nd: >-\n  null\n",
        {"a": "1", "b": "true", "c": "12\n", "d": "null"},
        id="quoted-and-block-scalars-are-strings",
    ),
    pytest.param(
        "a: !!str 123\nb: !!int '7'\nc: !!float 1\nd: !!bool false\ne: !!null ''\nf: !!map {x: 1}\ng: !!seq [1]\n",
        {"a": "123", "b": 7, "c": 1.0, "d": False, "e": None, "f": {"x": 1}, "g": [1]},
        id="core-tags-honoured",
    ),
    pytest.param("a:\nb: ~\n", {"a": None, "b": None}, id="empty-values"),
    pytest.param("a: &k name\n*k : 2\n", {"a": "name", "name": 2}, id="alias-to-a-string-as-key"),
    pytest.param("a: 'b\tc'\n", {"a": "b\tc"}, id="tab-inside-a-quoted-value"),
    pytest.param("'<<': 1\n", {"<<": 1}, id="quoted-merge-key-is-a-plain-key"),
    pytest.param('run: "{{ x }}"\n', {"run": "{{ x }}"}, id="quoted-template"),
    pytest.param('a: "\\u00e9\\t"\n', {"a": "é\t"}, id="escapes-in-values-are-fine"),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_good_snippet_loads_to_plain_data(backend: Backend, text: str, expected: dict[str, Any]) -> None:
    assert load(text, backend).data == expected


def test_nan_is_a_float(backend: Backend) -> None:
    value = load("a: .NaN\n", backend).data["a"]
    assert isinstance(value, float) and math.isnan(value)


def test_a_list_is_accepted_when_no_mapping_is_expected(backend: Backend) -> None:
    assert load("- 1\n- x\n", backend, expect_mapping=False).data == [1, "x"]


# -- bad snippets -----------------------------------------------------------------------------------

DEEP = "a: " + "[" * 100 + "]" * 100 + "\n"
BAD = [
    # code, message substring, line, column
    pytest.param("a: b: c\n", "yaml-syntax", "mapping values are not allowed here", 1, 5, id="syntax-mapping-value"),
    pytest.param(
        "a: 1\nb: 'abc\n",
        "yaml-syntax",
        "while scanning a quoted scalar started at line 2",
        3,
        1,
        id="syntax-unclosed-quote",
    ),
    pytest.param(
        "a:\n  b: 1\n c: 2\n",
        "yaml-syntax",
        "while parsing a block mapping started at line 1",
        3,
        2,
        id="syntax-bad-indentation",
    ),
    pytest.param("a: [1, 2\nb: 3\n", "yaml-syntax", "flow sequence started at line 1", 2, 2, id="syntax-open-flow"),
    pytest.param("a: *nope\n", "yaml-syntax", "undefined alias *nope", 1, 4, id="undefined-alias"),
    pytest.param("a:\n\tb: 1\n", "yaml-tab", "tab character used for indentation", 2, 1, id="tab-indent"),
    pytest.param("a:\n  b: 1\n  \tc: 2\n", "yaml-tab", "YAML requires spaces", 3, 3, id="tab-after-spaces"),
    pytest.param("a: |\n  x\n\ty\n", "yaml-tab", "tab character used for indentation", 3, 1, id="tab-in-block"),
    pytest.param(
        "a: !!python/object/apply:os.system ['ls']\n",
        "yaml-tag",
        "!!python/object/apply:os.system",
        1,
        4,
        id="tag-python",
    ),
    pytest.param("a: !!python/none ''\n", "yaml-tag", "the tag !!python/none is not allowed", 1, 4, id="tag-scalar"),
    pytest.param("a: !local x\n", "yaml-tag", "the tag !local is not allowed", 1, 4, id="tag-local"),
    pytest.param("a: !!set {x: 1}\n", "yaml-tag", "the tag !!set is not allowed", 1, 4, id="tag-set"),
    pytest.param("a: !!int abc\n", "yaml-tag", "'abc' is not a valid !!int", 1, 4, id="tag-bad-int"),
    pytest.param("a: !!bool yes\n", "yaml-tag", "'yes' is not a valid !!bool", 1, 4, id="tag-bad-bool"),
    pytest.param("a: !!seq {x: 1}\n", "yaml-tag", "!!seq cannot be used on a mapping", 1, 4, id="tag-misused"),
    pytest.param("%YAML 1.1\n---\na: 1\n", "yaml-directive", "YAML version 1.1", 1, 1, id="directive-1.1"),
    pytest.param("%YAML 2.0\n---\na: 1\n", "yaml-directive", "YAML version 2.0", 1, 1, id="directive-2.0"),
    pytest.param("%TAG !e! tag:example.com,2000:\n---\na: 1\n", "yaml-directive", "%TAG", 1, 1, id="directive-tag"),
    pytest.param("# hi\n%FOO bar\n---\na: 1\n", "yaml-directive", "unknown directive %FOO", 2, 1, id="directive-x"),
    pytest.param("a: 1\n---\nb: 2\n", "multiple-documents", "more than one YAML document", 2, 1, id="two-docs"),
    pytest.param("a: 1\n...\nb: 2\n", "multiple-documents", "more than one YAML document", 3, 1, id="after-end"),
    pytest.param("", "empty-file", "the file is empty", 1, 1, id="empty"),
    pytest.param("# only a comment\n\n   \n", "empty-file", "the file is empty", 1, 1, id="only-comments"),
    pytest.param("---\n", "empty-file", "the file is empty", 1, 1, id="only-document-start"),
    pytest.param("- a\n- b\n", "not-a-mapping", "must be a mapping of keys such as version", 1, 1, id="top-list"),
    pytest.param("--- hello\n", "not-a-mapping", "the top level of a workflow", 1, 5, id="top-scalar"),
    pytest.param(
        "name: a\nsteps: []\nname: b\n",
        "duplicate-key",
        "duplicate key 'name' (first at line 1)",
        3,
        1,
        id="duplicate-key",
    ),
    pytest.param(
        "steps:\n  - id: a\n    run: x\n    run: y\n",
        "duplicate-key",
        "duplicate key 'run' (first at line 3)",
        4,
        5,
        id="duplicate-nested-key",
    ),
    pytest.param("steps:\n  1: x\n", "non-string-key", "the key 1 is a number", 2, 3, id="int-key"),
    pytest.param("1.5: x\n", "non-string-key", "the key 1.5 is a number", 1, 1, id="float-key"),
    pytest.param("true: x\n", "non-string-key", "the key true is a boolean", 1, 1, id="bool-key"),
    pytest.param("~: x\n", "non-string-key", "the key ~ is null", 1, 1, id="null-key"),
    pytest.param("[a]: x\n", "non-string-key", "a list cannot be used as a key", 1, 1, id="list-key"),
    pytest.param("? {a: 1}\n: x\n", "non-string-key", "a mapping cannot be used as a key", 1, 3, id="map-key"),
    pytest.param(
        "steps:\n  - id: a\n    run: {{ x }}\n",
        "unquoted-template",
        "a template value must be quoted",
        3,
        10,
        id="unquoted-template",
    ),
    pytest.param("a: 1\n{{ x }}: 2\n", "unquoted-template", "must be quoted", 2, 1, id="template-as-key"),
    pytest.param("na\u202eme: x\n", "control-character", "U+202E (right-to-left override)", 1, 1, id="bidi-key"),
    pytest.param('"a\\tb": 1\n', "control-character", "U+0009", 1, 1, id="escaped-tab-in-key"),
    pytest.param('"a\\x1bb": 1\n', "control-character", "U+001B", 1, 1, id="escape-in-key"),
    pytest.param(
        'steps:\n  - id: "a\\u2066b"\n',
        "control-character",
        "the id 'a\\u2066b' contains",
        2,
        9,
        id="bidi-in-id",
    ),
    pytest.param("a: 1\nb: x\x07y\n", "control-character", "control character U+0007", 2, 5, id="bell-in-text"),
    pytest.param("a: 1\nb: x\x85y\n", "control-character", "U+0085", 2, 5, id="nel-in-text"),
    pytest.param("a: 1\nb: x\u2028y\n", "control-character", "U+2028 (line separator)", 2, 5, id="ls-in-text"),
    pytest.param("a: 1\nb: x\x7f\n", "control-character", "U+007F", 2, 5, id="del-in-text"),
    pytest.param("a: 1\nb: \x00\n", "nul-byte", "NUL byte", 2, 4, id="nul"),
    pytest.param("a: 1\nb: x\ud800\n", "invalid-utf8", "lone surrogate U+D800", 2, 5, id="lone-surrogate"),
    pytest.param(b"a: 1\r\nb: \xc3\xa9\xff\n", "invalid-utf8", "byte 0xff", 2, 5, id="bad-utf8-crlf"),
    pytest.param(b"a: 1\rb: 2\r\xe2\x82", "invalid-utf8", "byte 0xe2", 3, 1, id="bad-utf8-cr"),
    pytest.param(b"\xef\xbb\xbfab: \xff\n", "invalid-utf8", "byte 0xff", 1, 5, id="bad-utf8-after-bom"),
    pytest.param("a: 1\n".encode("utf-16"), "invalid-utf8", "not valid UTF-8", 1, 1, id="utf-16"),
    pytest.param("n: " + "9" * 4301 + "\n", "number-too-large", "4301 digits", 1, 4, id="huge-int"),
    pytest.param("a: &a [1]\nb:\n  <<: *a\n", "merge-key", "takes a mapping or a list of mappings", 3, 7, id="merge"),
    pytest.param("a: &a {x: 1}\nb: {<<: [*a, 3]}\n", "merge-key", "'<<' takes a mapping", 2, 14, id="merge-item"),
    pytest.param("a: &a [1, *a]\n", "alias-expansion", "refers to a node that contains it", 1, 11, id="recursive"),
    pytest.param(DEEP, "too-deep", "nests more than 100 mappings and lists", 1, 103, id="too-deep"),
    pytest.param(
        "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n",
        "too-deep",
        "the alias *a",
        2,
        54,
        id="too-deep-through-alias",
    ),
]


@pytest.mark.parametrize(("text", "code", "message", "line", "column"), BAD)
def test_bad_snippet_is_refused_with_a_located_diagnostic(
    backend: Backend, text: str | bytes, code: str, message: str, line: int, column: int
) -> None:
    found = refusal(text, backend)
    assert [(d.code, d.line, d.column) for d in found] == [(code, line, column)]
    assert message in found[0].message


def test_unquoted_template_hint_shows_the_fix(backend: Backend) -> None:
    (found,) = refusal("steps:\n  - id: a\n    run: {{ x }}\n", backend)
    assert found.hint == 'quote it: run: "{{ x }}"'
    (in_list,) = refusal("items:\n  - {{ item }}\n", backend)
    assert in_list.code == "unquoted-template" and in_list.hint == 'quote it: "{{ item }}"'


def test_template_followed_by_text_gets_the_whole_value_quoted(backend: Backend) -> None:
    found = refusal("run: {{ a }} and {{ b }}  # note\nwith: {x: {{ c }}, y: 1}\n", backend)
    assert [(d.code, d.line, d.column) for d in found] == [
        ("unquoted-template", 1, 6),
        ("yaml-syntax", 1, 14),
    ]
    assert found[0].hint == 'quote it: run: "{{ a }} and {{ b }}"'


def test_tab_as_a_separator_is_refused_only_by_the_pure_scanner(backend: Backend) -> None:
    # YAML allows `key:<tab>value`; ruamel's pure-Python scanner does not (a limit of the fallback).
    if backend == "c":
        assert load("a:\tb\n", backend).data == {"a": "b"}
    else:
        (found,) = refusal("a:\tb\n", backend)
        assert (found.code, found.line, found.column) == ("yaml-tab", 1, 3)
        assert found.message == "tab character not allowed here; use spaces"


def test_every_duplicate_and_bad_key_is_reported(backend: Backend) -> None:
    text = "a: 1\nb: 2\na: 3\n1: x\nb: 4\nsteps:\n  - id: s\n    id: t\n"
    found = refusal(text, backend)
    assert [(d.code, d.line, d.column) for d in found] == [
        ("duplicate-key", 3, 1),
        ("non-string-key", 4, 1),
        ("duplicate-key", 5, 1),
        ("duplicate-key", 8, 5),
    ]
    assert found[2].message == "duplicate key 'b' (first at line 2)"


def test_diagnostics_before_a_syntax_error_are_kept(backend: Backend) -> None:
    found = refusal("a: 1\na: 2\nb: [\n", backend)
    assert [d.code for d in found] == ["duplicate-key", "yaml-syntax"]


def test_yaml_directive_hint_says_to_remove_it(backend: Backend) -> None:
    (found,) = refusal("%YAML 1.1\n---\na: 1\n", backend)
    assert found.hint == "remove the %YAML line"


def test_file_too_large_for_text_and_bytes(backend: Backend) -> None:
    limits = LoadLimits(max_bytes=10)
    for source in ("a: 12345678901\n", b"a: 12345678901\n", "a: ééééé\n"):
        (found,) = refusal(source, backend, limits=limits)
        assert (found.code, found.line, found.column) == ("file-too-large", 1, 1)
        assert "the limit is 10 bytes" in found.message
    (found,) = refusal("a: ééééé\n", backend, limits=limits)
    assert "the file is 14 bytes" in found.message


def test_too_many_nodes_without_aliases(backend: Backend) -> None:
    (found,) = refusal("a: [1, 2, 3, 4, 5, 6]\n", backend, limits=LoadLimits(max_nodes=5))
    assert found.code == "too-many-nodes" and "more than 5 nodes" in found.message
    assert found.hint == SPLIT_HINT


def test_a_file_over_the_size_limit_says_how_to_split_it(backend: Backend) -> None:
    (found,) = refusal("a: 12345678901\n", backend, limits=LoadLimits(max_bytes=10))
    assert (
        found.hint
        == "move groups of steps into sub-workflow files (workflow: part.yaml), or data into a file a step reads"
    )


# -- limits that guard against hostile files --------------------------------------------------------


def test_billion_laughs_is_refused_quickly(backend: Backend) -> None:
    (found,) = refusal(billion_laughs(), backend)
    assert found.code == "alias-expansion" and found.line == 6  # the first level past 250 000 nodes


def test_hundred_thousand_nested_brackets_give_a_clean_diagnostic(backend: Backend) -> None:
    # Refused at the 101st level. The pure scanner looks ~1000 brackets ahead at quadratic cost (~1 s),
    # so it gets one shape; the C parser gets them all.
    shapes = {"a: " + "[" * 100_000: 103, "[" * 100_000 + "]" * 100_000: 101, "a: " + "{a: " * 100_000: 400}
    for text, column in list(shapes.items())[: 1 if backend == "pure" else None]:
        (found,) = refusal(text, backend)
        assert (found.code, found.line, found.column) == ("too-deep", 1, column)


def test_deep_block_nesting_is_refused(backend: Backend) -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(150))
    (found,) = refusal(text, backend)
    assert (found.code, found.line, found.column) == ("too-deep", 101, 201)


def test_limits_are_configurable(backend: Backend) -> None:
    assert load("a: [[1]]\n", backend, limits=LoadLimits(max_depth=3)).data == {"a": [[1]]}
    (found,) = refusal("a: [[1]]\n", backend, limits=LoadLimits(max_depth=2))
    assert (found.code, found.column) == ("too-deep", 5)


# -- positions --------------------------------------------------------------------------------------

NESTED = "name: demo\nsteps:\n  - id: first\n    run: echo hi\n  - id: second\n    with: {x: [1, 'two']}\n"
NESTED_POSITIONS = {
    (): (1, 1),
    ("name",): (1, 7),
    ("steps",): (3, 3),
    ("steps", 0): (3, 5),
    ("steps", 0, "id"): (3, 9),
    ("steps", 0, "run"): (4, 10),
    ("steps", 1): (5, 5),
    ("steps", 1, "id"): (5, 9),
    ("steps", 1, "with"): (6, 11),
    ("steps", 1, "with", "x"): (6, 15),
    ("steps", 1, "with", "x", 0): (6, 16),
    ("steps", 1, "with", "x", 1): (6, 19),
}
NESTED_KEY_POSITIONS = {
    ("name",): (1, 1),
    ("steps",): (2, 1),
    ("steps", 0, "id"): (3, 5),
    ("steps", 0, "run"): (4, 5),
    ("steps", 1, "id"): (5, 5),
    ("steps", 1, "with"): (6, 5),
    ("steps", 1, "with", "x"): (6, 12),
}


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(NESTED, id="lf"),
        pytest.param(NESTED.replace("\n", "\r\n"), id="crlf"),
        pytest.param(NESTED.replace("\n", "\r"), id="cr"),
        pytest.param("\ufeff" + NESTED, id="bom"),
        pytest.param(b"\xef\xbb\xbf" + NESTED.replace("\n", "\r\n").encode(), id="bom-crlf-bytes"),
    ],
)
def test_positions_of_nested_values_and_keys(backend: Backend, source: str | bytes) -> None:
    doc = load(source, backend)
    assert doc.text == NESTED
    assert {path: (p.line, p.column) for path, p in doc.positions.items()} == NESTED_POSITIONS
    assert {path: (p.line, p.column) for path, p in doc.key_positions.items()} == NESTED_KEY_POSITIONS
    assert doc.position(("steps", 1, "with", "x", 1)) == Position(6, 19)


def test_positions_count_characters_not_bytes(backend: Backend) -> None:
    doc = load("é😀: x\nb: 'ü😀'\nc: 1\n", backend)
    assert doc.positions[("é😀",)] == Position(1, 5)
    assert doc.positions[("c",)] == Position(3, 4)


def test_invalid_utf8_column_counts_characters(backend: Backend) -> None:
    (found,) = refusal(b"a: 1\nb: \xc3\xa9\xf0\x9f\x98\x80 \xc0\n", backend)
    assert (found.line, found.column) == (2, 7)


# -- merge keys and aliases -------------------------------------------------------------------------


def test_merge_keys_merge_with_explicit_keys_and_earlier_sources_winning(backend: Backend) -> None:
    text = (
        "base: &base {model: small, temperature: 0, retries: 1}\n"
        "loud: &loud {temperature: 1, voice: loud}\n"
        "one:\n  <<: *base\n  model: large\n"
        "both:\n  <<: [*base, *loud]\n  retries: 3\n"
        "inline: {<<: {a: 1}, b: 2}\n"
    )
    data = load(text, backend).data
    assert data["one"] == {"model": "large", "temperature": 0, "retries": 1}
    assert data["both"] == {"model": "small", "temperature": 0, "retries": 3, "voice": "loud"}
    assert data["inline"] == {"a": 1, "b": 2}
    assert data["base"] == {"model": "small", "temperature": 0, "retries": 1}, "sources are not changed"


def test_a_second_merge_key_is_a_duplicate(backend: Backend) -> None:
    (found,) = refusal("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n", backend)
    assert (found.code, found.line, found.column) == ("duplicate-key", 4, 3)


def test_aliases_share_the_same_object(backend: Backend) -> None:
    doc = load("defaults: &d {retries: 2, tags: [a, b]}\nstep: *d\nlist: [*d, *d]\n", backend)
    data = doc.data
    assert data["step"] is data["defaults"]
    assert data["list"][0] is data["list"][1] is data["defaults"]
    assert doc.positions[("step",)] == Position(2, 7)
    assert doc.position(("step", "tags", 0)) == Position(2, 7), "paths under an alias use the alias position"


def test_aliases_within_the_node_limit_load(backend: Backend) -> None:
    text = "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"
    assert load(text, backend).data["c"][2][1] == [1, 2, 3]
    (found,) = refusal(text, backend, limits=LoadLimits(max_nodes=30))
    assert found.code == "alias-expansion"


# -- bigger documents -------------------------------------------------------------------------------


def test_a_thousand_step_document_loads_quietly(backend: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    doc = load(workflow(1000), backend)
    assert len(doc.data["steps"]) == 1000
    assert doc.positions[("steps", 999, "llm", "model")] == Position(4005, 14)
    assert capsys.readouterr() == ("", "")


# -- files ------------------------------------------------------------------------------------------


def test_load_file_reads_bytes_and_records_names(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: x\r\nsteps: []\r\n")
    doc = load_file(path)
    assert doc.data == {"name": "x", "steps": []}
    assert doc.file == str(path) and doc.directory == str(tmp_path)
    assert doc.text == "name: x\nsteps: []\n"
    assert load_file(path, display_name="flows/flow.yaml").file == "flows/flow.yaml"


def test_load_file_relative_path_gets_an_absolute_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.yaml").write_text("a: 1\n")
    monkeypatch.chdir(tmp_path)
    doc = load_file(os.path.join("sub", "w.yaml"))
    assert doc.file == os.path.join("sub", "w.yaml") and doc.directory == str(tmp_path / "sub")


def test_load_file_problems(tmp_path: Path) -> None:
    cases = {
        "file-not-found": tmp_path / "missing.yaml",
        "file-unreadable": tmp_path,
    }
    (tmp_path / "plain").write_text("x")
    cases_missing_dir = tmp_path / "plain" / "w.yaml"  # a path through a file
    for code, path in [*cases.items(), ("file-not-found", cases_missing_dir)]:
        with pytest.raises(WorkflowError) as caught:
            load_file(path, display_name="w.yaml")
        (found,) = caught.value.diagnostics
        assert (found.code, found.file, found.line, found.column) == (code, "w.yaml", 1, 1)


def test_load_file_refuses_a_big_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 100 + "\n")
    with pytest.raises(WorkflowError) as caught:
        load_file(path, limits=LoadLimits(max_bytes=50))
    (found,) = caught.value.diagnostics
    assert found.code == "file-too-large" and "the file is 104 bytes; the limit is 50 bytes" in found.message


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root (or a non-POSIX system) reads a file its mode forbids"
)
def test_load_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    with pytest.raises(WorkflowError) as caught:
        load_file(path)
    assert caught.value.diagnostics[0].code == "file-unreadable"


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="/proc/self/mem exists on Linux only")
def test_load_file_that_fails_to_read_even_for_root() -> None:
    # The read itself fails (EIO at address 0), whoever runs the tests: the same one-line diagnostic.
    with pytest.raises(WorkflowError) as caught:
        load_file("/proc/self/mem", display_name="mem.yaml")
    found = caught.value.diagnostics[0]
    assert (found.code, found.message) == ("file-unreadable", "cannot read mem.yaml: input/output error")


def test_default_backend_loads() -> None:
    assert load_text("a: 1\n").data == {"a": 1}
