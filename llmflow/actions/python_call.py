"""The ``python`` action: call ``package.module:function`` with keyword arguments, sync or async."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import importlib.util
import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from llmflow.digests import sha256
from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError


def _import_beside(module_name: str, directory: str) -> ModuleType | None:
    """The module ``module_name`` from a file in ``directory``, imported under a name unique to that file.

    Two workflows in different folders may each have a ``helpers.py``; importing both by the plain name
    would hand the second workflow the first one's module (``sys.modules`` is keyed by name).
    """
    base = Path(directory, *module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            file = candidate.resolve()
            break
    else:
        return None
    unique = f"_llmflow_step_{sha256(str(file).encode()).hexdigest()[:16]}_{module_name.replace('.', '_')}"
    stamp = file.stat().st_mtime_ns
    cached = sys.modules.get(unique)
    if cached is not None and getattr(cached, "__llmflow_mtime__", None) == stamp:
        return cached
    spec = importlib.util.spec_from_file_location(unique, file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    module.__llmflow_mtime__ = stamp  # type: ignore[attr-defined]
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    return module


def resolve_callable(target: str, directory: str, step_id: str) -> Any:
    """Import ``module:function``: a module file beside the workflow first, else an installed module."""
    module_name, _, function_name = target.partition(":")
    if directory not in sys.path:
        sys.path.append(directory)  # modules beside the workflow may import each other
    try:
        module = _import_beside(module_name, directory)
        if module is None:
            module = importlib.import_module(module_name)
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name == module_name.split(".")[0]
        why = (
            f"there is no {module_name.split('.')[0]}.py (or package) beside the workflow, in {directory}, "
            "nor an installed module of that name"
            if missing
            else str(error)
        )
        raise ActionError(f"step '{step_id}': cannot import {module_name!r}: {why}") from None
    except Exception as error:  # the module itself raised while importing
        raise ActionError(
            f"step '{step_id}': importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        import difflib

        functions = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_"))
        close = difflib.get_close_matches(function_name, functions, n=1)
        hint = (
            f" (did you mean {close[0]!r}?)"
            if close
            else (f" (it has {', '.join(functions[:10])})" if functions else "")
        )
        raise ActionError(f"step '{step_id}': {module_name!r} has no function {function_name!r}{hint}")
    return function


async def call_python(ctx: ActionContext) -> ActionResult:
    """Call the function; its return value is the output (tuples and sets become lists; objects are refused)."""
    node = ctx.node
    function = resolve_callable(str(node.options["call"]), str(ctx.workflow_dir), node.id)
    arguments = dict(ctx.config.get("with") or {})
    try:
        if inspect.iscoroutinefunction(function):
            result = await function(**arguments)
        else:
            result = await _in_thread(function, arguments)
    except TypeError as error:
        raise ActionError(f"step '{node.id}': {error}", path=ctx.path) from None
    except Exception as error:
        raise ActionError(f"step '{node.id}': {type(error).__name__}: {error}", path=ctx.path) from None
    except SystemExit as raised:  # from an async function (a sync one's thread turns it into a RuntimeError)
        message = f"step '{node.id}': RuntimeError: the function raised SystemExit: {raised}"
        raise ActionError(message, path=ctx.path) from None
    return ActionResult(output=result)


#: At most this many sync functions run at once per event loop (as with asyncio's default executor).
MAX_THREADS = 32
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def _in_thread(function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Call a sync function in a daemon thread of its own and wait for it.

    Not ``asyncio.to_thread``: the threads of the default executor are joined when the interpreter exits, so
    a function still running after its step timed out (or the run was interrupted) would hold the whole
    process until it returned. A daemon thread does not: the step ends on time and the process can exit.
    """
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(MAX_THREADS)
    async with slots:
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = context.run(function, **arguments)
            except Exception as raised:
                error = raised
            except BaseException as raised:  # SystemExit, KeyboardInterrupt: a failure of the step, no more
                error = RuntimeError(f"the function raised {type(raised).__name__}: {raised}")
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this result any more
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=work, name="llmflow-python", daemon=True).start()
        return await future
