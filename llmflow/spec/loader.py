"""Load workflow YAML into a positioned Document, refusing malformed or hostile input with diagnostics."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from llmflow.diagnostics import Diagnostic, sort_key
from llmflow.errors import WorkflowError
from llmflow.spec.document import Document
from llmflow.spec.yaml_events import EMPTY_HINT, MULTIPLE_DOCUMENTS, SPLIT_HINT, Composer, describe_character

Backend = Literal["c", "pure"]

_BOM = "\ufeff"
# Characters YAML forbids in a stream (C0 but tab/LF/CR, DEL, C1, surrogates, U+FFFE/U+FFFF), plus NEL,
# U+2028 and U+2029, which the C parser counts as line breaks and the pure one does not: lines would drift.
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_TAB_INDENT_PREFIX = re.compile(r"[ \t?:-]*")  # what may precede a tab that acts as indentation
_SYNTAX_HINTS = (
    ("mapping values are not allowed", 'a value that contains ": " must be quoted'),
    ("expected <block end>", "check the indentation of this line and of the lines above"),
    ("did not find expected key", "check the indentation of this line and of the lines above"),
    ("did not find expected '-' indicator", "check the indentation of this line and of the lines above"),
    ("could not find expected ':'", "a key must be followed by ':'"),
)


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Bounds that keep a hostile or broken file from exhausting time or memory."""

    max_bytes: int = 5 * 1024 * 1024
    max_depth: int = 100  # nesting of mappings/sequences
    max_nodes: int = 250_000  # nodes after alias expansion


def load_text(
    source: str | bytes,
    file: str = "<string>",
    *,
    limits: LoadLimits = LoadLimits(),
    expect_mapping: bool = True,
    directory: str = ".",
    _backend: Backend | None = None,
) -> Document:
    """Parse YAML text into a Document; raise WorkflowError listing every problem found.

    ``_backend`` forces the ``"c"`` or ``"pure"`` parser (tests); by default the C parser when available.
    """
    text = _normalise(source, file, limits)
    return _compose(text, file, directory, limits, expect_mapping, _backend)


def load_file(
    path: str | os.PathLike[str],
    *,
    limits: LoadLimits = LoadLimits(),
    expect_mapping: bool = True,
    display_name: str | None = None,
) -> Document:
    """Read and parse a workflow file; ``display_name`` replaces the path in diagnostics."""
    name = display_name if display_name is not None else os.fspath(path)
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            _refuse("file-unreadable", f"{name} is a directory, not a file", name)
        if info.st_size > limits.max_bytes:
            _refuse_size(info.st_size, limits, name)
        with open(path, "rb") as handle:
            data = handle.read(limits.max_bytes + 1)  # the file may grow between stat and read
    except (FileNotFoundError, NotADirectoryError):
        _refuse("file-not-found", f"file not found: {name}", name)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        _refuse("file-unreadable", f"cannot read {name}: {reason}", name)
    if len(data) > limits.max_bytes:
        _refuse_size(len(data), limits, name)
    text = _normalise(data, name, limits)
    directory = os.path.dirname(os.path.abspath(path))
    return _compose(text, name, directory, limits, expect_mapping, None)


def _events(text: str, backend: Backend | None) -> Iterator[Any]:
    """Parser events from ruamel.yaml.clib's C parser (35x faster) or, without it, the pure-Python one."""
    if backend != "pure":
        try:
            from _ruamel_yaml import CParser
        except ImportError:
            if backend == "c":
                raise
        else:
            return iter(CParser(text).get_event, None)
    from ruamel.yaml import YAML

    return iter(YAML(typ="rt", pure=True).parse(text))


def _refuse(code: str, message: str, file: str, line: int = 1, column: int = 1, hint: str | None = None) -> NoReturn:
    raise WorkflowError([Diagnostic(code, message, file, line, column, hint=hint)])


def _refuse_size(size: int, limits: LoadLimits, file: str) -> NoReturn:
    _refuse("file-too-large", f"the file is {size} bytes; the limit is {limits.max_bytes} bytes", file, hint=SPLIT_HINT)


def _normalise(source: str | bytes, file: str, limits: LoadLimits) -> str:
    """Decode, strip a BOM, turn CRLF and CR into LF, and refuse characters YAML cannot carry."""
    if isinstance(source, str):
        size = len(source) if len(source) * 4 <= limits.max_bytes else len(source.encode("utf-8", "surrogatepass"))
        if size > limits.max_bytes:
            _refuse_size(size, limits, file)
        text = source
    else:
        if len(source) > limits.max_bytes:
            _refuse_size(len(source), limits, file)
        data = source[3:] if source.startswith(b"\xef\xbb\xbf") else source
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            _refuse_undecodable(data, error.start, file)
    if text.startswith(_BOM):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _BAD_CHARACTER.search(text)
    if bad is not None:
        index = bad.start()
        line = text.count("\n", 0, index) + 1
        column = index - text.rfind("\n", 0, index)
        char = bad.group()
        if char == "\x00":
            _refuse("nul-byte", "the text contains a NUL byte; is this a binary file?", file, line, column)
        if "\ud800" <= char <= "\udfff":
            message = f"the text contains a lone surrogate U+{ord(char):04X}, which UTF-8 cannot encode"
            _refuse("invalid-utf8", message, file, line, column)
        word = "control character" if char <= "\x9f" else "character"
        _refuse(
            "control-character",
            f"the {word} {describe_character(char)} is not allowed in a workflow file",
            file,
            line,
            column,
            f'remove it, or write it as the escape "\\u{ord(char):04x}" inside a double-quoted string',
        )
    return text


