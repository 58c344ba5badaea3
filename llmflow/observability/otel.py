"""The OpenTelemetry sink: one span per node instance, nested as the graph nests them, under a span for the run.

Needs the ``otel`` extra (``pip install 'llmflow[otel]'``); this module is imported only when asked for
(``LLMFLOW_OTEL=1``, or a plugin building an :class:`OtelSink`). Spans are built from the events on the sink's
own thread, with the events' own timestamps, so the run never waits for tracing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmflow.errors import UsageError
from llmflow.observability.event_log import add_usage, opening_path
from llmflow.observability.timeline import parent_path, segment_label
from llmflow.observability.worker import BackgroundSink, Event, Warn

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

#: Events the sink turns into spans (the others are not queued at all).
_WANTED_PREFIXES = ("run.", "step.", "llm.usage", "map.item", "loop.iteration", "parallel.branch")
_ENDINGS = {"step.completed": "succeeded", "step.failed": "failed", "step.skipped": "skipped"}
_ENDINGS["step.cancelled"] = "cancelled"
_RUN_ENDINGS = {
    "run.completed": "succeeded",
    "run.failed": "failed",
    "run.paused": "waiting",
    "run.interrupted": "interrupted",
    "run.cancelled": "cancelled",
}
#: What an item, iteration or section span is called, by the kind of the pattern node holding it.
_GROUP_NAMES = {"map": "item", "stream": "item", "loop": "iteration", "parallel": "branch"}


@dataclass(slots=True)
class _Open:
    """A span not yet ended, and what is gathered for its attributes."""

    span: Span
    kind: str
    group: bool = False
    attempts: int = 1
    usage: dict[str, Any] = field(default_factory=dict)
    last_end: int = 0
    outcome: str = "succeeded"  # of an item, iteration or section: the worst of its steps'


class OtelSink(BackgroundSink):
    """Turns a run's events into OpenTelemetry spans: the run is the root; each node instance is a span named
    ``kind id`` under the instance that holds it (map items, loop iterations and parallel branches get a span
    of their own between a pattern node and its steps).

    Attributes: ``llmflow.path``, ``llmflow.status``, ``llmflow.attempts``, ``llmflow.kind``, and for model
    calls ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``gen_ai.request.model`` and
    ``llmflow.cost``. A failed instance gets an error status and an ``exception`` event; retries are span
    events. ``shutdown`` makes ``close`` flush and shut down ``tracer_provider`` (set when the sink owns it).
    """

    thread_name = "llmflow-otel"

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        parent: Context | None = None,
        shutdown: bool = False,
        capacity: int = 100_000,
        close_timeout: float = 5.0,
    ) -> None:
        from opentelemetry import trace

        from llmflow import __version__

        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.provider = tracer_provider
        self._tracer: Tracer = provider.get_tracer("llmflow", __version__)
        self._parent = parent
        self._shutdown = shutdown
        self._root: _Open | None = None
        self._open: dict[str, _Open] = {}
        self._groups: dict[str, list[str]] = {}  # pattern path -> the item, iteration and section spans under it
        self.spans = 0
        self._last_stamp = 0
        super().__init__(capacity=capacity, batch=500, linger=0.02, close_timeout=close_timeout)

    def accepts(self, event: Event) -> bool:
        """Only the events spans are made of."""
        return str(event.get("type", "")).startswith(_WANTED_PREFIXES)

    def closed(self) -> None:
        """Flush the spans to the provider the sink owns, and shut it down."""
        if self.provider is None or not self._shutdown:
            return
        # Bounded: a collector that does not answer must not hold the command up (the exporter's threads
        # are daemons); shutting down would wait for the exporter's own, much longer, timeout.
        if self.provider.force_flush(int(self.close_timeout * 1000)):
            self.provider.shutdown()

    def finish(self) -> None:
        """End spans left open when the events stop without a run end (the worker's last act)."""
        self._end_open(None, "interrupted")

    # -- the worker thread -----------------------------------------------------------------------------
    def handle(self, events: list[Event]) -> None:
        """Open, annotate and end spans for a batch of events, in order."""
        for event in events:
            kind = str(event.get("type", ""))
            stamp = int(event.get("ts") or 0)
            self._last_stamp = max(self._last_stamp, stamp)
            path = str(event.get("path") or "")
            data: dict[str, Any] = event.get("data") or {}
            if kind in ("run.started", "run.resumed"):
                self._start_run(event, stamp, data, resumed=kind == "run.resumed")
            elif kind in _RUN_ENDINGS:
                self._end_run(stamp, _RUN_ENDINGS[kind], data)
            elif kind == "step.started":
                self._start_step(path, stamp, data, int(event.get("attempt") or 1))
            elif kind in _ENDINGS:
                self._end_step(path, stamp, _ENDINGS[kind], data, int(event.get("attempt") or 1))
            elif kind == "step.retrying" and path in self._open:
                attributes: dict[str, str | int] = {
                    "llmflow.attempt": int(event.get("attempt") or 1),
                    "llmflow.error": str(data.get("error")),
                }
                self._open[path].span.add_event("retry", attributes, timestamp=stamp)
            elif kind == "llm.usage" and path in self._open:
                add_usage(self._open[path].usage, data)
                if self._root is not None:
                    add_usage(self._root.usage, data)
            elif kind in ("map.item", "loop.iteration", "parallel.branch"):
                group = opening_path(event)
                if group is not None and path in self._open:
                    self._group(group, stamp)

    def _start_run(self, event: Event, stamp: int, data: dict[str, Any], *, resumed: bool) -> None:
        name = str(data.get("workflow") or "workflow")
        attributes: dict[str, str | bool] = {"llmflow.run_id": str(event.get("run_id", "")), "llmflow.workflow": name}
        if resumed:
            attributes["llmflow.resumed"] = True
        span = self._tracer.start_span(f"run {name}", context=self._parent, start_time=stamp, attributes=attributes)
        self._root = _Open(span, "run")

    def _holder(self, path: str, stamp: int) -> _Open:
        """The open span ``path`` belongs under: its nearest open ancestor, the item, iteration or section
        between it and its pattern node opened on demand, else the run."""
        ancestor = parent_path(path)
        while ancestor:
            if ancestor in self._open:
                return self._open[ancestor]
            if parent_path(ancestor) in self._open:
                return self._group(ancestor, stamp)
            ancestor = parent_path(ancestor)
        if self._root is None:  # a sink attached after run.started: every span still has the run above it
            self._root = _Open(self._tracer.start_span("run", context=self._parent, start_time=stamp), "run")
        return self._root

    def _group(self, path: str, stamp: int) -> _Open:
        """The span of an item, iteration or section, opened once under its (open) pattern node."""
        from opentelemetry import trace

        current = self._open.get(path)
        if current is not None:
            return current
        holder = self._open[parent_path(path)]
        label = _GROUP_NAMES.get(holder.kind, "section")
        segment = segment_label(path)
        name = f"{label} {segment[1:-1] if segment.startswith('[') else segment}"
        context = trace.set_span_in_context(holder.span)
        attributes = {"llmflow.path": path, "llmflow.kind": label}
        span = self._tracer.start_span(name, context=context, start_time=stamp, attributes=attributes)
        self._open[path] = current = _Open(span, label, group=True, last_end=stamp)
        self._groups.setdefault(parent_path(path), []).append(path)
        self.spans += 1
        return current

    def _start_step(self, path: str, stamp: int, data: dict[str, Any], attempt: int) -> None:
        from opentelemetry import trace

        current = self._open.get(path)
        if current is not None:  # the next attempt of a step being retried
            current.attempts = max(current.attempts, attempt)
            return
        kind = str(data.get("kind") or "step")
        attributes = {"llmflow.path": path, "llmflow.kind": kind, "llmflow.id": str(data.get("id") or "")}
        name = f"{kind} {data.get('id') or segment_label(path)}"
        context = trace.set_span_in_context(self._holder(path, stamp).span)
        span = self._tracer.start_span(name, context=context, start_time=stamp, attributes=attributes)
        self._open[path] = _Open(span, kind, attempts=max(1, attempt))
        self.spans += 1

    def _end_step(self, path: str, stamp: int, status: str, data: dict[str, Any], attempt: int) -> None:
        if path not in self._open:  # a skipped step never started
            self._start_step(path, stamp, data, attempt)
        current = self._open[path]
        current.attempts = max(current.attempts, attempt)
        self._end_under(path, stamp)
        error = data.get("error")
        self._finish(
            current, stamp, status, error if isinstance(error, dict) else ({"message": error} if error else None)
        )
        del self._open[path]
        holder = self._open.get(parent_path(path))
        if holder is not None and holder.group:
            holder.last_end = max(holder.last_end, stamp)
            if status == "failed" or (status == "cancelled" and holder.outcome != "failed"):
                holder.outcome = status

    def _end_under(self, path: str, stamp: int) -> None:
        """End the item, iteration and section spans of the pattern node at ``path`` (its steps ended before
        it, and so did the patterns inside them); each ends when its last step did."""
        for inner in self._groups.pop(path, ()):
            held = self._open.pop(inner, None)
            if held is not None:
                self._finish(held, held.last_end, held.outcome, None)

    def _finish(self, current: _Open, stamp: int, status: str, error: dict[str, Any] | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = current.span
        span.set_attribute("llmflow.status", status)
        if not current.group:
            span.set_attribute("llmflow.attempts", current.attempts)
        _usage_attributes(span, current.usage)
        if status == "failed":
            message = str((error or {}).get("message") or "failed")
            span.set_status(Status(StatusCode.ERROR, message))
            if error is not None:
                exception = {"exception.type": str(error.get("kind") or "StepError"), "exception.message": message}
                span.add_event("exception", exception, timestamp=stamp)
        elif status == "succeeded":
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=stamp)

    def _end_run(self, stamp: int, status: str, data: dict[str, Any]) -> None:
        self._end_open(stamp, "cancelled")
        root, self._root = self._root, None
        if root is None:
            return
        error = data.get("error")
        self._finish(root, stamp, status, {"message": error, "kind": "RunError"} if error else None)

    def _end_open(self, stamp: int | None, status: str) -> None:
        """End every span still open (deepest first): the run ended, or the events stopped (``stamp`` None:
        at the last moment seen)."""
        moment = stamp if stamp is not None else self._last_stamp
        self._groups.clear()
        for path in sorted(self._open, key=lambda p: p.count("/") + p.count("["), reverse=True):
            held = self._open.pop(path)
            self._finish(held, held.last_end if held.group else moment, held.outcome if held.group else status, None)
        if stamp is None and self._root is not None:
            root, self._root = self._root, None
            self._finish(root, moment, status, None)


def _usage_attributes(span: Span, usage: dict[str, Any]) -> None:
    if not usage:
        return
    span.set_attribute("gen_ai.usage.input_tokens", int(usage.get("input_tokens") or 0))
    span.set_attribute("gen_ai.usage.output_tokens", int(usage.get("output_tokens") or 0))
    span.set_attribute("llmflow.cost", float(usage.get("cost") or 0.0))
    span.set_attribute("llmflow.llm_calls", int(usage.get("calls") or 0))
    if usage.get("model"):
        span.set_attribute("gen_ai.request.model", str(usage["model"]))


def sink_from_environment(environ: Mapping[str, str] | None = None, *, warn: Warn | None = None) -> OtelSink:
    """An :class:`OtelSink` with a tracer provider of its own, set up by the standard ``OTEL_*`` variables:
    OTLP when an OTLP exporter package is installed (``OTEL_EXPORTER_OTLP_ENDPOINT`` …), else the console
    (stderr); ``OTEL_TRACES_EXPORTER=console`` picks the console, ``OTEL_SERVICE_NAME`` names the service
    (default ``llmflow``), and a ``TRACEPARENT`` variable makes the run a child of that trace."""
    env = os.environ if environ is None else environ
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise UsageError("LLMFLOW_OTEL needs OpenTelemetry: pip install 'llmflow[otel]'") from None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "llmflow"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_exporter(env, warn)))
    parent = None
    if env.get("TRACEPARENT"):
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {"traceparent": env["TRACEPARENT"], "tracestate": env.get("TRACESTATE", "")}
        parent = TraceContextTextMapPropagator().extract(carrier)
    return OtelSink(provider, parent=parent, shutdown=True)


def _exporter(env: Mapping[str, str], warn: Warn | None) -> Any:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    choice = (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip().lower()
    if choice == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        if warn is not None:
            package = f"opentelemetry-exporter-otlp-proto-{'grpc' if protocol == 'grpc' else 'http'}"
            warn(f"otel: {package} is not installed; printing spans to stderr instead")
        return ConsoleSpanExporter(out=sys.stderr)
    return OTLPSpanExporter()
