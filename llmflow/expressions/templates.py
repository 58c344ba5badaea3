"""Templates in workflow strings: compile once (cheaply), render in the Jinja sandbox, keep native values."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmflow.errors import ExpressionError
from llmflow.expressions.references import TEMPLATE_GLOBALS, PluginNames, Reference, simple_reference
from llmflow.expressions.values import stringify, to_plain
from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from jinja2 import nodes

__all__ = ["Template", "ValueTemplate", "compile_template", "compile_value", "is_template", "stringify"]

#: Filters the fast path accepts without a full parse (all exist in the sandbox; a test checks it).
FAST_FILTERS = frozenset(
    [
        "upper",
        "lower",
        "trim",
        "title",
        "capitalize",
        "length",
        "count",
        "tojson",
        "string",
        "int",
        "float",
        "abs",
        "first",
        "last",
        "default",
        "d",
        "join",
        "list",
        "sort",
        "unique",
        "reverse",
        "e",
        "escape",
        "striptags",
        "urlencode",
        "wordcount",
        "round",
        "indent",
        "truncate",
        "replace",
        "dictsort",
        "items",
        "min",
        "max",
        "sum",
        "filesizeformat",
        "center",
        "wordwrap",
        "pprint",
        "batch",
        "slice",
        "format",
    ]
)
_KEYWORDS = frozenset(["and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"])
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r"'[^'\\\n{}]*'|\"[^\"\\\n{}]*\""
_ARGUMENT = rf"(?:-?\d+(?:\.\d+)?|{_STRING}|true|false|none|True|False|None)"
_FILTER = rf"\|\s*({_NAME})\s*(?:\(\s*(?:{_ARGUMENT}(?:\s*,\s*{_ARGUMENT})*)?\s*\))?\s*"
_OUTPUT = re.compile(r"\{\{(.*?)\}\}", re.S)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The fast path's expressions, compiled on first use (compiling them costs milliseconds)."""
    simple = rf"\s*({_NAME}(?:\.[A-Za-z][A-Za-z0-9_]*|\[\s*(?:\d+|{_STRING})\s*\])*)\s*((?:{_FILTER})*)"
    segment = rf"\.({_NAME})|\[\s*(\d+|{_STRING})\s*\]"
    return re.compile(simple), re.compile(segment), re.compile(_FILTER)


def is_template(text: str) -> bool:
    """Whether ``text`` contains template syntax (``{{``, ``{%`` or ``{#``)."""
    return "{{" in text or "{%" in text or "{#" in text


class Template(FrozenRecord):
    """A compiled template string. ``native`` templates (exactly one ``{{ expr }}``) render to the
    expression's value; all others render to text. ``plugin_filters``: the filters it uses that a plugin
    must register (only templates of a workflow that names plugins have them). ``_tree`` (the parsed
    Jinja tree, when there is one) is left out of ``==`` and ``repr``."""

    __slots__ = ("_tree", "native", "plugin_filters", "references", "source")
    source: str
    native: bool
    references: frozenset[Reference]
    _tree: nodes.Template | None
    plugin_filters: PluginNames

    def __init__(
        self,
        source: str,
        native: bool,
        references: frozenset[Reference],
        _tree: nodes.Template | None = None,
        plugin_filters: PluginNames = (),
    ) -> None:
        self._set(source=source, native=native, references=references, _tree=_tree, plugin_filters=plugin_filters)

    def _field_names(self) -> tuple[str, ...]:
        return ("source", "native", "references", "plugin_filters")

    def render(self, context: Mapping[str, Any]) -> Any:
        """Render against ``context``; raises ExpressionError."""
        if not is_template(self.source):
            return self.source
        from llmflow.expressions import direct

        done = direct.render(self.source, context, native=self.native)
        if done is not direct.JINJA:
            return done
        from llmflow.expressions.rendering import load, render_native, render_text
        from llmflow.expressions.sandbox import RenderState

        template = load(self.source, self.native, "text", self._tree)
        if self.native:
            return render_native(template, context, self.source)
        return render_text(template, context, self.source, RenderState(context))


