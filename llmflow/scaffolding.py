"""Scaffolding a workflow from a template: ``[[ parameter ]]`` placeholders filled in safely, files planned."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmflow.errors import UsageError
from llmflow.templating import PARAMETER_NAME, WORKFLOW_FILE, Parameter, Template, Value, first_line

#: A scaffolding placeholder: ``[[ name ]]``. Distinct from the engine's ``{{ }}``, which is never touched.
PLACEHOLDER = re.compile(r"\[\[[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\]\]")

#: Where a text parameter may appear: values the engine reads as data, never as a template, a condition or a
#: command, so that nothing a user passes with ``--set`` can become code. ``*`` matches any one key.
TEXT_PLACES: tuple[tuple[str, ...], ...] = (
    ("description",),
    ("inputs", "*", "default"),
    ("inputs", "*", "description"),
    ("models", "*"),
    ("models", "*", "model"),
)

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
#: Scalars YAML would read as something other than a string when written plain.
_YAML_WORDS = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}
#: Characters JSON leaves raw that a YAML double-quoted scalar must not hold raw (line breaks, BOM, C1 …).
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# -- parameters ------------------------------------------------------------------------------------


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a mapping (the last of a repeated name wins); a UsageError for a malformed pair."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not PARAMETER_NAME.match(name):
            raise UsageError(f"bad --set '{pair}': expected NAME=VALUE")
        values[name] = value
    return values


def resolve_values(template: Template, assignments: Mapping[str, str]) -> dict[str, Value]:
    """Every parameter's value: its default, or the ``--set`` text converted to its type."""
    unknown = sorted(set(assignments) - {p.name for p in template.parameters})
    if unknown:
        names = ", ".join(p.name for p in template.parameters)
        known = f"its parameters are: {names}" if names else "it has no parameters"
        raise UsageError(f"template '{template.name}' has no parameter '{unknown[0]}'; {known}")
    values: dict[str, Value] = {}
    for parameter in template.parameters:
        text = assignments.get(parameter.name)
        values[parameter.name] = parameter.default if text is None else convert(parameter, text)
    return values


def convert(parameter: Parameter, text: str) -> Value:
    """The ``--set`` text of ``parameter`` as a value of its type; a UsageError when it is not one."""
    if _SURROGATE.search(text):
        raise UsageError(f"the value of '{parameter.name}' is not valid text")
    if parameter.type == "string":
        return text
    word = text.strip().lower()
    if parameter.type == "boolean":
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    elif parameter.type == "integer":
        if re.fullmatch(r"[+-]?\d+", word):
            return int(word)
    else:
        try:
            number = float(word)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise UsageError(
        f"the value of '{parameter.name}' must be {'an' if parameter.type == 'integer' else 'a'} "
        f"{parameter.type}, not {text!r}"
    )


# -- scaffolding -----------------------------------------------------------------------------------


def workflow_stem(name: str) -> str:
    """The file name (without ``.yaml``) for NAME; a UsageError when NAME is a path or no file name."""
    stem = re.sub(r"\.ya?ml\Z", "", name)
    if not stem.strip() or stem in (".", "..") or stem.startswith(".") or any(c in stem for c in "/\\\0"):
        raise UsageError(f"'{name}' is not a workflow name: give a file name without folders (use --dir for those)")
    if any(unicodedata.category(c) == "Cc" for c in stem):
        raise UsageError(f"{name!r} is not a workflow name: it holds control characters")
    return stem


