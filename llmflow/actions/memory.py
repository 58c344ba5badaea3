"""The ``memory`` action: add texts to a vector collection, or search it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llmflow.engine.actions import ActionContext, ActionResult
from llmflow.errors import ActionError


def _folder(ctx: ActionContext) -> Path:
    store = getattr(ctx.services, "store", None)
    root = getattr(store, "root", None)
    return Path(root) / "memory" if root is not None else ctx.services.project_dir / ".llmflow" / "memory"


async def use_memory(ctx: ActionContext) -> ActionResult:
    """``add`` returns the ids stored; ``search`` returns hits ``{id, text, score, metadata}``, best first."""
    from llmflow.memory import MemoryStore

    config = ctx.config
    node_id = ctx.node.id
    collection = str(config.get("collection", ""))
    store = MemoryStore(_folder(ctx))
    try:
        if "add" in config:
            texts = config["add"] if isinstance(config["add"], list) else [config["add"]]
            given = config.get("id")
            ids = None if given is None else (given if isinstance(given, list) else [given])
            added = await asyncio.to_thread(
                store.add,
                collection,
                [_text(text) for text in texts],
                config.get("metadata"),
                None if ids is None else [str(i) for i in ids],
            )
            return ActionResult(output=added, extra={"count": len(added)})
        query = _text(config.get("search", ""))
        k = int(config.get("k", 5))
        hits = await asyncio.to_thread(store.search, collection, query, k, config.get("where"))
        return ActionResult(output=[hit.as_dict() for hit in hits], extra={"count": len(hits)})
    except (ValueError, TypeError) as error:
        raise ActionError(f"step '{node_id}': {error}", path=ctx.path) from None


def _text(value: Any) -> str:
    from llmflow.expressions import stringify

    return value if isinstance(value, str) else stringify(value)
