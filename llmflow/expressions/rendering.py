"""Parsing, static checks, lazy compilation and rendering of Jinja templates in the sandbox."""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import Template as JinjaTemplate
from jinja2 import TemplateError, TemplateSyntaxError, nodes
from jinja2.runtime import Undefined

from llmflow.errors import ExpressionError
from llmflow.expressions.filters import PLUGIN_FILTER
from llmflow.expressions.references import (
    TEMPLATE_GLOBALS,
    PluginNames,
    Reference,
    template_references,
    valid_plugin_name,
)
from llmflow.expressions.sandbox import CURRENT, RenderState, Sandbox, environment
from llmflow.expressions.values import MAX_TEXT_LENGTH, describe_exception, one_line, to_plain

#: Most compiled templates kept per process; the cache is emptied when it is full.
CACHE_SIZE = 4096
_UNSUPPORTED = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}
_CACHE: dict[tuple[str, bool, str], JinjaTemplate] = {}
_CHECKED = (nodes.Getattr, nodes.Filter, nodes.Test, nodes.FilterBlock, nodes.Const, *_UNSUPPORTED)


def line_offset(source: str, lineno: int | None) -> int | None:
    """The character offset where line ``lineno`` (1-based) starts."""
    if not lineno or lineno <= 1:
        return 0 if lineno else None
    offset = -1
    for _ in range(lineno - 1):
        offset = source.find("\n", offset + 1)
        if offset < 0:
            return None
    return offset + 1


def located(message: str, source: str, lineno: int | None) -> ExpressionError:
    """An ExpressionError that names the template line when the template has several."""
    if lineno and "\n" in source.strip():
        message = f"line {lineno}: {message}"
    return ExpressionError(message, source=source, offset=line_offset(source, lineno))


def parse(source: str, kind: str = "text", *, plugins: bool = False) -> nodes.Template:
    """Parse ``source`` and run the static checks; raises ExpressionError.

    ``plugins``: the workflow names plugins, so a filter the sandbox does not know may be a plugin's (see
    ``plugin_filters``) rather than an error.
    """
    env = environment(kind)
    try:
        tree = env.parse(source)
        check(tree, env, source, shell=kind == "shell", plugins=plugins)
    except TemplateSyntaxError as exc:
        raise located(one_line(exc.message or "invalid template"), source, exc.lineno) from None
    except RecursionError:
        raise ExpressionError("the template is nested too deeply", source=source) from None
    return tree


