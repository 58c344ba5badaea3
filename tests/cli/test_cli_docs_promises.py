"""What the user docs promise, checked end to end with the real CLI where the code once said otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cli_helpers import Result

Cli = Callable[..., Result]
Write = Callable[..., Path]

HISTORY = """\
version: 1
name: chat
steps:
  - id: answer
    llm: {model: mock/echo, prompt: hello, history: support-chat}
"""


def test_llm_history_is_a_warning_and_fails_its_step_until_sessions_exist(cli: Cli, workflow: Write) -> None:
    # `history` used to be accepted and silently ignored: the model got the prompt without the conversation.
    workflow(HISTORY)
    checked = cli("validate", "flow.yaml")
    assert checked.code == 0, checked.stderr
    assert (
        "flow.yaml:5:53: warning[unsupported]: session histories are not available in this version of llmflow: "
        "this step fails when it runs"
    ) in checked.stdout
    result = cli("run", "flow.yaml", "-q")
    assert result.code == 1
    assert (
        "error: step 'answer': history is not available in this version of llmflow (sessions are not built yet); "
        "give the earlier turns in messages"
    ) in result.stderr
