"""The user docs cannot drift: the CLI page is regenerated and compared, the language page names every key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_cli_reference_is_current() -> None:
    from llmflow.cli.reference import render

    assert (DOCS / "cli.md").read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python -m llmflow.cli.reference > docs/cli.md`"
    )


def _property_names(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield name
            yield from _property_names(sub)
        for key, value in schema.items():
            if key != "properties":
                yield from _property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _property_names(item)


def test_language_reference_names_every_schema_key() -> None:
    schema = json.loads((ROOT / "schemas" / "workflow.schema.json").read_text(encoding="utf-8"))
    page = (DOCS / "language.md").read_text(encoding="utf-8")
    code = re.findall(r"```.*?```|`[^`\n]+`", page, flags=re.DOTALL)
    documented = {word for span in code for word in re.findall(r"[a-z_]+", span)}
    missing = sorted(set(_property_names(schema)) - documented)
    assert not missing, f"docs/language.md does not mention: {', '.join(missing)}"


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (DOCS / target).exists(), f"{page} links to missing {target}"


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (ROOT / target).exists(), f"README.md links to missing {target}"


# Every ```yaml block of the README and of docs/ is checked as `llmflow validate` checks a file:
# - a block that starts with `version:` (after comment lines) is a whole workflow and is checked as it is;
# - a block that is a list (`- id: ...`) is taken as the `steps:` of a workflow;
# - a block of top-level keys (`models:`, `hooks:` ...) gets `version: 1`, a `name` and one step when it
#   has none of its own.
# `plugins:` files are created empty beside it (validation never imports them). A block that cannot stand
# alone — a few keys of one node, `[...]` placeholders, steps it does not show, a template's file — is
# marked `partial` in its fence info string: ```yaml partial (editors and GitHub still highlight it as YAML).
_YAML_BLOCK = re.compile(r"^```yaml([^\n]*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def _snippets() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in _YAML_BLOCK.finditer(text):
            if "partial" in match.group(1).split():
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.name}:{line}", match.group(2)))
    return found


def _as_workflow(block: str) -> str:
    body = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    if body and body[0].startswith("version:"):
        return block
    if body and body[0].startswith("- "):
        return "version: 1\nname: snippet\nsteps:\n" + "".join(f"  {line}\n" for line in block.splitlines())
    keys = {line.split(":", 1)[0] for line in body if not line.startswith((" ", "-"))}
    head = ("" if "version" in keys else "version: 1\n") + ("" if "name" in keys else "name: snippet\n")
    tail = "" if "steps" in keys else "steps:\n  - run: echo ok\n"
    return head + block + tail


@pytest.mark.parametrize("where, block", _snippets(), ids=[where for where, _ in _snippets()])
def test_yaml_snippets_validate(where: str, block: str, tmp_path: Path) -> None:
    from llmflow.frontend import validate_workflow

    source = tmp_path / "snippet.yaml"
    source.write_text(_as_workflow(block), encoding="utf-8")
    for entry in re.findall(r"^plugins: \[(.*)\]", block, flags=re.MULTILINE):
        for name in entry.split(","):
            (tmp_path / name.strip()).write_text("", encoding="utf-8")
    errors = [str(d) for d in validate_workflow(source) if d.severity == "error"]
    assert not errors, (
        f"the YAML block at docs {where} does not validate (mark it ```yaml partial if it is a fragment):\n"
        + "\n".join(errors)
    )


def _workflows(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [block for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL) if block.startswith("version:")]


# What the page says each example gives, in page order.
PATTERN_OUTPUTS: list[dict[str, Any]] = [
    {"title": "Report for 2026-11-29"},
    {"grade": "high", "route": "features: to the roadmap", "paged": "skipped"},
    {"lines": ["1 squared is 1", "2 squared is 4", "3 squared is 9"], "total": 14, "ticks": 3},
    {
        "reviews": {"style": "style ok", "security": "security ok"},
        "notes": ["style looks fine", "no secrets found"],
        "sizes": [5, 4, 5],
    },
    {"guarded": "recovered from guarded/try/run-2 (state is clean)", "attempts": 2, "slow": "failed"},
    {"label": "bug"},
    {"sizes": [5, 4, 5, 5], "count": 4},
    {"best": "the invoice is due in march"},
]


def test_every_pattern_example_has_expected_outputs() -> None:
    assert len(_workflows("patterns.md")) == len(PATTERN_OUTPUTS)


@pytest.mark.parametrize("index", range(len(PATTERN_OUTPUTS)))
def test_pattern_examples_run(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import llmflow
    from llmflow.runtime import RunOptions, start_run

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "example.yaml"
    source.write_text(_workflows("patterns.md")[index], encoding="utf-8")
    workflow = llmflow.load(source)
    options = RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False)
    summary = asyncio.run(start_run(workflow, {}, options))
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == PATTERN_OUTPUTS[index]
