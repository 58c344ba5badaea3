"""``llmflow run`` and ``llmflow resume``: inputs, the console, driving the runtime, the summary, exit codes."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from llmflow.cli import exits
from llmflow.errors import UsageError
from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from llmflow.cli.console import AttemptsLookup
    from llmflow.compiler.graph import Workflow
    from llmflow.engine.ports import Durability
    from llmflow.planning import PlanEntry
    from llmflow.runtime import RunOptions, RunSummary

_EXIT_BY_STATUS = {
    "succeeded": exits.SUCCEEDED,
    "failed": exits.FAILED,
    "cancelled": exits.FAILED,
    "waiting": exits.WAITING,
    "interrupted": exits.INTERRUPTED,
}


class Reporting(FrozenRecord):
    """Where a run reports: ``--json`` summary, ``--events jsonl`` on stdout, ``-q``, and the store used."""

    __slots__ = ("durability", "events", "json", "quiet", "state_dir", "webhook")
    json: bool
    events: bool
    quiet: bool
    state_dir: str | None
    durability: str
    webhook: str | None

    def __init__(
        self,
        json: bool = False,
        events: bool = False,
        quiet: bool = False,
        state_dir: str | None = None,
        durability: str = "strict",
        webhook: str | None = None,
    ) -> None:
        self._set(json=json, events=events, quiet=quiet, state_dir=state_dir, durability=durability, webhook=webhook)

    def check(self) -> None:
        """Refuse combinations that would mix two formats on stdout."""
        if self.json and self.events:
            raise UsageError("--json and --events jsonl both write to stdout; choose one")


# -- inputs ----------------------------------------------------------------------------------------------
def read_inputs_file(path: Path) -> dict[str, Any]:
    """The mapping in a ``--inputs-file``: JSON for ``.json``, YAML otherwise.

    Every problem is one line that starts at ``FILE:LINE:COLUMN`` (the file alone when it cannot be read)."""
    where = "1:1"
    if path.suffix.lower() == ".json":
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise UsageError(f"{path}: cannot read the inputs file: {error.strerror}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            before = raw[: error.start]
            line = before.count(b"\n") + 1
            column = len(before.rpartition(b"\n")[2].decode("utf-8", errors="replace")) + 1
            raise UsageError(
                f"{path}:{line}:{column}: the inputs file is not valid UTF-8 "
                f"(byte 0x{raw[error.start]:02x}); save it as UTF-8"
            ) from None
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{path}:{error.lineno}:{error.colno}: the inputs file is not valid JSON: {error.msg}"
            ) from None
        except ValueError as error:
            raise UsageError(f"{path}:1:1: the inputs file is not valid JSON: {error}") from None
        except RecursionError:
            raise UsageError(f"{path}:1:1: the inputs file is not valid JSON: it is nested too deeply") from None
    else:
        from llmflow.errors import WorkflowError
        from llmflow.spec.loader import load_file

        try:
            document = load_file(path, expect_mapping=False)  # its own message for a non-mapping, below
        except WorkflowError as error:
            first = error.diagnostics[0]
            raise UsageError(
                f"{first.file}:{first.line}:{first.column}: {first.message} (in the inputs file)"
            ) from None
        data = document.data
        position = document.position(())
        where = f"{position.line}:{position.column}"
    if not isinstance(data, dict):
        from llmflow.spec.validator import describe_value

        raise UsageError(
            f"{path}:{where}: the inputs file must hold a mapping of input names to values (NAME: VALUE), "
            f"not {describe_value(data)}"
        )
    return data


def collect_inputs(workflow: Workflow, assignments: list[str], inputs_file: Path | None) -> dict[str, Any]:
    """``-i k=v`` values over ``--inputs-file`` values, checked against the declared inputs."""
    from llmflow.engine.inputs import parse_assignments, resolve_inputs

    given = read_inputs_file(inputs_file) if inputs_file is not None else {}
    typed = parse_assignments(workflow.inputs, assignments)
    if inputs_file is not None:
        _check_inputs_file(workflow, inputs_file, {name: value for name, value in given.items() if name not in typed})
    given.update(typed)
    return resolve_inputs(workflow.inputs, given)


def _check_inputs_file(workflow: Workflow, path: Path, given: dict[str, Any]) -> None:
    """Check the values an inputs file gives (those ``-i`` does not override): a wrong or unknown one is
    refused at its ``FILE:LINE:COLUMN``, as a workflow's own mistakes are."""
    from llmflow.engine.inputs import check_value, resolve_inputs
    from llmflow.errors import InputError

    for name, value in given.items():
        spec = workflow.inputs.get(name)
        try:
            if spec is None:
                resolve_inputs(workflow.inputs, {name: value})  # its message, with "did you mean"
            else:
                check_value(spec, value)
        except InputError as error:
            line, column = _position_in(path, name, key=spec is None)
            raise InputError(f"{path}:{line}:{column}: {error} (in the inputs file)") from None


