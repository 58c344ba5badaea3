"""Where a shell would turn a value into code: arithmetic, ``eval``, variable names, scripts for a shell."""

from __future__ import annotations

import re

# A value placed as "${LLMFLOW_V1}" is only ever expanded, never parsed, except in the places listed
# here. bash evaluates arithmetic ($((...)), [[ -eq ]], array subscripts, declare -i) recursively, and
# an operand like a[$(cmd)] runs cmd; a value used as a variable *name* (printf -v, read, declare,
# [[ -v ]]) is subscripted the same way; some commands run their arguments as code; and a value that
# names the command (or sits after a command whose name is not plain text) chooses what runs. The
# lexer refuses a value in any of these positions.

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
COMMAND_NAME = (
    "as a command name: the value would choose what runs (write the command literally, or use the argv form of run)"
)
UNKNOWN_COMMAND = (
    "in the arguments of a command whose name is not plain text (an expansion, quotes or a backslash"
    " decide only at run time what runs, and it could be eval or declare)"
)
_NAME_SINK = "a[...] in a variable name runs commands"
_CODE_RUNNERS = {
    "eval": "in the arguments of 'eval', which runs them as shell code",
    "let": "in the arguments of 'let', which evaluates them as arithmetic",
    "trap": "in the arguments of 'trap', which runs them as shell code",
    "source": "in the arguments of 'source', which runs a file chosen by the value",
    ".": "in the arguments of '.', which runs a file chosen by the value",
    "alias": "in the arguments of 'alias', whose definitions run as shell code",
    "hash": "in the arguments of 'hash', which chooses the program a name runs",
    "enable": "in the arguments of 'enable', which loads code from a file",
    "complete": "in the arguments of 'complete', which runs them as shell code",
    "compgen": "in the arguments of 'compgen', which runs them as shell code",
    "fc": "in the arguments of 'fc', which runs commands",
    "watch": "in the arguments of 'watch', which runs them as shell code",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NAME_TAKERS = _words("read unset mapfile readarray getopts")
_DECLARERS = _words("declare typeset local export readonly")
_SHELLS = _words("sh bash dash zsh ksh ash mksh busybox rbash ksh93 yash posh fish csh tcsh pwsh")
# Options of a shell whose next word is their value (a file the shell runs, in the case of --rcfile).
_SHELL_OPTIONS_WITH_VALUE = _words("-o +o -O +O --rcfile --init-file")
# Words after which the next word is a command name.
_PREFIXES = _words("! { if then else elif do while until")
# Commands that run another command given as their arguments, with their options that take a value.
_WRAPPERS = {
    "command": "",
    "builtin": "",
    "exec": "a",
    "env": "uCS",
    "sudo": "ugCDhprtUT",
    "doas": "uC",
    "nohup": "",
    "nice": "n",
    "time": "fo",
    "timeout": "sk",
    "xargs": "IinPdLsEa",
    "stdbuf": "ioe",
    "coproc": "",
    "setsid": "",
    "unshare": "",
    "ionice": "cnp",
    "runuser": "ugG",
    "chroot": "",
    "flock": "wEn",
    "taskset": "",
    "chrt": "",
}
# Wrappers that take operands before the command they run: chroot DIR, flock FILE, taskset MASK, chrt PRIORITY.
_WRAPPER_OPERANDS = {"chroot": 1, "flock": 1, "taskset": 1, "chrt": 1}
# Commands whose -c option (or --command) is a script for a shell: su -c, runuser -c, script -c, flock -c.
_SCRIPT_OPTION_TAKERS = _words("su runuser script flock sg")
_SCRIPT_WRAPPERS = _SCRIPT_OPTION_TAKERS & frozenset(_WRAPPERS)
# find's actions whose next word is the command that runs.
_FIND_EXEC = _words("-exec -execdir -ok -okdir")
# Variables whose value the shell (or the loader) runs or uses to choose what runs: PS4 is expanded,
# command substitutions included, for every traced command; PATH and LD_PRELOAD choose programs and code.
# And variables that common programs run as a command or load code from (git, ssh, less, man, pagers and
# editors, Python, Node, Perl, Ruby).
_SPECIAL_VARIABLES = _words(
    "PS0 PS1 PS2 PS3 PS4 PROMPT_COMMAND BASH_ENV ENV SHELLOPTS BASHOPTS PATH LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT"
    " GIT_SSH_COMMAND GIT_SSH GIT_EDITOR GIT_PAGER GIT_ASKPASS GIT_EXTERNAL_DIFF GIT_PROXY_COMMAND SSH_ASKPASS"
    " EDITOR VISUAL PAGER MANPAGER LESSOPEN LESSCLOSE BROWSER PYTHONPATH PYTHONSTARTUP PYTHONHOME NODE_OPTIONS"
    " PERL5OPT PERL5LIB RUBYOPT RUBYLIB"
)
_DURATION = re.compile(r"\d+(?:\.\d+)?[smhd]?")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_SHELL_C_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*|-[Cc]ommand|--command")
_TEST_END = re.compile(r"(?:^|(?<=\s))\]\](?=[\s;&|)]|$)")
_TEST_ARITHMETIC_OPERATOR = re.compile(r"(?:^|\s)-(?:eq|ne|lt|le|gt|ge)(?:\s|$)")


def is_assignment(word: str) -> bool:
    """Whether a word starts like ``NAME=`` or ``NAME+=``."""
    return _ASSIGNMENT.match(word) is not None


def _base(word: str | None) -> str | None:
    return word.rsplit("/", 1)[-1] if word else word


def locate_command(words: list[str | None]) -> tuple[bool, str | None]:
    """Whether the simple command's name is among ``words`` yet, and that name.

    Looks through keywords, assignments and wrappers like ``sudo -u bob``. ``words`` are the words seen
    so far, a word holding quotes, expansions or backslashes being None; so ``(True, None)`` means the
    command's name is not plain text.
    """
    # A function body starts a command: f() { ...  or  function f { ...
    index = 2 if words[:2] == [")", "{"] else 3 if words[:1] == ["function"] and words[2:3] == ["{"] else 0
    while index < len(words) and (word := words[index]) is not None:
        if not (word in _PREFIXES or _ASSIGNMENT.match(word)):
            break
        index += 1
    while index < len(words):
        name = words[index]
        wrapper = _base(name)
        if name is None or wrapper not in _WRAPPERS:
            return True, wrapper
        index += 1
        operands = _WRAPPER_OPERANDS.get(wrapper, 0)
        while index < len(words):
            word = words[index]
            if word is not None and word.startswith("-"):
                index += 2 if len(word) == 2 and word[1] in _WRAPPERS[wrapper] else 1
            elif word is not None and (_ASSIGNMENT.match(word) or (wrapper == "timeout" and _DURATION.fullmatch(word))):
                index += 1
            elif operands:
                operands -= 1
                index += 1
            else:
                break
        if operands:  # the value is the wrapper's operand (a folder, a file, a CPU mask), not what runs
            return True, wrapper
    return False, None


def command_name(words: list[str | None]) -> str | None:
    """The command a simple command runs, or None when there is none yet or it is not plain text."""
    return locate_command(words)[1]


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
    assigned = _ASSIGNMENT.match(current or "")
    if assigned and assigned.group(0).rstrip("+=") in _SPECIAL_VARIABLES:
        variable = assigned.group(0).rstrip("+=")
        return (
            f"in an assignment to {variable}, which the shell (or a program it starts) uses as code or to choose"
            " what runs"
        )
    found, name = locate_command(words)
    # su/script run their -c option with a shell; so do the wrappers flock and runuser, after which the
    # command may not be located (their -c takes the place of a command).
    runner = name if found and name in _SCRIPT_OPTION_TAKERS else None
    runner = runner or next((word for word in map(_base, words) if word in _SCRIPT_WRAPPERS), None)
    by_option = previous is not None and (_SHELL_C_OPTION.fullmatch(previous) or previous == "--command")
    if runner is not None and (by_option or (current or "").startswith("--command=")):
        option = previous if by_option else "--command"
        return f"as the command of '{runner} {option}', which a shell runs as code"
    if not found:
        return None if current and _ASSIGNMENT.match(current) else COMMAND_NAME
    if name is None:
        return UNKNOWN_COMMAND
    if name in _CODE_RUNNERS:
        return _CODE_RUNNERS[name]
    if previous is not None and _SHELL_C_OPTION.fullmatch(previous):
        shell = next((_base(word) for word in words[:-1] if _base(word) in _SHELLS), None)
        if shell is not None:
            return (
                f"as the script of '{shell} {previous}', which runs it as shell code (pass the value as an"
                f" argument instead: {shell} -c '... \"$1\"' _ {{{{ value }}}})"
            )
    if name in _SHELLS and _shell_script_pending(words, name):
        return (
            f"as the script (or an option) of '{name}', which runs the file the value names (write the script's"
            " path literally and pass the value after it as an argument)"
        )
    if name == "find" and previous in _FIND_EXEC:
        return f"as the command of 'find {previous}': the value would choose what runs"
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


def _shell_script_pending(words: list[str | None], shell: str) -> bool:
    """Whether a shell named in ``words`` has no script yet, so the next word is its script (or an option):
    it was given no ``-c`` or ``-s`` and no word after its options."""
    start = max(index for index, word in enumerate(words) if _base(word) == shell) + 1
    value_next = False
    for word in words[start:]:
        if value_next:
            value_next = False
            continue
        if word is None:
            return False
        if word in _SHELL_OPTIONS_WITH_VALUE:
            value_next = True
        elif word.startswith("--"):
            continue
        elif word[:1] in "-+" and len(word) > 1:
            if word[0] == "-" and ("c" in word or "s" in word):
                return False
        else:
            return False
    return True


def stdin_hazard(words: list[str | None]) -> str | None:
    """Why a here-document for the current command would be run as code (a shell reading it), if so."""
    name = command_name(words)
    if name is None:
        return "in a here-document for a command that is not written as plain text (it could be a shell)"
    reads_script = name in _SHELLS and not any(w and _SHELL_C_OPTION.fullmatch(w) for w in words)
    if name in ("source", ".") or reads_script:
        return f"in a here-document read by '{name}', which runs it as shell code"
    return None


def test_is_arithmetic(text: str, start: int, end: int) -> bool:
    """Whether the ``[[ ... ]]`` whose contents start at ``start`` compares with -eq, -lt, ..."""
    close = _TEST_END.search(text, start, end)
    return _TEST_ARITHMETIC_OPERATOR.search(text[start : close.start() if close else end]) is not None
