"""Compose ruamel.yaml parser events into plain data and positions, iteratively and within limits."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from llmflow.diagnostics import Diagnostic
from llmflow.spec.document import DocPath, Position

# The YAML 1.2 core schema, applied only to plain (unquoted, non-block) scalars.
_MAYBE_TYPED = frozenset("0123456789+-.~nNtTfF")  # first characters of anything that is not a string
_NULLS = frozenset({"~", "null", "Null", "NULL", ""})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_MAX_INT_DIGITS = 4300  # Python refuses to convert longer decimal strings

_CORE = "tag:yaml.org,2002:"
_CORE_KINDS = frozenset({"str", "int", "float", "bool", "null", "map", "seq"})
_CONTAINER_TAGS = {True: {"!", _CORE + "map"}, False: {"!", _CORE + "seq"}}  # keyed by "is a mapping"
# Keys and ids must never hold C0/C1 controls, DEL or Unicode bidi controls.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_HINTS = {
    "yaml-tag": "remove the tag; only !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are allowed",
    "merge-key": "write '<<: *anchor' or '<<: [*one, *two]' where each anchor names a mapping",
    "number-too-large": "quote it if it is meant as text",
    "multiple-documents": "remove the second '---' (or '...') or split the file",
    "alias-expansion": "is this a 'billion laughs' file?",
}
#: How to bring a workflow under the size limits.
SPLIT_HINT = "move groups of steps into sub-workflow files (workflow: part.yaml), or data into a file a step reads"
#: What an empty workflow file lacks.
EMPTY_HINT = "a workflow needs at least version, name and steps; `llmflow new NAME` writes one to start from"
MULTIPLE_DOCUMENTS = "the file holds more than one YAML document; a workflow is a single document"
_MERGE_PROBLEM = "a merge key '<<' takes a mapping or a list of mappings"

_NO_KEY: Any = object()  # the mapping expects a key next
_SKIP: Any = object()  # the pending key was refused: drop its value
_MERGE: Any = object()  # the pending key is the merge key `<<`


class _Stop(Exception):
    """Raised inside the composer at a problem that makes the rest of the stream meaningless."""


def resolve_plain(raw: str) -> Any:
    """Resolve a plain scalar with the YAML 1.2 core schema; ``ValueError`` if an int is too long."""
    if raw and raw[0] not in _MAYBE_TYPED:
        return raw
    if raw in _NULLS:
        return None
    if raw in _TRUES:
        return True
    if raw in _FALSES:
        return False
    if _INT.fullmatch(raw):
        if len(raw.lstrip("+-")) > _MAX_INT_DIGITS:
            raise ValueError(raw)
        return int(raw)  # may also raise ValueError under a lower sys.set_int_max_str_digits
    if _FLOAT.fullmatch(raw):
        return float(raw)
    if _OCT.fullmatch(raw):
        return int(raw[2:], 8)
    if _HEX.fullmatch(raw):
        return int(raw[2:], 16)
    if _INF.fullmatch(raw):
        return float("-inf") if raw[0] == "-" else float("inf")
    if _NAN.fullmatch(raw):
        return float("nan")
    return raw


def _resolve_tagged(tag: str, raw: str) -> tuple[Any, str | None]:
    """Honour a core-schema tag on a scalar; the second item is a problem to report."""
    kind = tag[len(_CORE) :] if tag.startswith(_CORE) else tag
    if kind in ("str", "!"):
        return raw, None
    short = "!!" + kind if tag.startswith(_CORE) else tag
    if kind not in _CORE_KINDS:
        return raw, f"the tag {short} is not allowed"
    if kind in ("map", "seq"):
        return raw, f"the tag {short} cannot be used on a scalar"
    try:
        value = resolve_plain(raw) if raw else None
    except ValueError:
        value = raw
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (
        (kind == "null" and value is None)
        or (kind == "bool" and isinstance(value, bool))
        or (kind == "int" and number and isinstance(value, int))
    ):
        return value, None
    if kind == "float" and number:
        return float(value or 0), None
    return raw, f"{raw[:40]!r} is not a valid {short}"


def describe_character(char: str) -> str:
    """``U+202E (right-to-left override)``, or just ``U+0007`` for a character without a name."""
    name = unicodedata.name(char, "").lower()
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _escape_controls(text: str) -> str:
    return CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = (
        "anchor",
        "column",
        "count",
        "height",
        "is_map",
        "key",
        "line",
        "merge_list",
        "merges",
        "obj",
        "path",
    )

    def __init__(self, obj: Any, path: DocPath | None, line: int, column: int, anchor: str | None) -> None:
        self.obj = obj
        self.is_map = obj.__class__ is dict
        self.path = path  # None inside keys, merge values and refused entries: no positions recorded
        self.line, self.column = line, column
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.count = 1  # nodes after alias expansion
        self.height = 0  # nesting levels below this node
        self.merges: list[dict[str, Any]] | None = None
        self.merge_list = False  # a sequence that is the value of `<<`


class Composer:
    """Builds plain data, positions and diagnostics from a stream of parser events."""

    def __init__(self, text: str, file: str, *, max_depth: int, max_nodes: int) -> None:
        self.text, self.file = text, file
        self.max_depth, self.max_nodes = max_depth, max_nodes
        self.data: Any = None
        self.documents = 0
        self.empty_root = False  # the document is an empty plain scalar (`---` alone)
        self.explicit_end = False  # the last document ended with `...`
        self.positions: dict[DocPath, Position] = {}
        self.key_positions: dict[DocPath, Position] = {}
        self.diagnostics: list[Diagnostic] = []
        self.failure: Exception | None = None  # what the parser raised, for the loader to translate
        self._stack: list[_Frame] = []
        self._anchors: dict[str, tuple[Any, int, int]] = {}  # value, expanded node count, height
        self._aliases = False

    def error(self, code: str, message: str, line: int, column: int, hint: str | None = None) -> None:
        """Record a diagnostic (with the code's usual hint unless one is given)."""
        hint = hint or _HINTS.get(code)
        self.diagnostics.append(Diagnostic(code, message, self.file, line, column, hint=hint))

    def fail(self, code: str, message: str, line: int, column: int, hint: str | None = None) -> None:
        """Record a diagnostic and stop composing."""
        self.error(code, message, line, column, hint)
        raise _Stop

    def feed(self, stream: Iterable[Any]) -> None:
        """Consume every event; a parser exception is kept in ``failure``."""
        try:
            self._consume(stream)
        except _Stop:
            pass
        except RecursionError:  # neither parser recurses today; never let it escape if one starts to
            line, column = (self._stack[-1].line, self._stack[-1].column) if self._stack else (1, 1)
            self.error("too-deep", "the document is nested too deeply to parse", line, column)
        except Exception as error:
            self.failure = error

    def _consume(self, stream: Iterable[Any]) -> None:
        from ruamel.yaml import events as ev

        scalar, alias = ev.ScalarEvent, ev.AliasEvent
        mapping_start, sequence_start = ev.MappingStartEvent, ev.SequenceStartEvent
        mapping_end, sequence_end = ev.MappingEndEvent, ev.SequenceEndEvent
        document_start, document_end = ev.DocumentStartEvent, ev.DocumentEndEvent
        stack, positions, key_positions = self._stack, self.positions, self.key_positions
        max_nodes, control = self.max_nodes, CONTROL.search
        for event in stream:
            kind = event.__class__
            if kind is scalar:
                # Hot path, inlined: an untagged, unanchored string key or value inside a container.
                # Everything else (typed plain scalars, tags, anchors, `<<`, problems) goes to _scalar.
                raw = event.value
                frame = stack[-1] if stack else None
                if (
                    frame is None
                    or frame.path is None
                    or frame.merge_list
                    or event.ctag is not None  # `tag` is a property building a str; `ctag` is raw
                    or event.anchor is not None
                    or (not event.style and (not raw or raw[0] in _MAYBE_TYPED))
                ):
                    self._scalar(event)
                    continue
                key = frame.key
                if not frame.is_map:
                    mark = event.start_mark
                    child = (*frame.path, len(frame.obj))
                    positions[child] = Position(mark.line + 1, mark.column + 1)
                    frame.obj.append(raw)
                elif key is _NO_KEY and raw not in frame.obj and raw != "<<" and control(raw) is None:
                    mark = event.start_mark
                    frame.key = raw
                    child = (*frame.path, raw)
                    key_positions[child] = Position(mark.line + 1, mark.column + 1)
                elif key.__class__ is str and key != "id":
                    mark = event.start_mark
                    frame.obj[key] = raw
                    frame.key = _NO_KEY
                    child = (*frame.path, key)
                    positions[child] = Position(mark.line + 1, mark.column + 1)
                else:
                    self._scalar(event)
                    continue
                frame.count += 1
                if frame.count > max_nodes:
                    self._too_many_nodes(event.start_mark.line + 1, event.start_mark.column + 1)
            elif kind is mapping_end or kind is sequence_end:
                self._close(stack.pop())
            elif kind is mapping_start or kind is sequence_start:
                self._open(event, {} if kind is mapping_start else [])
            elif kind is alias:
                self._alias(event)
            elif kind is document_start:
                self.documents += 1
                if self.documents > 1:
                    mark = event.start_mark
                    self.fail("multiple-documents", MULTIPLE_DOCUMENTS, mark.line + 1, mark.column + 1)
            elif kind is document_end:
                self.explicit_end = bool(event.explicit)

    def _scalar(self, event: Any) -> None:
        mark = event.start_mark
        line, column = mark.line + 1, mark.column + 1
        raw: str = event.value
        plain = not event.style and event.ctag is None
        if event.ctag is not None:
            value, problem = _resolve_tagged(str(event.ctag), raw)
            if problem is not None:
                self.error("yaml-tag", problem, line, column)
        elif not plain:
            value = raw
        else:
            try:
                value = resolve_plain(raw)
            except ValueError:
                value = raw
                digits = len(raw.lstrip("+-"))
                message = f"this number has {digits} digits; at most {_MAX_INT_DIGITS} are allowed"
                self.error("number-too-large", message, line, column)
        if event.anchor is not None:
            self._anchors[event.anchor] = (value, 1, 0)
        if not self._stack:
            self.empty_root = plain and raw == ""
        self._attach(value, line, column, raw=raw if plain else None)

    def _attach(
        self,
        value: Any,
        line: int,
        column: int,
        count: int = 1,
        height: int = 0,
        *,
        record: bool = True,
        raw: Any = None,
    ) -> None:
        """Add a finished node to the open container, or make it the document.

        ``count`` and ``height`` are the node's size after alias expansion; ``record`` is False for
        containers, whose position was recorded when they opened; ``raw`` is a plain scalar's source text.
        """
        stack = self._stack
        if not stack:
            self.data = value
            self.positions[()] = Position(line, column)
            return
        frame = stack[-1]
        frame.count += count
        if frame.count > self.max_nodes:
            self._too_many_nodes(line, column)
        if height > frame.height:
            frame.height = height
        path = frame.path
        if not frame.is_map:
            if frame.merge_list and value.__class__ is not dict:
                self.error("merge-key", _MERGE_PROBLEM, line, column)
                return
            if record and path is not None:
                child = (*path, len(frame.obj))
                self.positions[child] = Position(line, column)
            frame.obj.append(value)
            return
        key = frame.key
        if key is _NO_KEY:
            self._key(frame, value, line, column, raw)
            return
        frame.key = _NO_KEY
        if key is _MERGE:
            sources = value if value.__class__ is list else [value]
            if frame.merges is not None and all(source.__class__ is dict for source in sources):
                frame.merges.extend(sources)
            else:
                self.error("merge-key", _MERGE_PROBLEM, line, column)
        elif key is not _SKIP:
            frame.obj[key] = value
            if record and path is not None:
                child = (*path, key)
                self.positions[child] = Position(line, column)
            bad = CONTROL.search(value) if key == "id" and value.__class__ is str else None
            if bad is not None:
                message = f"the id '{_escape_controls(value)}' contains the control character "
                hint = "ids are identifiers: use letters, digits, '_' and '-'"
                self.error("control-character", message + describe_character(bad.group()), line, column, hint)

    def _key(self, frame: _Frame, key: Any, line: int, column: int, raw: str | None) -> None:
        frame.key = _SKIP
        if raw == "<<":
            if frame.merges is None:
                frame.merges, frame.key = [], _MERGE
            else:
                self.error("duplicate-key", "duplicate merge key '<<'", line, column)
            return
        if key.__class__ is not str:
            self._non_string_key(frame, key, line, column, raw)
            return
        shown = _escape_controls(key)
        bad = CONTROL.search(key)
        if bad is not None:
            message = f"the key '{shown}' contains the control character {describe_character(bad.group())}"
            self.error("control-character", message, line, column, "keys must be plain text; retype the key")
        if key in frame.obj:
            first = self.key_positions.get((*frame.path, key)) if frame.path is not None else None
            where = f" (first at line {first.line})" if first is not None else ""
            self.error("duplicate-key", f"duplicate key '{shown}'{where}", line, column)
            return
        frame.key = key
        if frame.path is not None:
            child = (*frame.path, key)
            self.key_positions[child] = Position(line, column)

    def _non_string_key(self, frame: _Frame, key: Any, line: int, column: int, raw: str | None) -> None:
        if isinstance(key, (dict, list)):
            # `run: {{ x }}` reads as a flow mapping whose only key is the mapping `{x: null}`.
            lines = self.text.split("\n", max(line, frame.line))
            if lines[line - 1][column - 1 :].startswith("{{"):
                return  # the key is itself `{{ ... }}`: reported as unquoted-template when it closed
            source = lines[frame.line - 1][frame.column - 1 :]
            if source.startswith("{{"):
                rest = source.split(" #", 1)[0].rstrip()  # the whole value when the line ends the template
                snippet = rest if rest.endswith("}}") or "}}" not in rest else rest[: rest.find("}}") + 2]
                quoted = f"'{snippet}'" if '"' in snippet else f'"{snippet}"'
                owner = self._stack[-2] if len(self._stack) > 1 else None
                prefix = f"{owner.key}: " if owner is not None and owner.key.__class__ is str else ""
                message = "a template value must be quoted: YAML reads an unquoted {{ ... }} as a mapping"
                self.error("unquoted-template", message, frame.line, frame.column, f"quote it: {prefix}{quoted}")
                return
            what = "a mapping" if isinstance(key, dict) else "a list"
            self.error("non-string-key", f"{what} cannot be used as a key; keys must be strings", line, column)
            return
        what = "null" if key is None else "a boolean" if isinstance(key, bool) else "a number"
        shown = raw or ("an empty key" if key is None else str(key))
        hint = f'quote it: "{raw}"' if raw else None
        self.error("non-string-key", f"the key {shown} is {what}; keys must be strings", line, column, hint)

    def _child_path(self, frame: _Frame) -> DocPath | None:
        path = frame.path
        if path is None:
            return None
        if not frame.is_map:
            return (*path, len(frame.obj))
        key = frame.key
        return None if key is _NO_KEY or key is _SKIP or key is _MERGE else (*path, key)

    def _open(self, event: Any, obj: Any) -> None:
        mark = event.start_mark
        line, column = mark.line + 1, mark.column + 1
        stack = self._stack
        if len(stack) >= self.max_depth:
            self.fail("too-deep", f"the document nests more than {self.max_depth} mappings and lists", line, column)
        is_map = obj.__class__ is dict
        if event.ctag is not None and str(event.ctag) not in _CONTAINER_TAGS[is_map]:
            tag = str(event.ctag)
            short = tag.replace(_CORE, "!!", 1)
            misused = tag.startswith(_CORE) and tag[len(_CORE) :] in _CORE_KINDS
            kind = "mapping" if is_map else "sequence"
            problem = f"cannot be used on a {kind}" if misused else "is not allowed"
            self.error("yaml-tag", f"the tag {short} {problem}", line, column)
        path = self._child_path(stack[-1]) if stack else ()
        frame = _Frame(obj, path, line, column, event.anchor)
        frame.merge_list = bool(stack) and stack[-1].key is _MERGE and not is_map
        if path is not None:
            self.positions[path] = Position(line, column)
        stack.append(frame)

    def _close(self, frame: _Frame) -> None:
        obj = frame.obj
        for source in frame.merges or ():  # explicit keys win, then earlier sources over later ones
            for key, value in source.items():
                obj.setdefault(key, value)
        if frame.anchor is not None:
            self._anchors[frame.anchor] = (obj, frame.count, frame.height + 1)
        self._attach(obj, frame.line, frame.column, frame.count, frame.height + 1, record=False)

    def _alias(self, event: Any) -> None:
        self._aliases = True
        mark = event.start_mark
        line, column = mark.line + 1, mark.column + 1
        name = event.anchor
        if any(frame.anchor == name for frame in self._stack):
            message = f"the alias *{name} refers to a node that contains it"
            self.fail("alias-expansion", message, line, column, "an anchor cannot be used inside its own node")
        found = self._anchors.get(name)
        if found is None:
            self.error("yaml-syntax", f"found undefined alias *{name}", line, column)
        value, count, height = found or (None, 1, 0)
        if len(self._stack) + height > self.max_depth:
            message = f"the alias *{name} nests the document more than {self.max_depth} levels deep"
            self.fail("too-deep", message, line, column)
        self._attach(value, line, column, count, height)

    def _too_many_nodes(self, line: int, column: int) -> None:
        if self._aliases:
            message = f"aliases expand this document to more than {self.max_nodes} nodes"
            self.fail("alias-expansion", message, line, column)
        self.fail("too-many-nodes", f"the document has more than {self.max_nodes} nodes", line, column, SPLIT_HINT)
