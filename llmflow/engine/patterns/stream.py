"""Streams: process items as a source produces them, through a bounded buffer, with N workers.

The source (a command's stdout, a file, a list) is read by one producer task into a queue of ``buffer``
places, so a fast source waits for slow steps instead of filling memory. ``batch`` groups items into
lists. Each item (or batch) runs the steps like a map item, on its own copy of the variables, at the
instance path ``<stream>[<index>]/…``; indexes follow the source's order, so a resumed run, which reads
the source again, restores every item that finished and continues with the first one that did not.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmflow.engine.outcome import SUCCEEDED, Outcome, PauseRun
from llmflow.engine.patterns.concurrent import concurrency_of, merge_writes
from llmflow.errors import ActionError, CommandError, StepError
from llmflow.expressions.values import a_type
from llmflow.processes import ProcessRecord, read_lines, stop_process_group

if TYPE_CHECKING:
    from llmflow.compiler.graph import StreamNode
    from llmflow.engine.frame import Frame
    from llmflow.engine.runner import Engine

_METRICS_EVERY = 1.0  # seconds between stream.metrics events
_END = object()


def _parse(line: str, how: str, number: int, node: StreamNode, path: str) -> Any:
    if how == "jsonl":
        try:
            return json.loads(line)
        except json.JSONDecodeError as error:
            reason = error.msg
        except RecursionError:
            reason = "nested too deeply"
        except ValueError as error:  # "Exceeds the limit (4300 digits) for integer string conversion"
            reason = str(error).partition(":")[0]
        message = f"stream '{node.id}': line {number} is not valid JSON ({reason})"
        raise ActionError(message, path=path)
    return line


async def _lines_of_file(path: Path) -> AsyncIterator[str]:
    # Bytes that are not UTF-8 become U+FFFD, as in a command's output: the file is data, not a workflow.
    with path.open("r", encoding="utf-8", errors="replace", newline="") as stream:
        while True:
            chunk = await asyncio.to_thread(stream.readlines, 1 << 16)
            if not chunk:
                return
            for line in chunk:
                yield line


async def _lines_of_command(
    engine: Engine, node: StreamNode, frame: Frame, config: dict[str, Any], path: str
) -> AsyncIterator[str]:
    command = config.get("run")
    env = dict(frame.env if frame.env is not None else engine.env_base)
    if node.shell is not None:
        rendered = node.shell.render(engine.context(frame))
        env.update(rendered.env)
        argv = ["sh", "-c", rendered.script]
    elif isinstance(command, list) and command:
        argv = [str(part) for part in command]
    else:
        raise ActionError(f"stream '{node.id}': the command is empty", path=path)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=frame.workflow_dir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=1 << 20,
    )
    assert process.stdout is not None and process.stderr is not None
    record = ProcessRecord(engine.state.handle.directory / "processes", process)
    try:
        async for raw in read_lines(process.stdout):
            yield raw.decode("utf-8", "replace")
        code = await process.wait()
    except BaseException:
        await stop_process_group(process)
        raise
    finally:
        record.close()
    if code != 0:
        text = (await process.stderr.read()).decode("utf-8", "replace").strip()
        tail = text if len(text) <= 2000 else "…" + text[-2000:]  # "…": where a secret may have been cut
        message = f"stream '{node.id}': the source command failed with exit code {code}" + (f": {tail}" if tail else "")
        raise CommandError(message, path=path, data={"exit_code": code})


async def _items(engine: Engine, node: StreamNode, frame: Frame, path: str) -> AsyncIterator[Any]:
    """The source's items, parsed by ``format`` (``path``: the stream's instance path, which errors name)."""
    config = engine.render(node.source_config, frame, node, "from")
    if node.source == "items":
        items = config.get("items")
        if isinstance(items, str):
            items = items.splitlines()
        if not isinstance(items, list):
            raise ActionError(f"stream '{node.id}': items must be a list, not {a_type(items)}", path=path)
        for item in items:
            yield item
        return
    if node.source == "file":
        file = (Path(frame.workflow_dir) / str(config.get("file", ""))).resolve()
        if not file.is_file():
            raise ActionError(f"stream '{node.id}': file {config.get('file')!r} does not exist", path=path)
        lines: AsyncIterator[str] = _lines_of_file(file)
    elif node.source == "run":
        lines = _lines_of_command(engine, node, frame, config, path)
    else:
        message = f"stream '{node.id}': streaming from '{node.source}' is not available in this version of llmflow"
        raise ActionError(message, path=path)
    header: list[str] | None = None
    number = 0
    async for raw in lines:
        number += 1
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if node.format == "csv":
            import csv  # here: most runs have no csv stream

            try:
                row = next(csv.reader(io.StringIO(line)))
            except csv.Error as error:  # e.g. a field longer than the csv module's limit (131,072 characters)
                raise ActionError(f"stream '{node.id}': line {number} is not valid CSV ({error})", path=path) from None
            if header is None:
                header = row
                continue
            yield dict(zip(header, row, strict=False))
        else:
            yield _parse(line, node.format, number, node, path)


async def execute_stream(engine: Engine, node: StreamNode, frame: Frame, path: str) -> Outcome:
    """Producer → bounded buffer → workers; output the item count, or the outputs with ``collect``."""
    workers = concurrency_of(engine, node, frame, path) or 1
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, node.buffer))
    outputs: dict[int, Any] = {}
    writes: list[tuple[int, dict[str, Any]]] = []
    pauses: list[tuple[int, PauseRun]] = []
    started = time.monotonic()
    counters = {"produced": 0, "done": 0, "last_metrics": started}

    async def produce() -> None:
        batch: list[Any] = []
        async for item in _items(engine, node, frame, path):
            if node.batch > 1:
                batch.append(item)
                if len(batch) < node.batch:
                    continue
                item, batch = batch, []
            await queue.put((counters["produced"], item))
            counters["produced"] += 1
        if batch:
            await queue.put((counters["produced"], batch))
            counters["produced"] += 1
        for _ in range(workers):
            await queue.put(_END)

    def metrics(final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - counters["last_metrics"] < _METRICS_EVERY:
            return
        counters["last_metrics"] = now
        elapsed = max(now - started, 1e-9)
        data = {
            "id": node.id,
            "items": counters["done"],
            "items_per_second": round(counters["done"] / elapsed, 2),
            "buffer": queue.qsize(),
            "buffer_size": node.buffer,
            "final": final,
        }
        engine.state.emit("stream.metrics", path, data)

    async def work() -> None:
        while True:
            entry = await queue.get()
            if entry is _END:
                return
            index, item = entry
            child = frame.nested(
                node.path + "/", f"{path}[{index}]/", locals={node.variable: item, "index": index}, isolated=True
            )
            try:
                output, written = await engine.sequence(node.steps, child)
            except PauseRun as pause:
                # As in a map: an item waiting for approval does not stop the others; the pause wins at the end.
                pauses.append((index, pause))
                continue
            if node.collect:
                outputs[index] = output
            writes.append((index, written))
            counters["done"] += 1
            metrics()

    tasks = [asyncio.ensure_future(produce())] + [asyncio.ensure_future(work()) for _ in range(workers)]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failure = next((task.exception() for task in done if not task.cancelled() and task.exception()), None)
        if failure is not None:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if not pauses or not isinstance(failure, StepError):
                raise failure
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pauses:  # every item waiting for approval is listed; a failure beside them waits too (as in a map)
        (_, first), *others = sorted(pauses, key=lambda pair: pair[0])
        for _, other in others:
            first.join(other)
        raise first
    metrics(final=True)
    merged = merge_writes(
        "error",
        [(f"item {index}", w) for index, w in sorted(writes, key=lambda pair: pair[0])],
        node.id,
        path,
        "a stream has no merge policy: keep per-item values in its output, with collect: true",
    )
    output: Any = [outputs[index] for index in sorted(outputs)] if node.collect else counters["done"]
    return Outcome(SUCCEEDED, output=output, writes=merged, extra={"count": counters["done"]})