def slugify(name: str) -> str:
    """A workflow ``name:`` for NAME: lowercase letters, digits, ``-`` and ``_``, starting with a letter."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_text.lower()).strip("-_")
    if not slug:
        raise UsageError(f"'{name}' has no letter or digit to name the workflow by")
    return slug if slug[0].isalpha() else f"workflow-{slug}"


@dataclass(frozen=True)
class Placement:
    """A placeholder in the workflow text and the YAML scalar holding it."""

    name: str
    start: int
    end: int
    doc_path: tuple[str | int, ...]
    line: int
    scalar: Any  # the ruamel scalar node, or None when the placeholder is not inside a double-quoted value


def find_placements(text: str, names: Sequence[str]) -> list[Placement]:
    """Every ``[[ name ]]`` of a declared parameter in ``text``, with the YAML value it sits in.

    ``[[ x ]]`` for an undeclared ``x`` is ordinary text (a flow list, say) and is left alone.
    """
    scalars = [(node, path) for node, path in _scalars(_compose(text), ()) if node.style == '"']
    found = []
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in names:
            continue
        inside = next(
            ((node, path) for node, path in scalars if node.start_mark.index < match.start() < node.end_mark.index),
            (None, ()),
        )
        line = text.count("\n", 0, match.start()) + 1
        found.append(Placement(match.group(1), match.start(), match.end(), inside[1], line, inside[0]))
    return found


def placement_problems(template: Template, text: str | None = None) -> list[str]:
    """Where the workflow file breaks the placeholder rules (an empty list when it keeps them)."""
    text = template.workflow_text() if text is None else text
    kinds = {p.name: p.type for p in template.parameters}
    problems = []
    try:
        placements = find_placements(text, list(kinds))
    except UsageError as error:
        return [str(error)]
    for placement in placements:
        where = f"line {placement.line}: [[ {placement.name} ]]"
        if placement.scalar is None:
            problems.append(f"{where} must sit inside a double-quoted YAML value")
        elif kinds[placement.name] != "string":
            if not PLACEHOLDER.fullmatch(placement.scalar.value):
                problems.append(f"{where} ({kinds[placement.name]}) must be the whole quoted value")
        elif not any(_matches(placement.doc_path, place) for place in TEXT_PLACES):
            places = ", ".join(".".join(place) for place in TEXT_PLACES)
            problems.append(f"{where} is text, allowed only where the engine reads data ({places})")
    used = {placement.name for placement in placements}
    problems.extend(f"parameter '{name}' is never used in {WORKFLOW_FILE}" for name in kinds if name not in used)
    return problems


def render_workflow(template: Template, slug: str, values: Mapping[str, Value]) -> str:
    """The template's workflow with ``name:`` set to ``slug`` and every ``[[ parameter ]]`` filled in.

    Everything else, the workflow's own ``{{ }}`` templates included, is kept byte for byte. Text values are
    written as the content of a YAML double-quoted scalar (JSON string escapes), so no value can end the
    scalar, start a comment or become part of the YAML around it; typed values replace their whole scalar.
    """
    text = template.workflow_text()
    problems = placement_problems(template, text)
    if problems:
        raise UsageError(f"template '{template.name}' is broken: " + "; ".join(problems))
    kinds = {p.name: p.type for p in template.parameters}
    edits: dict[tuple[int, int], str] = {}
    expected: dict[tuple[str | int, ...], Any] = {}
    for placement in find_placements(text, list(kinds)):
        node = placement.scalar
        if kinds[placement.name] == "string":
            edits[(placement.start, placement.end)] = yaml_quoted_content(str(values[placement.name]))
            expected[placement.doc_path] = PLACEHOLDER.sub(
                lambda m: str(values[m.group(1)]) if m.group(1) in kinds else m.group(0), node.value
            )
        else:
            edits[(node.start_mark.index, node.end_mark.index)] = _literal(values[placement.name])
            expected[placement.doc_path] = values[placement.name]
    name_node = _top_level(_compose(text), "name")
    if name_node is not None:
        edits[(name_node.start_mark.index, name_node.end_mark.index)] = _plain_or_quoted(slug)
        expected[("name",)] = slug
    for (start, end), replacement in sorted(edits.items(), reverse=True):
        text = text[:start] + replacement + text[end:]
    _check_values(text, expected)
    return text


def yaml_quoted_content(value: str) -> str:
    """``value`` escaped for the inside of a YAML double-quoted scalar (a JSON string is one)."""
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", escaped)


def _literal(value: Value) -> str:
    return json.dumps(value)


def _plain_or_quoted(slug: str) -> str:
    return json.dumps(slug) if slug in _YAML_WORDS else slug


def _matches(path: tuple[str | int, ...], place: tuple[str, ...]) -> bool:
    return len(path) == len(place) and all(want in ("*", got) for got, want in zip(path, place, strict=True))


def _compose(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="rt").compose(text)
    except YAMLError as error:
        raise UsageError(f"the template workflow is not valid YAML: {first_line(error)}") from None


def _scalars(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[Any, tuple[str | int, ...]]]:
    """Every scalar value under ``node`` (keys excluded) with its document path."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if isinstance(node, ScalarNode):
        yield node, path
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield from _scalars(value, (*path, str(key.value)))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _scalars(item, (*path, index))


def _top_level(root: Any, key: str) -> Any:
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    if not isinstance(root, MappingNode):
        return None
    for name, value in root.value:
        if name.value == key and isinstance(value, ScalarNode):
            return value
    return None


def _check_values(text: str, expected: Mapping[tuple[str | int, ...], Any]) -> None:
    """Read the scaffolded text back: every filled-in value must be exactly what was asked for."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:  # pragma: no cover - the escaping above makes this unreachable
        raise UsageError(f"the scaffolded workflow is not valid YAML: {first_line(error)}") from None
    for path, want in expected.items():
        got: Any = data
        for part in path:
            got = got[part]
        if got != want or type(got) is not type(want):  # pragma: no cover - a safety net, not a code path
            raise UsageError(f"scaffolding changed the value at {'.'.join(map(str, path))}: {got!r} != {want!r}")


@dataclass(frozen=True)
class Scaffold:
    """The files ``llmflow new`` writes: the workflow first, then the template's sample files."""

    template: Template
    workflow: Path
    files: tuple[tuple[Path, bytes], ...]

    def conflicts(self) -> list[Path]:
        """The targets that already exist (nothing may be overwritten without ``force``)."""
        return [path for path, _ in self.files if path.exists() or path.is_symlink()]

    def blocked(self) -> list[Path]:
        """Targets that cannot be written even with ``force``: folders in the way, or files where folders go."""
        found = []
        for path, _ in self.files:
            if path.is_dir():
                found.append(path)
            found.extend(parent for parent in path.parents if parent.exists() and not parent.is_dir())
        return sorted(set(found))

    def write(self) -> None:
        """Write every file, creating folders as needed. Each file is written beside its target and renamed
        over it: a file is never left half-written, and ``--force`` replaces a symbolic link in the way instead
        of writing through it to wherever it points (possibly outside the project)."""
        for path, content in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                temporary.write_bytes(content)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    temporary.unlink()
                raise


def plan_scaffold(template: Template, name: str, directory: Path, assignments: Mapping[str, str]) -> Scaffold:
    """What ``llmflow new NAME --template T`` would write into ``directory``; nothing is written yet."""
    stem = workflow_stem(name)
    values = resolve_values(template, assignments)
    text = render_workflow(template, slugify(stem), values)
    workflow = directory / f"{stem}.yaml"
    files = [(workflow, text.encode("utf-8"))]
    files.extend(
        (directory / relative, (template.folder / relative).read_bytes()) for relative in template.sample_files()
    )
    return Scaffold(template, workflow, tuple(files))
