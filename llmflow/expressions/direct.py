"""Rendering templates made only of text and plain ``{{ path }}`` outputs without Jinja.

Importing Jinja and building the sandbox costs ~50 ms, more than the rest of a small run. Most templates
only read a value (``{{ inputs.topic }}``, ``{{ steps.fetch.output }}``), so those are rendered here, as
the sandbox would render them: ``.name`` and ``['name']`` read a mapping's key, ``[0]`` a list's item, and
the value becomes text as the sandbox's ``finalize`` makes it. Whenever the answer could differ in any way
(a filter, whitespace control, a missing key, a value of another type, anything too large) ``render``
returns ``JINJA`` and the caller renders with Jinja as before, which also produces every error message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from llmflow.errors import ExpressionError
from llmflow.expressions.templates import _KEYWORDS, _NAME, _OUTPUT, _patterns
from llmflow.expressions.values import MAX_TEXT_LENGTH, stringify, to_json, to_plain

#: Returned when Jinja must render the template.
JINJA: Any = object()
#: Names Jinja gives a meaning of its own in some places: left to Jinja.
_SPECIAL = frozenset(["self", "loop", "caller", "varargs", "kwargs", "super"])

#: A path to read: the root name and the keys after it.
Path = tuple[str, tuple[str | int, ...]]
#: A plan: literal text and paths to read, in order.
Plan = tuple[str | Path, ...]


@functools.lru_cache(maxsize=4096)
def plan(source: str) -> Plan | None:
    """The text and paths of ``source``, or None when it is more than text and plain ``{{ path }}``."""
    if "{%" in source or "{#" in source or "\r" in source:  # Jinja turns \r\n and \r into \n in text
        return None
    simple_pattern, segment_pattern, _ = _patterns()
    parts: list[str | Path] = []
    position = 0
    for match in _OUTPUT.finditer(source):
        inner = match.group(1)
        simple = simple_pattern.fullmatch(inner) if len(inner) <= 500 else None
        if simple is None or simple.group(2) or inner.startswith("-") or inner.endswith("-"):
            return None  # a filter, whitespace control, or more than a path
        path = simple.group(1)
        root = re.match(_NAME, path)
        assert root is not None
        if root.group(0) in _KEYWORDS or root.group(0) in _SPECIAL:
            return None
        keys: list[str | int] = []
        for segment in segment_pattern.finditer(path, root.end()):
            name, key = segment.groups()
            if name is not None:
                keys.append(name)
            elif key.isdigit():
                if len(key) > 1 and key.startswith("0"):
                    return None
                keys.append(int(key))
            else:
                keys.append(key[1:-1])
        if match.start() > position:
            parts.append(source[position : match.start()])
        parts.append((root.group(0), tuple(keys)))
        position = match.end()
    rest = source[position:]
    if "{{" in rest:
        return None
    if rest:
        parts.append(rest)
    return tuple(parts)


def render(source: str, context: Mapping[str, Any], *, native: bool, record: Callable[[str], str] | None = None) -> Any:
    """``source`` rendered against ``context`` (its value when ``native``; for a shell template, each
    output's text passed through ``record``), or ``JINJA``."""
    steps = plan(source)
    if steps is None:
        return JINJA
    if native:
        (path,) = [step for step in steps if not isinstance(step, str)]
        value = _read(context, path)
        if value is JINJA:
            return JINJA
        try:
            return to_plain(value)
        except ExpressionError:
            return JINJA  # Jinja words the error (with where it happened)
    chunks: list[str] = []
    size = 0
    for step in steps:
        if isinstance(step, str):
            text = step
        else:
            text = _text(_read(context, step))
            if text is JINJA:
                return JINJA
            if record is not None:
                text = record(text)
        size += len(text)
        if size > MAX_TEXT_LENGTH:
            return JINJA
        chunks.append(text)
    return "".join(chunks)


def _read(context: Mapping[str, Any], path: Path) -> Any:
    """The value at ``path`` as the sandbox reads it, or ``JINJA`` when only Jinja can say what happens."""
    root, keys = path
    try:
        if root not in context:
            return JINJA  # a global (range …), or undefined
        value = context[root]
        for key in keys:
            # ``.name`` and ``['name']`` read a mapping's key, ``[0]`` also a list's item; anything else
            # (a string's attribute or character …) is the sandbox's to allow or refuse.
            if isinstance(value, Mapping) or (isinstance(value, (list, tuple)) and isinstance(key, int)):
                value = value[key]  # type: ignore[index]  # (a str key only reaches a mapping)
            else:
                return JINJA
    except Exception:  # a missing key or item: Jinja's message names it
        return JINJA
    return value


def _text(value: Any) -> Any:
    """A value as the sandbox's ``finalize`` writes it into text, or ``JINJA``."""
    if value is JINJA:
        return JINJA
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return stringify(value)
    if isinstance(value, (Mapping, list, tuple)):
        try:
            return to_json(value)
        except ExpressionError:
            return JINJA
    return JINJA
