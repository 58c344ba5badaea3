"""The template code cache: a template Jinja compiled once is read back in later processes, and nothing damaged
or foreign is ever run."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmflow import graphcache
from llmflow.expressions import codecache, compile_template
from llmflow.expressions.sandbox import environment

#: Needs Jinja (a loop and a condition): the fast path renders only ``{{ path | filter }}`` templates itself.
SOURCE = "{% for word in words %}{{ word | upper }}{% if not loop.last %}-{% endif %}{% endfor %}"


@pytest.fixture
def source(tmp_path: Path) -> str:
    """The template, made unique to the test (a comment): this process keeps templates it compiled in memory."""
    return SOURCE + "{# " + tmp_path.name + " #}"


def render(source: str) -> object:
    return compile_template(source).render({"words": ["a", "b", "c"]})


def entry(source: str) -> Path:
    file = codecache.entry("text", False, source)
    assert file is not None
    return file


def planted(file: Path, source: str) -> None:
    """Write the code of another template into ``file``: whoever reads the entry runs that instead."""
    tree = environment("text").parse(source)
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    file.write_bytes(marshal.dumps(environment("text").compile(tree)))


def test_a_compiled_template_is_remembered_and_used_by_the_next_process(source: str) -> None:
    # Counts the times Jinja generates a template's Python code (a spy: it calls the real generator).
    probe = (
        "from jinja2.environment import Environment\n"
        "generated = []\n"
        "generate = Environment._generate\n"
        "Environment._generate = lambda self, *a, **k: generated.append(1) or generate(self, *a, **k)\n"
        "from llmflow.expressions import compile_template\n"
        f"print(compile_template({source!r}).render({{'words': ['x', 'y']}}))\n"
        "print(len(generated))\n"
    )
    env = {**os.environ}

    def run() -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert run() == ["X-Y", "1"]  # compiled: Jinja generated its code
    assert entry(source).is_file()
    assert run() == ["X-Y", "0"]  # read back


def test_the_entry_is_what_runs(source: str) -> None:
    """An entry of this user's that nobody else can write is trusted: what it holds is what renders."""
    planted(entry(source), "planted")
    os.chmod(entry(source), 0o600)
    assert render(source) == "planted"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership and modes are POSIX")
def test_an_entry_others_can_write_is_never_run(source: str) -> None:
    planted(entry(source), "planted")
    os.chmod(entry(source), 0o666)
    assert render(source) == "A-B-C"


@pytest.mark.parametrize("data", [b"", b"garbage", marshal.dumps("not code")])
def test_a_damaged_entry_is_compiled_again_and_written_anew(source: str, data: bytes) -> None:
    entry(source).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry(source).write_bytes(data)
    os.chmod(entry(source), 0o600)
    assert render(source) == "A-B-C"
    assert isinstance(marshal.loads(entry(source).read_bytes()), type(render.__code__))


def test_the_kind_and_nativeness_are_part_of_the_key() -> None:
    keys = {codecache.entry(kind, native, SOURCE) for kind in ("text", "shell") for native in (True, False)}
    assert len(keys) == 4


def test_llmflow_no_cache_turns_it_off(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLOW_NO_CACHE", "1")
    assert codecache.entry("text", False, source) is None
    assert render(source) == "A-B-C"


def test_entries_unused_for_a_month_are_pruned_with_the_graph_cache(source: str) -> None:
    render(source)
    month_ago = time.time() - graphcache.MAX_AGE - 60
    os.utime(entry(source), (month_ago, month_ago))
    graphs = entry(source).parent.parent.parent / "graphs"
    assert graphcache.prune(graphs) == 1
    assert not entry(source).exists()
