"""Conditions (``if``, ``when``, ``while``, ``until``): safe Python expressions, checked when compiled."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from llmflow.errors import ExpressionError
from llmflow.expressions.references import PluginNames, Reference, condition_references, valid_plugin_name
from llmflow.expressions.values import (
    MAX_CONDITION_LENGTH,
    MAX_INT_BITS,
    MAX_INT_DIGITS,
    bounded_str,
    check_int,
    to_plain,
)
from llmflow.records import FrozenRecord

#: Longest condition source accepted.
MAX_SOURCE_LENGTH = 10_000

#: Methods a condition may call, by the kind of value they are called on. All of them are read-only
#: and produce results no larger than their input.
STRING_METHODS = frozenset(
    [
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "splitlines",
        "count",
        "find",
        "rfind",
        "isdigit",
        "isalpha",
        "isalnum",
        "isspace",
        "title",
        "capitalize",
        "casefold",
    ]
)
MAPPING_METHODS = frozenset({"keys", "values", "items", "get"})
SEQUENCE_METHODS = frozenset({"count", "index"})
ALLOWED_METHODS = STRING_METHODS | MAPPING_METHODS | SEQUENCE_METHODS


def _sum(values: Any, start: Any = 0) -> Any:
    """sum() restricted to numbers: adding strings or lists repeatedly could build huge values."""
    items = list(values)
    for value in [start, *items]:
        if not isinstance(value, (int, float)):
            raise ExpressionError(f"sum() adds numbers only, not {type(value).__name__} values")
    total = sum(items, start)
    check_int(total)
    return total


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int) or abs(ndigits) > 100:
        raise ExpressionError("round() takes a number of digits between -100 and 100")
    return round(number, ndigits)


def _int(value: Any = 0, *base: Any) -> int:
    if isinstance(value, str) and len(value.strip()) > MAX_INT_DIGITS:
        raise ExpressionError(f"int() refuses text longer than {MAX_INT_DIGITS} digits")
    result = int(value, *base)
    check_int(result)
    return result


def _str(value: Any = "") -> str:
    return bounded_str(value, MAX_CONDITION_LENGTH)


#: The functions every condition may call.
FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "len": len,
        "min": min,
        "max": max,
        "sum": _sum,
        "any": any,
        "all": all,
        "abs": abs,
        "round": _round,
        "int": _int,
        "float": float,
        "str": _str,
        "bool": bool,
        "sorted": sorted,
    }
)

# The node types a condition may contain (expressions only: no lambda, no walrus, no statements).
_NODE_NAMES = (
    "Expression BoolOp BinOp UnaryOp Compare IfExp Call keyword Attribute Subscript Slice Name Load Store"
    " Constant List Tuple Set Dict ListComp SetComp DictComp GeneratorExp comprehension Starred JoinedStr"
    " FormattedValue Add Sub Mult Div FloorDiv Mod Pow LShift RShift BitOr BitXor BitAnd Not USub UAdd"
    " Invert And Or Eq NotEq Lt LtE Gt GtE Is IsNot In NotIn"
)
_ALLOWED_NODES: frozenset[type[ast.AST]] = frozenset(getattr(ast, name) for name in _NODE_NAMES.split())
_FORBIDDEN = {
    ast.Lambda: "lambda is not allowed in a condition",
    ast.NamedExpr: "assignment (:=) is not allowed in a condition",
    ast.MatMult: "the @ operator is not supported",
    ast.Await: "await is not allowed in a condition",
    ast.Yield: "yield is not allowed in a condition",
    ast.YieldFrom: "yield is not allowed in a condition",
}
# An f-string format spec: fill/align, sign, width and precision of at most three digits, a type.
_FORMAT_SPEC = re.compile(r"(?:[^{}]?[<>=^])?[-+ ]?z?#?0?\d{0,3}[,_]?(?:\.\d{1,3})?[bcdeEfFgGnosxX%]?")


class _Positions:
    """Maps AST positions (line, UTF-8 byte column) back to character offsets in the source."""

    def __init__(self, text: str, base: int, line_shift: int) -> None:
        self.lines = text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.base = base
        self.line_shift = line_shift

    def char_offset(self, lineno: int, column: int, *, in_bytes: bool) -> int:
        index = min(max(lineno - 1 - self.line_shift, 0), len(self.lines) - 1)
        line = self.lines[index]
        if in_bytes:
            column = len(line.encode()[:column].decode(errors="ignore"))
        return self.base + self.starts[index] + min(max(column, 0), len(line))

    def of(self, node: ast.AST) -> int | None:
        lineno = getattr(node, "lineno", None)
        if lineno is None:
            return None
        return self.char_offset(lineno, getattr(node, "col_offset", 0), in_bytes=True)


class Condition(FrozenRecord):
    """A compiled condition: evaluate it against a context of plain data.

    ``plugin_functions`` lists the functions it calls that are not built in, with their offsets: only a
    condition of a workflow that names plugins may have them, and the run's plugins must register them.
    The parsed tree, the functions, the positions and the idle evaluators are left out of ``==`` and ``repr``.
    """

    __slots__ = ("_functions", "_idle", "_positions", "_tree", "plugin_functions", "references", "source")
    source: str
    references: frozenset[Reference]
    _tree: ast.expr
    _functions: Mapping[str, Callable[..., Any]]
    _positions: _Positions
    plugin_functions: PluginNames
    _idle: list[Any]

    def __init__(
        self,
        source: str,
        references: frozenset[Reference],
        _tree: ast.expr,
        _functions: Mapping[str, Callable[..., Any]],
        _positions: _Positions,
        plugin_functions: PluginNames = (),
    ) -> None:
        self._set(
            source=source,
            references=references,
            _tree=_tree,
            _functions=_functions,
            _positions=_positions,
            plugin_functions=plugin_functions,
            _idle=[],
        )

    def _field_names(self) -> tuple[str, ...]:
        return ("source", "references", "plugin_functions")

    def _run(self, context: Mapping[str, Any]) -> Any:
        # Building an evaluator costs more than most evaluations: keep a few idle ones. Popping one
        # gives this call sole use of it (list.pop is atomic), so threads and re-entry are safe.
        try:
            evaluator = self._idle.pop()
        except IndexError:
            from llmflow.expressions.evaluator import Evaluator

            evaluator = Evaluator(self._functions, self.source, self._positions.of)
        try:
            return evaluator.run(self._tree, context)
        finally:
            if len(self._idle) < 4:
                self._idle.append(evaluator)

    def value(self, context: Mapping[str, Any]) -> Any:
        """The condition's value as plain data (a copy: changing it never changes the context)."""
        result = self._run(context)
        try:
            return to_plain(result)
        except ExpressionError as exc:
            raise ExpressionError(exc.message, source=self.source) from None

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """Whether the condition holds."""
        result = self._run(context)
        if callable(result):
            raise ExpressionError(
                "the condition is a function, not a value (are the parentheses of a call missing?)",
                source=self.source,
            )
        return bool(result)


