"""The typer application: every command, each a thin call into the Python API."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from llmflow import __version__
from llmflow.cli import exits
from llmflow.cli.templates import templates_app
from llmflow.cli.terminal import terminal_text
from llmflow.cli.usage import COMMAND_LINE_ERROR, Command, usage_error_line

app = typer.Typer(
    name="llmflow",
    help="Run LLM pipelines written as declarative YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: str, code: int = exits.USAGE) -> NoReturn:
    """Print a one-line error to stderr and exit."""
    typer.echo(terminal_text(f"error: {message}"), err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmflow {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Run LLM pipelines written as declarative YAML."""


class DiagnosticFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class GraphFormat(str, Enum):
    mermaid = "mermaid"
    dot = "dot"
    text = "text"


class EventFormat(str, Enum):
    jsonl = "jsonl"


class Durability(str, Enum):
    strict = "strict"
    batch = "batch"
    none = "none"


class RunStatus(str, Enum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"
    waiting = "waiting"
    cancelled = "cancelled"
    unreadable = "unreadable"


# Options several commands share (typer reads these annotations at run time).
StateDir = Annotated[
    str | None,
    typer.Option("--state-dir", help="The run store folder (default: LLMFLOW_HOME, else the nearest .llmflow/)."),
]
RunId = Annotated[str | None, typer.Argument(help="A run id or a unique prefix of one.", show_default=False)]
Last = Annotated[
    bool, typer.Option("--last", help="The most recent run (given a RUN_ID prefix too: the newest of its runs).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Inputs = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="An input value NAME=VALUE (repeatable).", show_default=False),
]
Events = Annotated[
    EventFormat | None,
    typer.Option("--events", help="Stream every event to stdout (progress goes to stderr).", show_default=False),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress; only errors and the outputs.")]
Webhook = Annotated[
    str | None,
    typer.Option(
        "--webhook", help="POST run events to this URL as they happen (also LLMFLOW_WEBHOOK_URL).", metavar="URL"
    ),
]
DurabilityOption = Annotated[
    Durability, typer.Option("--durability", help="How hard the journal pushes records to disk.")
]


@app.command(cls=Command)
def validate(
    paths: Annotated[
        list[str],  # not Path, which reads ``./-`` (a file named ``-``) as ``-`` (standard input)
        typer.Argument(
            help="Workflow files, folders to search for workflow files, or - for standard input.",
            metavar="PATH...",
            show_default=False,
        ),
    ],
    output_format: Annotated[
        DiagnosticFormat, typer.Option("--format", "-f", help="How to print problems.")
    ] = DiagnosticFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Check workflow files without running them (offline: no keys, no network).

    A folder is searched recursively for workflow files: .yaml and .yml files with a top-level
    'steps:' key or 'version: 1'. Hidden folders (.git, .venv ...), node_modules, __pycache__ and
    template folders (template.yaml beside workflow.yaml) are skipped. A file named on the command
    line is always checked. - reads one workflow from standard input, shown as <stdin>; its
    sub-workflows are found from the current folder.

    Exit status: 0 when every file is valid; 1 when any is not, a path cannot be read, or a folder
    holds no workflow file; 2 for usage errors.
    """
    from llmflow.cli.validate import validate_files

    raise typer.Exit(validate_files(paths, output_format.value, strict=strict))


@app.command(cls=Command)
def schema() -> None:
    """Print the workflow JSON Schema (draft 2020-12)."""
    from llmflow.resources import schema_text

    sys.stdout.write(schema_text())


@app.command(cls=Command)
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow file.", exists=True, dir_okay=False, readable=True)],
    output_format: Annotated[GraphFormat, typer.Option("--format", "-f", help="Diagram format.")] = GraphFormat.text,
) -> None:
    """Draw the compiled graph of a workflow (patterns as subgraphs)."""
    from llmflow.cli.validate import load_or_exit
    from llmflow.diagrams import draw

    workflow = load_or_exit(file)
    typer.echo(terminal_text(draw(workflow, output_format.value)))  # step names come from the file


@app.command(cls=Command)
def run(
    file: Annotated[Path, typer.Argument(help="Workflow file.", dir_okay=False)],
    inputs: Inputs = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option("--inputs-file", help="Input values from a .json or .yaml file (-i wins).", dir_okay=False),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run; execute and write nothing.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON summary object on stdout.")] = False,
    events: Events = None,
    quiet: Quiet = False,
    state_dir: StateDir = None,
    durability: DurabilityOption = Durability.strict,
    webhook: Webhook = None,
) -> None:
    """Run a workflow, journaling every step so that it can be resumed.

    Exit status: 0 succeeded, 1 failed or cancelled, 2 usage error or invalid workflow, 3 waiting for
    approval, 130 interrupted.
    """
    from llmflow.cli.run import Reporting, run_workflow

    reporting = Reporting(json_output, events is not None, quiet, state_dir, durability.value, webhook)
    raise typer.Exit(run_workflow(file, inputs or [], inputs_file, dry_run=dry_run, reporting=reporting))


@app.command(cls=Command)
def resume(
    run_id: RunId = None,
    last: Last = False,
    from_step: Annotated[
        str | None,
        typer.Option("--from", help="Run STEP and everything after it again.", metavar="STEP"),
    ] = None,
    workflow_file: Annotated[
        Path | None,
        typer.Option("--workflow", help="Resume with an edited workflow file.", dir_okay=False),
    ] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve the pending approval step.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the pending approval step.")] = False,
    comment: Annotated[
        str | None,
        typer.Option("--comment", help="A comment recorded with --approve/--reject."),
    ] = None,
    inputs: Inputs = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON summary object on stdout.")] = False,
    events: Events = None,
    quiet: Quiet = False,
    state_dir: StateDir = None,
    durability: DurabilityOption = Durability.strict,
    webhook: Webhook = None,
) -> None:
    """Continue a run that failed, was interrupted or cancelled, or waits for approval.

    Completed steps are restored from the journal, never run again. Exit status as for `run`.
    """
    from llmflow.cli.run import Reporting, resume_workflow

    reporting = Reporting(json_output, events is not None, quiet, state_dir, durability.value, webhook)
    code = resume_workflow(
        run_id,
        last=last,
        from_step=from_step,
        workflow_file=workflow_file,
        approve=approve,
        reject=reject,
        comment=comment,
        assignments=inputs or [],
        reporting=reporting,
    )
    raise typer.Exit(code)


@app.command(cls=Command)
def runs(
    status: Annotated[
        RunStatus | None,
        typer.Option("--status", help="Only runs with this status.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", help="At most this many runs.", min=1, show_default=False),
    ] = None,
    as_json: AsJson = False,
    state_dir: StateDir = None,
) -> None:
    """List runs, newest first."""
    from llmflow.cli.runs import list_runs

    raise typer.Exit(list_runs(status.value if status else None, limit, as_json=as_json, state_dir=state_dir))


@app.command(cls=Command)
def show(run_id: RunId = None, last: Last = False, as_json: AsJson = False, state_dir: StateDir = None) -> None:
    """Show a run: its status, inputs and error, and the tree of its steps from the journal."""
    from llmflow.cli.runs import show_run

    raise typer.Exit(show_run(run_id, last=last, as_json=as_json, state_dir=state_dir))


@app.command(cls=Command)
def logs(
    run_id: RunId = None,
    last: Last = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing events until the run ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON event lines.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Print a run's events."""
    from llmflow.cli.runs import show_logs

    raise typer.Exit(show_logs(run_id, last=last, follow=follow, as_json=as_json, state_dir=state_dir))


@app.command(cls=Command)
def report(
    run_id: RunId = None,
    last: Last = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the page (default: report-RUN_ID.html; - for stdout).",
            dir_okay=False,
        ),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Write a run as one self-contained HTML page: graph, timeline, every step's details."""
    from llmflow.cli.report import write_report

    raise typer.Exit(write_report(run_id, last=last, output=output, state_dir=state_dir))


@app.command(cls=Command)
def cancel(run_id: RunId = None, last: Last = False, state_dir: StateDir = None) -> None:
    """Cancel a run: stop the process driving it, or mark a stopped run cancelled."""
    from llmflow.cli.runs import cancel_run

    raise typer.Exit(cancel_run(run_id, last=last, state_dir=state_dir))


@app.command(cls=Command)
def gc(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Remove runs that ended longer ago than this (30d, 12h …).")
    ] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Remove old runs that nobody is driving."""
    from llmflow.cli.runs import collect_garbage

    raise typer.Exit(collect_garbage(older_than, dry_run=dry_run, state_dir=state_dir))


@app.command(cls=Command)
def new(
    name: Annotated[
        str, typer.Argument(help="The new workflow's name: writes NAME.yaml.", metavar="NAME", show_default=False)
    ],
    template: Annotated[
        str, typer.Option("--template", "-t", help="The template to start from (see `llmflow templates list`).")
    ] = "starter",
    assignments: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="A template parameter NAME=VALUE (repeatable).", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", "-d", help="Where to write (default: the current folder).", file_okay=False),
    ] = None,
) -> None:
    """Scaffold a new workflow (and the template's sample data) from a template, then validate it.

    Exit status: 0 written and valid; 1 a file already exists (nothing is written) or the result is
    invalid; 2 usage error (unknown template or parameter, bad --set).
    """
    from llmflow.cli.templates import new_workflow

    raise typer.Exit(new_workflow(name, template, assignments or [], force=force, directory=directory))


@app.command(cls=Command)
def plugins(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Also load this workflow's plugins: files.",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the plugins a run loads: built-in, installed entry points (group llmflow), a workflow's files.

    Exit status: 0 listed; 2 a plugin cannot be imported, or FILE is not a valid workflow.
    """
    from llmflow.cli.plugins import list_plugins

    raise typer.Exit(list_plugins(file, as_json=as_json))


app.add_typer(templates_app, name="templates")


def run_app() -> None:
    """Run the CLI, mapping any stray llmflow error, and any command-line error, to a one-line message and
    its exit code (instead of typer's boxed panel under the usage line)."""
    from llmflow.errors import LlmflowError

    try:
        code = app(standalone_mode=False)
    except LlmflowError as error:
        typer.echo(terminal_text(f"error: {error}"), err=True)  # it may quote a file name or a value given
        sys.exit(exits.exit_code_for(error))
    except KeyboardInterrupt:  # Ctrl-C outside a run's own handling: no traceback
        sys.exit(exits.INTERRUPTED)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(exits.FAILED)
    except OSError as error:  # stdout on a full disk or a failing device: one line, not a traceback
        _drop_pending_output()
        where = f"{error.filename}: " if isinstance(error.filename, str) else ""
        typer.echo(terminal_text(f"error: {where}{error.strerror or error}"), err=True)
        sys.exit(exits.FAILED)
    except COMMAND_LINE_ERROR as error:
        if type(error).__name__ != "NoArgsIsHelpError":  # a bare group: typer has shown its help already
            typer.echo(usage_error_line(error), err=True)
        sys.exit(int(getattr(error, "exit_code", exits.USAGE)))
    sys.exit(code if isinstance(code, int) else 0)


def _drop_pending_output() -> None:
    """Point stdout at the null device, so that flushing what it still holds at exit cannot fail again."""
    import os

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no stdout at all, or one without a file descriptor
        pass
