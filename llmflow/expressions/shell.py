"""The shell rule: template values in a ``run`` script travel as environment variables, never as code."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmflow.errors import ExpressionError
from llmflow.expressions.references import PluginNames, Reference
from llmflow.expressions.templates import fast_path, is_template
from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from jinja2 import nodes

#: Names of the environment variables that carry the values: LLMFLOW_V1, LLMFLOW_V2, ...
ENV_PREFIX = "LLMFLOW_V"
#: Largest value (UTF-8 bytes) one environment variable can carry on Linux (MAX_ARG_STRLEN is 128 KiB).
MAX_VALUE_BYTES = 128 * 1024 - 64
_TOKEN = re.compile("\x00(\\d{12}):(\\d+)\x00")
_OUTPUT = re.compile(r"\{\{.*?\}\}", re.S)


class ShellCommand(FrozenRecord):
    """What to run: ``script`` for ``sh -c``/``bash -c``, with ``env`` added to the environment.

    (Not a dataclass, which would cost every run a millisecond at import: see ``llmflow.records``.)
    """

    __slots__ = ("env", "script")
    script: str
    env: Mapping[str, str]

    def __init__(self, script: str, env: Mapping[str, str] | None = None) -> None:
        self._set(script=script, env=env if env is not None else MappingProxyType({}))


class _Recorder:
    """Collects the values of one render and hands out their sentinels."""

    def __init__(self) -> None:
        # 12 random digits (``secrets`` would import ``random`` and ``hmac``, ~5 ms of a cold run)
        self.nonce = f"{int.from_bytes(os.urandom(8), 'big') % 10**12:012d}"
        self.values: list[str] = []

    def record(self, text: str) -> str:
        if "\x00" not in text:
            return self._new(text)
        # Text that already holds sentinels (a {% set %} block, a macro's output) keeps them; the text
        # around them is data like any other value.
        parts: list[str] = []
        position = 0
        for match in _TOKEN.finditer(text):
            if match.group(1) != self.nonce or int(match.group(2)) >= len(self.values):
                continue
            if match.start() > position:
                parts.append(self._new(text[position : match.start()]))
            parts.append(match.group(0))
            position = match.end()
        if position < len(text):
            parts.append(self._new(text[position:]))
        return "".join(parts)

    def _new(self, text: str) -> str:
        if "\x00" in text:
            raise ExpressionError("a value contains a NUL character, which a command's environment cannot hold")
        self.values.append(text)
        return f"\x00{self.nonce}:{len(self.values) - 1}\x00"


class ShellTemplate:
    """A compiled ``run`` string; ``render`` gives the script and the environment holding the values.

    Rendering uses a finalize function that records each ``{{ }}`` value and leaves a NUL-delimited
    sentinel in its place; the shell lexer then decides, from the quoting the author wrote around it,
    how each sentinel becomes a quoted reference to ``$LLMFLOW_V<n>``, or refuses. ``plugin_filters``: the
    filters it uses that a plugin must register.
    """

    __slots__ = ("_tree", "plugin_filters", "references", "source")

    def __init__(
        self,
        source: str,
        references: frozenset[Reference],
        tree: nodes.Template | None,
        plugin_filters: PluginNames = (),
    ) -> None:
        self.source = source
        self.references = references
        self._tree = tree
        self.plugin_filters = plugin_filters

    def __repr__(self) -> str:
        return f"ShellTemplate({self.source!r})"

    def render(self, context: Mapping[str, Any]) -> ShellCommand:
        """Render against ``context``; raises ExpressionError."""
        if not is_template(self.source):
            return ShellCommand(self.source)
        from llmflow.expressions import direct

        recorder = _Recorder()
        text = direct.render(self.source, context, native=False, record=recorder.record)
        if text is not direct.JINJA:
            return self._build(text, recorder)
        from llmflow.expressions.rendering import load, render_text
        from llmflow.expressions.sandbox import RenderState

        recorder = _Recorder()  # afresh: the direct attempt may have recorded values
        template = load(self.source, False, "shell", self._tree)
        text = render_text(template, context, self.source, RenderState(context, recorder.record))
        return self._build(text, recorder)

    def _build(self, text: str, recorder: _Recorder) -> ShellCommand:
        tokens = [m for m in _TOKEN.finditer(text) if m.group(1) == recorder.nonce]
        if text.count("\x00") != 2 * len(tokens) or any(int(m.group(2)) >= len(recorder.values) for m in tokens):
            raise ExpressionError(
                "a template value was altered after it was rendered (by a {% filter %} block?);"
                " apply filters inside {{ ... }} instead",
                source=self.source,
            )
        script = _TOKEN.sub(lambda match: f"\x00{match.group(2)}\x00", text)
        # here: the shell lexer (with its tables) is needed only for commands with values in them
        from llmflow.expressions.shell_lexer import FORMS, ShellRefusal, place_values

        try:
            placements = place_values(script)
        except ShellRefusal as refusal:
            line = script.count("\n", 0, refusal.position) + 1
            where = f" (line {line} of the rendered command)" if "\n" in script.strip() else ""
            raise ExpressionError(
                f"a template value cannot be used {refusal.reason}{where}", source=self.source
            ) from None
        names: dict[str, str] = {}  # one variable per distinct value, numbered by first appearance
        env: dict[str, str] = {}
        parts: list[str] = []
        position = 0
        for placement in placements:
            value = recorder.values[placement.value]
            name = names.get(value)
            if name is None:
                name = names[value] = f"{ENV_PREFIX}{len(names) + 1}"
                env[name] = _checked(value, self.source)
            parts.append(script[position : placement.start])
            parts.append(FORMS[placement.form] % name)
            position = placement.end
        parts.append(script[position:])
        return ShellCommand("".join(parts), MappingProxyType(env))


def _checked(value: str, source: str) -> str:
    try:
        size = len(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        raise ExpressionError("a value contains characters that cannot be encoded", source=source) from None
    if size > MAX_VALUE_BYTES:
        raise ExpressionError(
            f"a value of {size} bytes is too large for a command's environment (at most {MAX_VALUE_BYTES});"
            " write it to a file or pipe it instead",
            source=source,
        )
    return value


@functools.lru_cache(maxsize=4096)
def compile_shell(source: str, plugins: bool = False) -> ShellTemplate:
    """Check a ``run`` string; when it has no ``{% %}`` blocks, where its values land is checked too.

    ``plugins``: a filter the sandbox does not know is left for a plugin (see ``compile_template``).
    """
    if "\x00" in source:
        raise ExpressionError("the command contains a NUL character", source=source, offset=source.index("\x00"))
    if not is_template(source):
        return ShellTemplate(source, frozenset(), None)
    fast = fast_path(source)
    if fast is not None:
        _check_placements(source, _pieces_of_simple(source))
        return ShellTemplate(source, fast[0], None)
    from llmflow.expressions.rendering import parse, plugin_filters, references

    tree = parse(source, "shell", plugins=plugins)
    pieces = _pieces_of_tree(tree, source)
    if pieces is not None:
        _check_placements(source, pieces)
    try:
        unknown = plugin_filters(tree, source, "shell") if plugins else ()
        return ShellTemplate(source, references(tree), tree, unknown)
    except RecursionError:
        raise ExpressionError("the command is nested too deeply", source=source) from None


# A piece is literal script text, or None for a value (with the offset of its ``{{`` in the source).
_Pieces = list[tuple[str | None, int]]


def _pieces_of_simple(source: str) -> _Pieces:
    """Split a fast-path template (only ``{{ path|filters }}``) into text and values, as Jinja would."""
    pieces: _Pieces = []
    position = 0
    strip_next = False
    for match in _OUTPUT.finditer(source):
        text = source[position : match.start()]
        text = text.lstrip() if strip_next else text
        pieces.append((text.rstrip() if match.group(0).startswith("{{-") else text, position))
        pieces.append((None, match.start()))
        strip_next = match.group(0).endswith("-}}")
        position = match.end()
    tail = source[position:]
    pieces.append((tail.lstrip() if strip_next else tail, position))
    return pieces


def _pieces_of_tree(tree: nodes.Template, source: str) -> _Pieces | None:
    """The same for a parsed template without blocks; None when it has blocks."""
    from jinja2 import nodes

    from llmflow.expressions.rendering import line_offset

    if any(not isinstance(node, nodes.Output) for node in tree.body):
        return None
    pieces: _Pieces = []
    for output in tree.body:
        assert isinstance(output, nodes.Output)
        for child in output.nodes:
            offset = line_offset(source, child.lineno) or 0
            pieces.append((child.data, offset) if isinstance(child, nodes.TemplateData) else (None, offset))
    return pieces


def _check_placements(source: str, pieces: _Pieces) -> None:
    """Lex the script with a sentinel for each value, so misplaced values fail at compile time."""
    parts: list[str] = []
    offsets: list[int] = []
    for text, offset in pieces:
        if text is None:
            parts.append(f"\x00{len(offsets)}\x00")
            offsets.append(offset)
        else:
            parts.append(text)
    script = "".join(parts)
    from llmflow.expressions.shell_lexer import ShellRefusal, place_values

    try:
        place_values(script)
    except ShellRefusal as refusal:
        index = min(script.count("\x00", 0, refusal.position + 1) // 2, len(offsets) - 1)
        offset = offsets[index]
        shown = _OUTPUT.match(source, offset)
        what = shown.group(0) if shown else "a template value"
        raise ExpressionError(f"{what} cannot be used {refusal.reason}", source=source, offset=offset) from None