def compile_condition(
    source: str, *, functions: Mapping[str, Callable[..., Any]] | None = None, plugins: bool = False
) -> Condition:
    """Parse and check a condition once; raises ExpressionError (with ``offset``) when it is not allowed.

    ``functions`` adds functions to the whitelist (FUNCTIONS). ``plugins``: the workflow names plugins, so
    a call of a function nobody knows yet is no error but a name a plugin must register, kept in
    ``plugin_functions`` (at run time it is looked up among the run's plugin functions).
    """
    if not functions:
        return _compile_cached(source, plugins)
    for name in functions:
        if not name.isidentifier():
            raise ExpressionError(f"function name {name!r} is not a valid identifier", source=source)
    return _compile(source, MappingProxyType({**FUNCTIONS, **functions}), plugins)


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str, plugins: bool) -> Condition:
    """compile_condition with the built-in functions; conditions are immutable, so they are shared."""
    return _compile(source, FUNCTIONS, plugins)


def _compile(source: str, functions: Mapping[str, Callable[..., Any]], plugins: bool) -> Condition:
    tree, positions = _parse(source)
    checker = _Checker(source, functions, positions, plugins)
    try:
        checker.visit(tree, None)
        references = condition_references(tree, functions, positions.of)
    except RecursionError:
        raise ExpressionError("the condition is nested too deeply", source=source) from None
    return Condition(source, references, tree, functions, positions, tuple(checker.plugin_functions.items()))


