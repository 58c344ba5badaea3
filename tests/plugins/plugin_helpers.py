"""Helpers for plugin tests: write workflows and plugin modules, run and resume them, read what they left."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import llmflow
from llmflow.runtime import ResumeRequest, RunOptions, RunSummary, resume_run, start_run


class Project:
    """A project folder with workflows and plugin files in it, and the run store beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def write(self, name: str, text: str) -> Path:
        """Write a file (dedented) into the project folder."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def workflow(self, body: str, name: str = "flow.yaml") -> Path:
        """Write a workflow: ``version`` and ``name`` are added in front of ``body``."""
        return self.write(name, "version: 1\nname: test\n" + textwrap.dedent(body).lstrip("\n"))

    def options(self, **overrides: Any) -> RunOptions:
        values: dict[str, Any] = {"state_dir": str(self.state), "handle_signals": False, **overrides}
        return RunOptions(**values)

    def run(self, source: str | Path, inputs: dict[str, Any] | None = None, **options: Any) -> RunSummary:
        """Run a workflow file (or the body of one) to its end state."""
        path = source if isinstance(source, Path) else self.workflow(source)
        return asyncio.run(start_run(llmflow.load(path), inputs or {}, self.options(**options)))

    def resume(self, run_id: str, **request: Any) -> RunSummary:
        """Resume a run."""
        return asyncio.run(resume_run(ResumeRequest(selector=run_id, **request), self.options()))

    def read(self, name: str) -> str:
        """A file the run or a plugin wrote ('' when there is none)."""
        path = self.root / name
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def lines(self, name: str) -> list[str]:
        """The lines of a log file a plugin or hook appended to."""
        return self.read(name).split()

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The run's events, optionally only those of one type."""
        text = (self.state / "runs" / run_id / "events.jsonl").read_text(encoding="utf-8")
        found = [json.loads(line) for line in text.splitlines() if line]
        return [event for event in found if kind is None or event["type"] == kind]

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        """The run's journal records."""
        text = (self.state / "runs" / run_id / "journal.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line]

    def record(self, run_id: str, path: str) -> dict[str, Any]:
        """The last completion record of the node instance at ``path``."""
        records = [r for r in self.journal(run_id) if r["p"] == path and r["s"] in ("succeeded", "skipped", "failed")]
        return records[-1]

    def cli(
        self, *args: str, pythonpath: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI in a subprocess, run in the project folder (``pythonpath``: a folder of installed
        packages, put in front of the import path; ``env``: more environment variables)."""
        env = dict(os.environ, NO_COLOR="1", COLUMNS="200", **(env or {}))
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "llmflow", *args]
        return subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=60)

    def runs(self) -> list[str]:
        """Every run id in the store."""
        folder = self.state / "runs"
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
