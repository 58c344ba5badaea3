"""The hooks a plugin may implement (pluggy project ``llmflow``): register things, or intercept node instances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from llmflow.compiler.graph import Node
    from llmflow.engine.actions import ActionRegistry
    from llmflow.engine.interception import Decision, StepContext
    from llmflow.expressions.extensions import FunctionRegistry
    from llmflow.plugins.manager import RunSinks
    from llmflow.providers import ProviderRegistry

#: Marks the hook specifications below.
hookspec = pluggy.HookspecMarker("llmflow")
#: Marks a plugin's hook implementations: ``@hookimpl def register_actions(registry): ...``.
hookimpl = pluggy.HookimplMarker("llmflow")


@hookspec
def register_actions(registry: ActionRegistry) -> None:
    """Add leaf actions: ``registry.register(kind, action)``, where ``action(ctx)`` is async."""


@hookspec
def register_providers(registry: ProviderRegistry) -> None:
    """Add model providers: ``registry.register(name, factory)`` (``registry.config`` holds the settings)."""


@hookspec
def register_sinks(sinks: RunSinks) -> None:
    """Add event sinks to a run: ``sinks.add(sink)`` (``sinks.run_id`` and ``sinks.run_dir`` say which)."""


@hookspec
def register_filters(filters: FunctionRegistry) -> None:
    """Add template filters: ``filters.register(name, function)``; ``function(value, *args)`` gets plain data."""


@hookspec
def register_functions(functions: FunctionRegistry) -> None:
    """Add condition functions: ``functions.register(name, function)``; arguments are plain data."""


@hookspec(firstresult=True)
def before_step(step: Node, context: StepContext) -> Decision | None:
    """Before a node runs: ``Decision.skip(output)``, ``Decision.change(config)`` or ``Decision.abort()``."""


@hookspec(firstresult=True)
def after_step(step: Node, context: StepContext, result: Mapping[str, Any]) -> Decision | None:
    """After an attempt succeeded: ``Decision.replace(output)`` or ``Decision.abort()``."""


@hookspec(firstresult=True)
def on_error(step: Node, context: StepContext, error: Mapping[str, Any]) -> Decision | None:
    """After an attempt failed: ``Decision.retry()``, ``.recover(output)``, ``.fail()`` or ``.abort()``."""


@hookspec(firstresult=True)
def on_branch(step: Node, context: StepContext, branch: str | None) -> Decision | None:
    """After an ``if``/``switch`` chose ``branch``: ``Decision.take_branch(name)`` or ``Decision.abort()``."""


@hookspec(firstresult=True)
def before_iteration(step: Node, context: StepContext, iteration: int) -> Decision | None:
    """Before loop iteration ``iteration`` (from 1): ``Decision.break_loop()`` or ``Decision.abort()``."""
