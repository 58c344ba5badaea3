"""Resource limits shared by conditions and templates, and the conversion of results to plain data."""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, cast

from llmflow.errors import ExpressionError

#: Longest string or list a condition may produce.
MAX_CONDITION_LENGTH = 100_000
#: Longest string or list one template operator (``*``) may produce.
MAX_REPEAT_LENGTH = 1_000_000
#: Longest text a template may render, and longest string any template operation may produce.
MAX_TEXT_LENGTH = 10_000_000
#: Most items a value handed back to the caller (or turned into text) may contain, counted with repeats.
MAX_VALUE_ITEMS = 1_000_000
#: Most "units" of data one condition evaluation may build (see ``logical_size``).
MAX_ALLOCATION = 1_000_000
#: Largest integer an expression may produce, in decimal digits.
MAX_INT_DIGITS = 4000
MAX_INT_BITS = 13_288  # 4000 decimal digits
#: Wall-clock limits; they catch runaway loops that stay within every size limit.
CONDITION_TIME_LIMIT = 1.0
TEMPLATE_TIME_LIMIT = 2.0


@functools.cache
def _passthrough() -> tuple[type, ...]:
    """Immutable, harmless value types that may pass through unchanged as "data" (imported lazily)."""
    import datetime
    import decimal
    import pathlib
    import uuid

    return (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, pathlib.PurePath, uuid.UUID)


_SCALARS = frozenset({int, float, bool, type(None)})
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
# Iterators that filters and methods return (a generator from |map, reversed() from |reverse ...). Other
# iterators, like Jinja's cycler, may never end and are not data.
ITERATORS: tuple[type, ...] = (
    types.GeneratorType,
    map,
    filter,
    zip,
    enumerate,
    type(reversed([])),
    type(iter([])),
    type(iter(())),
    type(iter(range(0))),
)


class Deadline:
    """A wall-clock budget; ``check`` raises ExpressionError once it is spent."""

    __slots__ = ("expires", "limit", "what")

    def __init__(self, limit: float, what: str) -> None:
        self.limit = limit
        self.what = what
        self.expires = time.monotonic() + limit

    def check(self) -> None:
        if time.monotonic() > self.expires:
            raise ExpressionError(f"{self.what} took longer than {self.limit:g} s and was stopped")


def logical_size(value: Any, limit: int) -> int:
    """Count the items of ``value`` the way a printer or comparison would visit them.

    Shared references are counted every time they appear, so a list holding the same big list many
    times is as large as it looks when printed. Strings count 1 per 100 characters. The walk stops as
    soon as the count passes ``limit``, so it costs at most ``limit`` steps.
    """
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        total += 1
        if isinstance(item, str):
            total += len(item) // 100
        elif isinstance(item, (Mapping, list, tuple, Set)):
            # Scalars are counted in bulk; only containers and strings are visited one by one.
            children = [*item.keys(), *item.values()] if isinstance(item, Mapping) else item
            others = [child for child in children if type(child) not in _SCALARS]
            total += len(children) - len(others)
            stack.extend(others)
        if total > limit:
            break
    return total


def text_size(value: Any, limit: int) -> int:
    """Estimate the length of ``str(value)`` or of its JSON; stops counting past ``limit``."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, Mapping):
            total += 2
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, Set)):
            total += 2
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += max(item.bit_length() * 3 // 10, 1) + 2
        else:
            total += 24
        if total > limit:
            break
    return total


def check_int(value: Any) -> None:
    """Refuse an integer with more than MAX_INT_DIGITS digits."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"the result would be an integer with more than {MAX_INT_DIGITS} digits")


def check_power(base: Any, exponent: Any) -> None:
    """Refuse an integer power whose result would pass MAX_INT_DIGITS, before computing it."""
    integers = isinstance(base, int) and isinstance(exponent, int)
    if integers and exponent > 0 and abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
        raise ExpressionError(f"the result would be an integer with more than {MAX_INT_DIGITS} digits")


def check_product(left: Any, right: Any) -> None:
    """Refuse an integer product whose result would pass MAX_INT_DIGITS, before computing it."""
    integers = isinstance(left, int) and isinstance(right, int)
    if integers and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
        raise ExpressionError(f"the result would be an integer with more than {MAX_INT_DIGITS} digits")


def check_length(value: Any, limit: int, what: str = "the result") -> None:
    """Refuse a string or collection longer than ``limit``."""
    if isinstance(value, (str, list, tuple, dict, Set)) and len(value) > limit:
        unit = "characters" if isinstance(value, str) else "items"
        raise ExpressionError(f"{what} would have {len(value)} {unit} (the limit is {limit})")


