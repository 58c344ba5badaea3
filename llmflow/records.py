"""Small value classes without ``@dataclass``: the ``repr``, ``==`` (and, frozen, the immutability) it gives.

Defining a dataclass costs about a millisecond at import (it writes and compiles its methods), which every
``llmflow run`` pays for each class on its path. Those classes subclass ``Record`` (or ``FrozenRecord``)
instead, write their ``__init__``, and name their fields in ``__slots__``; ``repr`` and ``==`` go over
those fields. (The compiled graph's classes build on ``FrozenRecord`` with fields declared as annotations:
``llmflow.compiler.graph.Frozen``.)
"""

from __future__ import annotations

from typing import Any, cast


class Record:
    """A mutable value: ``repr`` and ``==`` over its fields (those in ``__slots__``); unhashable, like a
    dataclass."""

    __slots__ = ()

    def _field_names(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", type(self).__slots__)

    def _field_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._field_names())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._field_names())
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._field_values() == other._field_values()

    __hash__ = None  # type: ignore[assignment]


class FrozenRecord(Record):
    """An immutable value: fields are set once, in ``__init__`` (through ``_set``); hashable by its fields.
    Assigning or deleting a field raises ``dataclasses.FrozenInstanceError``, as for a frozen dataclass.
    A subclass's slots are all in its own ``__slots__`` (or it has a ``__dict__``), which pickling relies on."""

    __slots__ = ()

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise frozen_error(self, name)

    def __delattr__(self, name: str) -> None:
        raise frozen_error(self, name)

    def __hash__(self) -> int:  # type: ignore[override]  # Record's is None, as a dataclass's without frozen
        return hash(self._field_values())

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle and copy would restore the slots with setattr, which a frozen value refuses.
        held = getattr(self, "__dict__", None)
        names: tuple[str, ...] = type(self).__slots__
        values = dict(held) if held is not None else {name: getattr(self, name) for name in names}
        return rebuilt_record, (type(self), values)


def rebuilt_record(cls: type[FrozenRecord], values: dict[str, Any]) -> FrozenRecord:
    """A frozen value of class ``cls`` with ``values`` (every attribute it holds), without its ``__init__``."""
    record = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(record, name, value)
    return record


def frozen_error(record: object, name: str) -> AttributeError:
    """The error of assigning to or deleting field ``name`` of a frozen value."""
    from dataclasses import FrozenInstanceError  # only on this error path: the module is not imported for it

    return FrozenInstanceError(f"cannot assign to field {name!r} of a {type(record).__name__}")
