"""A project folder for provider tests: workflows, ``llmflow.toml``, ``.env`` and the ``.llmflow/`` store."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import llmflow
from llmflow.runtime import ResumeRequest, RunOptions, RunSummary, resume_run, start_run


class Project:
    """A project folder: workflows, ``llmflow.toml``, ``.env`` and its ``.llmflow/`` store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / ".llmflow"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def workflow(self, body: str, name: str = "flow.yaml") -> Path:
        return self.write(name, "version: 1\nname: test\n" + textwrap.dedent(body).lstrip("\n"))

    def options(self, **overrides: Any) -> RunOptions:
        return RunOptions(state_dir=str(self.state), handle_signals=False, **overrides)

    def run(self, source: str | Path, inputs: dict[str, Any] | None = None, **options: Any) -> RunSummary:
        path = source if isinstance(source, Path) else self.workflow(source)
        return asyncio.run(start_run(llmflow.load(path), inputs or {}, self.options(**options)))

    def resume(self, run_id: str, **request: Any) -> RunSummary:
        return asyncio.run(resume_run(ResumeRequest(selector=run_id, **request), self.options()))

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        text = (self.state / "runs" / run_id / "events.jsonl").read_text(encoding="utf-8")
        found = [json.loads(line) for line in text.splitlines() if line]
        return [event for event in found if kind is None or event["type"] == kind]

    def meta(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
        return data
