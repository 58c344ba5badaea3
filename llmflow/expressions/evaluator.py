"""The simpleeval evaluator behind conditions: read-only dot access, whitelisted calls, bounded results."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from simpleeval import EvalWithCompoundTypes

from llmflow.errors import ExpressionError
from llmflow.expressions.conditions import MAPPING_METHODS, SEQUENCE_METHODS, STRING_METHODS
from llmflow.expressions.extensions import call_plugin, lookup
from llmflow.expressions.values import (
    CONDITION_TIME_LIMIT,
    MAX_ALLOCATION,
    MAX_CONDITION_LENGTH,
    MAX_INT_BITS,
    MAX_INT_DIGITS,
    Deadline,
    a_type,
    bounded_str,
    check_int,
    check_length,
    check_power,
    check_product,
    describe_exception,
    logical_size,
    one_line,
    unset_secret,
)

#: Most loop iterations (over all comprehensions) in one evaluation.
MAX_ITERATIONS = 100_000
_SEQUENCES = (str, list, tuple)


def _text(node: ast.AST) -> str:
    """The source text of a sub-expression, for messages."""
    return one_line(ast.unparse(node), 80)


def _keys_hint(mapping: Mapping[Any, Any]) -> str:
    if not mapping:
        return " (it is empty)"
    keys = [one_line(str(key), 40) for key in list(mapping.keys())[:10]]
    more = ", ..." if len(mapping) > 10 else ""
    return f" (keys: {', '.join(keys)}{more})"


def _too_big_int() -> ExpressionError:
    return ExpressionError(f"the result would be an integer with more than {MAX_INT_DIGITS} digits")


class Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """Evaluates one parsed condition; ``run`` may be called again, but not re-entered."""

    def __init__(
        self,
        functions: Mapping[str, Callable[..., Any]],
        source: str,
        offset_of: Callable[[ast.AST], int | None],
    ) -> None:
        super().__init__(operators={}, functions={}, names={})
        self.context: Mapping[str, Any] = {}
        self.whitelist = functions
        self.expr = source
        self.offset_of = offset_of
        self.scopes: list[dict[str, Any]] = []
        self.allocated = 0
        self.iterations = 0
        self.deadline = Deadline(CONDITION_TIME_LIMIT, "the condition")
        self.operators = {
            ast.Add: self._add,
            ast.Sub: self._checked(operator.sub),
            ast.Mult: self._mult,
            ast.Div: operator.truediv,
            ast.FloorDiv: operator.floordiv,
            ast.Mod: self._mod,
            ast.Pow: self._pow,
            ast.LShift: self._lshift,
            ast.RShift: operator.rshift,
            ast.BitOr: self._checked(operator.or_),
            ast.BitXor: self._checked(operator.xor),
            ast.BitAnd: self._checked(operator.and_),
            ast.Not: operator.not_,
            ast.USub: operator.neg,
            ast.UAdd: operator.pos,
            ast.Invert: operator.invert,
            ast.Eq: operator.eq,
            ast.NotEq: operator.ne,
            ast.Lt: operator.lt,
            ast.LtE: operator.le,
            ast.Gt: operator.gt,
            ast.GtE: operator.ge,
            ast.Is: operator.is_,
            ast.IsNot: operator.is_not,
            ast.In: lambda left, right: left in right,
            ast.NotIn: lambda left, right: left not in right,
        }
        list_handler, tuple_handler = self.nodes[ast.List], self.nodes[ast.Tuple]
        set_handler, dict_handler = self.nodes[ast.Set], self.nodes[ast.Dict]
        self.nodes.update(
            {
                ast.Name: self._name,
                ast.Attribute: self._attribute,
                ast.Subscript: self._subscript,
                ast.Call: self._call,
                ast.List: lambda node: self._produced(list_handler(node)),
                ast.Tuple: lambda node: self._produced(tuple_handler(node)),
                ast.Set: lambda node: self._produced(set_handler(node)),
                ast.Dict: lambda node: self._produced(dict_handler(node)),
                ast.ListComp: self._comprehension,
                ast.SetComp: self._comprehension,
                ast.GeneratorExp: self._comprehension,
                ast.DictComp: self._comprehension,
                ast.JoinedStr: self._joined_str,
            }
        )

    def run(self, tree: ast.expr, context: Mapping[str, Any]) -> Any:
        """Evaluate the parsed condition against ``context``."""
        self.context = context
        self.scopes = []
        self.allocated = self.iterations = 0
        self.deadline = Deadline(CONDITION_TIME_LIMIT, "the condition")
        try:
            return self._eval(tree)
        finally:
            self.context = {}  # do not keep the run's data alive

    def _eval(self, node: ast.AST) -> Any:
        self.deadline.check()
        handler = self.nodes.get(type(node))
        if handler is None:
            raise ExpressionError(f"{type(node).__name__} is not supported", source=self.expr)
        try:
            return handler(node)
        except ExpressionError as exc:
            if not exc.source:
                exc.source = self.expr
            if exc.offset is None:
                exc.offset = self.offset_of(node)
            raise
        except Exception as exc:
            message = describe_exception(exc)
            raise ExpressionError(message, source=self.expr, offset=self.offset_of(node)) from None

    # --- bounds ------------------------------------------------------------------------------------

    def _charge(self, units: int) -> None:
        self.allocated += units
        if self.allocated > MAX_ALLOCATION:
            raise ExpressionError(f"the condition builds too much data (more than {MAX_ALLOCATION} items)")

    def _produced(self, value: Any) -> Any:
        """Check a value the condition built itself, and count it against the allocation budget."""
        check_int(value)
        if isinstance(value, complex):
            raise ExpressionError("the result is a complex number")
        check_length(value, MAX_CONDITION_LENGTH)
        if isinstance(value, (str, list, tuple, dict, set)):
            self._charge(logical_size(value, MAX_ALLOCATION - self.allocated + 1))
        return value

    def _checked(self, function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return lambda left, right: self._produced(function(left, right))

    def _add(self, left: Any, right: Any) -> Any:
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            size = len(left) + len(right)
            if size > MAX_CONDITION_LENGTH:
                unit = "characters" if isinstance(left, str) else "items"
                raise ExpressionError(f"the result would have {size} {unit} (the limit is {MAX_CONDITION_LENGTH})")
        return self._produced(left + right)

    def _mult(self, left: Any, right: Any) -> Any:
        if isinstance(right, _SEQUENCES) and isinstance(left, int):
            left, right = right, left
        if isinstance(left, _SEQUENCES) and isinstance(right, int):
            times = max(right, 0)
            if len(left) * times > MAX_CONDITION_LENGTH:
                unit = "characters" if isinstance(left, str) else "items"
                raise ExpressionError(
                    f"repeating would give {len(left) * times} {unit} (the limit is {MAX_CONDITION_LENGTH})"
                )
            if not isinstance(left, str) and times:
                remaining = MAX_ALLOCATION - self.allocated
                if (logical_size(left, remaining) - 1) * times > remaining:
                    raise ExpressionError(f"the condition builds too much data (more than {MAX_ALLOCATION} items)")
        check_product(left, right)
        return self._produced(left * right)

    def _pow(self, base: Any, exponent: Any) -> Any:
        check_power(base, exponent)
        return self._produced(base**exponent)

    def _lshift(self, value: Any, shift: Any) -> Any:
        if isinstance(value, int) and isinstance(shift, int) and value and shift > MAX_INT_BITS:
            raise _too_big_int()
        return self._produced(value << shift)

    def _mod(self, left: Any, right: Any) -> Any:
        if isinstance(left, str):
            raise ExpressionError("'%' formatting of strings is not supported (use an f-string)")
        return self._produced(left % right)

    # --- names, keys, methods and calls ------------------------------------------------------------

    def _name(self, node: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if node.id in scope:
                return scope[node.id]
        try:
            return self.context[node.id]
        except KeyError:
            pass
        if node.id in self.whitelist:
            return self.whitelist[node.id]
        raise ExpressionError(f"'{node.id}' is undefined")

    def _attribute(self, node: ast.Attribute) -> Any:
        base = self._eval(node.value)
        if isinstance(base, Mapping):
            try:
                return base[node.attr]
            except KeyError:
                if node.attr in MAPPING_METHODS:
                    return getattr(base, node.attr)
                unset = unset_secret(_text(node.value), node.attr)
                raise ExpressionError(
                    unset or f"{_text(node.value)} has no key '{node.attr}'{_keys_hint(base)}"
                ) from None
        return self._method(base, node.attr, node.value)

    def _method(self, base: Any, name: str, base_node: ast.AST) -> Any:
        """A whitelisted, read-only method of ``base``; mappings' keys are not consulted."""
        if isinstance(base, str):
            allowed = STRING_METHODS
        elif isinstance(base, Mapping):
            allowed = MAPPING_METHODS
        elif isinstance(base, (list, tuple)):
            allowed = SEQUENCE_METHODS
        else:
            allowed = frozenset()
        if name in allowed:
            return getattr(base, name)
        if hasattr(base, name) and not name.startswith("_"):
            raise ExpressionError(f"'.{name}' is not allowed on {a_type(base)} in a condition")
        raise ExpressionError(f"{_text(base_node)} is {a_type(base)}; it has no attribute '{name}'")

    def _subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        try:
            result = container[key]
        except KeyError:
            hint = _keys_hint(container) if isinstance(container, Mapping) else ""
            unset = unset_secret(_text(node.value), key)
            raise ExpressionError(unset or f"{_text(node.value)} has no key {key!r}{hint}") from None
        except IndexError:
            size = len(container) if hasattr(container, "__len__") else "?"
            raise ExpressionError(f"index {key!r} is out of range for {_text(node.value)} ({size} items)") from None
        except TypeError as exc:
            if container is None:
                raise ExpressionError(f"{_text(node.value)} is null; it cannot be indexed") from None
            raise ExpressionError(one_line(str(exc))) from None
        return self._produced(result) if isinstance(key, slice) else result

    def _call(self, node: ast.Call) -> Any:
        function: Callable[..., Any] | None
        if isinstance(node.func, ast.Name):
            function = self.whitelist.get(node.func.id) or self._plugin_function(node.func.id)
        elif isinstance(node.func, ast.Attribute):
            function = self._method(self._eval(node.func.value), node.func.attr, node.func.value)
        else:
            raise ExpressionError("only functions and allowed methods can be called")
        arguments = [self._eval(argument) for argument in node.args]
        keywords = {keyword.arg: self._eval(keyword.value) for keyword in node.keywords if keyword.arg}
        return self._produced(function(*arguments, **keywords))

    def _plugin_function(self, name: str) -> Callable[..., Any]:
        """The run's plugin function ``name``, called on plain copies, its result bounded (extensions.py)."""
        function = lookup("function", name)
        if function is None:
            raise ExpressionError(f"unknown function '{name}': no plugin of this run registers it")
        found = function

        def call(*args: Any, **kwargs: Any) -> Any:
            limit = MAX_CONDITION_LENGTH
            return call_plugin("function", name, found, args, kwargs, max_length=limit, max_items=limit)

        return call

    # --- comprehensions and f-strings ----------------------------------------------------------------

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> Any:
        result: Any = {} if isinstance(node, ast.DictComp) else set() if isinstance(node, ast.SetComp) else []
        scope: dict[str, Any] = {}
        self.scopes.append(scope)
        try:
            self._generate(node, 0, scope, result)
        finally:
            self.scopes.pop()
        return self._produced(result)

    def _generate(self, node: Any, index: int, scope: dict[str, Any], result: Any) -> None:
        generator: ast.comprehension = node.generators[index]
        for item in self._eval(generator.iter):
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise ExpressionError(f"the condition loops more than {MAX_ITERATIONS} times")
            self.deadline.check()
            self._bind(generator.target, item, scope)
            if not all(self._eval(test) for test in generator.ifs):
                continue
            if index + 1 < len(node.generators):
                self._generate(node, index + 1, scope, result)
            elif isinstance(result, dict):
                key, value = self._eval(node.key), self._eval(node.value)
                self._charge(logical_size(value, MAX_ALLOCATION - self.allocated) + 1)
                result[key] = value
            else:
                element = self._eval(node.elt)
                self._charge(logical_size(element, MAX_ALLOCATION - self.allocated))
                if isinstance(result, set):
                    result.add(element)
                else:
                    result.append(element)

    def _bind(self, target: ast.AST, value: Any, scope: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            scope[target.id] = value
            return
        assert isinstance(target, (ast.Tuple, ast.List))
        if hasattr(value, "__len__") and len(value) != len(target.elts):
            raise ExpressionError(f"cannot unpack {len(value)} values into {len(target.elts)} names")
        values = list(value)
        if len(values) != len(target.elts):
            raise ExpressionError(f"cannot unpack {len(values)} values into {len(target.elts)} names")
        for element, item in zip(target.elts, values, strict=True):
            self._bind(element, item, scope)

    def _joined_str(self, node: ast.JoinedStr) -> str:
        parts: list[str] = []
        length = 0
        for part in node.values:
            text = self._formatted(part) if isinstance(part, ast.FormattedValue) else str(self._eval(part))
            length += len(text)
            if length > MAX_CONDITION_LENGTH:
                raise ExpressionError(f"the f-string would be longer than {MAX_CONDITION_LENGTH} characters")
            parts.append(text)
        return str(self._produced("".join(parts)))

    def _formatted(self, node: ast.FormattedValue) -> str:
        value = self._eval(node.value)
        if node.conversion in (ord("r"), ord("a")):
            bounded_str(value, MAX_CONDITION_LENGTH)
            value = repr(value) if node.conversion == ord("r") else ascii(value)
        spec = ""
        if isinstance(node.format_spec, ast.JoinedStr) and node.format_spec.values:
            first = node.format_spec.values[0]
            spec = str(first.value) if isinstance(first, ast.Constant) else ""
        if spec:
            return format(value, spec)
        return bounded_str(value, MAX_CONDITION_LENGTH)
