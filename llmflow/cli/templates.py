"""``llmflow templates list|show|search`` and ``llmflow new``: the template library on the command line."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from llmflow.cli import exits
from llmflow.cli.terminal import terminal_text
from llmflow.cli.usage import Command

if TYPE_CHECKING:
    from llmflow.templating import Library, Template

templates_app = typer.Typer(
    name="templates",
    help="Browse the template library (use `llmflow new NAME --template T` to scaffold one).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@templates_app.command("list", cls=Command)
def list_templates(as_json: AsJson = False) -> None:
    """List every template: project ones first, then the user's, then the built-in library."""
    library = _library()
    _print_templates(list(library.templates.values()), as_json=as_json)


@templates_app.command("show", cls=Command)
def show_template(
    name: Annotated[str, typer.Argument(help="The template's name.", metavar="NAME", show_default=False)],
) -> None:
    """Show a template: its metadata, its parameters with their defaults, then its workflow file."""
    library = _library()
    template = _get(library, name)
    typer.echo(terminal_text(describe(template, library)), nl=False)  # a project's template is anyone's text


@templates_app.command("search", cls=Command)
def search_templates(
    query: Annotated[
        list[str], typer.Argument(help="Words to look for (all must match).", metavar="QUERY...", show_default=False)
    ],
    as_json: AsJson = False,
) -> None:
    """Find templates by name, title, description and tags (case-insensitive), best match first."""
    from llmflow.errors import UsageError
    from llmflow.templating import search

    library = _library()
    try:
        found = search(library, " ".join(query))
    except UsageError as error:
        _fail(str(error))
    if not found and not as_json:
        typer.echo(f"No template matches '{' '.join(query)}'.", err=True)
        return
    _print_templates(found, as_json=as_json)


def new_workflow(name: str, template_name: str, assignments: list[str], *, force: bool, directory: Path | None) -> int:
    """Scaffold ``NAME.yaml`` (and the template's sample files) from a template; return the exit code."""
    from llmflow.errors import UsageError
    from llmflow.scaffolding import parse_assignments, plan_scaffold

    library = _library()
    template = _get(library, template_name)
    try:
        values = parse_assignments(assignments)
        scaffold = plan_scaffold(template, name, directory or Path("."), values)
    except UsageError as error:
        _fail(str(error))
    try:
        blocked, existing = scaffold.blocked(), scaffold.conflicts()
    except OSError as error:  # a name too long for the file system, a folder that cannot be searched …
        typer.echo(terminal_text(f"error: cannot write {_unwritable(error)}"), err=True)
        return exits.FAILED
    if blocked:
        typer.echo(f"error: cannot write here: {', '.join(_shown(p) for p in blocked)} is in the way", err=True)
        return exits.FAILED
    if existing and not force:
        listed = ", ".join(_shown(path) for path in existing)
        typer.echo(
            f"error: {listed} already exist{'s' if len(existing) == 1 else ''}; nothing was written "
            "(use --force to overwrite)",
            err=True,
        )
        return exits.FAILED
    try:
        scaffold.write()
    except OSError as error:
        typer.echo(terminal_text(f"error: cannot write {_unwritable(error)}"), err=True)
        return exits.FAILED
    typer.echo(f"Created from template '{template.name}' ({template.source}):")
    for path, _ in scaffold.files:
        typer.echo(f"  {_shown(path)}" + ("  (overwritten)" if path in existing else ""))
    return _check(scaffold.workflow)


def describe(template: Template, library: Library) -> str:
    """The text ``templates show`` prints."""
    lines = [f"{template.name}: {template.title}", f"source: {template.source} ({template.folder})"]
    hidden = library.shadowing(template)
    if hidden:
        lines.append("shadows: " + ", ".join(f"{other.source} ({other.folder})" for other in hidden))
    lines.append(f"tags: {', '.join(template.tags) or '-'}")
    if template.description:
        lines += ["", template.description]
    lines += ["", "Parameters (set with --set NAME=VALUE):"]
    if template.parameters:
        width = max(len(p.name) for p in template.parameters)
        for parameter in template.parameters:
            kind = "" if parameter.type == "string" else f" ({parameter.type})"
            lines.append(f"  {parameter.name:<{width}}  {parameter.description}{kind}")
            lines.append(f"  {'':<{width}}  default: {json.dumps(parameter.default, ensure_ascii=False)}")
    else:
        lines.append("  (none)")
    samples = template.sample_files()
    if samples:
        lines += ["", "Files copied beside the workflow:"]
        lines += [f"  {path.as_posix()}" for path in samples]
    lines += ["", f"--- {template.workflow_file.name} ---", template.workflow_text().rstrip("\n"), ""]
    return "\n".join(lines)


def _check(workflow: Path) -> int:
    """Validate the written workflow, print what was found and the next command; return the exit code."""
    import llmflow
    from llmflow.cli.terminal import color_for
    from llmflow.cli.validate import render

    problems = llmflow.validate(workflow, display_name=_shown(workflow))
    if problems:
        sys.stderr.write(render(problems, "text", color=color_for(sys.stderr)) + "\n")
    if any(problem.severity == "error" for problem in problems):
        typer.echo(f"error: {_shown(workflow)} is not valid; fix the problems above before running it", err=True)
        return exits.FAILED
    typer.echo(f"{_shown(workflow)} is valid" + (" (with warnings)." if problems else "."))
    shown = _shown(workflow)
    # A name that starts with '-' would be read as an option: ./-name.yaml is the same file.
    typer.echo(f"Next: llmflow run {shlex.quote('./' + shown if shown.startswith('-') else shown)}")
    return exits.SUCCEEDED


def _library() -> Library:
    from llmflow.templating import load_library

    library = load_library()
    for problem in library.problems:
        typer.echo(terminal_text(f"warning: skipped a template: {problem}"), err=True)
    return library


def _get(library: Library, name: str) -> Template:
    from llmflow.errors import UsageError

    try:
        return library.get(name)
    except UsageError as error:
        _fail(str(error))


def _print_templates(templates: list[Template], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([t.summary() for t in templates], indent=2, ensure_ascii=False))
        return
    if not templates:
        typer.echo("No templates found.", err=True)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("name", "title", "tags", "source"):
        table.add_column(column, overflow="fold")
    for template in templates:
        # Plain text, not console markup: a title such as "Fix [/] in names" is shown as it is, not read as tags.
        cells = (template.name, template.title, ", ".join(template.tags), template.source)
        table.add_row(*(Text(terminal_text(cell)) for cell in cells))
    console = Console(file=sys.stdout, highlight=False)
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is below it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(absolute)


def _unwritable(error: OSError) -> str:
    """``FILE: reason`` for an error met while checking or writing the scaffold's files."""
    where = _shown(Path(error.filename)) if isinstance(error.filename, str) else "the files"
    return f"{where}: {error.strerror or error}"


def _fail(message: str) -> NoReturn:
    typer.echo(terminal_text(f"error: {message}"), err=True)
    raise typer.Exit(exits.USAGE)