def _position_in(path: Path, name: str, *, key: bool) -> tuple[int, int]:
    """Where the inputs file gives ``name``'s value (with ``key``, the name itself): JSON is read again as
    YAML, which keeps positions; 1:1 when it cannot be."""
    from llmflow.errors import WorkflowError
    from llmflow.spec.loader import load_file

    try:
        document = load_file(path, expect_mapping=False)
    except (WorkflowError, OSError):
        return 1, 1
    position = document.position((name,), key=key)
    return position.line, position.column


def attempts_lookup(workflow: Workflow) -> AttemptsLookup:
    """How many attempts the node at a static path may take (for ``retry 2/3`` lines)."""

    def attempts(path: str) -> int | None:
        node = workflow.nodes.get(path)
        return node.retry.attempts if node is not None and node.retry is not None else None

    return attempts


# -- run and resume --------------------------------------------------------------------------------------
def _check_copyable(file: Path) -> None:
    """Refuse a workflow that is not a regular file (``<(generate)``, a named pipe, a device): a run reads its
    workflow once to compile it and again to keep a copy to resume from, and a pipe can be read only once."""
    import stat

    try:
        mode = os.stat(file).st_mode
    except OSError:
        return  # the loader reports a missing or unreadable file, with its own diagnostic
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UsageError(
            f"{file} is not a regular file: a run keeps a copy of its workflow to resume from, so save it to a "
            "file first (--dry-run and validate read it as it is)"
        )


def run_workflow(
    file: Path, assignments: list[str], inputs_file: Path | None, *, dry_run: bool, reporting: Reporting
) -> int:
    """``llmflow run``: compile, check inputs, then plan (``--dry-run``) or drive a new run."""
    from llmflow.cli.validate import load_or_exit

    reporting.check()
    if not dry_run:
        _check_copyable(file)
    workflow = load_or_exit(file)
    values = collect_inputs(workflow, assignments, inputs_file)
    if dry_run:
        from dataclasses import asdict

        from llmflow.planning import plan

        entries = plan(workflow, values)
        if reporting.json:
            document = {"workflow": workflow.name, "file": workflow.file, "plan": [asdict(e) for e in entries]}
            sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        else:
            from llmflow.cli.terminal import terminal_text

            sys.stdout.write(terminal_text(render_plan(workflow, entries)))  # names and values from anyone
        return exits.SUCCEEDED
    from llmflow.runtime import start_run

    return drive(lambda options: start_run(workflow, values, options), reporting, attempts_lookup(workflow))


def resume_workflow(
    selector: str | None,
    *,
    last: bool,
    from_step: str | None,
    workflow_file: Path | None,
    approve: bool,
    reject: bool,
    comment: str | None,
    assignments: list[str],
    reporting: Reporting,
) -> int:
    """``llmflow resume``: continue a run that failed, was interrupted or waits for approval."""
    from llmflow.engine.inputs import cut_value
    from llmflow.errors import InputError, WorkflowError
    from llmflow.runtime import ResumeRequest, resume_run

    reporting.check()
    if approve and reject:
        raise UsageError("--approve and --reject cannot be used together")
    if comment is not None and not (approve or reject):
        raise UsageError("--comment goes with --approve or --reject")
    if not selector and not last:
        raise UsageError("give a run id (or a unique prefix of one), or --last")
    inputs: dict[str, str] = {}
    for pair in assignments:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"-i expects NAME=VALUE, got {cut_value(repr(pair))}")
        inputs[name.strip()] = text
    request = ResumeRequest(
        selector=selector,
        last=last,
        from_step=from_step,
        workflow_file=workflow_file,
        approve=approve,
        reject=reject,
        comment=comment,
        inputs=inputs,
    )
    try:
        return drive(lambda options: resume_run(request, options), reporting, None)
    except WorkflowError as error:  # an edited --workflow FILE that does not compile
        from llmflow.cli.terminal import color_for
        from llmflow.cli.validate import render

        sys.stderr.write(render(error.diagnostics, "text", color=color_for(sys.stderr)) + "\n")
        return exits.USAGE


