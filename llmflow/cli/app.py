"""The typer application: every command, each a thin call into the Python API."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from llmflow import __version__
from llmflow.cli import exits

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
    typer.echo(f"error: {message}", err=True)
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


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Workflow files to check.", exists=True, dir_okay=False, readable=True),
    ],
    output_format: Annotated[
        DiagnosticFormat, typer.Option("--format", "-f", help="How to print problems.")
    ] = DiagnosticFormat.text,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Check workflow files without running them (offline: no keys, no network).

    Exit status: 0 when every file is valid, 1 when any is not, 2 for usage errors.
    """
    from llmflow.cli.validate import validate_files

    raise typer.Exit(validate_files(files, output_format.value, strict=strict))


@app.command()
def schema() -> None:
    """Print the workflow JSON Schema (draft 2020-12)."""
    from llmflow.resources import schema_text

    sys.stdout.write(schema_text())


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow file.", exists=True, dir_okay=False, readable=True)],
    output_format: Annotated[GraphFormat, typer.Option("--format", "-f", help="Diagram format.")] = GraphFormat.text,
) -> None:
    """Draw the compiled graph of a workflow (patterns as subgraphs)."""
    from llmflow.cli.validate import load_or_exit
    from llmflow.diagrams import draw

    workflow = load_or_exit(file)
    typer.echo(draw(workflow, output_format.value))


def run_app() -> None:
    """Run the CLI, mapping any stray llmflow error to a one-line message and its exit code."""
    from llmflow.errors import LlmflowError

    try:
        app()
    except LlmflowError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(exits.exit_code_for(error))
