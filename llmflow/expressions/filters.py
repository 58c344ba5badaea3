"""Bounded versions of the Jinja filters that can amplify their input, and a size guard on every filter."""

from __future__ import annotations

import functools
import json
import pprint
import re
from collections.abc import Callable, Iterable, Sized
from typing import TYPE_CHECKING, Any

from jinja2 import filters as jinja_filters
from jinja2 import pass_environment, pass_eval_context
from jinja2.runtime import Undefined
from jinja2.sandbox import MAX_RANGE

from llmflow.errors import ExpressionError
from llmflow.expressions.values import (
    MAX_TEXT_LENGTH,
    MAX_VALUE_ITEMS,
    bounded_str,
    text_size,
    to_plain,
)

if TYPE_CHECKING:
    from jinja2 import Environment
    from jinja2.nodes import EvalContext

#: Longest input ``wordwrap`` accepts (textwrap is slow on huge inputs).
MAX_WORDWRAP_INPUT = 200_000
#: The sandbox filter a plugin's filter is compiled to (``x | shout(1)`` runs ``plugin_filter(x, "shout", 1)``);
#: no template can name it, since filter names cannot contain a space.
PLUGIN_FILTER = "plugin filter"
# A printf-style conversion: we refuse ``*`` widths and widths or precisions over 4 digits.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _too_long(what: str, size: int, limit: int = MAX_TEXT_LENGTH) -> ExpressionError:
    return ExpressionError(f"{what} would produce {size} characters (the limit is {limit})")


def center(value: Any, width: int = 80) -> str:
    """``center``: refuses widths over the text limit."""
    if int(width) > MAX_TEXT_LENGTH:
        raise _too_long("center", int(width))
    return jinja_filters.do_center(bounded_str(value, MAX_TEXT_LENGTH), int(width))


