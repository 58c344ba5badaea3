"""The webhook sink against a real HTTP server on 127.0.0.1: batches delivered, slow and failing endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from observability_helpers import Project, endpoint, set_steps

from llmflow.errors import UsageError
from llmflow.observability import sinks_from_environment
from llmflow.observability.webhook import WebhookSink

FLAKY = """
steps:
  - id: hello
    run: echo hello
  - id: each
    map:
      items: [1, 2, 3]
      steps:
        - id: shout
          run: echo "item {{ item }}"
  - id: broken
    run: exit 3
    continue_on_error: true
"""


def test_the_chosen_events_are_delivered_in_batches(project: Project) -> None:
    with endpoint() as server:
        sink = WebhookSink(server.url)
        summary = project.run(project.workflow(FLAKY), [sink])
        assert summary.status == "succeeded"
        received = server.events()
    assert [event["type"] for event in received] == ["run.started", "step.failed", "run.completed"]
    assert received[1]["path"] == "broken" and received[1]["data"]["error"]["exit_code"] == 3
    assert {event["run_id"] for event in received} == {summary.run_id}
    assert (sink.delivered, sink.failed, sink.dropped, sink.abandoned) == (3, 0, 0, 0)


def test_every_event_arrives_in_order_in_batches_no_larger_than_asked(project: Project) -> None:
    with endpoint() as server:
        sink = WebhookSink(server.url, event_types=("*",), batch=7)
        summary = project.run(project.workflow(FLAKY), [sink])
        bodies = list(server.bodies)
    written = project.events(summary.run_id)
    received = [event for body in bodies for event in body["events"]]
    assert [event["seq"] for event in received] == [event["seq"] for event in written]
    assert received == written
    assert all(1 <= len(body["events"]) <= 7 for body in bodies)
    assert sink.delivered == len(written) and sink.undelivered == 0


def test_a_slow_endpoint_does_not_slow_a_run_of_200_steps(project: Project) -> None:
    workflow = project.workflow(set_steps(200))
    project.run(workflow)  # warm up imports and caches
    start = time.perf_counter()
    assert project.run(workflow).status == "succeeded"
    alone = time.perf_counter() - start
    with endpoint(delay=5.0) as server:
        sink = WebhookSink(server.url, event_types=("*",), batch=10, close_timeout=0.5)
        start = time.perf_counter()
        summary = project.run(workflow, [sink])
        watched = time.perf_counter() - start
    assert summary.status == "succeeded"
    # Without the queue, 40+ batches at 5 s each would take minutes; the run waits only for close_timeout.
    assert watched < alone + sink.close_timeout + 3.0, (alone, watched)
    assert sink.delivered == 0
    assert sink.undelivered == len(project.events(summary.run_id)) == sink.abandoned


def test_an_endpoint_answering_500_is_retried_once_then_counted(project: Project) -> None:
    warnings: list[str] = []
    with endpoint(status=500) as server:
        sink = WebhookSink(server.url, retry_delay=0.01, warn=warnings.append)
        summary = project.run(project.workflow(FLAKY), [sink])
        requests = server.requests
    assert summary.status == "succeeded"  # the endpoint's trouble is not the run's
    assert sink.delivered == 0 and sink.failed == 3 and sink.undelivered == 3
    assert requests % 2 == 0 and requests >= 2  # every batch tried twice
    assert warnings == [f"webhook: 3 events could not be delivered to {server.url} (HTTP 500)"]


def test_an_endpoint_that_is_down_is_counted_and_the_run_still_succeeds(project: Project) -> None:
    with endpoint() as server:
        url = server.url
    sink = WebhookSink(url, retry_delay=0.01)  # nothing listens there any more
    summary = project.run(project.workflow(FLAKY), [sink])
    assert summary.status == "succeeded"
    assert sink.failed == 3 and sink.last_error is not None and "Connect" in sink.last_error


def test_put_never_blocks_and_counts_what_the_full_queue_refuses() -> None:
    with endpoint(delay=5.0) as server:
        sink = WebhookSink(server.url, event_types=("*",), capacity=10, batch=1, close_timeout=0.1)
        for seq in range(1000):  # a put that waited for room would never drop one
            sink.put({"seq": seq, "type": "step.completed"})
        sink.close()
    assert sink.dropped >= 980 and sink.undelivered == 1000


def test_only_matching_event_types_are_queued() -> None:
    sink = WebhookSink("http://127.0.0.1:9/", event_types=("run.*", "step.failed"), close_timeout=0)
    try:
        assert sink.accepts({"type": "run.completed"}) and sink.accepts({"type": "step.failed"})
        assert not sink.accepts({"type": "step.completed"}) and not sink.accepts({"type": "runner"})
        assert not sink.accepts({"seq": 1})
    finally:
        sink.close()


def test_the_environment_chooses_the_webhook_and_its_events() -> None:
    assert sinks_from_environment({}) == []
    (sink,) = sinks_from_environment(
        {"LLMFLOW_WEBHOOK_URL": "http://127.0.0.1:9/hook", "LLMFLOW_WEBHOOK_EVENTS": "run.*, step.*"}
    )
    try:
        assert isinstance(sink, WebhookSink)
        assert sink.url == "http://127.0.0.1:9/hook" and sink.event_types == ("run.*", "step.*")
    finally:
        sink.close()
    (chosen,) = sinks_from_environment({}, webhook_url="https://example.invalid/x")
    chosen.close()
    assert isinstance(chosen, WebhookSink) and chosen.event_types == ("run.*", "step.failed")
    with pytest.raises(UsageError, match="http:// or https://"):
        sinks_from_environment({"LLMFLOW_WEBHOOK_URL": "ftp://example.invalid"})


def test_the_cli_webhook_option_delivers_the_runs_events(project: Project) -> None:
    workflow = project.workflow(FLAKY)
    with endpoint() as server:
        result = subprocess.run(
            [sys.executable, "-m", "llmflow", "run", str(workflow), "--webhook", server.url, "--state-dir", "st"],
            cwd=project.root,
            env=dict(os.environ, NO_COLOR="1"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        received = server.events()
    assert [event["type"] for event in received] == ["run.started", "step.failed", "run.completed"]


@pytest.mark.parametrize(
    ("option", "environment", "given"),
    [
        (["--webhook", "ftp://example.org/x"], {}, "--webhook"),
        ([], {"LLMFLOW_WEBHOOK_URL": "ftp://example.org/x"}, "LLMFLOW_WEBHOOK_URL"),
    ],
    ids=["option", "environment"],
)
def test_the_cli_refuses_a_webhook_that_is_not_http_and_names_where_it_came_from(
    project: Project, option: list[str], environment: dict[str, str], given: str
) -> None:
    workflow = project.workflow(FLAKY)
    result = subprocess.run(
        [sys.executable, "-m", "llmflow", "run", str(workflow), *option],
        cwd=project.root,
        env=dict(os.environ, NO_COLOR="1", **environment),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {given}: the webhook URL must start with http:// or https://, got 'ftp://example.org/x'\n"
    )
