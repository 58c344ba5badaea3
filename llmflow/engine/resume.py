"""Resume bookkeeping: which node instances the journal holds as done, and what ``--from``/``--workflow`` change.

Journal records that are not completions change what counts as done, in journal order:

``{"s": "compensated", "p": P}``
    the node instance ``P`` was undone by its ``compensate`` steps: ``P`` and everything under it runs again,
    and the composites around it are re-entered (their records are dropped too).
``{"s": "reset", "p": P}``
    ``P`` and everything under it runs again (the ``finally`` steps of a try that failed, once a resume runs
    it again; a ``P/#failed`` marker of a map that failed beyond its tolerance; a ``P/#attempt`` marker).
``{"s": "retry", "p": P, "a": n, "w": variables}``
    composite ``P`` begins attempt ``n`` (its ``retry``): what completed under ``P`` in earlier attempts
    runs again. Compensation still undoes it (``engine.compensation``): it did happen. A resume re-entering
    ``P`` goes on with attempt ``n`` and the variables the earlier attempts left (``w``), as the stopped run
    did (kept in the index under ``P/#attempt``; a ``reset`` of ``P/#attempt``, written when ``P`` failed
    for good, drops it, so that a resume of the failed run gives ``P`` all its attempts again).
``{"s": "unfinished", "p": P}``
    try ``P`` failed or was stopped and its ``finally`` began: a resume that runs ``P`` again (it has no
    completion record and no enclosing ``catch`` took over) first resets ``P/finally``, so that the
    ``finally`` runs whole again; until then the ``finally`` steps that completed keep their records, so
    that an enclosing ``catch`` and the steps after a failed try see their results (kept in the index under
    ``P/finally/#unfinished``, which that reset drops).
``{"s": "caught", "p": P, "e": error}``
    the body of try ``P`` failed and its ``catch`` began: a resume goes straight to ``catch`` with the same
    ``error`` instead of trying the body again (kept in the index under ``P/#caught``).
``{"s": "tolerated", "p": P, "e": error}``
    map item ``P`` (``label[3]``) failed and its map tolerates failures: a resume re-entering the map counts
    the item as failed with the same ``error`` instead of running it again (kept under ``P/#failed``). A
    map that fails anyway resets these markers, so a resume of the failed run tries the items again.
``{"s": "decided", "p": P, "h": hook, "d": decision}``
    a plugin's ``hook`` decided how composite ``P`` goes on (a branch taken, a loop broken) while it ran: a
    resume re-entering ``P`` follows the same decision without asking again (kept under ``P/#decided``).
``{"s": "compensating", "p": "", "e": {"message": ..., "step": ...}}``
    the run failed with this error and its compensation began: a resume of the run killed meanwhile runs
    nothing of the workflow again, it finishes the compensation and ends failed with the same error (kept in
    the index under ``#compensating``). A resume of the run that ended ``failed`` drops it with a ``reset``
    record first, and runs the workflow again as after any failure.
``{"s": "rewind", "drop": [...], "reopen": [...]}``
    ``resume --from STEP``: instances of the static paths in ``drop`` (and under them) run again; the
    composites in ``reopen`` (those around STEP) are re-entered, their earlier children stay done.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from llmflow.compiler.graph import Node, Workflow, WorkflowNode
from llmflow.engine.outcome import FAILED, SKIPPED, SUCCEEDED
from llmflow.errors import JournalCorrupt, UsageError

_INDEX = re.compile(r"\[\d+\]")
_TRAILING_INDEX = re.compile(r"\[\d+\]$")
#: Where the index keeps the "catch began" marker of a try instance.
CAUGHT = "/#caught"
#: Where the index keeps a plugin's decision about a composite instance (``engine.interception``).
DECIDED = "/#decided"
#: Where the index keeps the attempt a retried composite instance began last, with the variables it began with.
ATTEMPT = "/#attempt"
#: Where the index keeps the "finally began after a failure" marker of a try instance.
UNFINISHED = "/finally/#unfinished"
#: Where the index keeps the failure of a map item its map tolerated.
FAILED_ITEM = "/#failed"
#: Where the index keeps the failure of the run whose compensation began (a run-wide marker: no node's).
COMPENSATING = "#compensating"
_MARKERS = (CAUGHT, DECIDED, FAILED_ITEM, ATTEMPT, UNFINISHED)
#: Statuses of records that complete a node instance.
REPLAYABLE = frozenset({SUCCEEDED, SKIPPED, FAILED})
#: Every status the engine journals: completions, then the records above that change what counts as done.
RECORD_STATUSES = REPLAYABLE | {
    "caught",
    "unfinished",
    "decided",
    "tolerated",
    "compensating",
    "compensated",
    "reset",
    "retry",
    "rewind",
}


def check_statuses(records: list[dict[str, Any]], file_label: str) -> None:
    """Refuse a journal with a record whose status the engine never writes (``JournalCorrupt`` naming its
    line: record ``i`` came from line ``i + 1``). Such a record comes from another program or a newer llmflow;
    passing over it, as ``replay_index`` would, could run again what it completed or lose what it undid."""
    if {record.get("s") for record in records} <= RECORD_STATUSES:
        return
    for number, record in enumerate(records, 1):
        status = record.get("s")
        if status not in RECORD_STATUSES:
            what = "has no status" if status is None else f"has a status llmflow does not know: {status!r}"
            raise JournalCorrupt(f"{file_label}:{number}: journal record {what} (written by a newer llmflow?)")


def static_path(instance_path: str) -> str:
    """``label[3]/classify`` → ``label/classify``."""
    return _INDEX.sub("", instance_path) if "[" in instance_path else instance_path


def at_or_under(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or an instance inside it (``root/…`` or ``root[…``)."""
    return path == root or path.startswith((root + "/", root + "["))


