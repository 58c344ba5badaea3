"""Plugins (pluggy): what a plugin module imports, and how the runtime loads a run's plugins.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose names are hooks of
:mod:`llmflow.plugins.hookspecs`. It is found as an installed package's entry point in the group ``llmflow``,
or named in a workflow's ``plugins:``; llmflow's own actions and providers register through the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.engine.interception import Decision, StepContext
from llmflow.errors import PluginError
from llmflow.plugins.loading import GROUP, load_plugins
from llmflow.plugins.manager import Plugins, RunSinks

if TYPE_CHECKING:
    from llmflow.plugins.hookspecs import hookimpl

__all__ = ["GROUP", "Decision", "PluginError", "Plugins", "RunSinks", "StepContext", "hookimpl", "load_plugins"]


def __getattr__(name: str) -> Any:
    # ``hookimpl`` imports pluggy, which a run without plugins does without (see manager.py).
    if name == "hookimpl":
        from llmflow.plugins.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
