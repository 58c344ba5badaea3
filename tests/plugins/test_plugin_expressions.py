"""Template filters and condition functions from plugins (``register_filters``, ``register_functions``): used in
every kind of field once the workflow names its plugins, checked when ``run`` or ``resume`` starts, called on
plain copies with bounded results, and seen by the run whose plugins registered them and by no other."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from plugin_helpers import Project

import llmflow
from llmflow.errors import ExpressionError, PluginError
from llmflow.expressions import compile_template
from llmflow.runtime import start_run

TEXT = """
from pathlib import Path

from llmflow.plugins import hookimpl

(Path(__file__).parent / "imported").write_text("yes")


def shout(value, times=1):
    return str(value).upper() + "!" * times


def words(text):
    return len(str(text).split())


def below(count, limit=3):
    return count < limit


@hookimpl
def register_filters(filters):
    filters.register("shout", shout)


@hookimpl
def register_functions(functions):
    functions.register("words", words)
    functions.register("below", below)
"""


@pytest.fixture
def text(project: Project) -> Project:
    """A project with ``text.py``: the filter ``shout`` and the functions ``words`` and ``below``."""
    project.write("text.py", TEXT)
    return project


# -- where they can be used ------------------------------------------------------------------------------------
def test_a_plugin_filter_in_a_run_command_reaches_the_shell_as_data(text: Project) -> None:
    summary = text.run(
        """
        inputs:
          name: {type: string}
        plugins: [./text.py]
        steps:
          - id: greet
            run: echo "hello {{ inputs.name | shout(2) }}"
        outputs:
          said: "{{ steps.greet.output }}"
        """,
        {"name": "ada; touch pwned; $(touch pwned2)"},
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"said": "hello ADA; TOUCH PWNED; $(TOUCH PWNED2)!!"}
    assert not (text.root / "pwned").exists() and not (text.root / "PWNED").exists()
    assert not (text.root / "pwned2").exists() and not (text.root / "PWNED2").exists()


def test_a_plugin_filter_in_set_and_in_outputs(text: Project) -> None:
    summary = text.run(
        """
        plugins: [./text.py]
        steps:
          - set: {loud: "{{ 'quiet' | shout }}", both: "{% filter shout %}a{{ 'b' | shout(0) }}{% endfilter %}"}
        outputs:
          loud: "{{ vars.loud | shout(2) }}"
          both: "{{ vars.both }}"
          native: "{{ [1, 2] | shout }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"loud": "QUIET!!!", "both": "AB!", "native": "[1, 2]!"}


