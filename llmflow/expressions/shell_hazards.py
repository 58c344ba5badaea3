"""Where a shell would turn a value into code: arithmetic, ``eval``, variable names, scripts for a shell."""

from __future__ import annotations

import re

# A value placed as "${LLMFLOW_V1}" is only ever expanded, never parsed, except in the places listed
# here. bash evaluates arithmetic ($((...)), [[ -eq ]], array subscripts, declare -i) recursively, and
# an operand like a[$(cmd)] runs cmd; a value used as a variable *name* (printf -v, read, declare,
# [[ -v ]]) is subscripted the same way; and some commands run their arguments as code. The lexer
# refuses a value in any of these positions.

ARITHMETIC = (
    "inside shell arithmetic ($((...)), ((...)) or $[...]): bash evaluates the value as an expression,"
    " and an expression like a[$(cmd)] runs a command"
)
TEST_ARITHMETIC = (
    "inside [[ ... ]] with -eq/-ne/-lt/-le/-gt/-ge: bash evaluates both sides as arithmetic, which can run"
    " commands (compare with = or use [ ... ] instead)"
)
SUBSCRIPT = "inside an array subscript [...]: bash evaluates it as arithmetic, which can run commands"
PARAMETER = "inside ${...}: parts of a parameter expansion are evaluated as arithmetic or patterns"
BACKSLASH = "right after a backslash"
AFTER_DOLLAR = "right after '$'"
ANSI_C = "inside $'...'"
DELIMITER = "as a here-document delimiter"
BACKTICK_IN_QUOTES = "inside `...` within double quotes (use $(...) instead of backquotes)"
QUOTED_HEREDOC = (
    "inside a here-document with a quoted delimiter (<<'EOF'): its body is never expanded, so the value"
    " cannot be passed in; use an unquoted delimiter"
)
_NAME_SINK = "a[...] in a variable name runs commands"
_CODE_RUNNERS = {
    "eval": "in the arguments of 'eval', which runs them as shell code",
    "let": "in the arguments of 'let', which evaluates them as arithmetic",
    "trap": "in the arguments of 'trap', which runs them as shell code",
    "source": "in the arguments of 'source', which runs a file chosen by the value",
    ".": "in the arguments of '.', which runs a file chosen by the value",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NAME_TAKERS = _words("read unset mapfile readarray getopts")
_DECLARERS = _words("declare typeset local export readonly")
_SHELLS = _words("sh bash dash zsh ksh ash mksh busybox")
_WRAPPERS = _words("command builtin exec env sudo doas nohup nice time timeout xargs stdbuf")
_RESERVED = _words("! { } if then else elif fi do done while until for in case esac time function select")
_SKIPPED = re.compile(r"-.*|[A-Za-z_][A-Za-z0-9_]*=.*|\d+(?:\.\d+)?[smhd]?")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_SHELL_C_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")
_TEST_END = re.compile(r"(?:^|(?<=\s))\]\](?=[\s;&|)]|$)")
_TEST_ARITHMETIC_OPERATOR = re.compile(r"(?:^|\s)-(?:eq|ne|lt|le|gt|ge)(?:\s|$)")


def _base(word: str | None) -> str | None:
    return word.rsplit("/", 1)[-1] if word else word


def command_name(words: list[str | None]) -> str | None:
    """The command a simple command runs, looking through assignments and wrappers like ``sudo``.

    ``words`` are the words seen so far; a word holding quotes or expansions is None.
    """
    rest = iter(words)
    name = next((w for w in rest if w is None or not (w in _RESERVED or _ASSIGNMENT.match(w))), None)
    while _base(name) in _WRAPPERS:
        name = next((word for word in rest if word is None or not _SKIPPED.fullmatch(word)), None)
    return _base(name)


def value_hazard(words: list[str | None], current: str | None, *, in_test: bool = False) -> str | None:
    """Why a value in the current simple command would become code, if it would.

    ``words`` are the finished words of the command, ``current`` the plain text of the word the value
    is part of so far (None when it holds quotes or expansions); ``in_test`` is True inside ``[[ ]]``.
    """
    previous = words[-1] if words else None
    if in_test:
        if previous in ("-v", "-R"):
            return f"after {previous} in [[ ... ]], where it is a variable name ({_NAME_SINK})"
        return None
    name = command_name(words)
    if name in _CODE_RUNNERS:
        return _CODE_RUNNERS[name]
    if previous is not None and _SHELL_C_OPTION.fullmatch(previous):
        shell = next((_base(word) for word in words[:-1] if _base(word) in _SHELLS), None)
        if shell is not None:
            return (
                f"as the script of '{shell} {previous}', which runs it as shell code (pass the value as an"
                f" argument instead: {shell} -c '... \"$1\"' _ {{{{ value }}}})"
            )
    if name in _NAME_TAKERS:
        return f"in the arguments of '{name}', which are variable names ({_NAME_SINK})"
    if name in ("printf", "test", "[") and previous in ("-v", "-R"):
        return f"after '{name} {previous}', where it is a variable name ({_NAME_SINK})"
    if name in _DECLARERS:
        options = [word for word in words if word and word.startswith("-")]
        if any("i" in option or "n" in option for option in options):
            return f"in '{name} -i' or '{name} -n', which evaluate values as arithmetic or names"
        if current is None or "=" not in current:
            return f"as a variable name in '{name}' ({_NAME_SINK}); use {name} NAME={{{{ value }}}}"
    return None


def stdin_hazard(words: list[str | None]) -> str | None:
    """Why a here-document for the current command would be run as code (a shell reading it), if so."""
    name = command_name(words)
    reads_script = name in _SHELLS and not any(w and _SHELL_C_OPTION.fullmatch(w) for w in words)
    if name in ("source", ".") or reads_script:
        return f"in a here-document read by '{name}', which runs it as shell code"
    return None


def test_is_arithmetic(text: str, start: int, end: int) -> bool:
    """Whether the ``[[ ... ]]`` whose contents start at ``start`` compares with -eq, -lt, ..."""
    close = _TEST_END.search(text, start, end)
    return _TEST_ARITHMETIC_OPERATOR.search(text[start : close.start() if close else end]) is not None
