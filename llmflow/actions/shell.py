"""The ``run`` action: a shell command or an argv list in its own process group, output streamed live."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
from pathlib import Path
from typing import Any

from llmflow.actions.json_text import load_json
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError, CommandError
from llmflow.processes import ProcessRecord, read_lines, start_process_group, stop_process_group

_STDERR_TAIL = 2000


def _tail(text: str) -> str:
    """The end of a command's stderr, starting with "…" where it was cut (the masking of secrets looks for it:
    the cut may fall inside one)."""
    return text if len(text) <= _STDERR_TAIL else "…" + text[-_STDERR_TAIL:]


async def _pump(stream: asyncio.StreamReader | None, sink: list[bytes], ctx: ActionContext, name: str) -> None:
    if stream is None:
        return
    async for line in read_lines(stream):
        sink.append(line)
        ctx.services.output_line(ctx.path, name, line.decode("utf-8", "replace").rstrip("\n"))


async def _feed(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stream is None or data is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a command need not read it all
        stream.write(data)
        await stream.drain()
    stream.close()


def parse_output(text: str, how: str, step_id: str) -> Any:
    """Parse a command's stdout as ``text``, ``json``, ``lines`` or ``yaml``."""
    if how == "json":
        try:
            return load_json(text)
        except json.JSONDecodeError as error:
            raise ActionError(
                f"step '{step_id}': stdout is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from None
    if how == "lines":
        return [line for line in text.splitlines() if line.strip()]
    if how == "yaml":
        from llmflow.errors import WorkflowError
        from llmflow.spec.loader import load_text

        try:
            return load_text(text, f"stdout of {step_id}", expect_mapping=False).data
        except WorkflowError as error:
            first = error.diagnostics[0]
            if first.code == "empty-file":
                return None  # an empty document (nothing, comments, a bare ---) is null
            raise ActionError(
                f"step '{step_id}': stdout is not valid YAML (line {first.line}: {first.message})"
            ) from None
    return text.rstrip("\r\n")


def _refuse_nul(step_id: str, path: str, argv: list[str], env: dict[str, str]) -> None:
    """A NUL character cannot pass through ``execve`` (it ends a C string): say which value holds one, rather
    than let ``ValueError: embedded null byte`` escape."""
    for position, argument in enumerate(argv):
        if "\x00" in argument:
            raise ActionError(
                f"step '{step_id}': argument {position + 1} of the command contains a NUL character, which a "
                "command's arguments cannot hold",
                path=path,
            )
    for name, value in env.items():
        if "\x00" in value:
            raise ActionError(
                f"step '{step_id}': environment variable {name} contains a NUL character, which a command's "
                "environment cannot hold",
                path=path,
            )


async def run_command(ctx: ActionContext) -> ActionResult:
    """Run the command; non-zero exit fails with the exit code and the tail of stderr."""
    node = ctx.node
    options = node.options
    env = dict(ctx.env)
    env["LLMFLOW_RUN_ID"] = ctx.services.run_id
    env["LLMFLOW_STEP"] = ctx.path
    env["LLMFLOW_IDEMPOTENCY_KEY"] = ctx.idempotency_key
    if ctx.shell is not None:
        env.update(ctx.shell.env)
        argv = [options.get("shell", "sh"), "-c", ctx.shell.script]
    else:
        argv = [value if isinstance(value, str) else json.dumps(value) for value in ctx.config.get("argv", [])]
        if not argv:
            raise ActionError(f"step '{node.id}': the command is empty", path=ctx.path)
    _refuse_nul(node.id, ctx.path, argv, env)
    cwd = ctx.workflow_dir
    if ctx.config.get("cwd"):
        cwd = (cwd / str(ctx.config["cwd"])).resolve()
    if not Path(cwd).is_dir():
        raise ActionError(f"step '{node.id}': working directory {cwd} does not exist", path=ctx.path)
    stdin = ctx.config.get("stdin")
    creation = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=1 << 20,
        )
    )
    try:
        process = await start_process_group(creation)
    except (FileNotFoundError, PermissionError) as error:
        raise CommandError(f"step '{node.id}': cannot start {argv[0]!r}: {error.strerror}", path=ctx.path) from None
    except OSError as error:
        if error.errno != errno.E2BIG:
            raise
        raise ActionError(
            f"step '{node.id}': the command's arguments and environment are too large to start it "
            f"({sum(len(arg) for arg in argv)} characters of arguments); write a large value to a file or pass "
            "it with stdin instead",
            path=ctx.path,
        ) from None
    out: list[bytes] = []
    err: list[bytes] = []
    record = ProcessRecord(ctx.services.artifacts_dir().parent / "processes", process)
    try:
        data = None if stdin is None else (stdin if isinstance(stdin, str) else json.dumps(stdin)).encode()
        # stdin is fed while stdout and stderr are read: a command that answers before it has read all its
        # input (cat, tr, grep …) would otherwise fill its output pipe and wait for us as we wait for it.
        await asyncio.gather(
            _feed(process.stdin, data),
            _pump(process.stdout, out, ctx, "stdout"),
            _pump(process.stderr, err, ctx, "stderr"),
        )
        code = await process.wait()
    except BaseException:
        await stop_process_group(process)
        raise
    finally:
        record.close()
    stdout = b"".join(out).decode("utf-8", "replace")
    stderr = b"".join(err).decode("utf-8", "replace")
    if code != 0:
        tail = _tail(stderr.strip())
        reason = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
        message = f"step '{node.id}': command failed with {reason}" + (f": {tail}" if tail else "")
        raise CommandError(message, path=ctx.path, data={"exit_code": code, "stderr": tail})
    how = str(options.get("parse", "text"))
    extra: dict[str, Any] = {"exit_code": code}
    if stderr:
        extra["stderr"] = _tail(stderr)
    if how != "text":
        extra["stdout"] = stdout
    return ActionResult(output=parse_output(stdout, how, node.id), extra=extra)
