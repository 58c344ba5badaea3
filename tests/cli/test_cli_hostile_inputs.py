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
        ("in.json", '{"o": ' + DEEP + "}", "error: inputs file in.json is not valid JSON: it is nested too deeply\n"),
        ("in.json", '{"o": {"a": NaN}}', "error: input 'o': nan is not a finite number (JSON cannot hold it)\n"),
        ("in.yaml", "o: {a: .inf}\n", "error: input 'o': inf is not a finite number (JSON cannot hold it)\n"),
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
