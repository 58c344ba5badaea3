"""Secret values the run knows (a sub-workflow's ``secrets:``): readable by the steps that declare them, and
masked in everything the run writes or prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result

CLI = Callable[..., Result]

TOKEN = "tok-CHILD-5ecret-42"

PARENT = """\
version: 1
name: parent
steps:
  - id: call
    workflow: lib/child.yaml
outputs:
  said: "{{ steps.call.output.said }}"
"""

CHILD = """\
version: 1
name: child
secrets: [CHILD_TOKEN]
steps:
  - id: use
    run: echo "token={{ secrets.CHILD_TOKEN }}"
outputs:
  said: "{{ steps.use.output }}"
"""


def stored_text(home: Path) -> str:
    """Every file of every run, as one text."""
    return "".join(path.read_text(encoding="utf-8", errors="replace") for path in home.rglob("*") if path.is_file())


def test_a_sub_workflow_reads_the_secrets_it_declares_and_they_are_masked(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lib").mkdir()
    workflow(CHILD, "lib/child.yaml")
    workflow(PARENT)
    monkeypatch.setenv("CHILD_TOKEN", TOKEN)
    done = cli("run", "flow.yaml", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["outputs"] == {"said": "token=***"}
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN not in stored_text(runs_dir)


SECRET_INPUT = """\
version: 1
name: secret-input
inputs:
  password: {type: string, secret: true}
  region: {type: string, secret: true, default: eu-west}
steps:
  - id: first
    run: echo "using {{ inputs.password }} in {{ inputs.region }}"
  - id: gate
    run: test -f gate && echo "again {{ inputs.password }}"
outputs:
  said: "{{ steps.first.output }}"
"""


def test_a_secret_input_is_masked_in_the_run_store_and_on_screen_on_run_and_resume(
    cli: CLI, workflow: Callable[..., Path], tmp_path: Path, runs_dir: Path
) -> None:
    workflow(SECRET_INPUT)
    failed = cli("run", "flow.yaml", "-i", "password=pw-first-7f3a")
    assert failed.code == 1, failed.stderr
    (tmp_path / "gate").touch()
    done = cli("resume", "--last", "--json", "-i", "password=pw-again-91c2")
    assert done.code == 0, done.stderr
    # A default is no secret (the workflow file shows it): only the values given are masked.
    assert done.json()["outputs"] == {"said": "using *** in eu-west"}
    shown = failed.stdout + failed.stderr + done.stdout + done.stderr
    assert "pw-first" not in shown and "pw-again" not in shown
    stored = stored_text(runs_dir)
    assert "pw-first" not in stored and "pw-again" not in stored


def test_a_secret_input_too_short_to_search_for_is_not_masked_inside_outputs(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path
) -> None:
    # Masking "a" everywhere would turn every output (and the journal a resume reads) into "***" soup.
    workflow(SECRET_INPUT.replace("  - id: gate\n", "  - id: other\n    run: echo banana\n  - id: gate\n"))
    failed = cli("run", "flow.yaml", "--json", "-i", "password=a")
    assert failed.code == 1, failed.stderr
    run_json = next(runs_dir.glob("*/run.json")).read_text(encoding="utf-8")
    assert '"password": "***"' in run_json  # still not stored
    assert "banana" in stored_text(runs_dir)


ENCODED_SECRET = """\
version: 1
name: encoded-secret
secrets: [API_TOKEN]
steps:
  - id: basic
    run: |
      printf 'Authorization: Basic '; printf 'bot:%s' "$TOKEN" | base64
    env: {TOKEN: "{{ secrets.API_TOKEN }}"}
  - id: plain
    run: printf '%s' "$TOKEN" | base64
    env: {TOKEN: "{{ secrets.API_TOKEN }}"}
  - id: query
    set: {url: "https://api.example/v1?token={{ secrets.API_TOKEN | urlencode }}"}
  - id: fail
    run: echo "rejected {{ secrets.API_TOKEN | urlencode }}" >&2; exit 4
