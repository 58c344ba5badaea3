"""Parallel branches and map items: isolated lanes run concurrently, then joined and merged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llmflow.engine.outcome import SUCCEEDED, NodeFailed, Outcome, PauseRun, jsonable
from llmflow.engine.resume import FAILED_ITEM
from llmflow.errors import ActionError, StepError
from llmflow.expressions.values import a_type, whole_number

if TYPE_CHECKING:
    from llmflow.compiler.graph import MapNode, ParallelNode, StreamNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine

Lane = Callable[[], Awaitable[tuple[Any, dict[str, Any]]]]
#: Told how many lanes failed so far; says whether the lanes still running should be cancelled.
StopRule = Callable[[int], bool]


class _Cancelled:
    """Marks a lane that was cancelled because another failed first."""


CANCELLED = _Cancelled()


def never(_failed: int) -> bool:
    """The stop rule of ``fail_fast: false``: every lane runs to its end."""
    return False


def first_failure(failed: int) -> bool:
    """The stop rule of ``fail_fast: true``: the first failure cancels the rest."""
    return failed > 0


async def run_lanes(lanes: list[Lane], concurrency: int | None, stop: StopRule) -> list[Any]:
    """Run lanes at most ``concurrency`` at a time; return each lane's result or exception, in lane order.

    Once ``stop`` says so, the lanes still running (or waiting for a slot) are cancelled. A pausing lane
    (approval) never cancels the others: they finish, then the pause wins. Any exception that is neither a
    step failure nor a pause (a run limit, a bug) cancels every other lane and is raised.

    ``concurrency`` workers take the lanes in order, so a map of 100,000 items holds tasks for the items in
    flight only, and a failure costs the same however many items are still to come (waiting on a task per
    lane again after each failure made a map with many tolerated failures quadratic).
    """
    if not lanes:
        return []
    results: list[Any] = [CANCELLED] * len(lanes)
    upcoming = iter(range(len(lanes)))
    failed = 0
    stopped = False
    workers: list[asyncio.Task[None]] = []

    async def work() -> None:
        nonlocal failed, stopped
        for index in upcoming:
            if stopped:
                return
            try:
                results[index] = await lanes[index]()
            except (StepError, PauseRun) as error:
                results[index] = error
                if isinstance(error, StepError):
                    failed += 1
                    if not stopped and stop(failed):
                        stopped = True
                        current = asyncio.current_task()
                        for worker in workers:
                            if worker is not current:
                                worker.cancel()
                        return
            # Let the other workers finish their lanes before this one starts its next: lanes ending at the
            # same moment then share one fsync (group commit, ``runner``) instead of each syncing the
            # record the next lane of its neighbour has just written (~2.5x slower).
            await asyncio.sleep(0)

    count = min(concurrency or len(lanes), len(lanes))
    workers.extend(asyncio.ensure_future(work()) for _ in range(count))
    try:
        done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        fatal = [error for task in done if not task.cancelled() and (error := task.exception()) is not None]
        if fatal:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise fatal[0]
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    return results


def merge_writes(
    policy: str,
    lanes: list[tuple[str, dict[str, Any]]],
    node_id: str,
    path: str,
    remedy: str = "use merge: last or merge: list",
) -> dict[str, Any]:
    """Join the variables written by isolated lanes by the node's ``merge`` policy (``remedy``: what the error
    of two different values suggests)."""
    merged: dict[str, Any] = {}
    writers: dict[str, str] = {}
    for name, writes in lanes:
        for key, value in writes.items():
            if policy == "list":
                merged.setdefault(key, []).append(value)
            elif policy == "error" and key in merged and merged[key] != value:
                message = f"'{node_id}': {writers[key]} and {name} both set vars.{key} to different values ({remedy})"
                raise ActionError(message, path=path)
            else:
                merged[key] = value
                writers[key] = name
    return merged


def concurrency_of(engine: Engine, node: MapNode | ParallelNode | StreamNode, frame: Frame, path: str) -> int | None:
    """The node's ``concurrency``, rendered and checked (``None`` when not given)."""
    if node.concurrency is None:
        return None
    value = engine.render(node.concurrency, frame, node, "concurrency")
    count = whole_number(value)
    if count is None:
        raise ActionError(f"'{node.id}': concurrency must be a whole number, not {value!r}", path=path)
    if count < 1:
        raise ActionError(f"'{node.id}': concurrency must be at least 1, not {count}", path=path)
    return count


def _pauses(results: list[Any]) -> None:
    """Raise one pause listing every lane that waits for approval, if any does."""
    pauses = [result for result in results if isinstance(result, PauseRun)]
    if pauses:
        first = pauses[0]
        for other in pauses[1:]:
            first.join(other)
        raise first


def _failed_before(info: dict[str, Any]) -> NodeFailed:
    """The failure of a map item as the journal keeps it (the error it showed in ``.errors``)."""
    cause = StepError(str(info.get("message")), path=str(info.get("step") or ""), data=info)
    cause.kind = str(info.get("kind") or cause.kind)
    return NodeFailed(cause.path, cause)