def test_plugin_functions_decide_branches_and_loops(text: Project) -> None:
    summary = text.run(
        """
        plugins: [./text.py]
        vars: {seen: []}
        steps:
          - id: short
            if: words('one two') == 2
            set: {checked: "yes"}
          - id: never
            if: words('') > 0
            set: {checked: "no"}
          - id: route
            switch:
              cases:
                - name: long
                  when: words('a b c d') > 3
                  steps: [{set: {route: long}}]
                - name: other
                  when: "True"
                  steps: [{set: {route: other}}]
          - id: count
            loop:
              while: below(len(vars.seen), limit=3)
              max_iterations: 10
              steps:
                - set: {seen: "{{ vars.seen + [loop.iteration] }}"}
        outputs:
          checked: "{{ vars.checked }}"
          never: "{{ steps.never.status }}"
          branch: "{{ steps.route.branch }}"
          seen: "{{ vars.seen }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"checked": "yes", "never": "skipped", "branch": "long", "seen": [1, 2, 3]}


def test_a_yaml_hook_s_condition_and_template_use_plugin_names(text: Project) -> None:
    summary = text.run(
        """
        plugins: [./text.py]
        hooks:
          - id: note
            on: step.completed
            if: words(event.data.id) == 1 and below(event.seq, limit=100)
            write: {path: notes.txt, content: "[{{ event.data.id | shout }}] ", append: true}
        steps:
          - {id: first, run: echo}
          - {id: second, run: echo}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert text.lines("notes.txt") == ["[FIRST!]", "[SECOND!]"]
    assert text.events(summary.run_id, "hook.failed") == []


def test_a_sub_workflow_loads_its_own_plugins_for_its_own_names(text: Project) -> None:
    text.write(
        "lib/child.yaml",
        """
        version: 1
        name: child
        inputs: {word: string}
        plugins: [../text.py]
        steps:
          - {id: inner, if: "words(inputs.word) == 1", set: {loud: "{{ inputs.word | shout }}"}}
        outputs: {loud: "{{ vars.loud }}"}
        """,
    )
    summary = text.run(
        """
        steps:
          - {id: call, workflow: lib/child.yaml, with: {word: hey}}
        outputs: {child: "{{ steps.call.output.loud }}"}
        """
    )
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {"child": "HEY!"}


def test_an_entry_point_plugin_named_by_its_module_lends_its_filters(project: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "text_tools-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: text-tools\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[llmflow]\ntext = text_tools\n", encoding="utf-8")
    (site / "text_tools.py").write_text(TEXT, encoding="utf-8")
    project.workflow(
        "plugins: [text_tools]\nsteps:\n  - {id: a, if: words('x') == 1, run: \"echo {{ 'hi' | shout }}\"}\n"
    )
    done = project.cli("run", "flow.yaml", "--state-dir", "state", "--json", pythonpath=site)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    assert project.record(run_id, "a")["output"] == "HI!"
    listed = project.cli("plugins", "flow.yaml", "--json", pythonpath=site)
    found = [(p["name"], p["source"], p["filters"]) for p in json.loads(listed.stdout)["plugins"]]
    assert found[2:] == [("text", "entry point", ["shout"])]  # registered once, as the entry point


# -- names no plugin registers -----------------------------------------------------------------------------------
def test_an_unknown_filter_stops_run_with_one_line_exit_2_and_no_run(text: Project) -> None:
    text.workflow(
        """
        plugins: [./text.py]
        steps:
          - id: before
            run: touch ran
          - id: loud
            run: echo "{{ 'hi' | shuot }}"
        """
    )
    done = text.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: step 'loud' at flow.yaml:8:26: no plugin registers the filter 'shuot' (did you mean 'shout'?); "
        "plugin filters: shout\n"
    )
    assert not text.runs()
    assert not (text.root / "ran").exists()


def test_an_unknown_function_stops_run_the_same_way(text: Project) -> None:
    text.workflow(
        """
        plugins: [./text.py]
        steps:
          - id: gate
            if: wrods('a b') > 1
            run: touch ran
        """
    )
    done = text.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: step 'gate' at flow.yaml:6:9: no plugin registers the function 'wrods' (did you mean 'words'?); "
        "plugin functions: below, words\n"
    )
    assert not text.runs()


def test_an_unknown_name_in_outputs_when_no_plugin_registers_any_filter(project: Project) -> None:
    project.write("quiet.py", "")
    project.workflow("plugins: [./quiet.py]\nsteps:\n  - run: echo\noutputs:\n  x: \"{{ 'a' | uper }}\"\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stderr) == (
        2,
        "error: outputs at flow.yaml:7:16: no plugin registers the filter 'uper' (did you mean 'upper'?); "
        "no plugin registers any filter\n",
    )
    assert not project.runs()


def test_an_unknown_name_in_a_sub_workflow_names_its_file(text: Project) -> None:
    child = text.write(
        "lib/child.yaml",
        "version: 1\nname: child\nplugins: [../text.py]\nsteps:\n  - {id: inner, if: count(1), run: echo}\n",
    )
    with pytest.raises(PluginError) as raised:
        text.run("steps:\n  - {id: call, workflow: lib/child.yaml}\n")
    assert str(raised.value) == (
        f"step 'inner' at {child}:5:21: no plugin registers the function 'count' (did you mean 'round'?); "
        "plugin functions: below, words"
    )
    assert text.runs() == []


