"""The ``python`` action: call ``package.module:function`` with keyword arguments, sync or async."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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
    unique = f"_llmflow_step_{hashlib.sha256(str(file).encode()).hexdigest()[:16]}_{module_name.replace('.', '_')}"
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
        raise ActionError(f"step '{step_id}': cannot import {module_name!r}: {error}") from None
    except Exception as error:  # the module itself raised while importing
        raise ActionError(
            f"step '{step_id}': importing {module_name!r} failed: {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ActionError(f"step '{step_id}': {module_name!r} has no function {function_name!r}")
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
            result = await asyncio.to_thread(function, **arguments)
    except TypeError as error:
        raise ActionError(f"step '{node.id}': {error}", path=ctx.path) from None
    except Exception as error:
        raise ActionError(f"step '{node.id}': {type(error).__name__}: {error}", path=ctx.path) from None
    return ActionResult(output=result)
