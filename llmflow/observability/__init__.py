"""Watching runs from outside: webhook and OpenTelemetry sinks, the run timeline, and the HTML report.

Nothing heavy is imported here: ``import llmflow`` and ``llmflow run`` load httpx's client or OpenTelemetry
only when the environment asks for a sink that needs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from llmflow.errors import UsageError

if TYPE_CHECKING:
    from llmflow.engine.events import Sink
    from llmflow.observability.worker import Warn

__all__ = ["sinks_from_environment"]

#: Values of ``LLMFLOW_OTEL`` that turn the OpenTelemetry sink on.
_TRUE = frozenset({"1", "true", "yes", "on"})


def sinks_from_environment(
    environ: Mapping[str, str] | None = None, *, webhook_url: str | None = None, warn: Warn | None = None
) -> list[Sink]:
    """The sinks the environment asks for, to add to ``RunOptions.sinks``.

    ``LLMFLOW_WEBHOOK_URL`` (or ``webhook_url``, e.g. from ``--webhook``) posts events to an HTTP endpoint;
    ``LLMFLOW_WEBHOOK_EVENTS`` picks them (comma-separated globs, default ``run.*,step.failed``).
    ``LLMFLOW_OTEL=1`` exports one span per node instance through OpenTelemetry (the ``otel`` extra),
    configured by the standard ``OTEL_*`` variables. ``warn`` receives a line for people when a sink could
    not deliver everything (default: written to stderr).
    """
    env = os.environ if environ is None else environ
    say = warn if warn is not None else to_stderr
    sinks: list[Sink] = []
    url = webhook_url or env.get("LLMFLOW_WEBHOOK_URL", "").strip()
    if url:
        from llmflow.observability.webhook import DEFAULT_EVENT_TYPES, WebhookSink

        if not url.startswith(("http://", "https://")):
            given = "--webhook" if webhook_url else "LLMFLOW_WEBHOOK_URL"
            raise UsageError(f"{given}: the webhook URL must start with http:// or https://, got {url!r}")
        chosen = [part.strip() for part in env.get("LLMFLOW_WEBHOOK_EVENTS", "").split(",") if part.strip()]
        sinks.append(WebhookSink(url, event_types=chosen or DEFAULT_EVENT_TYPES, warn=say))
    if env.get("LLMFLOW_OTEL", "").strip().lower() in _TRUE:
        from llmflow.observability.otel import sink_from_environment

        sinks.append(sink_from_environment(env, warn=say))
    return sinks


def to_stderr(message: str) -> None:
    """Write one line for people to stderr (the sinks' default ``warn``)."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing sensible is left to do
        pass
