"""Small value classes without ``@dataclass``: the ``repr``, ``==`` (and, frozen, the immutability) it gives.

Defining a dataclass costs about a millisecond at import (it writes and compiles its methods), which every
``llmflow run`` pays for each class on its path. Those classes subclass ``Record`` (or ``FrozenRecord``)
instead, write their ``__init__``, and name their fields in ``__slots__``; ``repr`` and ``==`` go over
those fields. (``llmflow.compiler.graph`` keeps its dataclasses: the graph cache pickles them.)
"""

from __future__ import annotations

from typing import Any, cast


class Record:
    """A mutable value: ``repr`` and ``==`` over the fields in ``__slots__``; unhashable, like a dataclass."""

    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", type(self).__slots__)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]


class FrozenRecord(Record):
    """An immutable value: fields are set once, in ``__init__`` (through ``_set``); hashable by its fields."""

    __slots__ = ()

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __hash__(self) -> int:  # type: ignore[override]  # Record's is None, as a dataclass's without frozen
        return hash(self._fields())
