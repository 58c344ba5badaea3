"""Text made safe to show on a terminal: the characters it would act on appear as escapes instead."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import re
    from typing import IO

#: Characters a terminal acts on rather than shows: C0 controls but newline and tab, DEL, C1 controls (``\x9b``
#: is a CSI on its own), bidirectional overrides, and lone surrogates (which no encoder can write).
_UNPRINTABLE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"


def terminal_text(text: str) -> str:
    """``text`` safe to show on a terminal: characters it would act on (an escape sequence that clears the
    screen, sets the title or moves the cursor; a carriage return that overwrites the line) appear as
    ``\\x1b``-style escapes. Step outputs and errors come from models and commands, and file names, workflow
    files and command-line values may come from anyone, so they are untrusted."""
    import re  # here: a cold run that shows nothing needs neither the module nor the pattern

    return re.sub(_UNPRINTABLE, _escape_character, text)


def terminal_json(text: str) -> str:
    """JSON text (from ``json.dumps`` with ``ensure_ascii=False``) safe to show on a terminal and still the same
    JSON: the characters :func:`terminal_text` escapes become ``\\u009b``-style escapes. ``json.dumps`` escapes
    C0 controls itself, but not C1 controls (``\\x9b`` is a CSI on its own), DEL or bidirectional overrides,
    and outside strings JSON text holds none of them."""
    import re

    return re.sub(_UNPRINTABLE, _escape_in_json, text)


def _escape_in_json(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal that can draw a live display."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def color_for(stream: IO[str]) -> bool:
    """Whether to colour text written to ``stream``: only on a terminal, and not when ``NO_COLOR`` is set to
    anything but the empty string (https://no-color.org, as rich reads it for the live display and tables)."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")
