"""Hostile input values (``-i``, ``--inputs-file``): a one-line usage error and exit 2, never a traceback, and
never a value that run.json could not hold as JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result

CLI = Callable[..., Result]

FLOW = """\
version: 1
name: typed
inputs:
  n: {type: number, default: 1, minimum: 0, maximum: 10}
  o: {type: object, default: {}}
steps:
  - id: a
    run: echo {{ inputs.n }}
"""

DEEP = '{"a": ' + "[" * 3000 + "]" * 3000 + "}"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("n=nan", "error: input 'n': nan is not a finite number (JSON cannot hold it)\n"),
        ('o={"a": [1, Infinity]}', "error: input 'o': inf is not a finite number (JSON cannot hold it)\n"),
        (f"o={DEEP}", "error: input 'o': the JSON value is nested too deeply\n"),
    ],
    ids=["nan-past-minimum", "infinity-inside", "deep-json"],
)
def test_a_hostile_dash_i_value_is_a_one_line_error(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path, assignment: str, message: str
) -> None:
    workflow(FLOW)
    done = cli("run", "flow.yaml", "-i", assignment)
    assert (done.code, done.stderr) == (2, message)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "in.json",
            '{"o": ' + DEEP + "}",
            "error: in.json:1:1: the inputs file is not valid JSON: it is nested too deeply\n",
        ),
        (
            "in.json",
            '{"o": {"a": NaN}}',
            "error: in.json:1:7: input 'o': nan is not a finite number (JSON cannot hold it) (in the inputs file)\n",
        ),
        (
            "in.yaml",
            "o: {a: .inf}\n",
            "error: in.yaml:1:4: input 'o': inf is not a finite number (JSON cannot hold it) (in the inputs file)\n",
        ),
    ],
    ids=["deep-json", "json-nan", "yaml-infinity"],
)
def test_a_hostile_inputs_file_is_a_one_line_error(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, name: str, text: str, message: str
) -> None:
    workflow(FLOW)
    (tmp_path / name).write_text(text, encoding="utf-8")
    done = cli("run", "flow.yaml", "--inputs-file", name)
    assert (done.code, done.stderr) == (2, message)


NOT_A_MAPPING = "the inputs file must hold a mapping of input names to values (NAME: VALUE)"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.json", b"[1, 2]", f"error: in.json:1:1: {NOT_A_MAPPING}, not a list\n"),
        ("in.yaml", b"# values\n\n- n: 1\n", f"error: in.yaml:3:1: {NOT_A_MAPPING}, not a list\n"),
        (
            "in.json",
            b'{"n": 1,\n "o": {bad}}',
            "error: in.json:2:8: the inputs file is not valid JSON: Expecting "
            "property name enclosed in double quotes\n",
        ),
        ("in.json", b"", "error: in.json:1:1: the inputs file is not valid JSON: Expecting value\n"),
        (
            "in.json",
            b'{"o":\n {"a": "caf\xe9"}}',
            "error: in.json:2:12: the inputs file is not valid UTF-8 (byte 0xe9); save it as UTF-8\n",
        ),
        ("in.yaml", b"n: [\n", "error: in.yaml:2:1: did not find expected node content (in the inputs file)\n"),
        ("missing.json", None, "error: missing.json: cannot read the inputs file: No such file or directory\n"),
    ],
    ids=["json-list", "yaml-list", "bad-json", "empty-json", "json-not-utf8", "bad-yaml", "missing"],
)
def test_a_wrong_inputs_file_is_placed_at_file_line_column(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    workflow(FLOW)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    done = cli("run", "flow.yaml", "--inputs-file", name)
    assert (done.code, done.stderr) == (2, message)


LONG = "x" * 100_000
SHOWN = "'" + "x" * 78 + "…"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (f"n={LONG}", f"error: input 'n': expected a number, got {SHOWN}\n"),
        (f"{LONG}=1", f"error: unknown input {SHOWN}; declared inputs: n, o\n"),
        (LONG, f"error: -i expects NAME=VALUE, got {SHOWN}\n"),
    ],
    ids=["value", "name", "no-equals"],
)
def test_a_huge_dash_i_value_is_cut_short_in_the_error(
    cli: CLI, workflow: Callable[..., Path], assignment: str, message: str
) -> None:
    workflow(FLOW)
    done = cli("run", "flow.yaml", "-i", assignment)
    assert (done.code, done.stderr) == (2, message)
    resumed = cli("resume", "--last", "-i", LONG)
    assert (resumed.code, resumed.stderr) == (2, f"error: -i expects NAME=VALUE, got {SHOWN}\n")


def test_a_megabyte_value_in_an_inputs_file_is_cut_short_in_the_error(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path
) -> None:
    workflow(FLOW.replace("  o: {type: object, default: {}}", "  o: {type: object, default: {}}\n  e: {enum: [a, b]}"))
    (tmp_path / "in.json").write_text('{"e": "' + "y" * 1_000_000 + '"}', encoding="utf-8")
    done = cli("run", "flow.yaml", "--inputs-file", "in.json")
    shown = "error: in.json:1:7: input 'e': \"" + "y" * 78 + '… is not one of "a", "b" (in the inputs file)\n'
    assert (done.code, done.stderr) == (2, shown)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("n: 2\no: [1]\n", "in.yaml:2:4: input 'o': expected a mapping, got [1]"),
        ("n: 2\nsize: 3\n", "in.yaml:2:1: unknown input 'size'; declared inputs: n, o"),
        ("\nn: 11\n", "in.yaml:2:4: input 'n': 11 is above the maximum 10"),
    ],
    ids=["wrong-type", "unknown", "above-maximum"],
)
def test_a_wrong_value_in_an_inputs_file_is_placed_at_its_line(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, text: str, message: str
) -> None:
    workflow(FLOW)
    (tmp_path / "in.yaml").write_text(text, encoding="utf-8")
    done = cli("run", "flow.yaml", "--inputs-file", "in.yaml")
    assert (done.code, done.stderr) == (2, f"error: {message} (in the inputs file)\n")
    overridden = cli("run", "flow.yaml", "--inputs-file", "in.yaml", "-i", "n=1", "-i", "o={}", "-q")
    if "unknown" in message:  # -i does not take an unknown name away
        assert overridden.code == 2
    else:  # a value -i gives again is not the file's
        assert overridden.code == 0, overridden.stderr
