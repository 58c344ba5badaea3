"""Parallel branches and map items: isolated lanes run concurrently, then joined and merged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llmflow.engine.outcome import SUCCEEDED, NodeFailed, Outcome, PauseRun
from llmflow.errors import ActionError, StepError

if TYPE_CHECKING:
    from llmflow.compiler.graph import MapNode, ParallelNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine

Lane = Callable[[], Awaitable[tuple[Any, dict[str, Any]]]]


class _Cancelled:
    """Marks a lane that was cancelled because another failed first."""


CANCELLED = _Cancelled()


async def run_lanes(lanes: list[Lane], concurrency: int | None, fail_fast: bool) -> list[Any]:
    """Run lanes at most ``concurrency`` at a time; return each lane's result or exception, in lane order.

    With ``fail_fast`` the first failure cancels the lanes still running. A pausing lane (approval) never
    cancels the others: they finish, then the pause wins.
    """
    slots = asyncio.Semaphore(concurrency) if concurrency else None

    async def guarded(lane: Lane) -> tuple[Any, dict[str, Any]]:
        if slots is None:
            return await lane()
        async with slots:
            return await lane()

    tasks = [asyncio.ensure_future(guarded(lane)) for lane in lanes]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            errors = [error for task in done if not task.cancelled() and (error := task.exception()) is not None]
            fatal = [e for e in errors if not isinstance(e, (StepError, PauseRun))]
            failed = [e for e in errors if isinstance(e, StepError)]
            if fatal or (fail_fast and failed):
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                if fatal:
                    raise fatal[0]
                break
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    results: list[Any] = []
    for task in tasks:
        if task.cancelled():
            results.append(CANCELLED)
        else:
            results.append(task.exception() or task.result())
    return results


def merge_writes(policy: str, lanes: list[tuple[str, dict[str, Any]]], node_id: str, path: str) -> dict[str, Any]:
    """Join the variables written by isolated lanes by the node's ``merge`` policy."""
    merged: dict[str, Any] = {}
    writers: dict[str, str] = {}
    for name, writes in lanes:
        for key, value in writes.items():
            if policy == "list":
                merged.setdefault(key, []).append(value)
            elif policy == "error" and key in merged and merged[key] != value:
                message = (
                    f"'{node_id}': {writers[key]} and {name} both set vars.{key} to different values "
                    "(use merge: last or merge: list)"
                )
                raise ActionError(message, path=path)
            else:
                merged[key] = value
                writers[key] = name
    return merged


def _concurrency(engine: Engine, node: MapNode | ParallelNode, frame: Frame) -> int | None:
    if node.concurrency is None:
        return None
    value = engine.render(node.concurrency, frame, node, "concurrency")
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ActionError(f"'{node.id}': concurrency must be a whole number, not {value!r}", path=node.path) from None
    if count < 1:
        raise ActionError(f"'{node.id}': concurrency must be at least 1, not {count}", path=node.path)
    return count


def _pauses(results: list[Any]) -> None:
    pauses = [result for result in results if isinstance(result, PauseRun)]
    if pauses:
        first = pauses[0]
        for other in pauses[1:]:
            first.paths.extend(other.paths)
        raise first


async def execute_parallel(engine: Engine, node: ParallelNode, frame: Frame, path: str) -> Outcome:
    """Named branches at once; output ``{branch: output}``; variables merged by ``merge``."""

    def lane(name: str, steps: Any) -> Lane:
        async def run() -> tuple[Any, dict[str, Any]]:
            child = frame.nested(node.path + "/", path + "/", isolated=True, new_steps=False)
            engine.state.emit("parallel.branch", path, {"id": node.id, "branch": name})
            return await engine.sequence(steps, child)

        return run

    lanes = [lane(branch.name, branch.steps) for branch in node.branches]
    results = await run_lanes(lanes, _concurrency(engine, node, frame), node.fail_fast)
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
    """The steps once per item, each on its own copy of the variables; output in input order."""
    items = engine.render(node.items, frame, node, "items")
    if isinstance(items, dict):
        items = [{"key": key, "value": value} for key, value in items.items()]
    if not isinstance(items, list):
        raise ActionError(f"map '{node.id}': items must be a list, not {type(items).__name__}", path=path)

    def lane(index: int, item: Any) -> Lane:
        async def run() -> tuple[Any, dict[str, Any]]:
            names = {node.variable: item, "index": index}
            child = frame.nested(node.path + "/", f"{path}[{index}]/", locals=names, isolated=True)
            engine.state.emit("map.item", path, {"id": node.id, "index": index})
            return await engine.sequence(node.steps, child)

        return run

    results = await run_lanes(
        [lane(i, item) for i, item in enumerate(items)], _concurrency(engine, node, frame), node.fail_fast
    )
    _pauses(results)
    outputs: list[Any] = []
    errors: list[dict[str, Any]] = []
    done: list[tuple[str, dict[str, Any]]] = []
    for index, result in enumerate(results):
        if isinstance(result, StepError):
            info = result.info if isinstance(result, NodeFailed) else {"message": result.message}
            errors.append({"index": index, "item": items[index], "error": info})
            outputs.append(None)
        elif result is CANCELLED:
            outputs.append(None)
        else:
            outputs.append(result[0])
            done.append((f"item {index}", result[1]))
    if errors and (node.fail_fast or not node.tolerance.allows(len(errors), len(items))):
        first = errors[0]
        reason = first["error"]["message"]
        message = f"map '{node.id}': {len(errors)} of {len(items)} items failed; item {first['index']}: {reason}"
        raise ActionError(message, path=path, data={"errors": errors})
    writes = merge_writes(node.merge, done, node.id, path)
    return Outcome(SUCCEEDED, output=outputs, writes=writes, extra={"errors": errors} if errors else {})
