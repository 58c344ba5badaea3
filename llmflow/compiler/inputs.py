"""Stage three, inputs: the declared inputs as frozen specs, their constraints and defaults checked."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from llmflow.compiler.graph import InputSpec
from llmflow.spec.document import DocPath

#: Records a problem: code, message, document path.
Report = Callable[[str, str, DocPath], None]

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
_CONSTRAINTS = ("enum", "minimum", "maximum", "min_length", "max_length", "pattern", "items")
#: The input types each constraint applies to (a length is a string's or a list's, a bound a number's).
_CONSTRAINT_TYPES = {
    "minimum": ("integer", "number"),
    "maximum": ("integer", "number"),
    "min_length": ("string", "array"),
    "max_length": ("string", "array"),
    "pattern": ("string",),
    "items": ("array",),
}


def compile_inputs(raw: dict[str, Any], report: Report) -> dict[str, InputSpec]:
    """The input specs of ``inputs:``; every problem a schema cannot see goes to ``report``."""
    inputs: dict[str, InputSpec] = {}
    for name, written in raw.items():
        spec: dict[str, Any] = {"type": written} if isinstance(written, str) else dict(written)
        kind = spec.get("type", "string")
        constraints = {key: spec[key] for key in _CONSTRAINTS if key in spec}
        usable = _check_constraints(name, kind, constraints, report)
        has_default = "default" in spec
        default = spec.get("default")
        if has_default and default is not None:
            problem = value_problem(default, kind, constraints if usable else {})
            if problem:
                report(
                    "bad-default",
                    f"the default of input '{name}' is {default!r}, {problem}",
                    ("inputs", name, "default"),
                )
        inputs[name] = InputSpec(
            name=name,
            type=kind,
            description=spec.get("description", ""),
            default=default,
            has_default=has_default,
            required=bool(spec.get("required", True)) and not has_default,
            secret=bool(spec.get("secret", False)),
            constraints=MappingProxyType(constraints),
        )
    return inputs


def is_type(value: Any, kind: str) -> bool:
    """True when ``value`` has the input type ``kind`` (a boolean is not a number)."""
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(kind, (object,)))


def _check_constraints(name: str, kind: str, constraints: dict[str, Any], report: Report) -> bool:
    """Report constraints that can never work; False when one of them is broken."""
    usable = True
    for constraint in constraints:
        types = _CONSTRAINT_TYPES.get(constraint)
        if types is not None and kind not in types:
            # Checking the value would compare or measure what has no order or length (a length of 5).
            fits = " or ".join(types)
            message = f"'{constraint}' does not apply to input '{name}' of type {kind}, only to {fits}"
            report("bad-constraint", message, ("inputs", name, constraint))
            usable = False
    for bound in ("minimum", "maximum"):
        value = constraints.get(bound)
        if isinstance(value, float) and not math.isfinite(value):
            report(
                "bad-value",
                f"'{bound}' of input '{name}' must be a finite number, not {value!r}",
                ("inputs", name, bound),
            )
            usable = False
    pattern = constraints.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as error:
            message = f"the pattern of input '{name}' is not a valid regular expression: {error}"
            report("bad-pattern", message, ("inputs", name, "pattern"))
            usable = False
    return usable


def value_problem(default: Any, kind: str, constraints: dict[str, Any]) -> str | None:
    """Why a value written in a file (a default, a sub-workflow's ``with:``) breaks an input's type or
    constraints: it would fail every run that uses it."""
    if not is_type(default, kind):
        return f"which is not of type {kind}"
    enum = constraints.get("enum")
    if isinstance(enum, list) and default not in enum:
        return "which is not one of " + ", ".join(repr(choice) for choice in enum)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if "minimum" in constraints and default < constraints["minimum"]:
            return f"below its minimum {constraints['minimum']}"
        if "maximum" in constraints and default > constraints["maximum"]:
            return f"above its maximum {constraints['maximum']}"
    if isinstance(default, (str, list)):
        if "min_length" in constraints and len(default) < constraints["min_length"]:
            return f"shorter than its min_length {constraints['min_length']}"
        if "max_length" in constraints and len(default) > constraints["max_length"]:
            return f"longer than its max_length {constraints['max_length']}"
    pattern = constraints.get("pattern")
    if isinstance(default, str) and isinstance(pattern, str) and not re.search(pattern, default):
        return f"which does not match its pattern {pattern!r}"
    return None
