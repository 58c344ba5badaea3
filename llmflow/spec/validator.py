"""Stage two: check a loaded document against the workflow JSON Schema, one useful message per location."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from llmflow.diagnostics import Diagnostic
from llmflow.spec.document import DocPath, Document

#: The keys that say what a node is; exactly one per node.
KIND_KEYS: tuple[str, ...] = (
    "run",
    "llm",
    "http",
    "python",
    "set",
    "write",
    "wait",
    "approval",
    "fail",
    "emit",
    "memory",
    "workflow",
    "steps",
    "switch",
    "then",
    "loop",
    "parallel",
    "map",
    "stream",
    "try",
)

#: Where nested step lists live inside a node, as paths relative to the node.
_NESTED_STEP_LISTS: tuple[tuple[str, ...], ...] = (
    ("steps",),
    ("then",),
    ("else",),
    ("try",),
    ("catch",),
    ("finally",),
    ("compensate",),
    ("switch", "default"),
    ("loop", "steps"),
    ("map", "steps"),
    ("stream", "steps"),
)

_TYPE_NAMES = {
    "array": "a list",
    "object": "a mapping",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

# Friendly words for the schema's patterns, keyed by the pattern text.
_PATTERN_HELP = {
    r"^[a-z][a-z0-9_-]*$": "use lowercase letters, digits, '-' and '_', starting with a letter",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and '_', not starting with a digit",
    r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$": "a duration looks like 500ms, 30s, 5m, 1h30m or a number of seconds",
    r"^[A-Z_][A-Z0-9_]*$": "secret names are environment variable names: uppercase letters, digits and '_'",
    r"^[a-z][a-z0-9_-]*/.+$": "a model is written provider/model, e.g. openai/gpt-4o-mini",
}

# When several problems share one location, the first kind in this list is the one reported.
_PRIORITY = ("kind", "type", "const", "enum", "required", "additionalProperties", "unevaluatedProperties")


def describe_value(value: Any) -> str:
    """A short phrase for a value's type, as users know it from YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, or ``None``."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    match = suggest(word, choices)
    return f" (did you mean '{match}'?)" if match else ""


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    from llmflow.resources import workflow_schema

    return Draft202012Validator(workflow_schema())


def validate_document(doc: Document) -> list[Diagnostic]:
    """Every schema problem of ``doc``, reduced to the most useful message per location."""
    problems: dict[tuple[DocPath, bool, str], tuple[int, Diagnostic]] = {}
    blocked: list[DocPath] = []
    for path, diagnostic in _check_kind_keys(doc):
        blocked.append(path)
        problems[(path, False, "")] = (0, diagnostic)

    if isinstance(doc.data, dict):
        for error in _validator().iter_errors(doc.data):
            for rank, location, diagnostic in _explain(doc, error):
                if any(location[0][: len(b)] == b for b in blocked):
                    continue
                current = problems.get(location)
                if current is None or rank < current[0]:
                    problems[location] = (rank, diagnostic)

    # A missing required key that an unknown key nearby misspells is the same mistake: report it once.
    misspelt: dict[DocPath, set[str]] = {}
    for location, (_, diagnostic) in problems.items():
        if diagnostic.code == "unknown-key" and diagnostic.hint:
            misspelt.setdefault(location[0][:-1], set()).add(diagnostic.hint.split("'")[1])
    return [
        diagnostic
        for location, (_, diagnostic) in problems.items()
        if not _misspelling_explains(location, misspelt.get(location[0], set()))
    ]


def _misspelling_explains(location: tuple[DocPath, bool, str], suggested: set[str]) -> bool:
    """True when a 'missing key' problem is explained by an unknown key that misspells it."""
    detail = location[2]
    if detail.startswith("required:"):
        return detail[len("required:") :] in suggested
    if detail.startswith("one-of:"):
        return bool(suggested & set(detail[len("one-of:") :].split(",")))
    return False


