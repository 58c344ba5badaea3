"""Finding and importing plugins: llmflow's own, installed entry points (group ``llmflow``), workflow files.

Order, which decides who wins when two plugins register the same action or provider name (the later one):
the built-in plugin, then entry points (by name), then the files and modules in ``plugins:`` (the main
workflow's, then its sub-workflows'), then plugin objects handed to the run by API callers.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llmflow.errors import PluginError
from llmflow.plugins.manager import BUILTIN_MODULES, Origin, Plugins

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from llmflow.compiler.graph import Location, Workflow

#: The entry-point group installed packages declare their plugins in.
GROUP = "llmflow"


def builtin_plugins(*, shared: bool = False) -> Plugins:
    """llmflow's own plugin alone (its actions and providers). ``shared``: one set made once per process, for
    callers that only call its registration hooks (never add plugins to it)."""
    global _SHARED
    if shared and _SHARED is not None:
        return _SHARED
    plugins = Plugins()
    for module_name in BUILTIN_MODULES:
        plugins.add(importlib.import_module(module_name), module_name, Origin("builtin", module_name))
    if shared:
        _SHARED = plugins
    return plugins


_SHARED: Plugins | None = None


def load_plugins(
    workflow: Workflow | None = None,
    extra: Iterable[object] = (),
    *,
    directory_of: Callable[[Workflow], Path] | None = None,
) -> Plugins:
    """Every plugin of a run of ``workflow`` (or, without one, the built-in and installed ones).

    ``directory_of`` gives the folder a (sub-)workflow's ``plugins:`` paths start from (default: its file's
    folder; a resume maps the frozen copy back to the original folder). Raises ``PluginError`` naming the
    plugin that cannot be imported or registered.
    """
    plugins = builtin_plugins()
    for entry_point in installed_entry_points():
        _add_entry_point(plugins, entry_point)
    if workflow is not None:
        for directory, entry, location in declared_plugins(workflow, directory_of):
            at = f" at {location}" if location is not None else ""  # the ``plugins:`` entry that names it
            if entry.endswith(".py"):
                path = (directory / entry).resolve()
                shown = (str(path) if entry == str(path) else f"{entry} ({path})") + at
                plugins.add(import_file(path, shown), str(path), Origin("file", shown, path=str(path)))
            else:
                plugins.add(import_module(entry, directory, at), entry, Origin("module", entry + at))
    for plugin in extra:
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}@{id(plugin):x}"
        plugins.add(plugin, str(name), Origin("object", str(name)))
    return plugins


def declared_plugins(
    workflow: Workflow, directory_of: Callable[[Workflow], Path] | None = None
) -> Iterator[tuple[Path, str, Location | None]]:
    """``(folder, entry, where it is written)`` for every entry of ``plugins:`` in the workflow and its
    sub-workflows, once each."""
    folder = directory_of or (lambda flow: flow.directory)
    seen: set[tuple[str, str]] = set()
    for current in workflow.workflows():
        directory = folder(current)
        locations = current.plugin_locations
        for index, entry in enumerate(current.plugins):
            key = (str((directory / entry).resolve()), "") if entry.endswith(".py") else ("", entry)
            if key not in seen:
                seen.add(key)
                yield directory, entry, locations[index] if index < len(locations) else None


# -- files and modules -----------------------------------------------------------------------------------
def import_file(path: Path, shown: str | None = None) -> ModuleType:
    """The module in ``path``, imported under a name unique to the file (kept while the file is unchanged);
    ``shown`` is how errors name it (default: the path)."""
    import hashlib
    import importlib.util
    import re

    what = f"plugin {shown or path}"
    try:
        source = path.read_bytes()
    except OSError as error:
        raise PluginError(f"{what}: cannot read it: {error.strerror}") from None
    stem = re.sub(r"\W", "_", path.stem)
    name = f"llmflow_plugin_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    digest = hashlib.sha256(source).hexdigest()
    known = sys.modules.get(name)
    if known is not None and getattr(known, "__llmflow_digest__", None) == digest:
        return known
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{what}: cannot import it as a Python module")
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__llmflow_digest__"] = digest
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # modules beside the plugin may import each other, as beside a workflow
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        sys.modules.pop(name, None)
        raise PluginError(f"{what}: importing it failed: {_failure(error, str(path))}") from None
    return module


def import_module(name: str, directory: Path, at: str = "") -> ModuleType:
    """The module ``name`` (a dotted name in ``plugins:``), looked for beside the workflow too; ``at`` says
    where the workflow names it, for errors."""
    if str(directory) not in sys.path:
        sys.path.append(str(directory))
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as error:
        raise PluginError(f"plugin module {name}{at}: importing it failed: {_failure(error, None)}") from None


def _failure(error: BaseException, path: str | None) -> str:
    """``Type: message``, after the line of the plugin file where it happened when there is one."""
    import traceback

    text = f"{type(error).__name__}: {error}"
    if isinstance(error, SyntaxError) and error.lineno:
        return f"line {error.lineno}: SyntaxError: {error.msg}"
    frames = traceback.extract_tb(error.__traceback__)
    mine = [frame for frame in frames if path is not None and frame.filename == path]
    if mine:
        return f"line {mine[-1].lineno}: {text}"
    return text


# -- entry points ----------------------------------------------------------------------------------------
def installed_entry_points() -> list[EntryPoint]:
    """The entry points of group ``llmflow``, by name (``importlib.metadata`` is imported only when a quick
    look at the installed packages' metadata finds the group, or cannot tell)."""
    if not _may_declare(GROUP):
        return []
    from importlib.metadata import entry_points

    return sorted(entry_points(group=GROUP), key=lambda entry_point: entry_point.name)


def _add_entry_point(plugins: Plugins, entry_point: EntryPoint) -> None:
    dist = getattr(entry_point, "dist", None)
    distribution = f"{dist.name} {dist.version}" if dist is not None else None
    shown = f"entry point '{entry_point.name} = {entry_point.value}'" + (f" ({distribution})" if distribution else "")
    try:
        plugin: Any = entry_point.load()
    except (Exception, SystemExit) as error:
        raise PluginError(f"plugin {shown}: importing it failed: {_failure(error, None)}") from None
    origin = Origin(
        "entry point", shown, entry_point=f"{entry_point.name} = {entry_point.value}", distribution=distribution
    )
    plugins.add(plugin, entry_point.name, origin)


#: The last answer of ``_may_declare``, with the ``sys.path`` folders and their modification times it holds for.
_LOOKED: tuple[tuple[tuple[str, int], ...], bool] | None = None


def _may_declare(group: str) -> bool:
    """Whether an installed package may declare entry points in ``group``: a look at each ``entry_points.txt``
    on ``sys.path``; True whenever it cannot tell (a finder of its own, a zip file on the path).

    The answer is kept while no folder on ``sys.path`` changes (installing or removing a package adds or
    removes a ``*.dist-info`` folder, which changes its parent's modification time).
    """
    global _LOOKED
    from importlib.machinery import PathFinder

    if any(finder is not PathFinder and hasattr(finder, "find_distributions") for finder in sys.meta_path):
        return True
    folders = tuple((entry, _modified(entry or ".")) for entry in sys.path)
    if _LOOKED is not None and _LOOKED[0] == folders:
        return _LOOKED[1]
    found = _declares(group)
    _LOOKED = (folders, found)
    return found


def _modified(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _declares(group: str) -> bool:
    header = f"[{group}]"
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True  # a zip file: importlib.metadata can read it, a listing cannot
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                metadata = os.path.join(folder, name, "entry_points.txt")
            elif name.endswith(".egg"):
                metadata = os.path.join(folder, name, "EGG-INFO", "entry_points.txt")
            else:
                continue
            try:
                with open(metadata, encoding="utf-8", errors="replace") as stream:
                    if header in stream.read():
                        return True
            except OSError:
                continue
    return False
