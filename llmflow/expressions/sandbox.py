"""The Jinja2 sandbox templates run in: read-only, mapping keys first, bounded operators, a time limit."""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from jinja2 import StrictUndefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import missing

from llmflow.errors import ExpressionError
from llmflow.expressions.conditions import MAPPING_METHODS, SEQUENCE_METHODS, STRING_METHODS
from llmflow.expressions.references import TEMPLATE_GLOBALS
from llmflow.expressions.values import (
    ITERATORS,
    MAX_REPEAT_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_VALUE_ITEMS,
    TEMPLATE_TIME_LIMIT,
    Deadline,
    a_type,
    bounded_str,
    check_int,
    check_power,
    check_product,
    one_line,
    stringify,
    to_json,
    unset_secret,
)

# Attributes templates may read on values of builtin types; everything else on them is refused.
_ALLOWED_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: STRING_METHODS
    | frozenset(
        [
            "rsplit",
            "index",
            "rindex",
            "isupper",
            "islower",
            "isdecimal",
            "isnumeric",
            "istitle",
            "isascii",
            "swapcase",
            "partition",
            "rpartition",
            "removeprefix",
            "removesuffix",
        ]
    ),
    int: frozenset({"real", "imag", "numerator", "denominator", "bit_length"}),
    float: frozenset({"real", "imag", "is_integer"}),
    list: SEQUENCE_METHODS,
    tuple: SEQUENCE_METHODS,
    set: frozenset({"isdisjoint", "issubset", "issuperset"}),
    frozenset: frozenset({"isdisjoint", "issubset", "issuperset"}),
    bytes: frozenset(),
    type(None): frozenset(),
}


_SEQUENCES = (str, list, tuple)


class RenderState:
    """What one render needs to know: its deadline, its context (for messages) and, for shell
    templates, the function that records each ``{{ }}`` value."""

    __slots__ = ("context", "deadline", "record")

    def __init__(self, context: Mapping[str, Any], record: Callable[[Any], str] | None = None) -> None:
        self.context = context
        self.deadline = Deadline(TEMPLATE_TIME_LIMIT, "the template")
        self.record = record


CURRENT: contextvars.ContextVar[RenderState | None] = contextvars.ContextVar("llmflow_render", default=None)


def tick() -> None:
    """Stop a render that has run past its time limit."""
    state = CURRENT.get()
    if state is not None:
        state.deadline.check()


def _path_to(target: Any, context: Mapping[str, Any], limit: int = 5000) -> str | None:
    """Where ``target`` sits in the context (``steps.fetch.output[2]``), found by identity."""
    queue: deque[tuple[str, Any]] = deque(context.items())
    while queue and limit > 0:
        path, value = queue.popleft()
        limit -= 1
        if value is target:
            return path
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(item, (Mapping, list, tuple)):
                    step = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"
                    queue.append((path + step, item))
        elif isinstance(value, (list, tuple)):
            queue.extend(
                (f"{path}[{index}]", item)
                for index, item in enumerate(value)
                if isinstance(item, (Mapping, list, tuple))
            )
    return None


class LlmflowUndefined(StrictUndefined):
    """StrictUndefined whose messages name the path that was being read."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name: Any = self._undefined_name
        obj: Any = self._undefined_obj
        if obj is missing:
            return f"'{name}' is undefined"
        state = CURRENT.get()
        path = _path_to(obj, state.context) if state is not None else None
        if isinstance(obj, Mapping):
            unset = unset_secret(path, name)
            if unset is not None:
                return unset
            keys = [one_line(str(key), 40) for key in list(obj.keys())[:10]]
            hint = f" (keys: {', '.join(keys)}{', ...' if len(obj) > 10 else ''})" if keys else " (it is empty)"
            return f"{path or 'the mapping'} has no key {name!r}{hint}"
        if isinstance(obj, (list, tuple)) and isinstance(name, int):
            return f"{path or 'the list'} has no item {name} (it has {len(obj)} items)"
        return f"{path or 'the value'} is {a_type(obj)}; it has no attribute {name!r}"


class BoundedRange(Sequence[int]):
    """``range()`` for templates: at most MAX_RANGE numbers, and iterating it honours the time limit."""

    __slots__ = ("_range",)

    def __init__(self, numbers: range) -> None:
        self._range = numbers

    def __len__(self) -> int:
        return len(self._range)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> BoundedRange: ...
    def __getitem__(self, index: int | slice) -> int | BoundedRange:
        if isinstance(index, slice):
            return BoundedRange(self._range[index])
        return self._range[index]

    def __iter__(self) -> Iterator[int]:
        for count, number in enumerate(self._range):
            if count % 1024 == 0:
                tick()
            yield number

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __repr__(self) -> str:
        return repr(self._range)


def bounded_range(*args: int) -> BoundedRange:
    """The ``range`` global."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise ExpressionError(f"range() may produce at most {MAX_RANGE} numbers, not {len(numbers)}")
    return BoundedRange(numbers)


def _repeat_check(sequence: Any, times: Any) -> None:
    if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
        size = len(sequence) * max(times, 0)
        if size > MAX_REPEAT_LENGTH:
            unit = "characters" if isinstance(sequence, str) else "items"
            raise ExpressionError(f"repeating would give {size} {unit} (the limit is {MAX_REPEAT_LENGTH})")


