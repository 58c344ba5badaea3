"""The graph cache: an unchanged workflow is not compiled again, and nothing stale or foreign is ever used."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import llmflow
from llmflow import graphcache
from llmflow.compiler.graph import Workflow
from llmflow.frontend import check_workflow
from llmflow.runtime import RunOptions, RunSummary, start_run

MAIN = """\
version: 1
name: cached
inputs:
  unused: {type: string, default: x}
steps:
  - id: hello
    run: echo hello from $(basename "$PWD")
  - id: sub
    workflow: lib/sub.yaml
    with: {word: "{{ steps.hello.output }}"}
outputs:
  said: "{{ steps.hello.output }}"
  sub: "{{ steps.sub.output.shout }}"
"""

SUB = """\
version: 1
name: sub
inputs:
  word: {type: string}
steps:
  - id: up
    set: {shout: "{{ inputs.word | upper }}"}
outputs:
  shout: "{{ vars.shout }}!"
"""


def project(folder: Path) -> Path:
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "sub.yaml").write_text(SUB, encoding="utf-8")
    main = folder / "main.yaml"
    main.write_text(MAIN, encoding="utf-8")
    return main


def entry_of(path: Path) -> graphcache.Entry:
    entry = graphcache.entry(path, str(path))
    assert entry is not None
    return entry


def run(path: Path, state: Path) -> RunSummary:
    options = RunOptions(state_dir=str(state), handle_signals=False)
    return asyncio.run(start_run(llmflow.load(path), {}, options))


def shape(workflow: Workflow) -> list[tuple[str, str, str]]:
    return [(node.path, node.kind, str(node.location)) for node in workflow.walk()]


def test_a_compiled_workflow_is_remembered_and_read_back_the_same(tmp_path: Path) -> None:
    main = project(tmp_path)
    first, first_diagnostics = check_workflow(main)
    assert first is not None
    assert entry_of(main).file.is_file()

    remembered = graphcache.recall(entry_of(main))
    assert remembered is not None
    again, warnings = remembered
    assert shape(again) == shape(first)
    assert again.path == first.path and dict(again.sources) == dict(first.sources)
    # Warnings come back with the graph: the unused input is still reported.
    assert [d.code for d in warnings] == [d.code for d in first_diagnostics] == ["unused-input"]
    assert [d.code for d in llmflow.validate(main)] == ["unused-input"]


def test_a_graph_read_back_runs_like_a_fresh_one(tmp_path: Path) -> None:
    main = project(tmp_path / "here")
    llmflow.load(main)
    assert graphcache.recall(entry_of(main)) is not None
    result = run(main, tmp_path / "state")
    assert result.status == "succeeded", result.error
    assert result.outputs == {"said": "hello from here", "sub": "HELLO FROM HERE!"}


def test_paths_are_rebased_when_the_same_files_live_elsewhere(tmp_path: Path) -> None:
    first = project(tmp_path / "a")
    llmflow.load(first, display_name="main.yaml")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = tmp_path / "b" / "main.yaml"

    entry = graphcache.entry(moved, "main.yaml")
    assert entry is not None
    remembered = graphcache.recall(entry)  # the copy finds the entry its original wrote
    assert remembered is not None
    workflow = remembered[0]
    assert workflow.path == moved.resolve()
    assert set(workflow.sources) == {str(moved.resolve()), str((tmp_path / "b" / "lib" / "sub.yaml").resolve())}
    sub = workflow.node("sub").workflow  # type: ignore[attr-defined]
    assert sub.path == (tmp_path / "b" / "lib" / "sub.yaml").resolve()

    result = run(moved, tmp_path / "state")
    assert result.outputs == {"said": "hello from b", "sub": "HELLO FROM B!"}


def test_an_edited_sub_workflow_is_compiled_again(tmp_path: Path) -> None:
    main = project(tmp_path)
    llmflow.load(main)
    (tmp_path / "lib" / "sub.yaml").write_text(SUB.replace('}}!"', '}}?"'), encoding="utf-8")
    assert graphcache.recall(entry_of(main)) is None
    result = run(main, tmp_path / "state")
    assert result.outputs["sub"] == f"HELLO FROM {tmp_path.name.upper()}?"


def test_a_deleted_sub_workflow_is_reported_not_recalled(tmp_path: Path) -> None:
    main = project(tmp_path)
    llmflow.load(main)
    (tmp_path / "lib" / "sub.yaml").unlink()
    assert graphcache.recall(entry_of(main)) is None
    workflow, diagnostics = check_workflow(main)
    assert workflow is None
    assert [d.code for d in diagnostics if d.severity == "error"] == ["workflow-not-found"]


def test_a_file_edited_while_it_compiles_is_not_remembered_under_its_old_content(tmp_path: Path) -> None:
    # The workflow file's own content is checked through the key alone when an entry is read back, so an
    # entry must never hold a graph compiled from other content than its key names.
    main = project(tmp_path)
    looked_up = entry_of(main)  # the key of the content as first read
    main.write_text(MAIN.replace("hello from", "hi from"), encoding="utf-8")  # edited before the compile
    edited, _ = check_workflow(main)
    assert edited is not None
    graphcache.remember(looked_up, edited, [])
    assert not looked_up.file.exists()
    main.write_text(MAIN, encoding="utf-8")
    assert run(main, tmp_path / "state").outputs["said"] == f"hello from {tmp_path.name}"


def test_steps_with_the_same_plain_options_share_them_also_when_read_back(tmp_path: Path) -> None:
    # One options object and one empty reference set for every `set` step: a large graph is cached and read
    # back with a few objects fewer per step (counted here; benchmarks/bench_engine.py times the resume).
    steps = "".join(f"  - {{id: s{i}, set: {{x{i}: {i}}}}}\n" for i in range(50))
    path = tmp_path / "many.yaml"
    path.write_text(f"version: 1\nname: many\nsteps:\n{steps}  - {{id: w, wait: 1ms}}\n", encoding="utf-8")
    fresh = llmflow.load(path)
    remembered = graphcache.recall(entry_of(path))
    assert remembered is not None
    for workflow in (fresh, remembered[0]):
        sets = [node for node in workflow.steps if node.kind == "set"]
        assert len({id(node.options) for node in sets}) == 1
        assert len({id(node.config.references) for node in sets}) == 1  # type: ignore[attr-defined]
        assert dict(sets[7].options) == {"scope": "run"}
        assert workflow.node("w").options["seconds"] == 0.001  # floats are never shared
    result = run(path, tmp_path / "state")
    assert result.status == "succeeded", result.error


def test_the_display_name_is_part_of_the_key(tmp_path: Path) -> None:
    main = project(tmp_path)
    check_workflow(main, display_name="shown-one-way.yaml")
    workflow, _ = check_workflow(main, display_name="shown-another-way.yaml")
    assert workflow is not None
    assert workflow.node("hello").location.file == "shown-another-way.yaml"


def test_a_damaged_entry_is_ignored_and_written_again(tmp_path: Path) -> None:
    main = project(tmp_path)
    llmflow.load(main)
    entry = entry_of(main)
    entry.file.write_bytes(b"not a pickle at all")
    assert graphcache.recall(entry) is None
    assert llmflow.load(main).name == "cached"
    assert graphcache.recall(entry) is not None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_an_entry_others_can_write_is_never_read(tmp_path: Path) -> None:
    main = project(tmp_path)
    decoy_file = tmp_path / "decoy.yaml"
    decoy_file.write_text("version: 1\nname: decoy\nsteps:\n  - set: {a: 1}\n", encoding="utf-8")
    llmflow.load(decoy_file)
    llmflow.load(main)
    entry = entry_of(main)
    # Another graph, valid in itself, in a file anyone may write: it must not be used.
    entry.file.write_bytes(entry_of(decoy_file).file.read_bytes())
    recalled = graphcache.recall(entry)
    assert recalled is not None and recalled[0].name == "decoy"  # (what a reader without the check would use)
    entry.file.chmod(0o666)
    assert graphcache.recall(entry) is None
    assert llmflow.load(main).name == "cached"


def test_broken_files_are_never_remembered(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: broken\nsteps:\n  - run: echo {{ steps.nowhere.output }}\n")
    assert check_workflow(broken)[0] is None
    assert not entry_of(broken).file.exists()
    assert check_workflow(broken)[0] is None


def test_llmflow_no_cache_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = project(tmp_path)
    monkeypatch.setenv("LLMFLOW_NO_CACHE", "1")
    assert graphcache.entry(main, str(main)) is None
    assert llmflow.load(main).name == "cached"
    monkeypatch.delenv("LLMFLOW_NO_CACHE")
    assert not entry_of(main).file.exists()


def test_a_second_cli_run_skips_the_yaml_parser_and_the_compiler(tmp_path: Path) -> None:
    main = project(tmp_path)
    env = {**os.environ, "LLMFLOW_HOME": str(tmp_path / "state")}

    def imported(*args: str) -> set[str]:
        command = [sys.executable, "-X", "importtime", "-m", "llmflow", *args]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}

    first = imported("run", str(main), "-q")
    assert {"ruamel.yaml", "llmflow.compiler.core"} <= first
    second = imported("run", str(main), "-q")
    assert "ruamel.yaml" not in second and "llmflow.compiler.core" not in second
    # Reading the graph loads only the expression kinds it holds (it has no conditions).
    probe = (
        "import sys; from llmflow import graphcache; "
        f"entry = graphcache.entry({str(main)!r}, {str(main)!r}); assert graphcache.recall(entry) is not None; "
        "print(sorted(name for name in sys.modules if name.startswith('llmflow.expressions.')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout
    assert "llmflow.expressions.shell'" in loaded and "llmflow.expressions.conditions'" not in loaded
    third = imported("validate", str(main))
    assert "ruamel.yaml" not in third


def test_a_resume_reads_the_graph_its_run_remembered(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text(
        "version: 1\nname: gate\nsteps:\n  - id: ask\n    approval: {message: 'go on'}\n  - run: echo done\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LLMFLOW_HOME": str(tmp_path / "state")}

    def imported(*args: str, code: int) -> set[str]:
        command = [sys.executable, "-X", "importtime", "-m", "llmflow", *args]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}

    assert "ruamel.yaml" in imported("run", "gate.yaml", "-q", code=3)
    resumed = imported("resume", "--last", "--approve", "-q", code=0)  # compiles the run's frozen copy
    assert "ruamel.yaml" not in resumed and "llmflow.compiler.core" not in resumed


def test_a_missing_plugin_file_is_reported_again(tmp_path: Path) -> None:
    (tmp_path / "hooks.py").write_text("", encoding="utf-8")
    flow = tmp_path / "flow.yaml"
    flow.write_text("version: 1\nname: p\nplugins: [./hooks.py]\nsteps:\n  - set: {a: 1}\n", encoding="utf-8")
    assert check_workflow(flow)[0] is not None
    (tmp_path / "hooks.py").unlink()
    workflow, diagnostics = check_workflow(flow)
    assert workflow is None
    assert [d.code for d in diagnostics] == ["plugin-not-found"]


def test_templates_that_need_the_full_parser_are_remembered_too(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        """\
version: 1
name: full
inputs:
  who: {type: string, default: world}