def fast_path(source: str) -> tuple[frozenset[Reference], bool] | None:
    """References and nativeness of a template made only of simple ``{{ path|filters }}``, else None."""
    if "{%" in source or "{#" in source:
        return None
    found: set[Reference] = set()
    simple_pattern, segment_pattern, filter_pattern = _patterns()
    matches = list(_OUTPUT.finditer(source))
    for match in matches:
        inner = match.group(1)
        if inner.startswith("-"):
            inner = inner[1:]
        if inner.endswith("-"):
            inner = inner[:-1]
        simple = simple_pattern.fullmatch(inner) if len(inner) <= 500 else None
        if simple is None:
            return None
        path, filters = simple.group(1), simple.group(2)
        if any(name.group(1) not in FAST_FILTERS for name in filter_pattern.finditer(filters)):
            return None
        root = re.match(_NAME, path)
        assert root is not None
        if root.group(0) in _KEYWORDS:
            return None
        keys: list[object] = []
        for segment in segment_pattern.finditer(path, root.end()):
            name, key = segment.groups()
            keys.append(name if name is not None else int(key) if key.isdigit() else key[1:-1])
        if root.group(0) not in TEMPLATE_GLOBALS:
            found.add(simple_reference(root.group(0), keys))
    rest = _OUTPUT.sub("", source)
    if "{{" in rest:
        return None
    native = len(matches) == 1 and not source[: matches[0].start()].strip() and not source[matches[0].end() :].strip()
    return frozenset(found), native


@functools.lru_cache(maxsize=4096)
def compile_template(source: str, plugins: bool = False) -> Template:
    """Check a template string (syntax, references, sandbox rules) without generating code yet.

    ``plugins``: the workflow names plugins, so a filter the sandbox does not know is left for a plugin to
    register (listed in ``plugin_filters``) instead of being an error.
    """
    if not is_template(source):
        return Template(source, False, frozenset())
    fast = fast_path(source)
    if fast is not None:
        return Template(source, fast[1], fast[0])
    from llmflow.expressions.rendering import native_expression, parse, plugin_filters, references

    tree = parse(source, plugins=plugins)
    try:
        native = native_expression(tree, source) is not None
        unknown = plugin_filters(tree, source) if plugins else ()
        return Template(source, native, references(tree), tree, unknown)
    except RecursionError:
        raise ExpressionError("the template is nested too deeply", source=source) from None


class ValueTemplate:
    """A nested value (mappings, lists, scalars) whose strings may be templates."""

    __slots__ = ("_value", "is_static", "references")

    def __init__(self, value: Any, references: frozenset[Reference], is_static: bool) -> None:
        self._value = value
        self.references = references
        self.is_static = is_static

    def __repr__(self) -> str:
        return f"ValueTemplate({self._value!r})"

    def render(self, context: Mapping[str, Any]) -> Any:
        """The value with every template rendered, as fresh plain data."""
        return _render(self._value, context, "")


def _at(path: str, error: ExpressionError) -> ExpressionError:
    """The error, its message prefixed with where it happened inside a nested value."""
    if not path:
        return error
    return ExpressionError(f"{path}: {error.message}", source=error.source, offset=error.offset)


def _render(value: Any, context: Mapping[str, Any], path: str) -> Any:
    if isinstance(value, Template):
        try:
            return value.render(context)
        except ExpressionError as exc:
            raise _at(path, exc) from None
    if isinstance(value, dict):
        return {key: _render(item, context, _join(path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def compile_value(value: Any, *, plugins: bool = False) -> ValueTemplate:
    """Compile every template string inside ``value`` (YAML types are turned into plain ones); ``plugins``
    as for ``compile_template``."""
    found: set[Reference] = set()
    compiled = _compile(value, found, "", plugins)
    return ValueTemplate(compiled, frozenset(found) if found else _NO_REFERENCES, not _has_template(compiled))


#: The references of every value without a template (one object, however many steps a graph has).
_NO_REFERENCES: frozenset[Reference] = frozenset()


def _compile(value: Any, found: set[Reference], path: str, plugins: bool) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return str(value)
        try:
            template = compile_template(str(value), plugins)
        except ExpressionError as exc:
            raise _at(path, exc) from None
        found.update(template.references)
        return template
    if isinstance(value, Mapping):
        return {_key(key): _compile(item, found, _join(path, key), plugins) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compile(item, found, f"{path}[{index}]", plugins) for index, item in enumerate(value)]
    try:
        return to_plain(value)
    except ExpressionError as exc:
        raise _at(path, exc) from None


def _key(key: Any) -> Any:
    return str(key) if isinstance(key, str) else key


def _has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return True
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return False
