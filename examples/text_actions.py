"""A plugin for examples/plugin-action.yaml: it registers the ``slugify`` action that ``action: slugify`` runs.

llmflow loads the files named in a workflow's ``plugins:`` when a run starts; ``validate`` and
``run --dry-run`` never import them.
"""

from __future__ import annotations

import re
import unicodedata

from llmflow.engine.actions import ActionContext, ActionRegistry, ActionResult
from llmflow.plugins import hookimpl


async def slugify(ctx: ActionContext) -> ActionResult:
    """``with: {text, separator}``: the text in lowercase ASCII words joined by the separator (default ``-``)."""
    text = unicodedata.normalize("NFKD", str(ctx.config.get("text", "")))
    words = re.findall(r"[a-z0-9]+", text.encode("ascii", "ignore").decode().lower())
    return ActionResult(output=str(ctx.config.get("separator", "-")).join(words))


@hookimpl
def register_actions(registry: ActionRegistry) -> None:
    """Make ``slugify`` available to ``action:`` steps."""
    registry.register("slugify", slugify)
