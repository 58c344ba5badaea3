"""``llmflow report``: a run as one self-contained HTML page (graph, Gantt timeline, every step's details)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.cli import exits
from llmflow.errors import UsageError

if TYPE_CHECKING:
    from llmflow.compiler.graph import Workflow
    from llmflow.store import FileRunStore


def write_report(selector: str | None, *, last: bool, output: Path | None, state_dir: str | None) -> int:
    """Write the report of a run to ``output`` (default ``report-<run id>.html``; ``-`` for stdout)."""
    from llmflow.observability.report import render_report
    from llmflow.observability.timeline import gather
    from llmflow.store import FileRunStore, find_store_root

    if not selector and not last:
        raise UsageError("give a run id (or a unique prefix of one), or --last")
    store = FileRunStore(find_store_root(override=state_dir))
    handle = store.open_run(store.resolve(selector, last=last))
    from llmflow.cli.runs import ITEMS_SHOWN

    # Folded as ``show`` folds: a page with a section per item of a 100,000-item map weighed 250 MB and took
    # 2 GB to write; the graph's counts are taken before folding.
    timeline = gather(handle, keep_events=True, fold=ITEMS_SHOWN)
    workflow, problem = _workflow(store, handle.run_id, timeline.meta)
    sources = _sources(store, handle.run_id, timeline.meta, workflow)
    from llmflow.cli.terminal import terminal_text

    # Outputs and errors are untrusted: controls in them are shown as escapes, as on the terminal, so the page
    # printed with ``-o -`` cannot act on a terminal and a bidirectional override cannot reorder the page.
    page = terminal_text(render_report(timeline, workflow, graph_problem=problem, sources=sources))
    if output is not None and str(output) == "-":
        sys.stdout.write(page)
        return exits.SUCCEEDED
    target = output if output is not None else Path(f"report-{handle.run_id}.html")
    try:
        # A lone surrogate in an output (a model's text) cannot be UTF-8: the page shows it as ``\ud800``.
        target.write_text(page, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    sys.stderr.write(f"wrote {target} (run {handle.run_id}, {timeline.meta.get('status')})\n")
    return exits.SUCCEEDED


def _workflow(store: FileRunStore, run_id: str, meta: dict[str, Any]) -> tuple[Workflow | None, str | None]:
    """The run's frozen workflow compiled again, or why it cannot be (the report is drawn without a graph)."""
    from llmflow.errors import LlmflowError
    from llmflow.runtime import load_run_workflow

    try:
        return load_run_workflow(store, run_id, meta), None
    except LlmflowError as error:
        return None, f"the run's copy of its workflow does not compile: {str(error).splitlines()[0]}"
    except (OSError, KeyError, ValueError) as error:
        return None, f"the run's copy of its workflow cannot be read: {error}"


def _sources(store: FileRunStore, run_id: str, meta: dict[str, Any], workflow: Workflow | None) -> dict[str, Path]:
    """Frozen source files by the names node locations use for them."""
    if workflow is None:
        return {}
    folder = store.source_dir(run_id, meta)
    found: dict[str, Path] = {}
    for source in workflow.sources:
        path = Path(source)
        try:
            found[str(path.relative_to(folder))] = path
        except ValueError:
            continue
    main = folder / str(meta.get("source_main", ""))
    if meta.get("file") and main.is_file():
        found[str(meta["file"])] = main
    return found