def iter_nodes(data: Any, path: DocPath = ("steps",)) -> Iterator[tuple[DocPath, dict[str, Any]]]:
    """Every node mapping in the document, tolerant of wrong types."""
    stack: list[tuple[DocPath, Any]] = [(path, data)]
    while stack:
        list_path, items = stack.pop()
        if not isinstance(items, list):
            continue
        for index, node in enumerate(items):
            if not isinstance(node, dict):
                continue
            node_path = (*list_path, index)
            yield node_path, node
            for rel in _NESTED_STEP_LISTS:
                value: Any = node
                for part in rel:
                    value = value.get(part) if isinstance(value, dict) else None
                if value is not None:
                    stack.append(((*node_path, *rel), value))
            switch = node.get("switch")
            if isinstance(switch, dict) and isinstance(switch.get("cases"), list):
                for case_index, case in enumerate(switch["cases"]):
                    if isinstance(case, dict):
                        stack.append(((*node_path, "switch", "cases", case_index, "steps"), case.get("steps")))
            parallel = node.get("parallel")
            if isinstance(parallel, dict) and isinstance(parallel.get("branches"), dict):
                for name, steps in parallel["branches"].items():
                    stack.append(((*node_path, "parallel", "branches", name), steps))


def _check_kind_keys(doc: Document) -> Iterator[tuple[DocPath, Diagnostic]]:
    if not isinstance(doc.data, dict):
        return
    for node_path, node in iter_nodes(doc.data.get("steps")):
        kinds = [key for key in node if key in KIND_KEYS]
        if len(kinds) == 1:
            continue
        if not kinds:
            unknown = [key for key in node if suggest(key, KIND_KEYS)]
            hint = None
            if unknown:
                hint = f"did you mean '{suggest(unknown[0], KIND_KEYS)}'?"
            message = "this step does not say what to do: it needs one of " + ", ".join(KIND_KEYS)
            yield node_path, doc.diagnostic("missing-kind", message, node_path, key=True, hint=hint)
        else:
            second = (*node_path, kinds[1])
            message = (
                f"a step does one thing, but this one has {len(kinds)} kind keys "
                f"({', '.join(repr(k) for k in kinds)}); split it into separate steps"
            )
            yield node_path, doc.diagnostic("two-kinds", message, second, key=True)


def _field_name(path: DocPath) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "the workflow"


def _explain(doc: Document, error: Any) -> Iterator[tuple[int, tuple[DocPath, bool, str], Diagnostic]]:
    """Turn one jsonschema error into (rank, location, diagnostic) triples."""
    path: DocPath = tuple(error.absolute_path)
    kind = error.validator
    rank = _PRIORITY.index(kind) if kind in _PRIORITY else len(_PRIORITY)
    field = _field_name(path)

    if kind in ("oneOf", "anyOf"):
        yield from _explain_alternatives(doc, error, path, field)
        return
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(_allowed_properties(error.schema))
        declared = set(error.schema.get("properties", {}))
        instance = error.instance if isinstance(error.instance, dict) else {}
        for key in instance:
            if key in declared or key in allowed:
                continue
            key_path = (*path, key)
            where = f" in '{field}'" if path else " at the top level"
            match = suggest(str(key), allowed)
            hint = f"did you mean '{match}'?" if match else None
            message = f"unknown key '{key}'{where}"
            if not match and allowed:
                message += "; allowed keys: " + ", ".join(allowed)
            diagnostic = doc.diagnostic("unknown-key", message, key_path, key=True, hint=hint)
            yield rank, (key_path, True, "unknown-key"), diagnostic
        return
    if kind == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        for name in missing:
            where = f"'{field}'" if path else "the workflow"
            message = f"{where} is missing the required key '{name}'"
            diagnostic = doc.diagnostic("missing-key", message, path, key=bool(path))
            yield rank, (path, True, f"required:{name}"), diagnostic
        return
    if kind == "propertyNames":
        name = error.instance
        key_path = (*path, name) if isinstance(name, str) else path
        sub = error.context[0] if error.context else None
        reason = _pattern_help(sub.validator_value) if sub is not None and sub.validator == "pattern" else ""
        message = f"'{name}' is not a valid name in '{field}'" + (f": {reason}" if reason else "")
        yield rank, (key_path, True, "name"), doc.diagnostic("invalid-name", message, key_path, key=True)
        return

    message, code = _message_for(error, path, field)
    yield rank, (path, False, ""), doc.diagnostic(code, message, path)