def bounded_str(value: Any, limit: int) -> str:
    """``str(value)``, refused when the text would be longer than ``limit``."""
    if isinstance(value, str):
        if len(value) > limit:
            raise ExpressionError(f"the text would be longer than {limit} characters")
        return str(value)
    if type(value) in _SCALARS:
        return str(value)
    if text_size(value, limit) > limit:
        raise ExpressionError(f"the text would be longer than {limit} characters")
    return str(value)


def type_name(value: Any) -> str:
    """A short, user-facing name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def whole_number(value: Any) -> int | None:
    """``value`` as an ``int`` when it is a whole number (``3``, ``3.0`` or the text ``"3"``), else ``None``.

    Unlike ``int()``, this refuses booleans and fractions (``2.5`` is not silently 2) and never raises
    (an infinite float or a NaN is simply not a whole number).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def a_type(value: Any) -> str:
    """``type_name`` with its article, for messages: "a string", "an integer", "null"."""
    name = type_name(value)
    if value is None:
        return name
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def to_plain(value: Any, *, undefined: type | None = None) -> Any:
    """Copy ``value`` into plain data: dict, list, str, int, float, bool, None (and a few value types).

    Views, tuples, sets, ranges and generators become lists. Functions, methods, classes, modules and
    other objects are refused, so nothing that could reach back into the program leaves the sandbox.
    ``undefined`` is Jinja's Undefined class: meeting one raises its own error. The copy is bounded
    by MAX_VALUE_ITEMS items and MAX_TEXT_LENGTH characters, counting repeats.
    """
    if logical_size(value, MAX_VALUE_ITEMS) > MAX_VALUE_ITEMS:  # a fast first estimate
        raise ExpressionError(f"the value is too large (more than {MAX_VALUE_ITEMS} items)")
    budget = [MAX_VALUE_ITEMS, MAX_TEXT_LENGTH]
    return _plain(value, budget, undefined, 0)


def _plain(value: Any, budget: list[int], undefined: type | None, depth: int) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ExpressionError(f"the value is too large (more than {MAX_VALUE_ITEMS} items)")
    if depth > 200:
        raise ExpressionError("the value is nested too deeply")
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        budget[1] -= len(value)
        if budget[1] < 0:
            raise ExpressionError(f"the value is too large (more than {MAX_TEXT_LENGTH} characters)")
        return str(value)
    if undefined is not None and isinstance(value, undefined):
        str(value)  # StrictUndefined raises its own, precise error here
        raise ExpressionError("the value is undefined")
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            plain_key = _plain(key, budget, undefined, depth + 1)
            if isinstance(plain_key, (dict, list)):
                raise ExpressionError("a mapping key must be a string, number, boolean or null")
            result[plain_key] = _plain(item, budget, undefined, depth + 1)
        return result
    if isinstance(value, (Sequence, Set, *_VIEWS, *ITERATORS)) and not isinstance(value, (bytes, bytearray)):
        return [_plain(item, budget, undefined, depth + 1) for item in cast("Iterable[Any]", value)]
    if isinstance(value, _passthrough()):
        return value
    if callable(value) or isinstance(value, (type, types.ModuleType)):
        raise ExpressionError("the value is a function, not data (are the parentheses of a call missing?)")
    raise ExpressionError(f"a value of type '{type_name(value)}' cannot be used as data")


def stringify(value: Any) -> str:
    """How a value appears in text.

    None is empty, booleans are ``true``/``false``, mappings and lists are JSON (non-ASCII kept),
    everything else is ``str()``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (Mapping, list, tuple, *ITERATORS)):
        return to_json(value)
    if isinstance(value, (int, float)):
        return str(value)
    return bounded_str(value, MAX_TEXT_LENGTH)


def to_json(value: Any, undefined: type | None = None) -> str:
    """Compact-but-readable JSON of ``value`` (``ensure_ascii=False``), bounded like ``to_plain``."""
    import json

    plain = to_plain(value, undefined=undefined)
    return json.dumps(plain, ensure_ascii=False, default=str)


def one_line(message: str, limit: int = 300) -> str:
    """Squeeze an error message onto one line of reasonable length."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """A clear one-line message for an exception raised while evaluating an expression."""
    if isinstance(exc, ExpressionError):
        return exc.message
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, RecursionError):
        return "recursion is too deep"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}" if exc.args else "missing key"
    if isinstance(exc, OverflowError):
        detail = exc.args[-1] if exc.args and isinstance(exc.args[-1], str) else str(exc)
        return f"the number is too large ({detail})"
    if isinstance(exc, (TypeError, ValueError, IndexError, AttributeError)):
        return one_line(str(exc)) or type(exc).__name__
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unset_secret(path: str | None, name: Any) -> str | None:
    """The message for ``secrets.NAME`` read while NAME is not set (the compiler has checked it is declared),
    else ``None``: "secrets has no key" would not say what to do."""
    if path != "secrets":
        return None
    return f"secret {str(name)!r} is not set: set it in the environment, or in the .env file beside .llmflow/"