# -- what a plugin's filter or function receives and gives ----------------------------------------------------
ODD = """
from llmflow.plugins import hookimpl

KEPT = []


class Opaque:
    pass


def boom(value):
    raise ValueError("no good: " + str(value))


def explode(value):
    return 1 / 0


def opaque(value):
    return Opaque()


def function(value):
    return boom


def huge(value):
    return "x" * 10_000_001


def many(value):
    return list(range(100_001))


def grab(value):
    value.append("changed")
    value[0]["key"] = "changed"
    return len(value)


def keep(value):
    KEPT.append(value)
    return KEPT


@hookimpl
def register_filters(filters):
    for name in ("boom", "opaque", "function", "huge", "grab", "keep"):
        filters.register(name, globals()[name])


@hookimpl
def register_functions(functions):
    functions.register("explode", explode)
    functions.register("many", many)
"""


@pytest.fixture
def odd(project: Project) -> Project:
    """A project with ``odd.py``: filters and functions that raise, leak objects or return too much."""
    project.write("odd.py", ODD)
    return project


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (
            "{id: bad, run: \"echo {{ 'x' | boom }}\"}",
            "step 'bad', field 'run': plugin filter 'boom' failed: ValueError: no good: x",
        ),
        (
            "{id: bad, if: explode(1), run: echo}",
            "step 'bad', field 'if': plugin function 'explode' failed: ZeroDivisionError: division by zero",
        ),
        (
            '{id: bad, set: {x: "{{ 1 | opaque }}"}}',
            "step 'bad', field 'set': x: plugin filter 'opaque': a value of type 'Opaque' cannot be used as data",
        ),
        (
            '{id: bad, set: {x: "{{ 1 | function }}"}}',
            "step 'bad', field 'set': x: plugin filter 'function': the value is a function, not data (are the "
            "parentheses of a call missing?)",
        ),
        (
            '{id: bad, write: {path: out.txt, content: "{{ 1 | huge }}"}}',
            "step 'bad', field 'write': content: plugin filter 'huge' returned 10000001 characters "
            "(the limit is 10000000)",
        ),
        (
            "{id: bad, if: len(many(1)) > 0, run: echo}",
            "step 'bad', field 'if': plugin function 'many' returned 100001 items (the limit is 100000)",
        ),
    ],
    ids=["filter-raises", "function-raises", "object", "function-value", "huge-text", "too-many-items"],
)
def test_a_failing_or_unbounded_plugin_call_fails_the_step_with_a_clear_error(
    odd: Project, step: str, error: str
) -> None:
    summary = odd.run(f"plugins: [./odd.py]\nsteps:\n  - {step}\n  - {{id: after, run: touch after}}\n")
    assert (summary.status, summary.error, summary.failed_step) == ("failed", error, "bad")
    assert not (odd.root / "after").exists()
    assert "Traceback" not in (odd.state / "runs" / summary.run_id / "events.jsonl").read_text(encoding="utf-8")


def test_a_plugin_filter_gets_copies_and_gives_copies(odd: Project) -> None:
    summary = odd.run(
        """
        plugins: [./odd.py]
        vars: {items: [{key: kept}, 2]}
        steps:
          - {id: size, set: {size: "{{ vars.items | grab }}"}}
          - {id: first, set: {first: "{{ 'a' | keep }}"}}
          - {id: second, set: {second: "{{ 'b' | keep }}"}}
        outputs:
          items: "{{ vars.items }}"
          size: "{{ vars.size }}"
          first: "{{ vars.first }}"
          second: "{{ vars.second }}"
        """
    )
    assert summary.status == "succeeded", summary.error
    # The filter changed its copy, not the run's variable; the list it keeps and returns is copied each time.
    assert summary.outputs == {"items": [{"key": "kept"}, 2], "size": 3, "first": ["a"], "second": ["a", "b"]}
    assert odd.record(summary.run_id, "first")["output"] == {"first": ["a"]}


