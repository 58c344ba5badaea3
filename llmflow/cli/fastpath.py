"""``llmflow run`` and ``llmflow resume`` without building typer's command tree (a cold start's largest import).

Only a command line this parser fully understands takes the fast path: the command first, then its own
options and argument as ``--name value``, ``--name=value`` or ``-i value``. Anything else (help, another
command, an unknown, abbreviated or combined option, a missing or questionable value, a path naming a
folder, shell completion) goes to the typer app unchanged, so help texts and usage errors stay typer's.
A test keeps the tables below equal to the typer commands' parameters (``llmflow/cli/app.py``).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

#: An option's kind: ``flag`` (no value), ``value``, ``values`` (repeatable), or ``path`` (a value naming a file).
FLAG, VALUE, VALUES, PATH = "flag", "value", "values", "path"

_REPORTING: dict[str, tuple[str, str]] = {
    "--input": ("inputs", VALUES),
    "-i": ("inputs", VALUES),
    "--json": ("json_output", FLAG),
    "--events": ("events", VALUE),
    "--quiet": ("quiet", FLAG),
    "-q": ("quiet", FLAG),
    "--state-dir": ("state_dir", VALUE),
    "--durability": ("durability", VALUE),
    "--webhook": ("webhook", VALUE),
}

#: Each command's options: how it is spelt on the command line -> (the typer parameter's name, kind).
OPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "run": {
        **_REPORTING,
        "--inputs-file": ("inputs_file", PATH),
        "--dry-run": ("dry_run", FLAG),
    },
    "resume": {
        **_REPORTING,
        "--last": ("last", FLAG),
        "--from": ("from_step", VALUE),
        "--workflow": ("workflow_file", PATH),
        "--approve": ("approve", FLAG),
        "--reject": ("reject", FLAG),
        "--comment": ("comment", VALUE),
    },
}
#: Each command's one positional argument: (the typer parameter's name, required, a file path).
ARGUMENTS: dict[str, tuple[str, bool, bool]] = {"run": ("file", True, True), "resume": ("run_id", False, False)}
#: The values an option accepts, when it accepts only some.
CHOICES: dict[str, tuple[str, ...]] = {"events": ("jsonl",), "durability": ("strict", "batch", "none")}
#: Values of options not given (a flag is False, a repeatable option an empty list, any other value None).
DEFAULTS: dict[str, Any] = {"durability": "strict"}
#: Whether typer expands wildcards in the arguments itself (on Windows, where the shell does not).
EXPANDS_WILDCARDS = os.name == "nt"


def parse(args: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The command and its parameters by typer name, or None when typer must decide what ``args`` mean."""
    if not args or args[0] not in OPTIONS or _completing():
        return None
    if EXPANDS_WILDCARDS and any(char in arg for arg in args for char in "*?["):
        return None
    command, table = args[0], OPTIONS[args[0]]
    values: dict[str, Any] = {}
    for param, kind in table.values():
        values[param] = False if kind == FLAG else [] if kind == VALUES else DEFAULTS.get(param)
    positional: list[str] = []
    rest = iter(args[1:])
    for arg in rest:
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        name, equals, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in table:
            return None  # --help, -h, --, -qi, -ik=v, a typo: typer's to answer
        param, kind = table[name]
        if kind == FLAG:
            if equals:
                return None
            values[param] = True
            continue
        value = attached if equals else next(rest, None)
        if not _plain(value) or (param in CHOICES and value not in CHOICES[param]):
            return None
        if kind == VALUES:
            values[param].append(value)
        elif kind == PATH:
            if not _file_path(value):
                return None
            values[param] = Path(value)
        else:
            values[param] = value  # given twice, the last one wins (as with click)
    param, required, is_path = ARGUMENTS[command]
    if len(positional) > 1 or (required and not positional):
        return None
    if positional:
        if not _plain(positional[0]) or (is_path and not _file_path(positional[0])):
            return None
        values[param] = Path(positional[0]) if is_path else positional[0]
    else:
        values[param] = None
    return command, values


def _plain(value: str | None) -> TypeGuard[str]:
    """A value typer would take as it is (one that starts with ``-`` or is empty is left to typer)."""
    return value is not None and value != "" and not value.startswith("-")


def _file_path(value: str) -> bool:
    """Whether typer's ``Path(dir_okay=False)`` takes ``value`` as it is: missing, or a readable non-folder."""
    try:
        mode = os.stat(value).st_mode
    except (OSError, ValueError):  # missing (typer takes it), or a NUL byte (typer's to refuse)
        return "\0" not in value
    return not stat.S_ISDIR(mode) and os.access(value, os.R_OK)


def _completing() -> bool:
    """Whether a shell asks for completions (``_LLMFLOW_COMPLETE`` and the like): typer's business."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


# -- the commands, as app.py's run and resume call them ----------------------------------------------------
def run(values: dict[str, Any]) -> int:
    """``llmflow run`` (as ``app.run``)."""
    from llmflow.cli.run import run_workflow

    return run_workflow(
        values["file"], values["inputs"], values["inputs_file"], dry_run=values["dry_run"], reporting=_reporting(values)
    )


def resume(values: dict[str, Any]) -> int:
    """``llmflow resume`` (as ``app.resume``)."""
    from llmflow.cli.run import resume_workflow

    return resume_workflow(
        values["run_id"],
        last=values["last"],
        from_step=values["from_step"],
        workflow_file=values["workflow_file"],
        approve=values["approve"],
        reject=values["reject"],
        comment=values["comment"],
        assignments=values["inputs"],
        reporting=_reporting(values),
    )


def _reporting(values: dict[str, Any]) -> Any:
    from llmflow.cli.run import Reporting

    return Reporting(
        values["json_output"],
        values["events"] is not None,
        values["quiet"],
        values["state_dir"],
        values["durability"],
        values["webhook"],
    )


COMMANDS: dict[str, Callable[[dict[str, Any]], int]] = {"run": run, "resume": resume}


def main(args: list[str]) -> int | None:
    """Run ``args`` on the fast path and return the exit code; None when the typer app must take them.

    Ends as the typer app does: an llmflow error as ``error: ...`` and its exit code (``run_app``), Ctrl-C
    with 130, a closed pipe with 1 and nothing more written (typer's ``_main``).
    """
    parsed = parse(args)
    if parsed is None:
        return None
    command, values = parsed
    from llmflow.cli import exits
    from llmflow.errors import LlmflowError

    try:
        return COMMANDS[command](values)
    except LlmflowError as error:
        from llmflow.cli.terminal import terminal_text

        sys.stderr.write(terminal_text(f"error: {error}") + "\n")  # it may quote a file name or a value given
        return exits.exit_code_for(error)
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except BrokenPipeError:
        _silence_output()
        return exits.FAILED


def _silence_output() -> None:
    """Send what is left to write to the null device, so the flush at exit cannot fail again."""
    null = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(null, stream.fileno())
        except (OSError, ValueError):
            continue
