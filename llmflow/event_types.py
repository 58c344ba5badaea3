"""The names of the events llmflow itself emits, shared by the compiler (hook checks) and the engine."""

from __future__ import annotations

#: Event types the engine emits (plugins and ``emit`` steps add their own, under other prefixes).
EVENT_TYPES = (
    "run.started",
    "run.completed",
    "run.failed",
    "run.paused",
    "run.interrupted",
    "run.cancelled",
    "run.resumed",
    "step.started",
    "step.completed",
    "step.failed",
    "step.skipped",
    "step.retrying",
    "step.cancelled",
    "step.compensating",
    "step.compensated",
    "steps.restored",
    "step.output",
    "branch.selected",
    "loop.iteration",
    "map.item",
    "parallel.branch",
    "stream.metrics",
    "llm.usage",
    "llm.chunk",
    "llm.retry",
    "llm.fallback",
    "checkpoint.saved",
    "hook.failed",
    "hook.decision",
)

#: Prefixes kept for llmflow's own events: an ``emit`` step may not use them.
RESERVED_PREFIXES = (
    "run.",
    "step.",
    "steps.",
    "branch.",
    "loop.",
    "map.",
    "parallel.",
    "stream.",
    "llm.",
    "checkpoint.",
    "hook.",
)
