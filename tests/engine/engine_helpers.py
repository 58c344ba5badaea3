"""Helpers for engine tests: a project folder to write, run and resume workflows in, and polling helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import textwrap
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llmflow
from llmflow.runtime import ResumeRequest, RunOptions, RunSummary, resume_run, start_run


class Flow:
    """A project folder with workflows in it, and the run store beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def options(self, **overrides: Any) -> RunOptions:
        """Run options pointing at this project's store (signals left alone unless asked)."""
        values: dict[str, Any] = {"state_dir": str(self.state), "handle_signals": False, **overrides}
        return RunOptions(**values)

    def write(self, name: str, text: str) -> Path:
        """Write a file (dedented) into the project folder."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def workflow(self, body: str, name: str = "flow.yaml") -> Path:
        """Write a workflow: ``version`` and ``name`` are added in front of ``body``."""
        return self.write(name, "version: 1\nname: test\n" + textwrap.dedent(body).lstrip("\n"))

    def run(self, source: str | Path, inputs: dict[str, Any] | None = None, **options: Any) -> RunSummary:
        """Run a workflow file (or the text of one) to its end state."""
        path = source if isinstance(source, Path) else self.workflow(source)
        return asyncio.run(start_run(llmflow.load(path), inputs or {}, self.options(**options)))

    def resume(self, run_id: str, **request: Any) -> RunSummary:
        """Resume a run."""
        return asyncio.run(resume_run(ResumeRequest(selector=run_id, **request), self.options()))

    def log(self, name: str = "log") -> Counter[str]:
        """How often each line appears in a side-effect log file."""
        path = self.root / name
        return Counter(path.read_text().split()) if path.exists() else Counter()

    def touch(self, name: str) -> None:
        """Create an (empty) marker file."""
        (self.root / name).touch()

    def run_dir(self, run_id: str) -> Path:
        """The run's folder."""
        return self.state / "runs" / run_id

    def meta(self, run_id: str) -> dict[str, Any]:
        """The run's ``run.json``."""
        data: dict[str, Any] = json.loads((self.run_dir(run_id) / "run.json").read_text())
        return data

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        """The run's journal records (checksums included; compressed outputs unpacked, artifacts not)."""
        text = (self.run_dir(run_id) / "journal.jsonl").read_text()
        records = [json.loads(line) for line in text.splitlines() if line]
        for record in records:
            if "oz" in record:
                record["output"] = json.loads(zlib.decompress(base64.b64decode(record.pop("oz"))))
        return records

    def events(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The run's events, optionally only those of one type."""
        text = (self.run_dir(run_id) / "events.jsonl").read_text()
        found = [json.loads(line) for line in text.splitlines() if line]
        return [event for event in found if kind is None or event["type"] == kind]

    def only_run(self) -> str:
        """The id of the one run in the store."""
        (run,) = [path.name for path in (self.state / "runs").iterdir() if not path.name.startswith(".")]
        return run


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (a file appearing, a journal growing) until it holds; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.005)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")