# -- one run's plugins, and no other's -----------------------------------------------------------------------------
TAGGER = """
from llmflow.plugins import hookimpl


@hookimpl
def register_filters(filters):
    filters.register("tag", lambda value: "{label}:" + str(value))
"""

TAGGED = """
version: 1
name: tagged
plugins: [./{plugin}]
steps:
  - {{id: a, set: {{first: "{{{{ 'x' | tag }}}}"}}}}
  - {{wait: 50ms}}
  - {{id: b, set: {{second: "{{{{ vars.first | tag }}}}"}}}}
  - {{wait: 50ms}}
outputs:
  second: "{{{{ vars.second | tag }}}}"
"""


def test_two_runs_in_one_process_see_only_their_own_plugin_filters(project: Project) -> None:
    for label in ("one", "two"):
        project.write(f"{label}.py", TAGGER.replace("{label}", label))
        project.write(f"{label}.yaml", TAGGED.format(plugin=f"{label}.py"))

    async def both() -> list[object]:
        runs = [
            start_run(llmflow.load(project.root / f"{label}.yaml"), {}, project.options()) for label in ("one", "two")
        ]
        return [summary.outputs for summary in await asyncio.gather(*runs)]

    assert asyncio.run(both()) == [{"second": "one:one:one:x"}, {"second": "two:two:two:x"}]
    # After the runs, nothing outside a run knows their filters.
    with pytest.raises(ExpressionError) as raised:
        compile_template("{{ 'x' | tag }}", True).render({})
    assert raised.value.message == "unknown filter 'tag': no plugin of this run registers it"


def test_a_plugin_registered_later_wins(project: Project) -> None:
    for label in ("one", "two"):
        project.write(f"{label}.py", TAGGER.replace("{label}", label))
    summary = project.run('plugins: [./one.py, ./two.py]\nsteps:\n  - run: echo\noutputs:\n  x: "{{ 1 | tag }}"\n')
    assert summary.outputs == {"x": "two:1"}


# -- resume ----------------------------------------------------------------------------------------------------------
def test_a_resume_uses_the_plugin_filters_again(text: Project) -> None:
    summary = text.run(
        """
        plugins: [./text.py]
        steps:
          - {id: before, set: {loud: "{{ 'a' | shout }}"}}
          - {id: gate, if: "words('x') == 1", run: "test -f go"}
          - {id: after, run: "echo {{ vars.loud | shout }}"}
        outputs: {after: "{{ steps.after.output }}", before: "{{ vars.loud }}"}
        """
    )
    assert summary.status == "failed"
    text.write("go", "")
    resumed = text.resume(summary.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"after": "A!!", "before": "A!"}
    (restored,) = text.events(summary.run_id, "steps.restored")
    assert [step["path"] for step in restored["data"]["steps"]] == ["before"]


