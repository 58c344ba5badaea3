"""Stage two: check a loaded document against the workflow JSON Schema, one useful message per location."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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
    "action",
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

#: How messages name a node whose kind key is not its kind's name.
_KIND_LABELS = {"then": "if", "steps": "group"}

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

#: Keys any node may have besides its kind key (never suggested as a misspelt kind key).
_COMMON_KEYS = frozenset(
    {"id", "name", "description", "if", "timeout", "retry", "continue_on_error", "cache", "compensate", "env"}
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

# Friendly words for the schema's patterns, keyed by the pattern text, so users never see a raw regex.
_PATTERN_HELP = {
    r"^[a-z][a-z0-9_-]*$": "use lowercase letters, digits, '-' and '_', starting with a letter",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and '_', not starting with a digit",
    r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$": "a duration looks like 500ms, 30s, 5m, 1h30m or a number of seconds",
    r"^[A-Z_][A-Z0-9_]*$": "secret names are environment variable names: uppercase letters, digits and '_'",
    r"^[a-z][a-z0-9_-]*/.+$": "a model is written provider/model, e.g. openai/gpt-4o-mini",
    r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$": "write a Python function as 'package.module:function', e.g. helpers:count",
    r"^[a-z][a-z0-9_.-]*$": (
        "an event name uses lowercase letters, digits, '.', '-' and '_', starting with a letter, e.g. report.ready"
    ),
    r"^[0-9]+(\.[0-9]+)?%$": "give a count such as 2, or a percentage such as '10%'",
    r"^[A-Za-z_][\w.-]*$": (
        "an action name uses letters, digits, '_', '.' and '-', starting with a letter or '_', e.g. shout"
    ),
    r"\{\{": "give a number, or a template such as '{{ inputs.limit }}'",
}

# Explanations for values the schema forbids with ``not``, keyed by the forbidden pattern.
_NOT_HELP = {
    r"^(run|steps?|branch|loop|map|parallel|stream|llm|checkpoint|hook)\.": (
        "the prefixes of llmflow's own events (run. step. steps. branch. loop. map. parallel. stream. llm. "
        "checkpoint. hook.) are reserved"
    ),
}

# When several problems share one location, the first kind in this list is the one reported.
_PRIORITY = ("kind", "type", "const", "enum", "required", "additionalProperties", "unevaluatedProperties")

# A location: document path, whether the key (not the value) is meant, and what sort of problem it is.
_Location = tuple[DocPath, bool, str]
_Found = tuple[int, _Location, Diagnostic]


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


def _quoted_list(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


@lru_cache(maxsize=1)
def _validator() -> Any:
    from llmflow.resources import workflow_schema
    from llmflow.spec.fastschema import fast_validator

    return fast_validator(workflow_schema())


@dataclass(slots=True)
class _Context:
    """The document being checked and what the messages need to know about its shape."""

    doc: Document
    nodes: dict[DocPath, dict[str, Any]] = field(default_factory=dict)
    step_lists: set[DocPath] = field(default_factory=set)
    # Per location: required keys that are missing, and "one of these" groups of which none is present
    # (with the keys the mapping may have, to tell a misspelt one from a known one).
    missing: dict[DocPath, list[str]] = field(default_factory=dict)
    needs_one_of: dict[DocPath, tuple[list[str], set[str]]] = field(default_factory=dict)
    # Per mapping: the keys its unknown keys were taken for ("did you mean").
    misspelt: dict[DocPath, set[str]] = field(default_factory=dict)

    def subject(self, path: DocPath) -> str:
        """How a message names the thing at ``path``: "the workflow", "step 'fetch'", "'llm'" …"""
        if not path:
            return "the workflow"
        node = self.nodes.get(path)
        if node is not None:
            node_id = node.get("id")
            if isinstance(node_id, str):
                return f"step '{node_id}'"
            kind = next((key for key in node if key in KIND_KEYS), None)
            return f"this '{_KIND_LABELS.get(kind, kind)}' step" if kind else "this step"
        last = path[-1]
        if isinstance(last, int):
            parent = path[:-1]
            if parent in self.step_lists:
                return "this step"
            if parent == ("hooks",):
                return "this hook"
            if parent[-1:] == ("cases",):
                return "this case"
            return f"an item of '{_field_name(parent)}'"
        if len(path) == 2 and path[0] == "inputs":
            return f"input '{last}'"
        if len(path) == 2 and path[0] == "models":
            return f"model '{last}'"
        return f"'{last}'"


def validate_document(doc: Document) -> list[Diagnostic]:
    """Every schema problem of ``doc``, reduced to the most useful message per location.

    A text that was found valid before (same bytes, same schema, same llmflow) is not checked again:
    see :mod:`llmflow.spec.validity`.
    """
    from llmflow.spec import validity

    key = validity.cache_key(doc.text)
    if key is not None and validity.known_valid(key):
        return []
    found = _validate(doc)
    if not found and key is not None:
        validity.remember_valid(key)
    return found


def _validate(doc: Document) -> list[Diagnostic]:
    context = _Context(doc)
    problems: dict[_Location, tuple[int, Diagnostic]] = {}
    blocked: list[DocPath] = []
    if isinstance(doc.data, dict):
        for list_path, items in iter_step_lists(doc.data.get("steps")):
            context.step_lists.add(list_path)
            for index, node in enumerate(items):
                if isinstance(node, dict):
                    node_path = (*list_path, index)
                    context.nodes[node_path] = node
        for path, diagnostic in _check_kind_keys(context):
            blocked.append(path)
            problems[(path, False, "")] = (0, diagnostic)

        for error in _validator().iter_errors(doc.data):
            for rank, location, diagnostic in _explain(context, error):
                if any(location[0][: len(b)] == b for b in blocked):
                    continue
                current = problems.get(location)
                if current is None or rank < current[0]:
                    problems[location] = (rank, diagnostic)

    # A missing required key that an unknown key nearby misspells is the same mistake: report it once.
    found = [diagnostic for _, diagnostic in problems.values()]
    for path in dict.fromkeys((*context.missing, *context.needs_one_of)):
        if any(path[: len(b)] == b for b in blocked):
            continue
        missing = _missing_diagnostic(context, path, context.misspelt.get(path, set()))
        if missing is not None:
            found.append(missing)
    return found


def _missing_diagnostic(context: _Context, path: DocPath, misspelt: set[str]) -> Diagnostic | None:
    """One diagnostic for everything missing at ``path``, unless a misspelt key nearby explains it."""
    missing = [name for name in dict.fromkeys(context.missing.get(path, ())) if name not in misspelt]
    group, known = context.needs_one_of.get(path, ([], set()))
    if misspelt & set(group):
        group = []
    node = context.nodes.get(path)
    if missing == ["if"] and node is not None and "then" in node and not group:
        message = "'then' needs an 'if' condition that chooses between 'then' and 'else'"
        return context.doc.diagnostic("missing-key", message, (*path, "then"), key=True)
    subject = context.subject(path)
    key = bool(path)
    if missing:
        noun = "key" if len(missing) == 1 else "keys"
        message = f"{subject} is missing the required {noun} {_quoted_list(missing)}"
        if group:
            message += f" and one of {', '.join(group)}"
        return context.doc.diagnostic("missing-key", message, path, key=key)
    if group:
        instance = value_at(context.doc.data, path)
        keys = [key_ for key_ in instance if key_ not in known] if isinstance(instance, dict) else []
        close = next((match for word in keys if (match := suggest(str(word), group))), None)
        hint = f"did you mean '{close}'?" if close else None
        message = f"{subject} needs one of {', '.join(group)}"
        return context.doc.diagnostic("one-of", message, path, key=key, hint=hint)
    return None


def value_at(data: Any, path: DocPath) -> Any:
    """The plain value at ``path`` in ``data``, or None when there is none."""
    for part in path:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def iter_step_lists(data: Any, path: DocPath = ("steps",)) -> Iterator[tuple[DocPath, list[Any]]]:
    """Every list of steps in the document (the top-level one first), tolerant of wrong types."""
    stack: list[tuple[DocPath, Any]] = [(path, data)]
    while stack:
        list_path, items = stack.pop()
        if not isinstance(items, list):
            continue
        yield list_path, items
        nested: list[tuple[DocPath, Any]] = []
        for index, node in enumerate(items):
            if not isinstance(node, dict):
                continue
            node_path = (*list_path, index)
            for rel in _NESTED_STEP_LISTS:
                value: Any = node
                for part in rel:
                    value = value.get(part) if isinstance(value, dict) else None
                if value is not None:
                    nested.append(((*node_path, *rel), value))
            switch = node.get("switch")
            if isinstance(switch, dict) and isinstance(switch.get("cases"), list):
                for case_index, case in enumerate(switch["cases"]):
                    if isinstance(case, dict):
                        nested.append(((*node_path, "switch", "cases", case_index, "steps"), case.get("steps")))
            parallel = node.get("parallel")
            if isinstance(parallel, dict) and isinstance(parallel.get("branches"), dict):
                for name, steps in parallel["branches"].items():
                    nested.append(((*node_path, "parallel", "branches", name), steps))
        stack.extend(reversed(nested))


def iter_nodes(data: Any, path: DocPath = ("steps",)) -> Iterator[tuple[DocPath, dict[str, Any]]]:
    """Every node mapping in the document, tolerant of wrong types."""
    for list_path, items in iter_step_lists(data, path):
        for index, node in enumerate(items):
            if isinstance(node, dict):
                yield (*list_path, index), node


def _check_kind_keys(context: _Context) -> Iterator[tuple[DocPath, Diagnostic]]:
    doc = context.doc
    for node_path, node in context.nodes.items():
        kinds = [key for key in node if key in KIND_KEYS]
        if len(kinds) == 1:
            continue
        if not kinds:
            message = "this step does not say what to do: it needs one of " + ", ".join(KIND_KEYS)
            misspelt = [(key, match) for key in node if key not in _COMMON_KEYS and (match := suggest(key, KIND_KEYS))]
            if misspelt:
                key, match = misspelt[0]
                where = doc.diagnostic(
                    "missing-kind", message, (*node_path, key), key=True, hint=f"did you mean '{match}'?"
                )
                yield node_path, where
                continue
            if_else = "an if/else step needs 'then': the steps run when 'if' is true" if "else" in node else None
            yield node_path, doc.diagnostic("missing-kind", message, node_path, key=True, hint=if_else)
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


def _explain(context: _Context, error: Any) -> Iterator[_Found]:
    """Turn one jsonschema error into (rank, location, diagnostic) triples."""
    doc = context.doc
    path: DocPath = tuple(error.absolute_path)
    kind = error.validator
    rank = _PRIORITY.index(kind) if kind in _PRIORITY else len(_PRIORITY)

    if kind in ("oneOf", "anyOf"):
        yield from _explain_alternatives(context, error, path)
        return
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(_allowed_properties(error.schema))
        declared = set(error.schema.get("properties", {}))
        instance = error.instance if isinstance(error.instance, dict) else {}
        for key in instance:
            if key in declared or key in allowed:
                continue
            key_path = (*path, key)
            where = f" in {context.subject(path)}" if path else " at the top level"
            match = suggest(str(key), allowed)
            hint = f"did you mean '{match}'?" if match else None
            message = f"unknown key '{key}'{where}"
            if not match and allowed:
                message += "; allowed keys: " + ", ".join(allowed)
            if match:
                context.misspelt.setdefault(path, set()).add(match)
            diagnostic = doc.diagnostic("unknown-key", message, key_path, key=True, hint=hint)
            yield rank, (key_path, True, "unknown-key"), diagnostic
        return
    if kind == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = context.missing.setdefault(path, [])
        missing.extend(name for name in error.validator_value if name not in instance)
        return
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema reports a bad key as an error of the mapping whose instance is the key: point at the key.
        name = error.instance
        key_path = (*path, name) if isinstance(name, str) else path
        reason = _pattern_help(error.validator_value) if kind == "pattern" else error.message
        message = f"'{name}' is not a valid name in '{_field_name(path)}': {reason}"
        yield rank, (key_path, True, "name"), doc.diagnostic("invalid-name", message, key_path, key=True)
        return

    message, code = _message_for(context, error, path)
    yield rank, (path, False, ""), doc.diagnostic(code, message, path)


def _message_for(context: _Context, error: Any, path: DocPath) -> tuple[str, str]:
    kind = error.validator
    value = error.instance
    field_ = _field_name(path)
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        return f"{context.subject(path)} must be {wanted}, not {describe_value(value)}", "wrong-type"
    if kind == "const":
        if path == ("version",):
            quoted = " (write it without quotes)" if value == "1" else ""
            return f"unsupported version {value!r}: this llmflow reads version 1 workflows{quoted}", "bad-version"
        return f"'{field_}' must be {error.validator_value!r}", "bad-value"
    if kind == "enum":
        choices = [str(choice) for choice in error.validator_value]
        extra = _did_you_mean(str(value), choices)
        subject = context.subject(path)
        return f"{subject} must be one of {', '.join(choices)}, not {value!r}{extra}", "bad-value"
    if kind == "pattern":
        pattern = error.validator_value
        if pattern == r"\{\{":
            wanted = " or ".join(
                _TYPE_NAMES.get(name, name) for name in error.schema.get("type", ()) if name != "string"
            )
            return f"'{field_}' must be {wanted} or a template such as '{{{{ inputs.limit }}}}', not {value!r}", (
                "bad-value"
            )
        if field_ == "id" or path == ("name",):
            noun = "id" if field_ == "id" else "workflow name"
            return f"invalid {noun} {value!r}: {_pattern_help(pattern)}", "bad-value"
        target = context.subject(path) if isinstance(path[-1], str) else f"'{field_}'"
        return f"invalid value {value!r} for {target}: {_pattern_help(pattern)}", "bad-value"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[kind]
        return f"'{field_}' must be {bound} {error.validator_value}, not {value!r}", "bad-value"
    if kind == "maxLength":
        return f"'{field_}' is too long: at most {error.validator_value} characters", "bad-value"
    if kind in ("minItems", "minProperties", "minLength"):
        return f"'{field_}' must not be empty", "empty"
    if kind == "uniqueItems":
        return f"'{field_}' has duplicate entries", "bad-value"
    if kind == "not":
        forbidden = error.validator_value.get("pattern") if isinstance(error.validator_value, dict) else None
        reason = _NOT_HELP.get(forbidden, "") if isinstance(forbidden, str) else ""
        return f"{value!r} is not allowed for '{field_}'" + (f": {reason}" if reason else ""), "bad-value"
    return f"'{field_}': {error.message}", "schema"


def _pattern_help(pattern: str) -> str:
    return _PATTERN_HELP.get(pattern, f"it must match {pattern}")


def _explain_alternatives(context: _Context, error: Any, path: DocPath) -> Iterator[_Found]:
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
            message = f"{context.subject(path)} takes only one of {', '.join(names)} (found {' and '.join(present)})"
            location = (path, False, "one-of")
            yield 0, location, context.doc.diagnostic("one-of", message, path, key=bool(path))
        else:
            context.needs_one_of.setdefault(path, (names, _allowed_properties(error.schema) | set(names)))
        return
    if len(fitting) == 1 and branches.get(fitting[0]):
        for sub in branches[fitting[0]]:
            yield from _explain(context, sub)
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
            message = f"{context.subject(path)} must be {wanted}, not {describe_value(error.instance)}"
            yield 1, (path, False, ""), context.doc.diagnostic("wrong-type", message, path)
            return
    # Several branches fit: report the branch with the fewest problems.
    best = min(branches.values(), key=len, default=[])
    if best:
        for sub in best:
            yield from _explain(context, sub)
    else:
        message = f"'{_field_name(path)}': {error.message}"
        yield 9, (path, False, ""), context.doc.diagnostic("schema", message, path)


def _allowed_properties(schema: Any, depth: int = 0) -> set[str]:
    """Property names a (sub)schema declares, following local ``$ref``, ``allOf`` and the ``then`` inside it."""
    if not isinstance(schema, dict) or depth > 8:
        return set()
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        from llmflow.resources import workflow_schema

        names |= _allowed_properties(workflow_schema()["$defs"].get(ref.split("/")[-1]), depth + 1)
    for part in schema.get("allOf", ()):
        names |= _allowed_properties(part, depth + 1)
        names |= _allowed_properties(part.get("then") if isinstance(part, dict) else None, depth + 1)
    return names
