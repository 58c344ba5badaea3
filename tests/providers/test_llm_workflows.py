"""``llm`` steps in whole runs (``start_run``) against real HTTP servers: streaming, schema repair, fallback,
cache, usage, cost limits with resume, default models, and the mock provider's files and rate limits."""

from __future__ import annotations

import json

import pytest
from provider_project import Project
from provider_servers import FakeServer, Reply, openai_default, openai_reply

from llmflow.errors import UsageError

QUICK_RETRIES = 'retry_delay = "10ms"'


def use_server(project: Project, server: FakeServer, *extra: str) -> None:
    lines = "\n".join(extra)
    project.write("llmflow.toml", f'[providers.openai]\nbase_url = "{server.url}/v1"\n{QUICK_RETRIES}\n{lines}\n')


def test_a_streamed_reply_arrives_as_chunk_events_and_counts_its_usage(
    project: Project, openai_server: FakeServer
) -> None:
    use_server(project, openai_server)
    summary = project.run(
        """
        steps:
          - id: talk
            llm: {model: openai/test-model, prompt: hello there, stream: true}
        outputs:
          reply: "{{ steps.talk.output }}"
          tokens: "{{ run.usage.input_tokens + run.usage.output_tokens }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"reply": "echo: hello there", "tokens": 150}
    chunks = project.events(summary.run_id, "llm.chunk")
    assert "".join(event["data"]["text"] for event in chunks) == "echo: hello there"
    assert len(chunks) == 2 and {event["path"] for event in chunks} == {"talk"}
    (usage,) = project.events(summary.run_id, "llm.usage")
    assert usage["data"]["input_tokens"] == 100 and usage["data"]["output_tokens"] == 50
    assert openai_server.requests[0].body["stream_options"] == {"include_usage": True}


SCHEMA_STEP = """
steps:
  - id: classify
    llm:
      model: openai/test-model
      prompt: Label this issue
      repair_attempts: REPAIRS
      schema: {type: object, required: [label], properties: {label: {enum: [bug, feature]}}}
"""


def test_a_reply_that_fails_the_schema_is_sent_back_to_be_repaired(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    openai_server.queue(
        Reply(json=openai_reply("It is a bug.")), Reply(json=openai_reply('```json\n{"label": "bug"}\n```'))
    )
    summary = project.run(SCHEMA_STEP.replace("REPAIRS", "2") + 'outputs: {label: "{{ steps.classify.output.label }}"}')
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"label": "bug"}
    first, second = (received.body["messages"] for received in openai_server.requests)
    assert "Reply with JSON only, matching this JSON Schema" in first[-1]["content"]
    assert second[-2] == {"role": "assistant", "content": "It is a bug."}
    assert second[-1]["content"].startswith("That reply is invalid: the reply is not valid JSON")
    assert summary.usage["input_tokens"] == 200


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"label": ' + "9" * 5000 + "}", "a number has more than 4300 digits"),
    ],
    ids=["deeply-nested", "huge-number"],
)
def test_a_reply_json_cannot_read_is_repaired_like_any_invalid_json(
    project: Project, openai_server: FakeServer, reply: str, problem: str
) -> None:
    use_server(project, openai_server)
    openai_server.queue(Reply(json=openai_reply(reply)), Reply(json=openai_reply('{"label": "bug"}')))
    summary = project.run(SCHEMA_STEP.replace("REPAIRS", "1") + 'outputs: {label: "{{ steps.classify.output.label }}"}')
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"label": "bug"}
    repair = openai_server.requests[1].body["messages"][-1]["content"]
    assert repair.startswith(f"That reply is invalid: the reply is not valid JSON ({problem}")


def test_tokens_spent_on_a_step_that_fails_still_count(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    openai_server.queue(*[Reply(json=openai_reply('{"label": "neither"}'))] * 2)
    summary = project.run(SCHEMA_STEP.replace("REPAIRS", "1"))
    assert summary.status == "failed"
    assert summary.error == (
        "step 'classify': reply fails the schema after 2 tries: 'neither' is not one of ['bug', 'feature'] (at label)"
    )
    assert summary.usage["input_tokens"] == 200
    assert project.meta(summary.run_id)["usage"]["output_tokens"] == 100


def test_an_unavailable_model_falls_back_to_the_next(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    missing = Reply(status=404, json={"error": {"message": "The model `missing` does not exist"}})
    openai_server.queue(missing, openai_default, missing)
    summary = project.run(
        f"""
        models:
          broken: {{model: openai/missing, fallback: [backup]}}
          backup: {{model: openai/backup-model, base_url: "{openai_server.url}/backup/v1"}}
        steps:
          - id: step_fallback
            llm: {{model: openai/missing, prompt: hi, fallback: [backup]}}
          - id: alias_fallback
            llm: {{model: broken, prompt: hi}}
        outputs: {{reply: "{{{{ steps.step_fallback.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"reply": "echo: hi"}
    requests = [(received.path, received.body["model"]) for received in openai_server.requests]
    assert requests == [
        ("/v1/chat/completions", "missing"),
        ("/backup/v1/chat/completions", "backup-model"),  # the fallback alias keeps its own base_url
        ("/v1/chat/completions", "missing"),
        ("/backup/v1/chat/completions", "backup-model"),
    ]
    fallbacks = project.events(summary.run_id, "llm.fallback")
    assert [(e["path"], e["data"]["from"], e["data"]["to"]) for e in fallbacks] == [
        ("step_fallback", "openai/missing", "openai/backup-model"),
        ("alias_fallback", "openai/missing", "openai/backup-model"),
    ]


def test_a_cached_step_makes_no_request_the_second_time(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    flow = project.workflow(
        """
        inputs: {q: {type: string}}
        steps:
          - id: ask
            cache: true
            llm: {model: openai/test-model, prompt: "{{ inputs.q }}"}
        outputs: {reply: "{{ steps.ask.output }}"}
        """
    )
    first = project.run(flow, {"q": "one"})
    second = project.run(flow, {"q": "one"})
    assert first.outputs == second.outputs == {"reply": "echo: one"}
    assert len(openai_server.requests) == 1
    assert second.usage["input_tokens"] == 0  # a cache hit costs nothing
    assert project.run(flow, {"q": "two"}).outputs == {"reply": "echo: two"}
    assert len(openai_server.requests) == 2
    assert any((project.state / "cache").rglob("*"))


def test_the_cache_keys_on_the_model_chosen_at_run_time(
    project: Project, openai_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(project, openai_server)
    body = "steps:\n  - {id: ask, cache: true, llm: hi}\n"  # no model in the file: LLMFLOW_MODEL decides
    monkeypatch.setenv("LLMFLOW_MODEL", "openai/first-model")
    project.run(body)
    project.run(body)
    monkeypatch.setenv("LLMFLOW_MODEL", "openai/second-model")
    project.run(body)  # another model: its answer is not the first model's
    project.run(body)
    assert [received.body["model"] for received in openai_server.requests] == ["first-model", "second-model"]


COSTLY = """
limits: {max_cost: LIMIT}
steps:
  - {id: a, llm: {model: openai/test-model, prompt: one}}
  - {id: b, llm: {model: openai/test-model, prompt: two}}
  - {id: c, llm: {model: openai/test-model, prompt: three}}
outputs: {last: "{{ steps.c.output }}"}
"""


def test_a_cost_limit_stops_the_run_and_a_resume_never_pays_twice(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server, "[prices]", '"openai/test-model" = [1000, 1000]')  # 150 tokens: $0.15
    summary = project.run(COSTLY.replace("LIMIT", "0.2"))
    assert summary.status == "failed"
    assert summary.error == "the run cost $0.3000, over limits.max_cost ($0.2)"
    assert len(openai_server.requests) == 2
    edited = project.workflow(COSTLY.replace("LIMIT", "1"), name="more.yaml")
    resumed = project.resume(summary.run_id, workflow_file=edited)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"last": "echo: three"}
    assert [r.body["messages"][-1]["content"] for r in openai_server.requests] == ["one", "two", "three"]
    assert resumed.usage["cost"] == pytest.approx(0.45)


def test_the_model_defaults_to_llmflow_model_then_the_toml(
    project: Project, openai_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(project, openai_server, "[defaults]", 'model = "openai/from-toml"')
    body = "steps:\n  - {id: ask, llm: hi}\n"
    assert project.run(body).status == "succeeded"
    monkeypatch.setenv("LLMFLOW_MODEL", "openai/from-env")
    assert project.run(body).status == "succeeded"
    assert [received.body["model"] for received in openai_server.requests] == ["from-toml", "from-env"]


def test_a_malformed_llmflow_toml_stops_before_a_run_is_created(project: Project) -> None:
    project.write("llmflow.toml", "[providers.openai]\nmax_retries = -1\n")
    with pytest.raises(UsageError) as caught:
        project.run("steps:\n  - {id: ask, llm: {model: mock/echo, prompt: hi}}\n")
    assert str(caught.value).endswith(
        "llmflow.toml:2: [providers.openai] max_retries must be a whole number of at least 0"
    )
    assert not (project.state / "runs").exists() or not any((project.state / "runs").iterdir())


def test_a_missing_key_fails_the_run_with_one_clear_line(project: Project) -> None:
    summary = project.run("steps:\n  - {id: ask, llm: {model: openai/gpt-4o-mini, prompt: hi}}\n")
    assert summary.status == "failed"
    assert summary.error == (
        "step 'ask': OPENAI_API_KEY is not set (needed for model openai/gpt-4o-mini); set it in the environment or .env"
    )
    assert summary.failed_step == "ask"


def test_parallel_items_share_the_providers_concurrency_limit(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server, "max_concurrency = 2")
    openai_server.queue(*[Reply(json=openai_reply("ok"), delay=0.05)] * 6)
    summary = project.run(
        """
        steps:
          - id: each
            map:
              items: [1, 2, 3, 4, 5, 6]
              concurrency: 6
              steps:
                - llm: {model: openai/test-model, prompt: "item {{ item }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert len(openai_server.requests) == 6 and openai_server.max_in_flight == 2


def test_a_rate_limited_call_is_retried_and_reported(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    openai_server.queue(Reply(status=429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0.05"}))
    summary = project.run("steps:\n  - {id: ask, llm: {model: openai/test-model, prompt: hi}}\n")
    assert summary.status == "succeeded", summary.error
    (retry,) = project.events(summary.run_id, "llm.retry")
    assert retry["path"] == "ask"
    assert {k: retry["data"][k] for k in ("retry", "delay", "status")} == {"retry": 1, "delay": 0.05, "status": 429}


def test_the_anthropic_provider_streams_in_a_workflow(project: Project, anthropic_server: FakeServer) -> None:
    project.write(".env", "TEST_ANTHROPIC_KEY=sk-ant-from-dotenv-123\n")
    summary = project.run(
        f"""
        models:
          claude: {{model: anthropic/claude-test, base_url: "{anthropic_server.url}", api_key_env: TEST_ANTHROPIC_KEY}}
        steps:
          - id: ask
            llm: {{model: claude, system: be brief, prompt: hello, stream: true, max_tokens: 200}}
        outputs: {{reply: "{{{{ steps.ask.output }}}}"}}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"reply": "echo: hello"}
    (request,) = anthropic_server.requests
    assert request.headers["x-api-key"] == "sk-ant-from-dotenv-123"
    assert (request.body["system"], request.body["max_tokens"]) == ("be brief", 200)
    assert "".join(e["data"]["text"] for e in project.events(summary.run_id, "llm.chunk")) == "echo: hello"


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_the_mock_replays_a_replies_file_beside_the_workflow_through_simulated_rate_limits(
    project: Project, suffix: str
) -> None:
    replies = ["first", {"x": 1}]
    text = json.dumps(replies) if suffix == "json" else "- first\n- {x: 1}\n"
    project.write(f"flows/replies.{suffix}", text)
    flow = project.workflow(
        f"""
        models:
          scripted:
            model: mock/scripted
            options: {{replies_file: replies.{suffix}, rate_limit_times: 2, retry_after: 0.01}}
        steps:
          - {{id: one, llm: {{model: scripted, prompt: a}}}}
          - {{id: two, llm: {{model: scripted, prompt: b}}}}
        outputs: {{one: "{{{{ steps.one.output }}}}", two: "{{{{ steps.two.output }}}}"}}
        """,
        name="flows/flow.yaml",
    )
    summary = project.run(flow)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"one": "first", "two": '{"x": 1}'}
    retries = project.events(summary.run_id, "llm.retry")
    assert [(e["path"], e["data"]["status"], e["data"]["delay"]) for e in retries] == [("one", 429, 0.01)] * 2


def test_run_usage_counts_tokens_in_whole_numbers_also_after_a_resume(project: Project) -> None:
    body = """
    steps:
      - {id: ask, llm: {model: mock/echo, prompt: hello there}}
      - {id: gate, run: test -f marker}
      - {id: again, llm: {model: mock/echo, prompt: and again}}
    outputs:
      usage: "{{ run.usage }}"
    """
    failed = project.run(body)
    assert failed.status == "failed"
    assert project.meta(failed.run_id)["usage"] == {"input_tokens": 3, "output_tokens": 3, "cost": 0.0}
    (project.root / "marker").touch()
    resumed = project.resume(failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    usage = resumed.outputs["usage"]
    assert usage == {"input_tokens": 6, "output_tokens": 6, "cost": 0.0}
    assert all(type(usage[key]) is int for key in ("input_tokens", "output_tokens")), usage  # 4.0 before
    assert type(usage["cost"]) is float


def test_a_misspelt_provider_is_named_with_the_closest_one(project: Project) -> None:
    summary = project.run("steps:\n  - {id: ask, llm: {model: opnai/gpt-4o-mini, prompt: hi}}\n")
    assert summary.status == "failed"
    assert summary.error == (
        "step 'ask': unknown model provider 'opnai' (did you mean 'openai'? known: anthropic, mock, openai)"
    )


def test_an_absurd_token_count_from_the_server_does_not_fail_a_priced_step(
    project: Project, openai_server: FakeServer
) -> None:
    # 1e308 tokens at gpt-4o's price cost inf dollars, which no journal can hold: the step failed with
    # "contains inf" although the reply itself was fine.
    use_server(project, openai_server)
    usage = {"prompt_tokens": 1e308, "completion_tokens": 1e308}
    openai_server.queue(Reply(json={**openai_reply("fine"), "usage": usage}))
    summary = project.run(
        """
        steps:
          - id: talk
            llm: {model: openai/gpt-4o, prompt: hello}
        outputs:
          reply: "{{ steps.talk.output }}"
          cost: "{{ run.usage.cost }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"reply": "fine", "cost": 0.0}


def test_a_failed_llm_step_names_the_step_before_the_provider(project: Project, openai_server: FakeServer) -> None:
    use_server(project, openai_server)
    refused = Reply(status=401, json={"error": {"message": "Incorrect API key provided"}})
    openai_server.queue(refused, refused)
    expected = (
        "step 'ask': openai/test-model: authentication failed (check OPENAI_API_KEY) "
        f"(HTTP 401 from {openai_server.url}/v1/chat/completions): Incorrect API key provided"
    )
    summary = project.run("steps:\n  - {id: ask, llm: {model: openai/test-model, prompt: hi}}\n")
    assert (summary.status, summary.failed_step, summary.error) == ("failed", "ask", expected)
    assert project.meta(summary.run_id)["error"] == expected
    (failed,) = project.events(summary.run_id, "step.failed")
    assert failed["data"]["error"]["message"] == expected
    caught = project.run(
        """
        vars: {seen: ""}
        steps:
          - id: guarded
            try:
              - {id: ask, llm: {model: openai/test-model, prompt: hi}}
            catch:
              - set: {seen: "{{ error.message }}"}
        outputs: {seen: "{{ vars.seen }}"}
        """
    )
    assert caught.status == "succeeded", caught.error
    assert caught.outputs == {"seen": expected}


def test_a_provider_message_that_already_names_the_step_is_not_named_twice(project: Project) -> None:
    project.write(
        "named.py",
        """
        from llmflow.errors import ProviderError
        from llmflow.plugins import hookimpl


        class Named:
            async def complete(self, request, on_chunk=None):
                raise ProviderError("step 'ask': named/m: the model is asleep", status=400)


        @hookimpl
        def register_providers(registry):
            registry.register("named", Named)
        """,
    )
    summary = project.run("plugins: [./named.py]\nsteps:\n  - {id: ask, llm: {model: named/m, prompt: hi}}\n")
    assert (summary.status, summary.error) == ("failed", "step 'ask': named/m: the model is asleep")