steps:
  - id: a
    run: echo "{{ inputs.who | upper }} {% if inputs.who %}yes{% endif %}"
  - id: b
    set: {v: "{% for x in [1, 2] %}{{ x }}{% endfor %} {{ 'x' | upper }}"}
outputs:
  a: "{{ steps.a.output }}"
  b: "{{ vars.v }}"
""",
        encoding="utf-8",
    )
    fresh = run(flow, tmp_path / "state")  # compiles, and remembers the graph
    assert graphcache.recall(entry_of(flow)) is not None
    again = run(flow, tmp_path / "state")  # from the cache: the Jinja trees are parsed again when used
    assert fresh.outputs == again.outputs == {"a": "WORLD yes", "b": "12 X"}


def test_entries_unused_for_a_month_are_pruned(tmp_path: Path) -> None:
    fresh = project(tmp_path / "fresh")
    stale = tmp_path / "stale.yaml"
    stale.write_text("version: 1\nname: stale\nsteps:\n  - set: {a: 1}\n", encoding="utf-8")
    llmflow.load(fresh)
    llmflow.load(stale)
    kept, dropped = entry_of(fresh).file, entry_of(stale).file
    month_ago = time.time() - graphcache.MAX_AGE - 60
    os.utime(dropped, (month_ago, month_ago))
    assert graphcache.recall(entry_of(fresh)) is not None  # a use counts as fresh
    graphs = kept.parent.parent
    assert graphcache.prune(graphs) >= 1
    assert kept.exists() and not dropped.exists()
    assert llmflow.load(stale).name == "stale"  # compiled again, and remembered again
    assert dropped.exists()


def test_a_use_marks_an_entry_at_most_once_a_day(tmp_path: Path) -> None:
    flow = project(tmp_path / "flow")
    llmflow.load(flow)
    entry = entry_of(flow).file
    hour_ago = time.time() - 3600
    os.utime(entry, (hour_ago, hour_ago))
    assert graphcache.recall(entry_of(flow)) is not None
    assert entry.stat().st_mtime == pytest.approx(hour_ago)  # marked recently enough: left alone
    days_ago = time.time() - 2 * graphcache.TOUCH_AFTER
    os.utime(entry, (days_ago, days_ago))
    assert graphcache.recall(entry_of(flow)) is not None
    assert entry.stat().st_mtime > time.time() - 60