def _item_error(error: StepError) -> dict[str, Any]:
    info = dict(error.info) if isinstance(error, NodeFailed) else {"message": error.message, "kind": error.kind}
    info.pop("output", None)
    return info


async def execute_parallel(engine: Engine, node: ParallelNode, frame: Frame, path: str) -> Outcome:
    """Named branches at once; output ``{branch: output}``; variables merged by ``merge``."""

    def lane(name: str, steps: Any) -> Lane:
        async def run() -> tuple[Any, dict[str, Any]]:
            child = frame.nested(node.path + "/", path + "/", isolated=True, new_steps=False)
            engine.state.emit("parallel.branch", path, {"id": node.id, "branch": name})
            return await engine.sequence(steps, child)

        return run

    lanes = [lane(branch.name, branch.steps) for branch in node.branches]
    stop = first_failure if node.fail_fast else never
    results = await run_lanes(lanes, concurrency_of(engine, node, frame, path), stop)
    _pauses(results)
    names = [branch.name for branch in node.branches]
    failures = [result for result in results if isinstance(result, StepError)]
    if failures:
        first = failures[0]
        raise first if isinstance(first, NodeFailed) else NodeFailed(path, first)
    finished = list(zip(names, results, strict=True))
    outputs = {name: result[0] for name, result in finished}
    writes = merge_writes(node.merge, [(f"branch {name}", result[1]) for name, result in finished], node.id, path)
    return Outcome(SUCCEEDED, output=outputs, writes=writes)


async def execute_map(engine: Engine, node: MapNode, frame: Frame, path: str) -> Outcome:
    """The steps once per item, each on its own copy of the variables; output in input order.

    ``tolerated_failures`` items may fail (their output is ``null``, ``.errors`` lists them); with
    ``fail_fast`` the items still running are cancelled as soon as one failure more than that happens.
    """
    items = jsonable(engine.render(node.items, frame, node, "items"), f"the items of map '{node.id}'", path)
    if isinstance(items, dict):
        items = [{"key": key, "value": value} for key, value in items.items()]
    elif isinstance(items, str):  # a command's output, say: one item a line, as a loop's for_each
        items = items.splitlines()
    if not isinstance(items, list):
        raise ActionError(f"map '{node.id}': items must be a list, not {a_type(items)}", path=path)
    total = len(items)
    # Failures the map may tolerate are journaled, so that a resume does not try those items again.
    tolerant = node.tolerance.allows(1, total)

    def lane(index: int, item: Any) -> Lane:
        async def run() -> tuple[Any, dict[str, Any]]:
            item_path = f"{path}[{index}]"
            earlier = engine.state.replay.get(item_path + FAILED_ITEM) if tolerant else None
            if earlier is not None:
                raise _failed_before(dict(earlier["e"]))
            names = {node.variable: item, "index": index}
            child = frame.nested(node.path + "/", item_path + "/", locals=names, isolated=True)
            engine.state.emit("map.item", path, {"id": node.id, "index": index})
            try:
                return await engine.sequence(node.steps, child)
            except StepError as error:
                if tolerant:
                    # Written now (a kill cannot lose it), synced with the next completed step's record: should a
                    # power loss take it, the resume only tries the failed item again. No fsync per failure.
                    engine.state.handle.append(
                        {"p": item_path, "s": "tolerated", "e": _item_error(error)}, deferred=True
                    )
                raise

        return run

    def stop(failed: int) -> bool:
        return node.fail_fast and not node.tolerance.allows(failed, total)

    concurrency = concurrency_of(engine, node, frame, path)
    results = await run_lanes([lane(i, item) for i, item in enumerate(items)], concurrency, stop)
    _pauses(results)
    outputs: list[Any] = []
    errors: list[dict[str, Any]] = []
    done: list[tuple[str, dict[str, Any]]] = []
    for index, result in enumerate(results):
        if isinstance(result, StepError):
            errors.append({"index": index, "item": items[index], "error": _item_error(result)})
            outputs.append(None)
        elif result is CANCELLED:
            outputs.append(None)
        else:
            outputs.append(result[0])
            done.append((f"item {index}", result[1]))
    if errors and not node.tolerance.allows(len(errors), total):
        if tolerant:  # the map failed after all: a resume of the failed run tries its failed items again
            for error in errors:
                engine.state.handle.append({"p": f"{path}[{error['index']}]{FAILED_ITEM}", "s": "reset"})
        first = errors[0]
        reason = first["error"]["message"]
        message = f"map '{node.id}': {len(errors)} of {total} items failed; item {first['index']}: {reason}"
        raise ActionError(message, path=path, data={"errors": errors})
    writes = merge_writes(node.merge, done, node.id, path)
    return Outcome(SUCCEEDED, output=outputs, writes=writes, extra={"errors": errors})