def test_a_resume_whose_plugin_no_longer_registers_a_filter_leaves_the_run_as_it_was(text: Project) -> None:
    text.workflow(
        """
        plugins: [./text.py]
        steps:
          - {id: gate, run: "test -f go"}
          - {id: loud, run: "echo {{ 'a' | shout }}"}
        """
    )
    first = text.cli("run", "flow.yaml", "--state-dir", "state", "--json")
    run_id = json.loads(first.stdout)["run_id"]
    folder = text.state / "runs" / run_id
    before = {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    text.write("text.py", TEXT.replace('filters.register("shout", shout)', 'filters.register("shoutt", shout)'))
    text.write("go", "")
    done = text.cli("resume", run_id, "--state-dir", "state")
    assert (done.returncode, done.stderr) == (
        2,
        "error: step 'loud' at flow.yaml:6:36: no plugin registers the filter 'shout' (did you mean 'shoutt'?); "
        "plugin filters: shoutt\n",
    )
    assert {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before


# -- without the plugin -----------------------------------------------------------------------------------------------
def test_validate_graph_and_dry_run_never_import_the_plugin(project: Project) -> None:
    project.write("broken.py", "raise RuntimeError('imported')\n")
    project.workflow(
        """
        inputs:
          name: {type: string, default: ada}
        plugins: [./broken.py]
        steps:
          - id: greet
            if: words(inputs.name) == 1
            run: echo "{{ inputs.name | shout }}"
          - id: keep
            set: {plain: "{{ inputs.name | upper }}", loud: "{{ inputs.name | shout }}"}
        """
    )
    assert project.cli("validate", "flow.yaml").returncode == 0
    graph = project.cli("graph", "flow.yaml")
    assert graph.returncode == 0, graph.stderr
    plan = project.cli("run", "flow.yaml", "--dry-run", "--state-dir", "state")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[lines.index("• greet [run] if words(inputs.name) == 1") + 1] == (
        '    $ echo "{{ inputs.name | shout }}"  (rendered at run time)'
    )
    assert lines[lines.index("• keep [set]") + 1] == (
        '    set: {"plain": "{{ inputs.name | upper }}", "loud": "{{ inputs.name | shout }}"}  (rendered at run time)'
    )
    assert not project.runs()
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stderr) == (
        2,
        f"error: plugin ./broken.py ({project.root / 'broken.py'}) at flow.yaml:5:11: importing it failed: "
        "line 1: RuntimeError: imported\n",
    )


# -- registering -----------------------------------------------------------------------------------------------------
def test_a_plugin_cannot_replace_a_built_in_filter(project: Project) -> None:
    plugin = project.write(
        "upper.py",
        "from llmflow.plugins import hookimpl\n\n@hookimpl\ndef register_filters(filters):\n"
        "    filters.register('upper', lambda value: 'not upper')\n",
    )
    project.workflow("plugins: [./upper.py]\nsteps:\n  - run: echo \"{{ 'a' | upper }}\"\n")
    done = project.cli("run", "flow.yaml", "--state-dir", "state")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: plugin ./upper.py ({plugin}) at flow.yaml:3:11: register_filters: 'upper' is a built-in filter and "
        "cannot be replaced (the built-ins keep the sandbox's limits); register yours under a name of its own\n"
    )
    assert not project.runs()


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (
            "functions.register('len', lambda value: 0)",
            "'len' is a built-in function and cannot be replaced (the built-ins keep the sandbox's limits); "
            "register yours under a name of its own",
        ),
        (
            "functions.register('_peek', lambda value: 0)",
            "'_peek' cannot name a function: use an identifier that does not start with '_'",
        ),
        (
            "functions.register('two words', lambda value: 0)",
            "'two words' cannot name a function: use an identifier that does not start with '_'",
        ),
        ("functions.register('later', 42)", "the function 'later' must be a plain (not async) function"),
        (
            "functions.register('later', asyncio.sleep)",
            "the function 'later' must be a plain (not async) function",
        ),
    ],
    ids=["built-in", "private", "not-an-identifier", "not-callable", "async"],
)
def test_a_function_that_cannot_be_registered_is_refused(project: Project, registration: str, message: str) -> None:
    plugin = project.write(
        "funcs.py",
        "import asyncio\n\nfrom llmflow.plugins import hookimpl\n\n@hookimpl\ndef register_functions(functions):\n"
        f"    {registration}\n",
    )
    with pytest.raises(PluginError) as raised:
        project.run("plugins: [./funcs.py]\nsteps:\n  - run: echo\n")
    where = project.root / "flow.yaml"
    assert str(raised.value) == f"plugin ./funcs.py ({plugin}) at {where}:3:11: register_functions: {message}"
    assert project.runs() == []


def test_llmflow_plugins_lists_filters_and_functions(text: Project) -> None:
    text.workflow("plugins: [./text.py]\nsteps:\n  - run: echo\n")
    done = text.cli("plugins", "flow.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-4:] == [
        f"file         {text.root / 'text.py'}",
        "             hooks: register_filters, register_functions",
        "             filters: shout",
        "             functions: below, words",
    ]
