"""A small POSIX/bash lexer that finds the quoting context of each template value in a rendered script."""

from __future__ import annotations

import re
from typing import NamedTuple

from llmflow.expressions import shell_hazards as hazards

SENTINEL = re.compile("\x00(\\d+)\x00")

#: How each placement form refers to the environment variable that holds the value.
FORMS = {"word": '"${%s}"', "single": "'\"${%s}\"'", "double": "${%s}", "heredoc": "${%s}", "comment": "${%s}"}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_END = " \t\n;&|<>()"


class Placement(NamedTuple):
    """One sentinel: its span in the script, the value index and the form of its replacement."""

    start: int
    end: int
    value: int
    form: str


class ShellRefusal(Exception):
    """A value sits where no quoted reference to it would be safe."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


def place_values(script: str) -> list[Placement]:
    """Where each sentinel of ``script`` sits, in order; raises ShellRefusal.

    Values arrive as sentinels ``\\x00<index>\\x00`` (NUL never occurs in workflow text). The lexer
    tracks unquoted text, quotes, backslashes, ``$(...)`` and backticks (each with its own quote
    state), ``${...}``, ``$'...'``, comments, ``case`` patterns, here-documents, arithmetic and bash
    ``[[ ... ]]``. Where no quoted reference is safe (see shell_hazards) it refuses. Misjudged exotic
    syntax costs at most word splitting: an expansion is parsed as code only where it refuses.
    """
    lexer = _Lexer(script)
    lexer.command(None, None)
    return sorted(lexer.placements)


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)
        self.placements: list[Placement] = []
        self.heredocs: list[tuple[str, bool, bool, str | None]] = []

    def at(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos, self.end)

    def next_char(self) -> str:
        return self.text[self.pos + 1] if self.pos + 1 < self.end else ""

    def sentinel(self, form: str, refuse: str | None) -> None:
        match = SENTINEL.match(self.text, self.pos, self.end)
        if match is None:
            raise ShellRefusal("a value's placeholder is damaged", self.pos)
        if refuse:
            raise ShellRefusal(refuse, self.pos)
        self.placements.append(Placement(match.start(), match.end(), int(match.group(1)), form))
        self.pos = match.end()

    # --- unquoted shell code ---------------------------------------------------------------------------

    def command(self, closer: str | None, refuse: str | None) -> None:
        """Lex commands until ``closer`` (``)``, a backquote, ``]]``) or the end."""
        depth = 0
        words: list[str | None] = []
        word: str | None = ""
        in_word = False
        redirect: str | None = None  # the redirection operator whose target is the next word
        # ``case`` statements: their patterns end with a ")" that closes nothing.
        cases = 0
        case_word = False  # between "case" and "in"
        pattern = False  # the next ")" ends a case pattern

        def finish() -> None:
            nonlocal word, in_word, redirect, cases, case_word, pattern
            if in_word:
                if redirect is None:
                    if word == "case" and not words:
                        case_word = True
                    elif word == "in" and case_word:
                        cases, case_word, pattern = cases + 1, False, True
                    elif word == "esac" and cases and (pattern or not words):
                        cases, pattern = cases - 1, False
                    words.append(word)
                redirect = None
            word, in_word = "", False

        def taint() -> None:
            nonlocal word, in_word
            if not (word and hazards.is_assignment(word)):  # FOO="$x" is still an assignment
                word = None
            in_word = True

        def hazard() -> str | None:
            if refuse or redirect == "<<<":
                return refuse or hazards.stdin_hazard(words)
            if redirect is not None:  # a file name or descriptor: data
                return None
            return hazards.value_hazard(words, word if in_word else "", in_test=closer == "]]")

        while self.pos < self.end:
            char = self.text[self.pos]
            if char == "\x00":
                self.sentinel("word", hazard())
                taint()
            elif char == "\\":
                if self.next_char() == "\x00":
                    raise ShellRefusal(hazards.BACKSLASH, self.pos + 1)
                if self.next_char() != "\n":
                    taint()
                self.pos += 2
            elif char in "'\"":
                danger = hazard()
                taint()
                self.pos += 1
                self.single(danger) if char == "'" else self.double(danger)
            elif char == "`":
                self.pos += 1
                if closer == "`":
                    return
                danger = hazard()
                taint()
                self.command("`", danger)
            elif char == "$":
                danger = hazard()
                taint()
                self.dollar(danger)
            elif char == "#" and not in_word:
                self.comment(refuse)
            elif (
                char == "["
                and not in_word
                and self.at("[[")
                and self.text[self.pos + 2 : self.pos + 3].isspace()
                and not hazards.locate_command(words)[0]  # [[ is a keyword only where a command starts
            ):
                self.pos += 2
                arithmetic = hazards.test_is_arithmetic(self.text, self.pos, self.end)
                self.command("]]", refuse or (hazards.TEST_ARITHMETIC if arithmetic else None))
            elif char == "]" and closer == "]]" and not in_word and self.at("]]"):
                self.pos += 2
                return
            elif char == "[" and (
                (in_word and word is not None and _NAME.fullmatch(word))
                or (not in_word and self.next_char() not in " \t\n[")
            ):
                taint()
                self.pos += 1
                self.nested(hazards.SUBSCRIPT, "[", "]", stop="\n;&|")
            elif char in " \t":
                finish()
                self.pos += 1
            elif char == "\n":
                finish()
                words = []
                self.pos += 1
                if self.heredocs:
                    self.read_heredocs()
            elif char in "<>" or (char == "&" and self.next_char() == ">"):
                finish()
                if self.at("<<<"):
                    self.pos += 3
                    redirect = "<<<"
                elif self.at("<<"):
                    self.pos += 2
                    strip = self.at("-")
                    self.pos += 1 if strip else 0
                    self.heredoc_delimiter(strip, refuse or hazards.stdin_hazard(words))
                elif self.at("<(") or self.at(">("):
                    self.pos += 2
                    self.command(")", refuse)
                else:  # < > >> >| <> >& <& &> &>>
                    self.pos += 1
                    while self.pos < self.end and self.text[self.pos] in "<>|&":
                        self.pos += 1
                    redirect = ">"
            elif char in ";&|":
                finish()
                words = []
                if cases and (self.at(";;") or self.at(";&")):
                    pattern = True
                    self.pos += 1
                self.pos += 1
            elif char == "(" and pattern and not in_word:
                self.pos += 1  # the optional "(" before a case pattern
            elif char == "(":
                finish()
                if self.at("(("):
                    self.pos += 2
                    self.arithmetic("))")
                else:
                    depth += 1
                    words = []
                    self.pos += 1
            elif char == ")":
                finish()
                self.pos += 1
                if pattern:
                    pattern = False
                    words = []
                    continue
                if closer == ")" and depth == 0:
                    return
                depth = max(depth - 1, 0)
                words = [")"]  # what follows a subshell (redirections) belongs to it
            else:
                if word is not None:
                    word += char
                in_word = True
                self.pos += 1

    def dollar(self, refuse: str | None) -> None:
        """Lex an expansion starting at ``$``."""
        if self.at("$(("):
            self.pos += 3
            self.arithmetic("))")
        elif self.at("$("):
            self.pos += 2
            self.command(")", refuse)
        elif self.at("${"):
            self.pos += 2
            self.nested(hazards.PARAMETER, "{", "}")
        elif self.at("$["):
            self.pos += 2
            self.arithmetic("]")
        elif self.at("$'"):
            self.pos += 2
            self.ansi_c()
        elif self.at('$"'):
            self.pos += 2
            self.double(refuse)
        elif self.next_char() == "\x00":
            raise ShellRefusal(hazards.AFTER_DOLLAR, self.pos + 1)
        else:
            self.pos += 1

    # --- quoted text --------------------------------------------------------------------------------

    def single(self, refuse: str | None) -> None:
        while self.pos < self.end:
            char = self.text[self.pos]
            if char == "'":
                self.pos += 1
                return
            if char == "\x00":
                self.sentinel("single", refuse)
            else:
                self.pos += 1

    def double(self, refuse: str | None, *, heredoc: bool = False) -> None:
        """Lex double-quoted text (or, with ``heredoc``, an unquoted here-document body) to its end."""
        while self.pos < self.end:
            char = self.text[self.pos]
            if char == '"' and not heredoc:
                self.pos += 1
                return
            if char == "\\":
                if self.next_char() == "\x00":
                    raise ShellRefusal(hazards.BACKSLASH, self.pos + 1)
                self.pos += 2
            elif char == "$":
                self.dollar(refuse)
            elif char == "`":
                self.pos += 1
                self.command("`", refuse or (None if heredoc else hazards.BACKTICK_IN_QUOTES))
            elif char == "\x00":
                self.sentinel("heredoc" if heredoc else "double", refuse)
            else:
                self.pos += 1

    def ansi_c(self) -> None:
        while self.pos < self.end:
            char = self.text[self.pos]
            if char == "\x00":
                raise ShellRefusal(hazards.ANSI_C, self.pos)
            self.pos += 2 if char == "\\" else 1
            if char == "'":
                return

    def comment(self, refuse: str | None) -> None:
        while self.pos < self.end and self.text[self.pos] != "\n":
            if self.text[self.pos] == "\x00":
                self.sentinel("comment", refuse)
            else:
                self.pos += 1

    # --- regions where no value may appear ------------------------------------------------------------

    def nested(self, reason: str, opener: str, closer: str, stop: str = "") -> None:
        """Skip a bracketed region (tracking nesting and quotes), refusing any value inside."""
        depth = 0
        while self.pos < self.end:
            char = self.text[self.pos]
            if char == "\x00":
                raise ShellRefusal(reason, self.pos)
            if char in stop and depth == 0:
                return
            if char == opener:
                depth += 1
                self.pos += 1
            elif char == closer:
                self.pos += 1
                if depth == 0:
                    return
                depth -= 1
            elif char == "\\":
                self.pos += 2
            elif char == "'":
                self.pos += 1
                self.single(reason)
            elif char == '"':
                self.pos += 1
                self.double(reason)
            elif char == "`":
                self.pos += 1
                self.command("`", reason)
            elif char == "$":
                self.dollar(reason)
            else:
                self.pos += 1

    def arithmetic(self, closer: str) -> None:
        if closer == "]":
            self.nested(hazards.ARITHMETIC, "[", "]")
            return
        self.nested(hazards.ARITHMETIC, "(", ")")
        if self.at(")"):
            self.pos += 1

    # --- here-documents -----------------------------------------------------------------------------

    def heredoc_delimiter(self, strip: bool, refuse: str | None) -> None:
        while self.pos < self.end and self.text[self.pos] in " \t":
            self.pos += 1
        chars: list[str] = []
        quoted = False
        while self.pos < self.end and self.text[self.pos] not in _WORD_END:
            char = self.text[self.pos]
            if char == "\x00":
                raise ShellRefusal(hazards.DELIMITER, self.pos)
            if char in "'\"":
                close = self.text.find(char, self.pos + 1, self.end)
                close = self.end if close < 0 else close
                if "\x00" in self.text[self.pos : close]:
                    raise ShellRefusal(hazards.DELIMITER, self.pos)
                chars.append(self.text[self.pos + 1 : close])
                quoted = True
                self.pos = close + 1
            elif char == "\\":
                chars.append(self.next_char())
                quoted = True
                self.pos += 2
            else:
                chars.append(char)
                self.pos += 1
        if chars or quoted:
            self.heredocs.append(("".join(chars), quoted, strip, refuse))

    def read_heredocs(self) -> None:
        """Read the bodies of the pending here-documents, which start after the current line."""
        pending, self.heredocs = self.heredocs, []
        for delimiter, quoted, strip, refuse in pending:
            body_start = body_end = self.pos
            resume = self.end
            while self.pos < self.end:
                newline = self.text.find("\n", self.pos, self.end)
                line_end = self.end if newline < 0 else newline
                line = self.text[self.pos : line_end]
                if (line.lstrip("\t") if strip else line) == delimiter:
                    body_end, resume = self.pos, min(line_end + 1, self.end)
                    break
                self.pos = body_end = min(line_end + 1, self.end)
            if quoted:
                hit = self.text.find("\x00", body_start, body_end)
                if hit >= 0:
                    raise ShellRefusal(hazards.QUOTED_HEREDOC, hit)
            else:
                outer_end, self.pos, self.end = self.end, body_start, body_end
                self.double(refuse, heredoc=True)
                self.end = outer_end
            self.pos = resume