def check(tree: nodes.Template, env: Sandbox, source: str, *, shell: bool = False, plugins: bool = False) -> None:
    """Refuse private attributes, unknown filters and tests, and tags that load other templates.

    With ``plugins`` a filter the sandbox does not know is left for a plugin to register.
    """
    for node in tree.find_all(_CHECKED):
        if isinstance(node, nodes.Const):
            if type(node.value) is float and not math.isfinite(node.value):
                # Jinja would compile it to the name ``inf``, which then fails as an undefined name.
                raise located("a number too large for a template (it is infinite as a float)", source, node.lineno)
            continue
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            private = node
            inner: Any = node.node  # report the first private name in a chain: ''.__class__.__mro__
            while isinstance(inner, (nodes.Getattr, nodes.Getitem, nodes.Call, nodes.Filter)):
                if isinstance(inner, nodes.Getattr) and inner.attr.startswith("_"):
                    private = inner
                inner = inner.node
            message = f"'.{private.attr}' is not allowed: names starting with '_' are private"
            raise located(message, source, private.lineno)
        if isinstance(node, (nodes.Filter, nodes.Test)):
            is_filter = isinstance(node, nodes.Filter)
            known = env.filters if is_filter else env.tests
            if node.name not in known:
                pluggable = is_filter and valid_plugin_name(node.name)
                if plugins and pluggable:
                    continue
                kind = "filter" if is_filter else "test"
                names = [name for name in known if name != PLUGIN_FILTER]
                close = difflib.get_close_matches(node.name, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                if pluggable:
                    hint += " (a plugin's filter? name the plugin in plugins:)"
                error = located(f"unknown {kind} '{node.name}'{hint}", source, node.lineno)
                if is_filter:  # point at the name, not at the start of its line
                    error.offset = _filter_offset(source, node.name, error.offset)
                raise error
        for node_type, tag in _UNSUPPORTED.items():
            if isinstance(node, node_type):
                raise located(f"{tag} is not supported in workflow templates", source, node.lineno)
        if shell and isinstance(node, nodes.FilterBlock):
            arguments = [*node.filter.args, *(pair.value for pair in node.filter.kwargs)]
            if (
                node.filter.dyn_args
                or node.filter.dyn_kwargs
                or not all(isinstance(argument, nodes.Const) for argument in arguments)
            ):
                message = "the arguments of a {% filter %} block in a run command must be constants"
                raise located(message, source, node.lineno)


def plugin_filters(tree: nodes.Template, source: str, kind: str = "text") -> PluginNames:
    """The filters of a parsed template that the sandbox does not know (a plugin must register them), each
    with the offset of its first use."""
    known = environment(kind).filters
    found: dict[str, int | None] = {}
    for node in tree.find_all(nodes.Filter):
        if node.name not in known and node.name not in found:
            found[node.name] = _filter_offset(source, node.name, line_offset(source, node.lineno))
    return tuple(found.items())


def _filter_offset(source: str, name: str, start: int | None) -> int | None:
    """Where the filter ``name`` is written (after ``|`` or ``{% filter``) from ``start``, else ``start``."""
    pattern = re.compile(r"(?:\||\bfilter\s)\s*(" + re.escape(name) + r")(?![\w.])")
    match = pattern.search(source, start or 0)
    return match.start(1) if match else start


def _plugin_dispatch(tree: nodes.Template, env: Sandbox) -> nodes.Template:
    """``tree`` with every filter the sandbox does not know turned into a call of the plugin filter (which
    finds the run's filter of that name when it runs), so the compiled template is the same for every run."""
    if all(node.name in env.filters for node in tree.find_all(nodes.Filter)):
        return tree
    tree = copy.deepcopy(tree)  # the parsed tree stays as written: it may be kept and compiled again
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            node.args = [nodes.Const(node.name, lineno=node.lineno), *node.args]
            node.name = PLUGIN_FILTER
    return tree


def native_expression(tree: nodes.Template, source: str) -> nodes.Expr | None:
    """The expression of a source that is exactly one ``{{ ... }}``, else None."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or len(tree.body) != 1:
        return None
    output = tree.body[0]
    if not isinstance(output, nodes.Output):
        return None
    children = [
        child for child in output.nodes if not (isinstance(child, nodes.TemplateData) and not child.data.strip())
    ]
    if len(children) == 1 and not isinstance(children[0], nodes.TemplateData):
        return children[0]
    return None


def references(tree: nodes.Template) -> frozenset[Reference]:
    """The free names of a parsed template."""
    return template_references(tree, TEMPLATE_GLOBALS)


def load(source: str, native: bool, kind: str, tree: nodes.Template | None) -> JinjaTemplate:
    """The compiled template for ``source``, generated on first use (or read from the code cache, which keeps
    it across runs) and cached by source."""
    key = (kind, native, source)
    template = _CACHE.get(key)
    if template is not None:
        return template
    env = environment(kind)
    from llmflow.expressions import codecache

    remembered = codecache.entry(kind, native, source)
    code = codecache.recall(remembered) if remembered is not None else None
    if code is None:
        if tree is None:
            tree = parse(source, kind, plugins=True)  # checked when compiled: an unknown filter is a plugin's
        if native:
            expression = native_expression(tree, source)
            assert expression is not None
            tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
        try:
            code = env.compile(_plugin_dispatch(tree, env))
        except Exception as exc:  # the static checks should have caught it; report it the same way
            raise ExpressionError(describe_exception(exc), source=source) from None
        if remembered is not None:
            codecache.remember(remembered, code)
    template = env.template_class.from_code(env, code, env.make_globals(None))
    if len(_CACHE) >= CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = template
    return template


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised from (Jinja rewrites tracebacks to point there)."""
    lineno = None
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    return lineno


def translate(exc: Exception, source: str) -> ExpressionError:
    """Turn anything raised while rendering into an ExpressionError with a one-line message."""
    lineno = _template_line(exc)
    if isinstance(exc, ExpressionError):
        return located(exc.message, source, lineno)
    if isinstance(exc, TemplateError):
        return located(one_line(str(exc)) or type(exc).__name__, source, lineno)
    return located(describe_exception(exc), source, lineno)


def render_text(template: JinjaTemplate, context: Mapping[str, Any], source: str, state: RenderState) -> str:
    """Render to text, stopping as soon as the output passes MAX_TEXT_LENGTH."""
    token = CURRENT.set(state)
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_TEXT_LENGTH:
                raise ExpressionError(f"the rendered text is longer than {MAX_TEXT_LENGTH} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except Exception as exc:
        raise translate(exc, source) from None
    finally:
        CURRENT.reset(token)


def render_native(template: JinjaTemplate, context: Mapping[str, Any], source: str) -> Any:
    """Evaluate a one-expression template to its value, converted to plain data."""
    token = CURRENT.set(RenderState(context))
    try:
        jinja_context = template.new_context(dict(context))
        for _ in template.root_render_func(jinja_context):
            pass
        return to_plain(jinja_context.vars["result"], undefined=Undefined)
    except Exception as exc:
        raise translate(exc, source) from None
    finally:
        CURRENT.reset(token)
