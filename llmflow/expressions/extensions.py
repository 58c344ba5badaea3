"""Template filters and condition functions from plugins: the registries plugins fill, and the current run's set.

Compiling never imports plugins, so a workflow that names plugins may use filters and functions the compiler
does not know; they are recorded on the graph and checked when a run has loaded its plugins. Conditions and
templates are compiled once per process and shared by every run, so a run's plugin filters and functions are
not installed anywhere: the runtime sets them in a context variable for the run's task (the tasks it starts
inherit it), and the evaluator and the sandbox's plugin filter look them up there at each call. Two runs in
one process never see each other's.

A plugin's function receives plain copies of its arguments (never the run's own mappings and lists) and its
result is bounded and copied into plain data like every value an expression builds; whatever it raises
becomes an ``ExpressionError`` naming it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal

from llmflow.errors import ExpressionError, PluginError
from llmflow.expressions.references import valid_plugin_name
from llmflow.expressions.values import one_line, to_plain

Kind = Literal["filter", "function"]


class FunctionRegistry:
    """What ``register_filters`` (``kind`` filter) and ``register_functions`` (``kind`` function) receive.

    A name registered again replaces the earlier function (the plugin registered later wins); the built-in
    names cannot be replaced, because the built-ins carry the sandbox's bounds.
    """

    __slots__ = ("_functions", "kind")

    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind
        self._functions: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, function: Callable[..., Any]) -> None:
        """Make ``function`` available as the filter (or condition function) ``name``."""
        if not valid_plugin_name(name):
            raise PluginError(f"{name!r} cannot name a {self.kind}: use an identifier that does not start with '_'")
        if name in builtin_names(self.kind):
            raise PluginError(
                f"'{name}' is a built-in {self.kind} and cannot be replaced (the built-ins keep the sandbox's"
                " limits); register yours under a name of its own"
            )
        import inspect

        if not callable(function) or inspect.iscoroutinefunction(function):
            raise PluginError(f"the {self.kind} '{name}' must be a plain (not async) function")
        self._functions[name] = function

    def names(self) -> list[str]:
        """Every registered name."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def frozen(self) -> Mapping[str, Callable[..., Any]]:
        """The registered functions by name, as a read-only copy."""
        return MappingProxyType(dict(self._functions))


@functools.cache
def builtin_names(kind: Kind) -> frozenset[str]:
    """The built-in template filters or condition functions (looked up on first use: the sandbox is costly)."""
    if kind == "function":
        from llmflow.expressions.conditions import FUNCTIONS

        return frozenset(FUNCTIONS)
    from llmflow.expressions.filters import PLUGIN_FILTER
    from llmflow.expressions.sandbox import environment

    return frozenset(environment().filters) - {PLUGIN_FILTER}


class Extensions:
    """The plugin filters and condition functions of one run."""

    __slots__ = ("filters", "functions")

    def __init__(
        self,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.filters: Mapping[str, Callable[..., Any]] = filters or MappingProxyType({})
        self.functions: Mapping[str, Callable[..., Any]] = functions or MappingProxyType({})

    def registered(self, kind: Kind) -> Mapping[str, Callable[..., Any]]:
        """The filters or the functions."""
        return self.filters if kind == "filter" else self.functions


_CURRENT: ContextVar[Extensions | None] = ContextVar("llmflow_extensions", default=None)


@contextmanager
def extensions_of_run(extensions: Extensions) -> Iterator[None]:
    """Make ``extensions`` the filters and functions of what runs in this context (and the tasks it starts)."""
    token = _CURRENT.set(extensions)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def lookup(kind: Kind, name: str) -> Callable[..., Any] | None:
    """The current run's plugin filter or function ``name``; None outside a run or when no plugin has it."""
    extensions = _CURRENT.get()
    return None if extensions is None else extensions.registered(kind).get(name)


def call_plugin(
    kind: Kind,
    name: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    max_length: int,
    max_items: int,
    undefined: type | None = None,
) -> Any:
    """Call a plugin's filter or function on plain copies of the arguments; its result as plain data.

    A result longer than ``max_length`` characters or with more than ``max_items`` items is refused, as is
    one that is not data (an object, a function); whatever the function raises becomes an ExpressionError.
    """
    plain_args = [to_plain(value, undefined=undefined) for value in args]
    plain_kwargs = {key: to_plain(value, undefined=undefined) for key, value in kwargs.items()}
    what = f"plugin {kind} '{name}'"
    try:
        result = function(*plain_args, **plain_kwargs)
    except ExpressionError as error:
        raise ExpressionError(f"{what}: {error.message}") from None
    except (Exception, SystemExit) as error:  # sys.exit() in a plugin's function fails the field, not the run
        text = one_line(str(error))
        raise ExpressionError(f"{what} failed: {type(error).__name__}" + (f": {text}" if text else "")) from None
    if type(result).__name__ == "coroutine" and hasattr(result, "close"):  # (without importing inspect)
        result.close()
        raise ExpressionError(f"{what} returned a coroutine: plugin {kind}s must be plain functions")
    if isinstance(result, str) and len(result) > max_length:
        raise ExpressionError(f"{what} returned {len(result)} characters (the limit is {max_length})")
    if isinstance(result, (list, tuple, dict)) and len(result) > max_items:
        raise ExpressionError(f"{what} returned {len(result)} items (the limit is {max_items})")
    try:
        return to_plain(result, undefined=undefined)
    except ExpressionError as error:
        raise ExpressionError(f"{what}: {error.message}") from None
