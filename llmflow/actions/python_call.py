"""The ``python`` action: call ``package.module:function`` with keyword arguments, sync or async."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
from typing import Any

from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError


def resolve_callable(target: str, directory: str, step_id: str) -> Any:
    """Import ``module:function``; the workflow's folder is on the import path."""
    module_name, _, function_name = target.partition(":")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
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
    """Call the function; its return value (JSON-serialisable) is the output."""
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
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        message = f"step '{node.id}': the function returned a {type(result).__name__}, which cannot be stored as JSON"
        raise ActionError(message, path=ctx.path) from None
    return ActionResult(output=result)