def drive(
    start: Callable[[RunOptions], Coroutine[Any, Any, RunSummary]],
    reporting: Reporting,
    attempts: AttemptsLookup | None,
) -> int:
    """Run ``start`` with the console, event stream and listeners wired; report the outcome; the exit code."""
    import asyncio
    import gc

    from llmflow.observability import sinks_from_environment
    from llmflow.runtime import RunOptions, RunSummary

    console = None
    if not reporting.quiet:
        from llmflow.cli.console import make_console
        from llmflow.cli.terminal import is_terminal

        console = make_console(sys.stderr, live=is_terminal(sys.stderr), attempts=attempts)
    sinks: list[Any] = []
    if reporting.events:
        from llmflow.cli.terminal import terminal_json
        from llmflow.sinks import StreamEventSink

        sinks.append(StreamEventSink(sys.stdout, shown=terminal_json))
    if console is not None:
        sinks.append(console)
    # After the console, so that the live display stops before a webhook reports what it could not deliver.
    sinks.extend(sinks_from_environment(webhook_url=reporting.webhook))
    started: list[str] = []

    def on_start(run_id: str, directory: Path) -> None:
        started.append(run_id)
        if console is not None:
            console.begin(run_id, directory)

    def on_abort(summary: RunSummary) -> None:  # a second Ctrl-C: the process exits right after this
        if console is not None:
            console.close()  # the live display gives the terminal its cursor back
        report(summary, time.monotonic() - clock, reporting)

    options = RunOptions(
        abort_listener=on_abort,
        state_dir=reporting.state_dir,
        durability=cast("Durability", reporting.durability),  # one of the option's choices
        sinks=sinks,
        output_listener=console.output if console is not None else None,
        started_listener=on_start,
    )
    # What start-up loaded lives as long as the process: out of the collector's way for the whole run, which
    # may be long (the collector is on again if the command line turned it off while starting).
    gc.freeze()
    gc.enable()
    clock = time.monotonic()
    try:
        summary = asyncio.run(start(options))
    except KeyboardInterrupt:  # before or after the runtime watched for Ctrl-C itself
        _close(sinks)
        if started:
            report(RunSummary(run_id=started[0], status="interrupted"), time.monotonic() - clock, reporting)
        return exits.INTERRUPTED
    finally:
        _close(sinks)
    report(summary, time.monotonic() - clock, reporting)
    return _EXIT_BY_STATUS.get(summary.status, exits.FAILED)


def _close(sinks: list[Any]) -> None:
    for sink in sinks:
        sink.close()  # the runtime closes them at the end of a run; closing again is harmless


# -- reporting -------------------------------------------------------------------------------------------
def resume_hint(run_id: str, reporting: Reporting, extra: str = "") -> str:
    """The command that continues ``run_id`` (with the same ``--state-dir``), ready to paste into a shell."""
    import shlex

    state = f" --state-dir {shlex.quote(reporting.state_dir)}" if reporting.state_dir else ""
    return f"llmflow resume {run_id}{extra}{state}"


def report(summary: RunSummary, elapsed: float, reporting: Reporting) -> None:
    """The ``--json`` object on stdout and the summary on stderr (failures only with ``-q``)."""
    if reporting.json:
        document = {
            "run_id": summary.run_id,
            "status": summary.status,
            "outputs": summary.outputs,
            "error": summary.error,
            "waiting_for": summary.waiting_for,
        }
        from llmflow.cli.terminal import terminal_json

        sys.stdout.write(terminal_json(json.dumps(document, ensure_ascii=False, default=str)) + "\n")
        sys.stdout.flush()
    succeeded = summary.status == "succeeded"
    if not (reporting.quiet and succeeded):
        from llmflow.cli.terminal import color_for

        sys.stderr.write(summary_text(summary, elapsed, reporting, color=color_for(sys.stderr)))
    if reporting.quiet and succeeded and not reporting.json and summary.outputs not in (None, {}):
        from llmflow.cli.terminal import terminal_json

        stream = sys.stderr if reporting.events else sys.stdout  # stdout belongs to the event stream
        stream.write(terminal_json(json.dumps(summary.outputs, indent=2, ensure_ascii=False, default=str)) + "\n")