def _parse(source: str) -> tuple[ast.expr, _Positions]:
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"a condition may not be longer than {MAX_SOURCE_LENGTH} characters", source=source)
    stripped = source.strip()
    base = len(source) - len(source.lstrip())
    if not stripped:
        raise ExpressionError("the condition is empty", source=source, offset=0)
    if "\x00" in stripped:
        raise ExpressionError("the condition contains a NUL character", source=source, offset=source.index("\x00"))
    attempts = [(stripped, 0)]
    if "\n" in stripped:  # a multi-line condition (a YAML block scalar) is read as if in parentheses
        attempts.append(("(\n" + stripped + "\n)", 1))
    error: SyntaxError | None = None
    for text, line_shift in attempts:  # the last attempt's error is reported
        positions = _Positions(stripped, base, line_shift)
        try:
            return ast.parse(text, mode="eval").body, positions
        except SyntaxError as exc:
            error = exc
        except (RecursionError, MemoryError):
            raise ExpressionError("the condition is nested too deeply", source=source) from None
    assert error is not None
    lines = stripped.split("\n")
    index = min(max((error.lineno or 1) - 1 - positions.line_shift, 0), len(lines) - 1)
    # Python gives no column (0) for errors at the end of the input: point there.
    column = error.offset - 1 if error.offset and error.offset <= len(lines[index]) else len(lines[index])
    offset = positions.char_offset(index + 1 + positions.line_shift, column, in_bytes=False)
    message = error.msg
    if "Exceeds the limit" in message:
        message = f"an integer literal has more than {MAX_INT_DIGITS} digits"
    elif message != "invalid syntax":
        message = f"invalid syntax: {message}"
    elif _lone_equals(lines[index], column):
        message = "invalid syntax: '=' assigns; compare with '=='"
    raise ExpressionError(message, source=source, offset=offset)


def _lone_equals(line: str, column: int) -> bool:
    """Whether ``line`` has a single ``=`` at ``column`` (the usual slip for ``==``)."""
    return (
        line[column : column + 1] == "="
        and line[column + 1 : column + 2] != "="
        and (column == 0 or line[column - 1] not in "=<>!")
    )


