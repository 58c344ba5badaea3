"""Workflow inputs: parse command-line values by declared type and check every constraint before a run."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from llmflow.compiler.graph import InputSpec
from llmflow.errors import InputError

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}
#: How a list or a mapping is written after ``-i name=``.
_JSON_EXAMPLES = {"array": '["a", "b"]', "object": '{"key": "value"}'}
_TRUE = {"true", "yes", "on", "1"}
#: The longest a value quoted in an error message may be.
_SHOWN = 80
_FALSE = {"false", "no", "off", "0"}


def cut_value(text: str) -> str:
    """``text`` (a value as an error message quotes it) cut short: the value may be a megabyte from
    ``--inputs-file``, and the message must stay one readable line."""
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 1]}…"


def parse_text(spec: InputSpec, text: str) -> Any:
    """Turn ``-i name=text`` into a value of the input's declared type."""
    kind = spec.type
    try:
        if kind == "string":
            return text
        if kind == "integer":
            return int(text.strip())
        if kind == "number":
            number = float(text.strip())
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        return json.loads(text)
    except RecursionError:
        raise InputError(f"input '{spec.name}': the JSON value is nested too deeply") from None
    except (ValueError, json.JSONDecodeError):
        example = _JSON_EXAMPLES.get(kind)
        how = f" (write it as JSON: -i {spec.name}='{example}')" if example else ""
        raise InputError(
            f"input '{spec.name}': expected {_TYPE_WORDS.get(kind, kind)}, got {cut_value(repr(text))}{how}"
        ) from None


def _matches(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity in ``value``, searched through lists and mappings; None when there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _non_finite(item)
        if found is not None:
            return found
    return None


def check_value(spec: InputSpec, value: Any) -> Any:
    """Check one value against its spec; return it (numbers given for strings are refused, not coerced)."""
    name = spec.name
    if value is None and not spec.required:
        return None
    if not _matches(value, spec.type):
        if isinstance(value, str) and spec.type != "string":
            value = parse_text(spec, value)
        else:
            kind = _TYPE_WORDS.get(spec.type, spec.type)
            raise InputError(f"input '{name}': expected {kind}, got {cut_value(json.dumps(value, default=str))}")
    try:
        unfit = _non_finite(value)
    except RecursionError:
        raise InputError(f"input '{name}': the value is nested too deeply") from None
    if unfit is not None:
        # A NaN would slip past minimum and maximum (every comparison with it is false), and run.json and the
        # journal hold values as JSON, which has neither NaN nor infinity.
        raise InputError(f"input '{name}': {unfit} is not a finite number (JSON cannot hold it)")
    rules = spec.constraints
    if "enum" in rules and value not in rules["enum"]:
        choices = ", ".join(json.dumps(choice) for choice in rules["enum"])
        raise InputError(f"input '{name}': {cut_value(json.dumps(value))} is not one of {choices}")
    if "minimum" in rules and value < rules["minimum"]:
        raise InputError(f"input '{name}': {cut_value(str(value))} is below the minimum {rules['minimum']}")
    if "maximum" in rules and value > rules["maximum"]:
        raise InputError(f"input '{name}': {cut_value(str(value))} is above the maximum {rules['maximum']}")
    if "min_length" in rules and len(value) < rules["min_length"]:
        raise InputError(f"input '{name}': shorter than {rules['min_length']}")
    if "max_length" in rules and len(value) > rules["max_length"]:
        raise InputError(f"input '{name}': longer than {rules['max_length']}")
    if "pattern" in rules and isinstance(value, str) and not re.search(rules["pattern"], value):
        raise InputError(f"input '{name}': {cut_value(repr(value))} does not match {rules['pattern']}")
    if spec.type == "array" and isinstance(rules.get("items"), dict):
        item_type = rules["items"].get("type")
        for index, item in enumerate(value):
            if item_type and not _matches(item, item_type):
                raise InputError(f"input '{name}': item {index} is not {_TYPE_WORDS.get(item_type, item_type)}")
    return value


def resolve_inputs(specs: Mapping[str, InputSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared input with its value: given, else default; unknown or missing ones are errors."""
    unknown = [name for name in given if name not in specs]
    if unknown:
        from llmflow.spec.validator import suggest

        name = unknown[0]
        match = suggest(name, specs)
        declared = ", ".join(specs) or "none"
        hint = f" (did you mean '{match}'?)" if match else f"; declared inputs: {declared}"
        raise InputError(f"unknown input {cut_value(repr(name))}{hint}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            values[name] = check_value(spec, given[name])
        elif spec.has_default:
            values[name] = spec.default
        elif spec.required:
            raise InputError(f"missing input '{name}': pass it with -i {name}=VALUE")
        else:
            values[name] = None
    return values


def parse_assignments(specs: Mapping[str, InputSpec], pairs: list[str]) -> dict[str, Any]:
    """``-i k=v`` strings into typed values (unknown names are reported by :func:`resolve_inputs`)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"-i expects NAME=VALUE, got {cut_value(repr(pair))}")
        spec = specs.get(name)
        values[name] = parse_text(spec, text) if spec is not None else text
    return values
