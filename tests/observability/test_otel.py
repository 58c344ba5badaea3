"""The OpenTelemetry sink: one span per node instance, nested like the graph, with statuses and usage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from observability_helpers import Project
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llmflow.observability import sinks_from_environment
from llmflow.observability.otel import OtelSink

WORKFLOW = """
steps:
  - id: fetch
    run: echo '["a", "b"]'
    parse: json
  - id: label
    map:
      items: "{{ steps.fetch.output }}"
      as: issue
      steps:
        - id: classify
          llm:
            model: mock/echo
            prompt: "classify {{ issue }}"
  - id: reviews
    parallel:
      branches:
        style:
          - id: style_check
            run: echo fine
        security:
          - id: security_check
            run: exit 7
            continue_on_error: true
  - id: never
    if: 1 == 2
    run: echo never
"""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exported = InMemorySpanExporter()
    yield exported
    exported.clear()


def traced(project: Project, exporter: InMemorySpanExporter, body: str) -> list[ReadableSpan]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OtelSink(provider)
    project.run(project.workflow(body), [sink])
    assert sink.broken is None and sink.undelivered == 0
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    named: dict[str, ReadableSpan] = {}
    for span in spans:
        key = f"{span.name} @{span.attributes.get('llmflow.path', '')}" if span.attributes else span.name
        named[key] = span
    return named


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> str | None:
    if span.parent is None:
        return None
    (parent,) = [other for other in spans if other.context.span_id == span.parent.span_id]
    return f"{parent.name} @{(parent.attributes or {}).get('llmflow.path', '')}"


def test_spans_nest_like_the_graph_under_the_run(project: Project, exporter: InMemorySpanExporter) -> None:
    spans = traced(project, exporter, WORKFLOW)
    tree = {key: parent_of(span, spans) for key, span in by_name(spans).items()}
    assert tree == {
        "run observed @": None,
        "run fetch @fetch": "run observed @",
        "map label @label": "run observed @",
        "item 0 @label[0]": "map label @label",
        "llm classify @label[0]/classify": "item 0 @label[0]",
        "item 1 @label[1]": "map label @label",
        "llm classify @label[1]/classify": "item 1 @label[1]",
        "parallel reviews @reviews": "run observed @",
        "branch style @reviews/style": "parallel reviews @reviews",
        "run style_check @reviews/style/style_check": "branch style @reviews/style",
        "branch security @reviews/security": "parallel reviews @reviews",
        "run security_check @reviews/security/security_check": "branch security @reviews/security",
        "run never @never": "run observed @",
    }
    assert len({span.context.trace_id for span in spans}) == 1


def test_statuses_attempts_tokens_and_errors_are_on_the_spans(project: Project, exporter: InMemorySpanExporter) -> None:
    spans = by_name(traced(project, exporter, WORKFLOW))
    classify = spans["llm classify @label[1]/classify"]
    assert classify.status.status_code is StatusCode.OK
    assert classify.attributes is not None
    assert classify.attributes["llmflow.status"] == "succeeded" and classify.attributes["llmflow.attempts"] == 1
    assert classify.attributes["gen_ai.usage.input_tokens"] > 0
    assert classify.attributes["gen_ai.request.model"] == "mock/echo"
    failed = spans["run security_check @reviews/security/security_check"]
    assert failed.status.status_code is StatusCode.ERROR and "exit code 7" in (failed.status.description or "")
    (exception,) = [event for event in failed.events if event.name == "exception"]
    assert exception.attributes is not None and "exit code 7" in str(exception.attributes["exception.message"])
    assert spans["branch security @reviews/security"].status.status_code is StatusCode.ERROR
    assert (spans["run never @never"].attributes or {})["llmflow.status"] == "skipped"
    root = spans["run observed @"]
    assert root.status.status_code is StatusCode.OK and (root.attributes or {})["llmflow.status"] == "succeeded"
    assert (root.attributes or {})["gen_ai.usage.output_tokens"] > 0
    for span in spans.values():  # every span lies within the run's
        assert root.start_time is not None and span.start_time is not None and span.end_time is not None
        assert root.start_time <= span.start_time <= span.end_time <= (root.end_time or 0)


def test_a_failed_run_and_a_retried_step(project: Project, exporter: InMemorySpanExporter) -> None:
    spans = by_name(
        traced(
            project,
            exporter,
            """
            steps:
              - id: flaky
                run: exit 3
                retry: {attempts: 2, delay: 10ms}
            """,
        )
    )
    flaky = spans["run flaky @flaky"]
    assert (flaky.attributes or {})["llmflow.attempts"] == 2
    assert [event.name for event in flaky.events] == ["retry", "exception"]
    root = spans["run observed @"]
    assert root.status.status_code is StatusCode.ERROR and (root.attributes or {})["llmflow.status"] == "failed"


def test_llmflow_and_a_run_do_not_import_opentelemetry() -> None:
    code = (
        "import sys, llmflow, llmflow.observability, llmflow.runtime, llmflow.cli.app\n"
        "from llmflow.cli.app import app\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_llmflow_otel_prints_spans_to_the_console_when_asked(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    sinks = sinks_from_environment({"LLMFLOW_OTEL": "1", "OTEL_TRACES_EXPORTER": "console"})
    assert [type(sink) for sink in sinks] == [OtelSink]
    project.run(project.workflow("steps:\n  - {id: hello, run: echo hi}\n"), sinks)
    printed = capsys.readouterr().err
    assert '"name": "run hello"' in printed and '"name": "run observed"' in printed
    assert '"service.name": "llmflow"' in printed
