"""Loading plugins: files named in ``plugins:`` (unique module per file), dotted modules, installed entry points
(found with and without a finder of their own), plugin objects from the API; registering actions, providers and
sinks through the hooks the built-ins use; clear errors for plugins that do not load."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import Distribution, PathDistribution
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import Project

import llmflow
from llmflow.plugins import Decision, PluginError, hookimpl, load_plugins
from llmflow.plugins.loading import installed_entry_points

QUICK_WAIT = """
from llmflow.engine.actions import ActionResult
from llmflow.plugins import hookimpl


async def quick(ctx):
    return ActionResult(output=WHO)


@hookimpl
def register_actions(registry):
    registry.register("wait", quick)
"""

SHOUT = """
from llmflow.plugins import hookimpl
from llmflow.providers import ChatResponse


class Shout:
    name = "shout"

    async def complete(self, request, on_chunk=None):
        return ChatResponse(text=request.messages[-1]["content"].upper(), input_tokens=2, output_tokens=3)


@hookimpl
def register_providers(registry):
    registry.register("shout", Shout)
"""


def dist_info(folder: Path, distribution: str, entry_points: str) -> Path:
    """A minimal installed distribution in ``folder`` declaring ``entry_points`` (no network, no pip)."""
    info = folder / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return info


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` to install fake distributions into; modules imported from it are forgotten."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("shout_plugin", "finder_plugin")):
            del sys.modules[name]


# -- files and modules named in plugins: -----------------------------------------------------------------
def test_a_file_plugin_replaces_a_built_in_action(project: Project) -> None:
    project.write("quick.py", QUICK_WAIT.replace("WHO", "'quick'"))
    summary = project.run(
        """
        plugins: [./quick.py]
        steps:
          - {id: pause, wait: 1h}
        outputs: {pause: "{{ steps.pause.output }}"}
        """
    )
    assert summary.outputs == {"pause": "quick"}


def test_each_plugin_file_gets_a_module_of_its_own(project: Project) -> None:
    for name in ("one", "two"):
        project.write(f"{name}/hooks.py", QUICK_WAIT.replace("WHO", repr(name)))
        project.write(
            f"{name}/flow.yaml",
            "version: 1\nname: t\nplugins: [hooks.py]\nsteps: [{id: w, wait: 1h}]\n"
            "outputs: {w: '{{ steps.w.output }}'}\n",
        )
    assert project.run(project.root / "one" / "flow.yaml").outputs == {"w": "one"}
    assert project.run(project.root / "two" / "flow.yaml").outputs == {"w": "two"}
    loaded = [name for name in sys.modules if name.startswith("llmflow_plugin_hooks_")]
    assert len(loaded) >= 2


def test_a_dotted_module_beside_the_workflow_is_a_plugin_too(project: Project) -> None:
    project.write("beside_plugin.py", QUICK_WAIT.replace("WHO", "'module'"))
    summary = project.run(
        "plugins: [beside_plugin]\nsteps: [{id: w, wait: 1h}]\noutputs: {w: '{{ steps.w.output }}'}\n"
    )
    assert summary.outputs == {"w": "module"}


def test_a_sub_workflow_s_plugins_are_loaded_for_the_whole_run(project: Project) -> None:
    project.write("lib/quick.py", QUICK_WAIT.replace("WHO", "'from the child'"))
    project.write("lib/child.yaml", "version: 1\nname: child\nplugins: [./quick.py]\nsteps: [{id: w, wait: 1h}]\n")
    summary = project.run(
        """
        steps:
          - {id: child, workflow: lib/child.yaml}
          - {id: own, wait: 1h}
        outputs: {own: "{{ steps.own.output }}"}
        """
    )
    assert summary.outputs == {"own": "from the child"}


def test_a_plugin_registers_a_provider_the_llm_step_uses(project: Project) -> None:
    project.write("shout.py", SHOUT)
    summary = project.run(
        """
        plugins: [./shout.py]
        steps:
          - {id: ask, llm: {model: shout/loud, prompt: hello there}}
        outputs: {ask: "{{ steps.ask.output }}"}
        """
    )
    assert summary.outputs == {"ask": "HELLO THERE"}
    assert summary.usage["input_tokens"] == 2


def test_a_plugin_adds_a_sink_that_sees_every_event(project: Project) -> None:
    project.write(
        "sink.py",
        """
        from pathlib import Path
        from llmflow.plugins import hookimpl


        class Collect:
            def __init__(self, path, run_id):
                self.path, self.run_id, self.types = path, run_id, []

            def put(self, event):
                assert event["run_id"] == self.run_id
                self.types.append(event["type"])

            def close(self):
                self.path.write_text(" ".join(self.types))


        @hookimpl
        def register_sinks(sinks):
            sinks.add(Collect(Path(__file__).parent / "sink.txt", sinks.run_id))
        """,
    )
    summary = project.run("plugins: [./sink.py]\nsteps: [{id: a, run: echo}]\n")
    assert project.read("sink.txt") == "run.started step.started step.completed run.completed"
    assert summary.status == "succeeded"


def test_a_plugin_sink_that_blocks_or_raises_stalls_nothing_and_loses_nothing_else(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(
        "sink.py",
        """
        import time
        from pathlib import Path
        from llmflow.plugins import hookimpl

        HERE = Path(__file__).parent


        class Stubborn:
            def __init__(self):
                self.types, self.waited = [], None

            def put(self, event):
                if event["type"] == "step.started" and event["path"] == "a":
                    # Blocks until step b has run: only possible if the run goes on meanwhile.
                    deadline = time.monotonic() + 30
                    while not (HERE / "go").exists() and time.monotonic() < deadline:
                        time.sleep(0.01)
                    self.waited = "released" if (HERE / "go").exists() else "gave up"
                if event["type"] == "step.completed":
                    event["data"].clear()  # its own copy: the run's events.jsonl keeps the data
                    raise RuntimeError("this sink fails on completions")
                self.types.append(event["type"])

            def close(self):
                (HERE / "sink.txt").write_text(f"{self.waited}: {' '.join(self.types)}")


        @hookimpl
        def register_sinks(sinks):
            sinks.add(Stubborn())
        """,
    )
    summary = project.run("plugins: [./sink.py]\nsteps: [{id: a, run: echo}, {id: b, run: touch go}]\n")
    assert summary.status == "succeeded", summary.error
    assert project.read("sink.txt") == "released: run.started step.started step.started run.completed"
    events = (project.state / "runs" / summary.run_id / "events.jsonl").read_text().splitlines()
    completed = [json.loads(line) for line in events if '"step.completed"' in line]
    assert [event["data"]["id"] for event in completed] == ["a", "b"]
    said = capsys.readouterr().err
    assert "plugin sink Stubborn: 2 events not delivered (RuntimeError: this sink fails on completions)\n" in said


def test_plugin_objects_from_the_api_are_registered_last(project: Project) -> None:
    class Count:
        def __init__(self) -> None:
            self.seen: list[str] = []

        @hookimpl
        def before_step(self, step: Any, context: Any) -> Decision | None:
            self.seen.append(step.id)
            return None

    counter = Count()
    summary = project.run("steps: [{id: a, run: echo}, {id: b, run: echo}]\n", plugins=[counter])
    assert summary.status == "succeeded"
    assert counter.seen == ["a", "b"]


# -- plugins that do not load ----------------------------------------------------------------------------
def test_a_plugin_that_fails_to_import_is_one_clear_error_and_no_run(project: Project) -> None:
    bad = project.write("bad.py", "import os\n\nvalue = undefined_name + 1\n")
    with pytest.raises(PluginError) as raised:
        project.run("plugins: [./bad.py]\nsteps: [{run: echo}]\n")
    assert str(raised.value) == (
        f"plugin ./bad.py ({bad}) at {project.root / 'flow.yaml'}:3:11: importing it failed: line 3: NameError: "
        "name 'undefined_name' is not defined"
    )
    assert project.runs() == []


def test_a_syntax_error_names_the_line(project: Project) -> None:
    bad = project.write("bad.py", "def broken(:\n    pass\n")
    workflow = llmflow.load(project.workflow("plugins: [./bad.py]\nsteps: [{run: echo}]\n"))
    where = rf"{project.root / 'flow.yaml'}:3:11"
    with pytest.raises(
        PluginError, match=rf"^plugin \./bad\.py \({bad}\) at {where}: importing it failed: line 1: SyntaxError: "
    ):
        load_plugins(workflow)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "from llmflow.plugins import hookimpl\n@hookimpl\ndef befor_step(step, context):\n    pass\n",
            "unknown hook 'befor_step' (did you mean 'before_step'? hooks: after_step, before_iteration, "
            "before_step, on_branch, on_error, register_actions, register_filters, register_functions, "
            "register_providers, register_sinks)",
        ),
        (
            "from llmflow.plugins import hookimpl\n@hookimpl\ndef after_step(step, context, result):\n    pass\n"
            "def before_step(step, context):\n    pass\n",
            "before_step is not marked as a hook: put @hookimpl above it (from llmflow.plugins import hookimpl)",
        ),
        (
            "from llmflow.plugins import hookimpl\n@hookimpl\ndef before_step(step, ctx):\n    pass\n",
            "before_step(step, ctx): Argument(s) {'ctx'} are declared in the hookimpl but can not be found "
            "in the hookspec",
        ),
    ],
    ids=["unknown-hook", "unmarked-hook", "wrong-argument"],
)
def test_a_hook_that_does_not_fit_is_refused(project: Project, source: str, message: str) -> None:
    path = project.write("odd.py", source)
    workflow = llmflow.load(project.workflow("plugins: [./odd.py]\nsteps: [{run: echo}]\n"))
    with pytest.raises(PluginError) as raised:
        load_plugins(workflow)
    assert str(raised.value) == f"plugin ./odd.py ({path}) at {project.root / 'flow.yaml'}:3:11: {message}"


def test_a_plugin_whose_registration_fails_is_named(project: Project) -> None:
    path = project.write(
        "boom.py", "from llmflow.plugins import hookimpl\n@hookimpl\ndef register_actions(registry):\n    1 / 0\n"
    )
    with pytest.raises(PluginError) as raised:
        project.run("plugins: [./boom.py]\nsteps: [{run: echo}]\n")
    where = f"{project.root / 'flow.yaml'}:3:11"
    why = "register_actions failed: ZeroDivisionError: division by zero"
    assert str(raised.value) == f"plugin ./boom.py ({path}) at {where}: {why}"
    assert project.runs() == []


# -- entry points ----------------------------------------------------------------------------------------
def test_an_entry_point_plugin_is_loaded_for_every_run(project: Project, site: Path) -> None:
    (site / "shout_plugin.py").write_text(SHOUT, encoding="utf-8")
    dist_info(site, "shout-plugin", "[llmflow]\nshout = shout_plugin\n")
    summary = project.run(
        "steps: [{id: ask, llm: {model: shout/x, prompt: hi}}]\noutputs: {ask: '{{ steps.ask.output }}'}\n"
    )
    assert summary.outputs == {"ask": "HI"}
    (entry,) = [plugin for plugin in load_plugins().describe() if plugin["source"] == "entry point"]
    assert entry == {
        "name": "shout",
        "source": "entry point",
        "entry_point": "shout = shout_plugin",
        "distribution": "shout-plugin 1.0",
        "hooks": ["register_providers"],
        "actions": [],
        "providers": ["shout"],
        "filters": [],
        "functions": [],
    }


def test_an_entry_point_that_fails_to_import_is_named(site: Path) -> None:
    dist_info(site, "broken-plugin", "[llmflow]\nbroken = not_installed_anywhere\n")
    with pytest.raises(PluginError) as raised:
        load_plugins()
    assert str(raised.value) == (
        "plugin entry point 'broken = not_installed_anywhere' (broken-plugin 1.0): importing it failed: "
        "ModuleNotFoundError: No module named 'not_installed_anywhere'"
    )


def test_entry_points_of_a_finder_of_its_own_are_found(tmp_path: Path, site: Path) -> None:
    (site / "finder_plugin.py").write_text(SHOUT, encoding="utf-8")
    elsewhere = dist_info(tmp_path / "not-on-path", "finder-plugin", "[llmflow]\nvia-finder = finder_plugin\n")

    class Finder:
        @staticmethod
        def find_spec(*_: Any) -> None:
            return None

        @staticmethod
        def find_distributions(*_: Any, **__: Any) -> Iterator[Distribution]:
            yield PathDistribution(elsewhere)

    sys.meta_path.append(Finder)  # type: ignore[arg-type]
    try:
        assert [entry.name for entry in installed_entry_points()] == ["via-finder"]
    finally:
        sys.meta_path.remove(Finder)  # type: ignore[arg-type]


def test_without_entry_points_importlib_metadata_is_never_imported() -> None:
    code = (
        "import sys; from llmflow.plugins.loading import installed_entry_points; "
        "print(installed_entry_points(), 'importlib.metadata' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] False"


def test_a_run_with_only_the_builtin_plugin_does_without_pluggy() -> None:
    code = (
        "import sys; from pathlib import Path; from llmflow.plugins import load_plugins; "
        "from llmflow.engine.actions import ActionRegistry; "
        "plugins = load_plugins(); actions = ActionRegistry(); plugins.register_actions(actions, builtin=True); "
        "plugins.register_actions(actions); plugins.extensions(); plugins.sinks('r', Path('.')); "
        "print('run' in actions, plugins.interceptor(), sorted(m for m in sys.modules if m.startswith('pluggy')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True None []"


def test_with_another_plugin_the_builtin_hooks_go_through_pluggy_first() -> None:
    class Extra:
        @staticmethod
        @hookimpl
        def register_actions(registry: Any) -> None:
            registry.register("extra", registry.get("set"))

    plugins = load_plugins(extra=[Extra()])
    (builtin_actions,) = [impl for impl in plugins.manager.hook.register_actions.get_hookimpls() if impl.tryfirst]
    assert builtin_actions.plugin_name == "llmflow.actions"
    assert [name for name, _, _ in plugins.plugins()][:2] == ["llmflow.actions", "llmflow.providers"]


# -- where plugins are never loaded ----------------------------------------------------------------------
def test_the_engine_and_validation_import_neither_pluggy_nor_the_plugins_package() -> None:
    code = (
        "import sys; import llmflow.engine.runner, llmflow.engine.driver, llmflow.frontend, llmflow.cli.validate; "
        "print(sorted(m for m in sys.modules if m.startswith(('pluggy', 'llmflow.plugins'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    engine = Path(llmflow.__file__).parent / "engine"
    for module in engine.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [name for name in names if name.startswith(("pluggy", "llmflow.plugins"))], module