def summary_text(summary: RunSummary, elapsed: float, reporting: Reporting, *, color: bool) -> str:
    """How the run ended, for people: status, duration, run id and what to do next."""
    from llmflow.cli.terminal import terminal_text

    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    run_id = summary.run_id
    took = f"{elapsed:.2f}s" if elapsed < 60 else f"{elapsed / 60:.1f}m"
    lines: list[str] = []
    if summary.status == "succeeded":
        lines.append(f"{paint('✓ succeeded', '32;1')} in {took} · run {run_id}")
        tokens = int(summary.usage.get("input_tokens", 0) + summary.usage.get("output_tokens", 0))
        if tokens:
            lines.append(f"usage: {tokens} tokens, ${summary.usage.get('cost', 0.0):.4f}")
        if summary.outputs not in (None, {}):
            lines.append("outputs:")
            lines.append(terminal_text(json.dumps(summary.outputs, indent=2, ensure_ascii=False, default=str)))
    elif summary.status == "waiting":
        lines.append(f"{paint('⏸ waiting for approval', '33;1')} after {took} · run {run_id}")
        for path in summary.waiting_for:
            message = summary.waiting_messages.get(path) or summary.error or "approve to continue"
            lines.append(terminal_text(f"  {path}: {message}"))
        lines.append(f"approve: {resume_hint(run_id, reporting, ' --approve')}")
        lines.append(f"reject:  {resume_hint(run_id, reporting, ' --reject')}")
    elif summary.status == "interrupted":
        if summary.error:
            lines.append(terminal_text(f"interrupted: {summary.error}"))
        lines.append(f"interrupted — resume with: {resume_hint(run_id, reporting)}")
    else:
        word = "✗ failed" if summary.status == "failed" else f"⊘ {summary.status}"
        lines.append(f"{paint(word, '31;1')} after {took} · run {run_id}")
        if summary.failed_step:
            lines.append(f"  step: {summary.failed_step}")
        if summary.error:
            lines.append(terminal_text(f"  error: {summary.error}"))
        if summary.compensated:
            lines.append(f"  compensated: {', '.join(summary.compensated)}")
        lines.append(f"resume with: {resume_hint(run_id, reporting)}")
    return "\n".join(lines) + "\n"


def render_plan(workflow: Workflow, entries: list[PlanEntry]) -> str:
    """The ``--dry-run`` plan as indented text."""
    from llmflow.planning import VALUE_CLOSE, VALUE_OPEN

    lines = [
        f"plan for {workflow.name} ({workflow.file}) — dry run, nothing is executed",
        f"template values are shown as {VALUE_OPEN}value{VALUE_CLOSE}; "
        "'(rendered at run time)' marks what is only known then",
        "",
    ]
    levels: dict[str, int] = {"": -1}
    headers: set[tuple[str, str]] = set()
    for entry in entries:
        level = levels.get(entry.parent, -1) + 1
        if entry.branch:
            if (entry.parent, entry.branch) not in headers:
                headers.add((entry.parent, entry.branch))
                lines.append(f"{'    ' * level}{entry.branch}:")
            level += 1
        levels[entry.path] = level
        head = f"{'    ' * level}• {entry.title} [{entry.kind}]"
        lines.append(head + (f" if {entry.condition}" if entry.condition else ""))
        indent = "    " * (level + 1)
        for detail in entry.details:
            prefix = "$ " if detail.label == "command" else f"{detail.label}: "
            text = detail.text.replace("\n", "\n" + indent + " " * len(prefix))
            lines.append(f"{indent}{prefix}{text}" + ("  (rendered at run time)" if detail.deferred else ""))
    return "\n".join(lines) + "\n"