class SandboxCodeGenerator(CodeGenerator):
    """Routes ``~`` through ``environment.bounded_concat`` (so it is bounded too) and the ``x.name`` of a
    call ``x.name(...)`` through ``environment.getmethod`` (so mapping methods win over keys there)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.method_callees: set[int] = set()

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.Getattr):
            self.method_callees.add(id(node.node))
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        method = id(node) in self.method_callees
        self.write("environment.getmethod(" if method else "environment.getattr(")
        self.visit(node.node, frame)
        self.write(f", {node.attr!r})")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's ImmutableSandboxedEnvironment with llmflow's rules.

    - ``x.name`` reads the mapping key ``name`` first, then (for mappings) only keys/values/items/get.
    - Values of builtin types expose a short list of read-only, non-amplifying attributes
      (``_ALLOWED_ATTRIBUTES``): no ``ljust``, ``format``, ``replace``, ``join``, ``to_bytes``...
    - ``* ** % +`` go through ``call_binop``, which refuses huge integers and repeats, and ``%`` on
      text; ``~`` goes through ``bounded_concat``; ranges are bounded; every access, call and filter
      checks the render's time limit.
    """

    code_generator_class = SandboxCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        for kind, allowed in _ALLOWED_ATTRIBUTES.items():
            if isinstance(obj, kind):
                return attr in allowed
        if isinstance(obj, Mapping):
            return attr in MAPPING_METHODS
        return True

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        reason = " (templates cannot change data)" if attribute in _MUTATORS else ""
        return self.undefined(
            f"'.{attribute}' is not allowed on {a_type(obj)} in a template{reason}",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        elif isinstance(obj, str) and attribute not in _ALLOWED_ATTRIBUTES[str]:
            # Checked before Jinja's own lookup, which hands out str.format wrappers unchecked.
            if hasattr(obj, attribute):
                return self.unsafe_undefined(obj, attribute)
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getmethod(self, obj: Any, attribute: str) -> Any:
        """``x.name`` in the call ``x.name(...)``: a mapping's own methods win over its keys there."""
        if isinstance(obj, Mapping) and attribute in MAPPING_METHODS:
            tick()
            return super().getattr(obj, attribute)
        return self.getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        try:
            return obj[argument]
        except (TypeError, LookupError):
            pass
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "**":
            check_power(left, right)
        elif operator == "*":
            _repeat_check(left, right)
            _repeat_check(right, left)
            check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            raise ExpressionError("'%' formatting of strings is not supported (use the format filter)")
        elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            size = len(left) + len(right)
            limit = MAX_TEXT_LENGTH if isinstance(left, str) else MAX_VALUE_ITEMS
            if size > limit:
                unit = "characters" if isinstance(left, str) else "items"
                raise ExpressionError(f"the result would have {size} {unit} (the limit is {limit})")
        result = self.binop_table[operator](left, right)
        check_int(result)
        if isinstance(result, complex):
            raise ExpressionError("the result is a complex number")
        return result

    def bounded_concat(self, values: tuple[Any, ...]) -> str:
        """The ``~`` operator: join the values as text, refusing results over MAX_TEXT_LENGTH."""
        parts: list[str] = []
        size = 0
        for value in values:
            text = value if isinstance(value, str) else bounded_str(value, MAX_TEXT_LENGTH)
            size += len(text)
            if size > MAX_TEXT_LENGTH:
                raise ExpressionError(f"the text would be longer than {MAX_TEXT_LENGTH} characters")
            parts.append(text)
        return "".join(parts)


_MUTATORS = frozenset(
    [
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "sort",
        "reverse",
        "add",
        "discard",
    ]
)


@pass_eval_context
def _finalize_text(eval_ctx: Any, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (Mapping, list, tuple, *ITERATORS)):
        return to_json(value, undefined=Undefined)
    return stringify(value)


@pass_eval_context
def _finalize_shell(eval_ctx: Any, value: Any) -> str:
    state = CURRENT.get()
    if state is None or state.record is None:
        raise ExpressionError("a shell template can only be rendered through ShellTemplate.render")
    if not isinstance(value, str):
        value = _finalize_text(eval_ctx, value)
    return state.record(value)


def _create(finalize: Callable[..., Any]) -> Sandbox:
    from llmflow.expressions.filters import install

    env = Sandbox(
        undefined=LlmflowUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=finalize,
        optimized=False,  # never evaluate anything at compile time
        cache_size=0,
        auto_reload=False,
    )
    env.globals = {
        "range": bounded_range,
        "dict": dict,
        "cycler": env.globals["cycler"],
        "joiner": env.globals["joiner"],
        "namespace": env.globals["namespace"],
    }
    assert set(env.globals) == TEMPLATE_GLOBALS
    install(env)
    return env


_ENVIRONMENTS: dict[str, Sandbox] = {}


def environment(kind: str = "text") -> Sandbox:
    """The process-wide sandbox for ``text`` templates (and native values) or ``shell`` commands."""
    env = _ENVIRONMENTS.get(kind)
    if env is None:
        env = _ENVIRONMENTS[kind] = _create(_finalize_shell if kind == "shell" else _finalize_text)
    return env