def indent(text: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    """``indent``: refuses when the indentation would make the text too long."""
    text = bounded_str(text, MAX_TEXT_LENGTH)
    prefix = len(width) if isinstance(width, str) else max(int(width), 0)
    size = len(text) + (text.count("\n") + 1) * prefix
    if size > MAX_TEXT_LENGTH:
        raise _too_long("indent", size)
    return jinja_filters.do_indent(text, width, first, blank)


@pass_environment
def wordwrap(
    env: Environment,
    text: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """``wordwrap``: bounded input, and refuses a ``wrapstring`` that would blow the text up."""
    text = bounded_str(text, MAX_TEXT_LENGTH)
    if len(text) > MAX_WORDWRAP_INPUT:
        raise ExpressionError(f"wordwrap accepts at most {MAX_WORDWRAP_INPUT} characters")
    separator = env.newline_sequence if wrapstring is None else str(wrapstring)
    lines = len(text) // max(int(width), 1) + text.count("\n") + 1
    size = len(text) + lines * len(separator)
    if size > MAX_TEXT_LENGTH:
        raise _too_long("wordwrap", size)
    return jinja_filters.do_wordwrap(env, text, width, break_long_words, wrapstring, break_on_hyphens)


def format_(value: Any, *args: Any, **kwargs: Any) -> str:
    """``format`` (printf style): no ``*`` widths, widths and precisions of at most 4 digits, and a
    bound on the result computed first (``%(key)s`` may use one big argument many times)."""
    template = bounded_str(value, MAX_TEXT_LENGTH)
    largest = max((text_size(item, MAX_TEXT_LENGTH) for item in [*args, *kwargs.values()]), default=0)
    size = len(template)
    for match in _PRINTF.finditer(template):
        for number in match.groups():
            if number == "*" or (number is not None and len(number) > 4):
                raise ExpressionError(f"format: the conversion {match.group(0)!r} is not allowed")
        size += max(int(number) for number in (match.group(1) or "0", match.group(2) or "0")) + largest
    if size > MAX_TEXT_LENGTH:
        raise _too_long("format", size)
    return jinja_filters.do_format(template, *args, **kwargs)


@pass_eval_context
def join(eval_ctx: EvalContext, value: Iterable[Any], separator: str = "", attribute: Any = None) -> str:
    """``join``: stops as soon as the text would pass the limit."""
    if attribute is not None:
        value = map(jinja_filters.make_attrgetter(eval_ctx.environment, attribute), value)
    separator = str(separator)
    parts: list[str] = []
    size = 0
    for item in value:
        text = bounded_str(item, MAX_TEXT_LENGTH)
        size += len(text) + (len(separator) if parts else 0)
        if size > MAX_TEXT_LENGTH:
            raise _too_long("join", size)
        parts.append(text)
    return separator.join(parts)


def replace(text: Any, old: Any, new: Any, count: int | None = None) -> str:
    """``replace``: computes the size of the result before building it."""
    subject, before, after = bounded_str(text, MAX_TEXT_LENGTH), str(old), str(new)
    hits = subject.count(before) if before else len(subject) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    size = len(subject) + hits * (len(after) - len(before))
    if size > MAX_TEXT_LENGTH:
        raise _too_long("replace", size)
    return subject.replace(before, after, -1 if count is None else count)


def batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    """``batch``: a fill value may not pad batches beyond MAX_RANGE items."""
    if fill_with is not None and int(linecount) > MAX_RANGE:
        raise ExpressionError(f"batch: at most {MAX_RANGE} items per batch when filling")
    return jinja_filters.do_batch(value, linecount, fill_with)


def slice_(value: Any, slices: int, fill_with: Any = None) -> Any:
    """``slice``: at most MAX_RANGE slices."""
    if int(slices) > MAX_RANGE:
        raise ExpressionError(f"slice: at most {MAX_RANGE} slices")
    return jinja_filters.sync_do_slice(value, slices, fill_with)


def round_(value: Any, precision: int = 0, method: str = "common") -> float:
    """``round``: precision between -100 and 100 (a huge one makes Python compute 10**precision)."""
    if abs(int(precision)) > 100:
        raise ExpressionError("round: the precision must be between -100 and 100")
    return jinja_filters.do_round(value, precision, method)  # type: ignore[arg-type]


@pass_environment
def sum_(env: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """``sum``: numbers as usual; lists (``start=[]``) are concatenated in linear time, bounded."""
    if attribute is not None:
        iterable = map(jinja_filters.make_attrgetter(env, attribute), iterable)
    if not isinstance(start, (list, tuple)):
        return sum(iterable, start)
    result = list(start)
    for item in iterable:
        if not isinstance(item, type(start)):
            raise ExpressionError(f"sum: cannot add a {type(item).__name__} to a {type(start).__name__}")
        result.extend(item)
        if len(result) > MAX_VALUE_ITEMS:
            raise ExpressionError(f"sum: the result would have more than {MAX_VALUE_ITEMS} items")
    return result if isinstance(start, list) else tuple(result)


def tojson(value: Any, indent: int | None = None) -> str:
    """``tojson``: the JSON ``{{ value }}`` gives (non-ASCII kept, keys in order), optionally indented."""
    if indent is not None and not 0 <= int(indent) <= 16:
        raise ExpressionError("tojson: the indent must be between 0 and 16")
    plain = to_plain(value, undefined=Undefined)
    return json.dumps(plain, ensure_ascii=False, indent=indent, default=str)


def pprint_(value: Any) -> str:
    """``pprint``, refused for values whose text would be too long."""
    if text_size(value, MAX_TEXT_LENGTH) > MAX_TEXT_LENGTH:
        raise ExpressionError("pprint: the value is too large")
    return pprint.pformat(value)


def string(value: Any) -> str:
    """``string``, refused for values whose text would be too long."""
    return bounded_str(value, MAX_TEXT_LENGTH)


def list_(value: Any) -> list[Any]:
    """``list``, refused for inputs with more than MAX_VALUE_ITEMS items."""
    if isinstance(value, Sized) and len(value) > MAX_VALUE_ITEMS:
        raise ExpressionError(f"list: more than {MAX_VALUE_ITEMS} items")
    return jinja_filters.sync_do_list(value)


def plugin_filter(value: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """The current run's plugin filter ``name``, called on plain copies of its arguments (extensions.py)."""
    from llmflow.expressions.extensions import call_plugin, lookup

    function = lookup("filter", name)
    if function is None:
        raise ExpressionError(f"unknown filter '{name}': no plugin of this run registers it")
    limits = {"max_length": MAX_TEXT_LENGTH, "max_items": MAX_VALUE_ITEMS}
    return call_plugin("filter", name, function, (value, *args), kwargs, **limits, undefined=Undefined)


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "center": center,
    "indent": indent,
    "wordwrap": wordwrap,
    "format": format_,
    "join": join,
    "replace": replace,
    "batch": batch,
    "slice": slice_,
    "round": round_,
    "sum": sum_,
    "tojson": tojson,
    "pprint": pprint_,
    "string": string,
    "list": list_,
    PLUGIN_FILTER: plugin_filter,
}


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """Check the time limit before a filter runs and the size of what it returns."""
    from llmflow.expressions.sandbox import tick

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        result = function(*args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_TEXT_LENGTH:
            raise ExpressionError(f"the filter produced {len(result)} characters (the limit is {MAX_TEXT_LENGTH})")
        if isinstance(result, (list, tuple, dict)) and len(result) > MAX_VALUE_ITEMS:
            raise ExpressionError(f"the filter produced {len(result)} items (the limit is {MAX_VALUE_ITEMS})")
        return result

    return guarded


def install(env: Environment) -> None:
    """Replace the amplifying filters of ``env`` and guard every filter."""
    filters = dict(env.filters)
    filters.update(_REPLACEMENTS)
    env.filters = {name: _guarded(function) for name, function in filters.items()}
