"""The stages import in one direction only (DESIGN.md §2): checked by walking every import in ``llmflow/``.

Every ``import`` statement counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llmflow"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. llmflow.engine.runner
    path: Path
    tree: ast.Module


@dataclass(frozen=True)
class Import:
    module: str  # the imported module, absolute and dotted
    line: int


def _modules() -> list[Module]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return modules


MODULES = _modules()


def imports_of(module: Module) -> list[Import]:
    """Every module ``module`` imports (``from a import b`` gives both ``a`` and ``a.b``)."""
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(target, node.lineno))
            found.extend(Import(f"{target}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def violations(source: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports X`` for every import of a ``forbidden`` module by a module in ``source``."""
    found = []
    for module in MODULES:
        if not _within(module.name, source):
            continue
        for item in imports_of(module):
            if _within(item.module, forbidden):
                found.append(f"{module.path.relative_to(PACKAGE.parent)}:{item.line} imports {item.module}")
    return sorted(set(found))


RULES = {
    "spec-is-the-first-stage": (
        ("llmflow.spec",),
        (
            "llmflow.compiler",
            "llmflow.engine",
            "llmflow.store",
            "llmflow.actions",
            "llmflow.cli",
            "llmflow.runtime",
            "llmflow.frontend",
        ),
    ),
    "expressions-stand-alone": (
        ("llmflow.expressions",),
        ("llmflow.spec", "llmflow.compiler", "llmflow.engine", "llmflow.store", "llmflow.cli", "llmflow.runtime"),
    ),
    "compiler-does-not-run": (
        ("llmflow.compiler",),
        ("llmflow.engine", "llmflow.store", "llmflow.actions", "llmflow.cli", "llmflow.runtime"),
    ),
    "engine-sees-only-ports": (
        ("llmflow.engine",),
        (
            "typer",
            "rich",
            "httpx",
            "llmflow.store",
            "llmflow.actions",
            "llmflow.cli",
            "llmflow.runtime",
            "llmflow.providers",  # the chat port may live here, but the engine reaches models through actions
        ),
    ),
}


@pytest.mark.parametrize(("source", "forbidden"), RULES.values(), ids=RULES.keys())
def test_stage_layering(source: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert violations(source, forbidden) == []


def test_only_the_cli_imports_typer() -> None:
    found = [
        f"{module.path.relative_to(PACKAGE.parent)}:{item.line} imports {item.module}"
        for module in MODULES
        if not _within(module.name, ("llmflow.cli",))
        for item in imports_of(module)
        if _within(item.module, ("typer", "click"))
    ]
    assert found == []


def _asyncio_entry_points(module: Module) -> list[str]:
    """Calls that start an event loop: ``asyncio.run``, ``run_until_complete``, ``asyncio.Runner``."""
    run_aliases = {
        alias.asname or alias.name
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ImportFrom) and node.module == "asyncio"
        for alias in node.names
        if alias.name in ("run", "Runner")
    }
    found = []
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        loop_method = isinstance(func, ast.Attribute) and func.attr == "run_until_complete"
        on_asyncio = (
            isinstance(func, ast.Attribute)
            and func.attr in ("run", "Runner")
            and isinstance(func.value, ast.Name)
            and func.value.id == "asyncio"
        )
        imported = isinstance(func, ast.Name) and func.id in run_aliases
        if loop_method or on_asyncio or imported:
            found.append(f"{module.path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_only_the_cli_starts_the_event_loop() -> None:
    outside = [
        where
        for module in MODULES
        if not _within(module.name, ("llmflow.cli",))
        for where in _asyncio_entry_points(module)
    ]
    assert outside == []


def test_the_checks_see_lazy_imports() -> None:
    # A rule that cannot fail proves nothing: these facts about today's code must hold for the walk to be right.
    frontend = next(m for m in MODULES if m.name == "llmflow.frontend")
    lazy = {item.module for item in imports_of(frontend)}
    assert "llmflow.spec.loader" in lazy  # imported inside a function
    assert violations(("llmflow.frontend",), ("llmflow.compiler",)) != []
    cli = [where for m in MODULES if _within(m.name, ("llmflow.cli",)) for where in _asyncio_entry_points(m)]
    assert cli, "the CLI is where asyncio.run is called"


def test_relative_imports_are_resolved() -> None:
    fake = Module(
        "llmflow.engine.patterns.loop", PACKAGE / "engine" / "patterns" / "loop.py", ast.parse("from ...store import x")
    )
    assert [item.module for item in imports_of(fake)] == ["llmflow.store", "llmflow.store.x"]
    package = Module("llmflow.engine", PACKAGE / "engine" / "__init__.py", ast.parse("from .runner import Engine"))
    assert [item.module for item in imports_of(package)] == ["llmflow.engine.runner", "llmflow.engine.runner.Engine"]