def _message_for(error: Any, path: DocPath, field: str) -> tuple[str, str]:
    kind = error.validator
    value = error.instance
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return f"'{field}' must be {wanted}, not {describe_value(value)}", "wrong-type"
    if kind == "const":
        if path == ("version",):
            return f"unsupported version {value!r}: this llmflow reads version 1 workflows", "bad-version"
        return f"'{field}' must be {error.validator_value!r}", "bad-value"
    if kind == "enum":
        choices = [str(choice) for choice in error.validator_value]
        extra = _did_you_mean(str(value), choices)
        return f"'{field}' must be one of {', '.join(choices)}, not {value!r}{extra}", "bad-value"
    if kind == "pattern":
        reason = _pattern_help(error.validator_value)
        noun = "id" if field == "id" else f"value for '{field}'"
        return f"invalid {noun} {value!r}" + (f": {reason}" if reason else ""), "bad-value"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"'{field}' is out of range: {error.message}", "bad-value"
    if kind == "minItems":
        return f"'{field}' must not be empty", "empty"
    if kind == "minProperties":
        return f"'{field}' must not be empty", "empty"
    if kind == "uniqueItems":
        return f"'{field}' has duplicate entries", "bad-value"
    if kind == "not":
        return f"{value!r} is not allowed for '{field}'", "bad-value"
    return f"'{field}': {error.message}", "schema"


def _pattern_help(pattern: str) -> str:
    return _PATTERN_HELP.get(pattern, f"it must match {pattern}")


def _explain_alternatives(
    doc: Document, error: Any, path: DocPath, field: str
) -> Iterator[tuple[int, tuple[DocPath, bool, str], Diagnostic]]:
    """Pick the one branch of a oneOf/anyOf the author meant and explain its errors only."""
    branches: dict[int, list[Any]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    alternatives = error.validator_value
    # A branch matches the value's shape when it raised no top-level type error.
    fitting = [
        index
        for index in range(len(alternatives))
        if not any(sub.validator == "type" and not sub.relative_path for sub in branches.get(index, []))
    ]
    only_required = all(set(alt) <= {"required", "description"} for alt in alternatives)
    if only_required:
        names = [alt["required"][0] for alt in alternatives if alt.get("required")]
        present = [name for name in names if isinstance(error.instance, dict) and name in error.instance]
        if len(present) > 1:
            message = f"'{field}' takes only one of {', '.join(names)} (found {' and '.join(present)})"
        else:
            message = f"'{field}' needs one of {', '.join(names)}"
        yield (
            0,
            (path, False, "one-of:" + ",".join(names)),
            doc.diagnostic("one-of", message, path, key=bool(path)),
        )
        return
    if len(fitting) == 1 and branches.get(fitting[0]):
        for sub in branches[fitting[0]]:
            yield from _explain(doc, sub)
        return
    if not fitting:
        kinds: list[str] = []
        for alt in alternatives:
            alt_type = alt.get("type") if isinstance(alt, dict) else None
            if isinstance(alt_type, str):
                kinds.append(_TYPE_NAMES.get(alt_type, alt_type))
            elif isinstance(alt_type, list):
                kinds.extend(_TYPE_NAMES.get(str(t), str(t)) for t in alt_type)
        if kinds:
            wanted = " or ".join(dict.fromkeys(kinds))
            message = f"'{field}' must be {wanted}, not {describe_value(error.instance)}"
            yield 1, (path, False, ""), doc.diagnostic("wrong-type", message, path)
            return
    # Several branches fit: report the branch with the fewest problems.
    best = min(branches.values(), key=len, default=[])
    if best:
        for sub in best:
            yield from _explain(doc, sub)
    else:
        yield 9, (path, False, ""), doc.diagnostic("schema", f"'{field}': {error.message}", path)


def _allowed_properties(schema: Any, depth: int = 0) -> set[str]:
    """Property names a (sub)schema declares, following local ``$ref`` and ``allOf``."""
    if not isinstance(schema, dict) or depth > 8:
        return set()
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        from llmflow.resources import workflow_schema

        names |= _allowed_properties(workflow_schema()["$defs"].get(ref.split("/")[-1]), depth + 1)
    for part in schema.get("allOf", ()):
        names |= _allowed_properties(part, depth + 1)
    return names