def instance_ancestors(path: str) -> list[str]:
    """The instance paths of the composites around ``path``: ``l[2]/g/x`` → ``l``, ``l[2]/g``."""
    parts = path.split("/")
    found: list[str] = []
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        found.append(_TRAILING_INDEX.sub("", prefix))
        if prefix != found[-1]:
            found.append(prefix)  # harmless: iteration prefixes never have records of their own
    return found


def replay_index(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Completed node instances by path, after compensations, resets and rewinds are applied."""
    index: dict[str, dict[str, Any]] = {}
    for entry in records:
        # Journal records are fresh dicts nobody changes: kept as they are (copying them cost a resume of
        # 1000 steps ~1 ms).
        record = entry if type(entry) is dict else dict(entry)
        status = record.get("s")
        path = record.get("p", "")
        if type(path) is not str:
            path = str(path)
        if status in REPLAYABLE:
            index.pop(path, None)  # the newest record wins, and moves to the end (journal order)
            index[path] = record
        elif status == "caught":
            index[path + CAUGHT] = record
        elif status == "unfinished":
            index[path + UNFINISHED] = record
        elif status == "decided":
            index[path + DECIDED] = record
        elif status == "tolerated":
            index[path + FAILED_ITEM] = record
        elif status == "compensating":
            index[COMPENSATING] = record
        elif status in ("compensated", "reset", "retry"):
            dropped = [done for done in index if at_or_under(done, path)]
            if status == "compensated":
                dropped += [done for done in instance_ancestors(path) if done in index]
            for done in dropped:
                index.pop(done, None)
            if status == "retry" and "a" in record:
                index[path + ATTEMPT] = record
        elif status == "rewind":
            drop = set(record.get("drop") or ())
            reopen = set(record.get("reopen") or ())
            for done in [p for p in index if _rewound(static_path(p), drop, reopen)]:
                del index[done]
            index.pop(COMPENSATING, None)  # running steps again: the run's failure is no longer decided
    return index


def _rewound(path: str, drop: set[str], reopen: set[str]) -> bool:
    if path in reopen:
        return True
    if path.endswith(CAUGHT):  # running part of the try body again means trying the body again
        body = path[: -len(CAUGHT)] + "/try/"
        if any(target.startswith(body) for target in drop):
            return True
    if path.endswith(FAILED_ITEM):  # running a step of a map's items again means trying its failed items again
        steps = path[: -len(FAILED_ITEM)] + "/"
        if any(target.startswith(steps) for target in drop):
            return True
    parts = path.split("/")
    return any("/".join(parts[:depth]) in drop for depth in range(1, len(parts) + 1))


def node_at(workflow: Workflow, path: str) -> Node | None:
    """The node at static ``path``, looking inside sub-workflows (``sub/step`` is ``step`` of ``sub``'s file)."""
    node = workflow.nodes.get(path)
    if node is not None:
        return node
    parts = path.split("/")
    for depth in range(1, len(parts)):
        outer = workflow.nodes.get("/".join(parts[:depth]))
        if isinstance(outer, WorkflowNode):
            return node_at(outer.workflow, "/".join(parts[depth:]))
    return None


def rewind_record(workflow: Workflow, step: str) -> dict[str, Any]:
    """The journal record of ``--from STEP``: STEP and every node after it run again; the composites
    around STEP are re-entered (so the steps before STEP inside them stay done)."""
    target = workflow.find(step)
    if target is None:
        from llmflow.spec.validator import suggest

        match = suggest(step, [node.id for node in workflow.walk() if node.named])
        hint = f" (did you mean '{match}'?)" if match else ""
        raise UsageError(f"--from: the workflow has no step '{step}'{hint}")
    paths = list(workflow.nodes)
    later = paths[paths.index(target.path) :]
    parts = target.path.split("/")
    around = {"/".join(parts[:depth]) for depth in range(1, len(parts))} & set(paths)
    return {"p": "", "s": "rewind", "drop": later, "reopen": sorted(around)}


def rerun_set(workflow: Workflow, step: str) -> set[str]:
    """Static paths that ``--from STEP`` runs again: STEP, everything after it, and the composites around it."""
    record = rewind_record(workflow, step)
    return set(record["drop"]) | set(record["reopen"])


def check_edited(workflow: Workflow, records: Iterable[Mapping[str, Any]]) -> None:
    """Refuse an edited workflow that no longer has every completed node instance's node."""
    missing: set[str] = set()
    for path in replay_index(records):
        if path == COMPENSATING:
            continue
        for marker in _MARKERS:
            path = path.removesuffix(marker)
        static = static_path(path)
        if node_at(workflow, static) is None:
            missing.add(static)
    if missing:
        shown = sorted(missing)
        listed = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
        raise UsageError(
            f"the edited workflow no longer has these completed steps: {listed}; keep them (with the same ids) "
            "to resume, or start a new run with `llmflow run`"
        )