class _Checker:
    """Walks a parsed condition and refuses everything outside the safe subset, with its offset."""

    def __init__(self, source: str, functions: Mapping[str, Any], positions: _Positions, plugins: bool) -> None:
        self.source = source
        self.functions = functions
        self.positions = positions
        self.plugins = plugins  # unknown functions may be plugins' (they are collected, not refused)
        self.plugin_functions: dict[str, int | None] = {}  # name -> offset of its first call

    def fail(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, source=self.source, offset=self.positions.of(node))

    def visit(self, node: ast.AST, parent: ast.AST | None) -> None:
        """Check children before their parent, so the innermost problem is the one reported."""
        if type(node) not in _ALLOWED_NODES:
            message = _FORBIDDEN.get(type(node))
            where = node if hasattr(node, "lineno") else parent
            raise self.fail(message or f"{type(node).__name__} is not allowed in a condition", where or node)
        for child in ast.iter_child_nodes(node):
            self.visit(child, node)
        check = _CHECKS.get(type(node))
        if check is not None:
            check(self, node, parent)

    def check_Attribute(self, node: ast.Attribute, parent: ast.AST | None) -> None:
        if node.attr.startswith("_"):
            raise self.fail(
                f"'.{node.attr}' is not allowed: names starting with '_' are private"
                " (read such a mapping key with ['...'])",
                node,
            )

    def check_Call(self, node: ast.Call, parent: ast.AST | None) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in self.functions:
                if self.plugins and valid_plugin_name(func.id):
                    self.plugin_functions.setdefault(func.id, self.positions.of(node))
                else:
                    known = ", ".join(sorted(self.functions))
                    hint = " (a plugin's function? name the plugin in plugins:)" if valid_plugin_name(func.id) else ""
                    raise self.fail(f"unknown function '{func.id}' (functions: {known}){hint}", node)
        elif isinstance(func, ast.Attribute):
            if func.attr not in ALLOWED_METHODS and not func.attr.startswith("_"):
                raise self.fail(f"calling '.{func.attr}()' is not allowed in a condition", node)
        else:
            raise self.fail("only functions and allowed methods can be called", node)
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(k.arg is None for k in node.keywords):
            raise self.fail("* and ** arguments are not supported", node)

    def check_Set(self, node: ast.Set, parent: ast.AST | None) -> None:
        # ``{{ x }}`` parses as a set holding a set, which would fail only when the run reaches it
        # ("unhashable type"): it is a template written where an expression belongs, so say so at once.
        inner = node.elts[0] if len(node.elts) == 1 else None
        if isinstance(inner, (ast.Set, ast.Dict)):
            written = ast.unparse(inner.elts[0]) if isinstance(inner, ast.Set) and len(inner.elts) == 1 else None
            fix = f"write {written}, without {{{{ }}}}" if written else "write it without {{ }}"
            raise self.fail(f"a condition is an expression, not a template: {fix}", node)

    def check_Starred(self, node: ast.Starred, parent: ast.AST | None) -> None:
        if isinstance(parent, ast.Call):
            raise self.fail("* and ** arguments are not supported", node)
        if not isinstance(parent, ast.List) or not isinstance(node.ctx, ast.Load):
            raise self.fail("* unpacking is only allowed inside a list", node)

    def check_comprehension(self, node: ast.comprehension, parent: ast.AST | None) -> None:
        if node.is_async:
            raise self.fail("async comprehensions are not allowed", node.target)
        for target in ast.walk(node.target):
            if not isinstance(target, (ast.Name, ast.Tuple, ast.List, ast.Store)):
                raise self.fail("a comprehension can only assign plain names", target)

    def check_Constant(self, node: ast.Constant, parent: ast.AST | None) -> None:
        value = node.value
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise self.fail(f"{type(value).__name__} literals are not supported", node)
        if isinstance(value, str) and len(value) > MAX_CONDITION_LENGTH:
            raise self.fail("the string literal is too long", node)
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(f"the integer literal has more than {MAX_INT_DIGITS} digits", node)

    def check_FormattedValue(self, node: ast.FormattedValue, parent: ast.AST | None) -> None:
        spec = node.format_spec
        if spec is None:
            return
        parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
        if len(parts) > 1 or any(not isinstance(part, ast.Constant) for part in parts):
            raise self.fail("an f-string format specification must be constant", node)
        first = parts[0] if parts else None
        text = first.value if isinstance(first, ast.Constant) else ""
        if not isinstance(text, str) or not _FORMAT_SPEC.fullmatch(text):
            raise self.fail(f"unsupported f-string format specification {text!r}", node)


_CHECKS: dict[type[ast.AST], Callable[[_Checker, Any, ast.AST | None], None]] = {
    ast.Attribute: _Checker.check_Attribute,
    ast.Call: _Checker.check_Call,
    ast.Set: _Checker.check_Set,
    ast.Starred: _Checker.check_Starred,
    ast.comprehension: _Checker.check_comprehension,
    ast.Constant: _Checker.check_Constant,
    ast.FormattedValue: _Checker.check_FormattedValue,
}
