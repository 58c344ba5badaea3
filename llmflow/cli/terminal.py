"""Text made safe to show on a terminal: the characters it would act on appear as escapes instead."""

from __future__ import annotations

import re

#: Characters a terminal acts on rather than shows: C0 controls but newline and tab, DEL, C1 controls (``\x9b``
#: is a CSI on its own), bidirectional overrides, and lone surrogates (which no encoder can write).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_text(text: str) -> str:
    """``text`` safe to show on a terminal: characters it would act on (an escape sequence that clears the
    screen, sets the title or moves the cursor; a carriage return that overwrites the line) appear as
    ``\\x1b``-style escapes. Step outputs and errors come from models and commands, and file names, workflow
    files and command-line values may come from anyone, so they are untrusted."""
    return _UNPRINTABLE.sub(_escape_character, text)


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