def _refuse_undecodable(data: bytes, start: int, file: str) -> NoReturn:
    prefix = data[:start]
    line = prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n") + 1
    line_start = max(prefix.rfind(b"\n"), prefix.rfind(b"\r")) + 1
    column = len(prefix[line_start:].decode("utf-8")) + 1
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    _refuse(
        "invalid-utf8",
        f"the file is not valid UTF-8: byte 0x{data[start]:02x} cannot be decoded",
        file,
        line,
        column,
        "the file looks like UTF-16; save it as UTF-8" if utf16 else "save the file as UTF-8",
    )


def _directive_problems(text: str, file: str) -> list[Diagnostic]:
    """Check the directives before the first document: only ``%YAML 1.2`` is accepted."""
    problems: list[Diagnostic] = []
    start, number = 0, 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line, number, start = text[start:end], number + 1, end + 1
        if not line.startswith("%"):
            if line.strip() and not line.lstrip().startswith("#"):
                break
            continue
        words = line.split("#", 1)[0].split()
        name = words[0][1:]
        if name == "YAML" and len(words) > 1 and words[1] == "1.2":
            continue
        if name == "YAML":
            version = words[1] if len(words) > 1 else "(none)"
            message = f"YAML version {version} is not supported; llmflow reads YAML 1.2 only"
        elif name == "TAG":
            message = "%TAG directives are not supported"
        else:
            message = f"unknown directive %{name}"
        problems.append(Diagnostic("yaml-directive", message, file, number, 1, hint=f"remove the %{name} line"))
    return problems


def _compose(
    text: str, file: str, directory: str, limits: LoadLimits, expect_mapping: bool, backend: Backend | None
) -> Document:
    problems = _directive_problems(text, file)
    if problems:
        raise WorkflowError(problems)
    composer = Composer(text, file, max_depth=limits.max_depth, max_nodes=limits.max_nodes)
    try:
        stream = _events(text, backend)
    except Exception as error:  # the C parser refusing its input at construction
        composer.failure = error
    else:
        composer.feed(stream)
    problems = composer.diagnostics
    if composer.failure is not None:
        problems.append(_parser_diagnostic(composer.failure, text, file, composer.explicit_end))
    if not problems and (composer.documents == 0 or composer.empty_root):
        problems.append(Diagnostic("empty-file", "the file is empty", file, hint=EMPTY_HINT))
    if not problems and expect_mapping and not isinstance(composer.data, dict):
        where = composer.positions.get(())
        problems.append(
            Diagnostic(
                "not-a-mapping",
                "the top level of a workflow must be a mapping of keys such as version, name and steps",
                file,
                where.line if where else 1,
                where.column if where else 1,
            )
        )
    if problems:
        raise WorkflowError(sorted(problems, key=sort_key))
    return Document(file, text, composer.data, composer.positions, composer.key_positions, directory)


def _parser_diagnostic(error: Exception, text: str, file: str, explicit_end: bool) -> Diagnostic:
    """Turn a ruamel scanner/parser error (or anything else the parser raised) into one diagnostic."""
    from ruamel.yaml.error import YAMLError

    mark: Any = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    index = getattr(error, "position", None)  # ruamel's ReaderError has an index into the text instead
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(index, int):
        line, column = text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)
    else:
        line, column = 1, 1
    found = getattr(error, "problem", None)
    problem = found if isinstance(found, str) else str(error).strip().split("\n", 1)[0]
    if not isinstance(error, YAMLError):  # not a parse error: say plainly what failed
        problem = f"the YAML parser failed: {type(error).__name__}: {problem}"
    problem = problem.rstrip(".").replace("not allowed in this context", "not allowed here") or repr(error)
    lines = text.split("\n", line)
    source = lines[line - 1] if line <= len(lines) else ""
    if explicit_end and "expected <document start>" in problem.replace("'", ""):  # C parser: `...` + more
        hint = "remove the second '---' (or '...') or split the file"
        return Diagnostic("multiple-documents", MULTIPLE_DOCUMENTS, file, line, column, hint=hint)
    if source[column - 1 : column] == "\t":
        if _TAB_INDENT_PREFIX.fullmatch(source[: column - 1]):
            message = "tab character used for indentation; YAML requires spaces"
        else:  # only the pure-Python scanner refuses tabs between tokens
            message = "tab character not allowed here; use spaces"
        return Diagnostic("yaml-tab", message, file, line, column, hint="replace the tab with spaces")
    message = problem[:1].lower() + problem[1:]
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if isinstance(context, str) and context_mark is not None and context_mark.line + 1 != line:
        message += f" {context} started at line {context_mark.line + 1}"
    syntax_hint = next((hint for needle, hint in _SYNTAX_HINTS if needle in problem), None)
    if "{{" in source:
        syntax_hint = 'a value that starts with "{{" must be quoted'
    return Diagnostic("yaml-syntax", message, file, line, column, hint=syntax_hint)
