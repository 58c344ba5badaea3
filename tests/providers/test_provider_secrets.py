"""API keys and ``secrets:`` values never reach the run store, the events or the CLI's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from provider_servers import FakeServer, Received, Reply, Response, last_user_text, openai_stream

KEY = "sk-test-SECRET-abcdef123456"
TOKEN = "tok-SECRET-987654"

WORKFLOW = """
version: 1
name: secrets
secrets: [MY_TOKEN]
inputs:
  note: {type: string, default: nothing}
models:
  leaky: {model: openai/leaky, base_url: "LEAKY/v1", options: {max_retries: 0}}
steps:
  - id: prompt
    cache: true
    llm:
      model: openai/test-model
      prompt: "key={{ env.OPENAI_API_KEY }} token={{ secrets.MY_TOKEN }}"
      stream: true
  - id: shell
    run: echo "shell saw $OPENAI_API_KEY and {{ secrets.MY_TOKEN }}"
  - id: leak
    llm: {model: leaky, prompt: "{{ steps.prompt.output }}"}
outputs:
  reply: "{{ steps.prompt.output }}"
  shell: "{{ steps.shell.output }}"
"""


def echo_credentials(received: Received) -> Reply:
    """A proxy that answers a bad key with 400 and repeats the Authorization header and the prompt."""
    message = f"invalid credentials {received.headers.get('authorization')} for {json.dumps(received.body)}"
    return Reply(status=400, json={"error": {"message": message}})


def stream_in_small_pieces(received: Received) -> Response:
    """The echoed prompt in 5-character pieces, so that every secret is split between pieces."""
    text = "echo: " + last_user_text(received)
    return openai_stream([text[start : start + 5] for start in range(0, len(text), 5)])


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMFLOW_HOME", "MY_TOKEN", "OPENAI_BASE_URL")}
    env.update(OPENAI_API_KEY=KEY, NO_COLOR="1", COLUMNS="200")
    command = [sys.executable, "-m", "llmflow", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_keys_and_secrets_are_masked_everywhere_a_run_writes_or_prints(
    tmp_path: Path, openai_server: FakeServer
) -> None:
    leaky = FakeServer(echo_credentials).start()
    (tmp_path / ".llmflow").mkdir()  # the project is here, even if a parent folder holds a store of its own
    try:
        (tmp_path / "llmflow.toml").write_text(f'[providers.openai]\nbase_url = "{openai_server.url}/v1"\n')
        (tmp_path / ".env").write_text(f"MY_TOKEN={TOKEN}\n")
        (tmp_path / "flow.yaml").write_text(WORKFLOW.replace("LEAKY", leaky.url))
        openai_server.queue(stream_in_small_pieces)
        outputs = [cli(tmp_path, "run", "flow.yaml", "--events", "jsonl", "-i", f"note={KEY}")]
        outputs += [cli(tmp_path, "run", "flow.yaml", "--json")]  # a cache hit this time
        outputs += [cli(tmp_path, *command, "--last") for command in (["show"], ["logs"], ["show", "--json"])]
    finally:
        leaky.stop()

    first = outputs[0]
    assert first.returncode == 1, first.stderr
    # The secrets did go where they were meant to go: to the model, the shell and the proxy.
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY in openai_server.requests[0].body["messages"][-1]["content"]
    assert leaky.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(openai_server.requests) == 1  # the second run took the cached reply

    printed = "\n".join(done.stdout + done.stderr for done in outputs)
    stored = {path: path.read_bytes() for path in (tmp_path / ".llmflow").rglob("*") if path.is_file()}
    # "SECRET" is in both values: no part of either, even one split between two streamed pieces, shows.
    assert "SECRET" not in printed
    assert [str(path) for path, data in stored.items() if b"SECRET" in data] == []
    assert "invalid credentials Bearer ***" in printed
    assert any(b"shell saw *** and ***" in data for data in stored.values())
    first_run = json.loads(first.stdout.splitlines()[0])["run_id"]  # two runs may share a second: not by sort
    first_events = (tmp_path / ".llmflow" / "runs" / first_run / "events.jsonl").read_text()
    chunks = [json.loads(line) for line in first_events.splitlines() if '"llm.chunk"' in line]
    assert len(chunks) > 1 and "".join(c["data"]["text"] for c in chunks) == "echo: key=*** token=***"
    journals = [data for path, data in stored.items() if path.name == "journal.jsonl"]
    assert journals and all(b"key=*** token=***" in data for data in journals)
