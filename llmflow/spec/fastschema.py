"""A faster, equivalent form of the workflow schema for checking documents.

The published schema dispatches a node to its kind with twenty ``if``/``then`` pairs, and names its
parts with ``$ref`` — both costly in ``jsonschema`` (about 0.7 ms per node). For checking we derive an
equivalent schema once: every ``allOf`` made only of ``if: {required: [key]}``/``then`` pairs becomes one
``x-dispatch`` keyword that descends only into the branch whose key the instance has, and every ``$ref``
that is not recursive is inlined. Errors are the ones the ``then`` branches would give, at the same
instance paths, so diagnostics do not change.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

#: Definitions that refer back to themselves through node lists: kept as ``$ref``.
_RECURSIVE = frozenset({"steps", "node"})


def _dispatch_table(all_of: Any) -> dict[str, Any] | None:
    """``{key: then}`` when every part of an ``allOf`` is ``if: {required: [key]}, then: ...``."""
    if not isinstance(all_of, list) or not all_of:
        return None
    table: dict[str, Any] = {}
    for part in all_of:
        if not isinstance(part, dict) or set(part) != {"if", "then"}:
            return None
        condition = part["if"]
        if not isinstance(condition, dict) or set(condition) != {"required"} or len(condition["required"]) != 1:
            return None
        table[condition["required"][0]] = part["then"]
    return table


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties", "dependentSchemas"):
            result[key] = {name: _inline(sub, defs, depth) for name, sub in value.items()}
        elif key in ("description", "enum", "const", "required", "examples", "default", "dependentRequired"):
            result[key] = value
        else:
            result[key] = _inline(value, defs, depth)
    table = _dispatch_table(result.get("allOf"))
    if table is not None:
        del result["allOf"]
        result["x-dispatch"] = table
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 16:
        name = ref[len("#/$defs/") :]
        if name not in _RECURSIVE and name in defs:
            target = _inline(copy.deepcopy(defs[name]), defs, depth + 1)
            siblings = {k: v for k, v in result.items() if k != "$ref"}
            if set(siblings) - {"description"} & set(target):
                return {"allOf": [target], **siblings}
            merged = dict(target)
            merged.update(siblings)
            return merged
    return result


def fast_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The checking form of ``schema`` (the input is not changed)."""
    defs = schema.get("$defs", {})
    fast: dict[str, Any] = _inline(copy.deepcopy(schema), defs)
    for name in _RECURSIVE:
        if name in defs:
            fast["$defs"][name] = _inline(copy.deepcopy(defs[name]), defs)
    return fast


def _dispatch(validator: Any, table: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not isinstance(instance, dict):
        return
    for key, branch in table.items():
        if key in instance:
            yield from validator.descend(instance, branch)


def fast_validator(schema: dict[str, Any]) -> Any:
    """A ``jsonschema`` validator for the checking form of ``schema``."""
    from jsonschema import Draft202012Validator, validators

    checker = validators.extend(Draft202012Validator, {"x-dispatch": _dispatch})
    return checker(fast_schema(schema))
