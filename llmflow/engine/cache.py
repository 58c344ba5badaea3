"""``cache: true``: a step's result memoized across runs, keyed by a hash of the action as rendered."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmflow.digests import sha256_hex
from llmflow.engine.outcome import SUCCEEDED, Outcome

if TYPE_CHECKING:
    from llmflow.engine.actions import ActionContext
    from llmflow.engine.ports import RunStore

#: Bump when what a key covers changes, so old entries stop matching.
_KEY_VERSION = 1


def cache_key(ctx: ActionContext, own_env: Mapping[str, str], action: object = None) -> str:
    """The sha256 of everything that decides the step's result: kind, options, rendered config and command.

    The process environment is left out on purpose (it holds volatile values such as ``PWD``); the step's
    own ``env`` (``own_env``) and the values a shell command receives are in. An action whose result also
    depends on things chosen when it runs (the ``llm`` action's model, which may come from ``LLMFLOW_MODEL``
    or ``llmflow.toml``) says what they are with a ``cache_material(ctx)`` attribute; what it returns is in
    the key too (and any error it raises is the step's error).
    """
    node = ctx.node
    shell = {"script": ctx.shell.script, "values": dict(ctx.shell.env)} if ctx.shell is not None else None
    material = {
        "v": _KEY_VERSION,
        "action": node.action,
        "options": dict(node.options),
        "config": ctx.config,
        "shell": shell,
        "env": dict(own_env),
    }
    chosen = getattr(action, "cache_material", None)
    if chosen is not None:
        material["chosen"] = chosen(ctx)
    text = json.dumps(material, sort_keys=True, default=str, separators=(",", ":"))
    return sha256_hex(text.encode("utf-8"))


def cached(store: RunStore | None, key: str) -> Outcome | None:
    """The memoized outcome under ``key``, if there is one."""
    if store is None:
        return None
    for entry in store.cache_get(key):
        if isinstance(entry, dict):
            extra = dict(entry.get("extra") or {})
            extra["cached"] = True
            return Outcome(SUCCEEDED, output=entry.get("output"), writes=dict(entry.get("writes") or {}), extra=extra)
    return None


def remember(store: RunStore | None, key: str, outcome: Outcome) -> None:
    """Memoize a successful outcome (model usage is not replayed: a cache hit costs nothing)."""
    if store is None:
        return
    extra: dict[str, Any] = {name: value for name, value in outcome.extra.items() if name != "usage"}
    store.cache_put(key, {"output": outcome.output, "writes": outcome.writes, "extra": extra})
