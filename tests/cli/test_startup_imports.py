"""What a cold `llmflow run` imports: the heavy libraries stay out of a run that does not need them.

Start-up time is measured in benchmarks/ only; these tests pin down what makes it, so that a change that
pulls typer, rich, pluggy, httpx or the YAML parser back into a plain run fails here instead of slowly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import environment

from llmflow.plugins.loading import GROUP, _may_declare

FLOW = """\
version: 1
name: plain
steps:
  - id: first
    set: {a: 1}
  - id: second
    run: echo "{{ vars.a }} and {{ steps.first.status }}"
outputs:
  a: "{{ vars.a }}"
"""

#: Never imported by a run of plain steps whose graph comes from the cache.
HEAVY = (
    "typer",
    "click",
    "rich",
    "httpx",
    "ruamel",
    "jsonschema",
    "jinja2",  # templates that only read values render without it
    "llmflow.compiler.core",
    "llmflow.spec",
    "platformdirs",
    "tomllib",
    "llmflow.providers.resilience",
    "llmflow.actions.llm",
    "llmflow.engine.patterns.loop",
    "dataclasses",  # defining one costs about a millisecond: llmflow.records instead
    "hashlib",  # loads OpenSSL (~4 ms): llmflow.digests instead
    "secrets",  # with random and hmac (~5 ms): os.urandom instead
    "random",
    "pickle",  # the graph cache reads with _pickle alone
)


def imported(tmp_path: Path, *args: str) -> set[str]:
    """Every module ``python -m llmflow ARGS`` imports (from ``-X importtime``), with stdout and stderr piped."""
    command = [sys.executable, "-X", "importtime", "-m", "llmflow", *args]
    done = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def heavy_in(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``heavy`` or inside one of them."""
    return sorted(name for name in modules if any(name == h or name.startswith(h + ".") for h in heavy))


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_a_second_cold_run_imports_nothing_heavy(tmp_path: Path, quiet: bool) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    args = ["run", "flow.yaml", *(["-q"] if quiet else [])]
    first = imported(tmp_path, *args)
    assert "ruamel.yaml" in first  # compiled the first time: the cache is written, and the check can fail
    second = imported(tmp_path, *args)
    heavy = HEAVY
    if not _may_declare(GROUP):  # an installed plugin (entry point) is loaded, with pluggy, by every run
        heavy = (*heavy, "pluggy", "importlib.metadata")
    assert heavy_in(second, heavy) == []
    assert ("llmflow.cli.console" in second) is not quiet  # progress lines, plain: stderr is not a terminal


def test_help_and_other_commands_still_come_from_typer(tmp_path: Path) -> None:
    assert "typer" in imported(tmp_path, "run", "--help")