"""


def test_a_secret_echoed_base64_or_url_encoded_is_masked_in_the_run_store_and_on_screen(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    from urllib.parse import quote

    token = "sk/live+Q2x=9&abc def"
    workflow(ENCODED_SECRET)
    monkeypatch.setenv("API_TOKEN", token)
    failed = cli("run", "flow.yaml")
    assert failed.code == 1, failed.stderr
    leaks = {
        base64.b64encode(token.encode()).decode(),
        base64.b64encode(f"bot:{token}".encode()).decode()[8:-4],  # the secret's part of the Basic header
        quote(token, safe=""),
        quote(token),
    }
    shown = failed.stdout + failed.stderr
    stored = stored_text(runs_dir)
    assert [leak for leak in leaks if leak in shown or leak in stored] == []
    assert "Authorization: Basic Ym90O" in stored  # the text around the secret is kept
    assert "rejected ***" in shown


LONG_SECRETS = """\
version: 1
name: long-secrets
secrets: [PRIVATE_KEY, LONG_TOKEN]
steps:
  - id: key
    run: printf '%s\\n' "$KEY"
    env: {KEY: "{{ secrets.PRIVATE_KEY }}"}
  - id: half
    run: printf '%s\\n' "$KEY" | head -n 2
    env: {KEY: "{{ secrets.PRIVATE_KEY }}"}
  - id: token
    run: printf 'token=%s\\n' "$TOKEN"
    env: {TOKEN: "{{ secrets.LONG_TOKEN }}"}
  - id: nested
    set: {auth: {header: "Bearer {{ secrets.LONG_TOKEN }}"}}
"""


def test_a_secret_of_several_lines_or_longer_than_a_preview_is_masked_in_events_and_live_output(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Live output comes a line at a time and step.completed previews stop after 80 characters: neither may show
    # a line of a private key, or the start of a token the preview cut in two.
    key_lines = [
        "-----BEGIN TEST KEY-----",
        "MIIEpAIBAAKCAQEA7Jq4TestKeyLineOne",
        "TestKeyLineTwo9f8e7d6c5b4a==",
        "-----END",
    ]
    token = "tk_" + "9Xq2" * 30
    workflow(LONG_SECRETS)
    monkeypatch.setenv("PRIVATE_KEY", "\n".join(key_lines))
    monkeypatch.setenv("LONG_TOKEN", token)
    done = cli("run", "flow.yaml")
    assert done.code == 0, done.stderr
    shown = done.stdout + done.stderr
    stored = stored_text(runs_dir)
    for leak in [*key_lines[1:3], token[:12], "9Xq29Xq29Xq2"]:
        assert leak not in shown and leak not in stored, leak
    assert "token=***…" in (runs_dir / next(runs_dir.iterdir()) / "events.jsonl").read_text(encoding="utf-8")


CUT_STDERR = """\
version: 1
name: cut-stderr
secrets: [API_TOKEN]
steps:
  - id: noisy
    run: |
      printf '%s' "$TOKEN" >&2; printf '%1990s' '' | tr ' ' x >&2; exit 3
    env: {TOKEN: "{{ secrets.API_TOKEN }}"}
"""


def test_a_secret_the_stderr_tail_of_a_failed_command_cuts_in_two_is_masked(
    cli: CLI, workflow: Callable[..., Path], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The error keeps the last 2,000 characters of stderr: 10 of the token's 34 would be left at its start.
    token = "tok-" + "Kq7Zp2Wm9Rx4" * 2 + "end6Tail"
    workflow(CUT_STDERR)
    monkeypatch.setenv("API_TOKEN", token)
    failed = cli("run", "flow.yaml")
    assert failed.code == 1, failed.stderr
    assert "exit code 3: …***xxx" in failed.stdout + failed.stderr
    shown = failed.stdout + failed.stderr
    stored = stored_text(runs_dir)
    assert token[-10:] not in shown and token[-10:] not in stored
