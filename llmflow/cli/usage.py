"""Command-line mistakes (an unknown option, a missing value, a bad choice …) as one line naming the command."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.core import TyperCommand

from llmflow.cli.terminal import terminal_text

#: typer's own command-line errors (an unknown option, a missing argument, a bad choice …): the base class of
#: the one it exports, found through it because the module defining it is private to typer.
COMMAND_LINE_ERROR: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"
)


class Command(TyperCommand):
    """A typer command whose command-line errors all know the command they are about, and whose help
    paragraphs are wrapped to the terminal.

    The option parser raises some (an option given without its value) with no context, so the message could
    only name the program; this gives them the command's context, as typer does for the others.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            # A docstring is wrapped to fit the source; rich keeps its line breaks, which leaves ragged lines
            # on a terminal narrower than the source. Each paragraph becomes one line, wrapped to the terminal.
            self.help = "\n\n".join(" ".join(part.split()) for part in self.help.split("\n\n"))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except COMMAND_LINE_ERROR as error:
            if getattr(error, "ctx", False) is None:
                error.ctx = ctx  # type: ignore[attr-defined]  # a click UsageError, reached through its base
                error.cmd = self  # type: ignore[attr-defined]
            raise


def usage_error_line(error: Exception) -> str:
    """A command-line error as one line: the command, what is wrong, and where help is."""
    message = " ".join(str(getattr(error, "format_message", error.__str__)()).split()).rstrip(".")
    context = getattr(error, "ctx", None)
    command = getattr(context, "command_path", "") or "llmflow"
    extra = re.match(r"got unexpected extra argument(?:\(s\)|s)? \((.*)\)$", message, re.IGNORECASE)
    params = getattr(getattr(context, "command", None), "params", ())
    if extra and "=" in extra.group(1) and any("-i" in param.opts for param in params):
        first = next(word for word in extra.group(1).split() if "=" in word)
        message += f"; an input is given with -i: -i {first}"  # `llmflow run flow.yaml name=Ada`
    misplaced = _commands_taking(error, context)
    if misplaced:
        option = getattr(error, "option_name", "")
        message = (
            f"no such option: {option}; it is an option of {', '.join(misplaced)}: write it after the command, "
            f"e.g. {command} {misplaced[0]} ... {option}"
        )
    line = f"error: {command}: {message[:1].lower()}{message[1:]} (see '{command} --help')"
    return terminal_text(line)  # it may quote what was typed


def _commands_taking(error: Exception, context: Any) -> list[str]:
    """The subcommands that take the unknown option a group was given (``llmflow -i x=1 run f.yaml``)."""
    option = getattr(error, "option_name", None)
    commands = getattr(getattr(context, "command", None), "commands", None)
    if not option or not isinstance(commands, dict):
        return []
    return [
        name
        for name, sub in commands.items()
        if any(option in (*param.opts, *param.secondary_opts) for param in getattr(sub, "params", ()))
    ]
