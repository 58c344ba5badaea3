"""Remembering compiled workflows, so an unchanged file is not loaded, validated and compiled again.

Compiling costs most of a cold ``llmflow run`` and of a ``resume`` (which compiles the run's frozen copy of
its source): ~15 ms for 100 steps, ~100 ms for 1000, plus the imports of the YAML parser and the compiler.
A compiled workflow depends only on the text of its files, the name they are shown under and llmflow's own
code, so after a successful compile the graph (with its warnings) is pickled into the user cache folder,
under the hash of the main file's text, its display name and a fingerprint of the installed package.

* **Moving folders.** Paths in the graph are stored relative to the main file's folder and rebased when the
  entry is read, so the frozen copy in a run folder finds the entry its original file wrote.
* **Included files.** Sub-workflows are part of the graph; the entry lists every file compiled in with its
  sha256 and is used only while each still has that content.
* **Safety.** Only compiles without errors are remembered (diagnostics for broken files are always computed
  afresh). A pickle runs code when read, so an entry is read only from a folder and a file that belong to the
  current user and that nobody else can write; anything unreadable, foreign or stale is ignored and written
  again. ``LLMFLOW_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import _pickle as pickle  # the C pickler alone: the ``pickle`` module around it costs ~2 ms of a cold run
import contextlib
import copyreg
import gc
import io
import os
import sys
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cache, lru_cache
from pathlib import Path, PurePath
from stat import S_ISREG
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from llmflow.digests import sha256, sha256_hex
from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from llmflow.compiler.graph import Workflow
    from llmflow.diagnostics import Diagnostic

#: ``cls.__new__(cls)``, which the pickler writes as the NEWOBJ opcode.
_NEWOBJ: Callable[..., Any] = copyreg.__newobj__  # type: ignore[attr-defined]
#: Builds a tuple of a subclass from its items in C (what a ``Location`` is read back with).
_TUPLE_NEW: Callable[..., Any] = tuple.__new__
FORMAT = 5  # 2: graph objects stored as their non-default fields (compiler.graph.Frozen); 3: value templates
# rebuilt by the unpickler itself; 4: graph objects too; 5: locations are tuples
#: Entries unused for this long are deleted, by one in every ``1 / PRUNE_CHANCE`` writes (on average).
MAX_AGE = 30 * 24 * 3600
PRUNE_CHANCE = 0.02
#: An entry read is marked as used (its mtime set) when its mark is older than this: the mark only has to be
#: right to the day for pruning, and setting it is a metadata write on every run and resume.
TOUCH_AFTER = 24 * 3600
MAX_TEXT = 5 * 1024 * 1024  # larger files are not worth a cache entry (and the loader refuses them anyway)


def _folder() -> Path | None:
    if os.environ.get("LLMFLOW_NO_CACHE"):
        return None
    from llmflow.folders import user_cache_dir

    return user_cache_dir() / "graphs"


@lru_cache(maxsize=1)
def fingerprint() -> bytes:
    """llmflow's version, the interpreter's, and the size and time of every module of the package: a graph
    pickled by other code is never read back."""
    from llmflow import __version__

    digest = sha256(f"{FORMAT}:{__version__}:{sys.version}".encode())
    package = Path(__file__).parent
    stack = [package]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    stack.append(Path(entry.path))
                elif entry.name.endswith(".py"):
                    stat = entry.stat()
                    digest.update(f"{entry.path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.digest()


def _key(text: bytes, name: str, display: str) -> str:
    digest = sha256(fingerprint())
    digest.update(f"{name}\0{display}\0".encode("utf-8", "surrogatepass"))
    digest.update(text)
    return digest.hexdigest()


class Entry:
    """Where the graph of one file, shown under one name, is remembered."""

    __slots__ = ("file", "main", "root", "text")

    def __init__(self, file: Path, root: Path, main: str = "", text: bytes = b"") -> None:
        self.file = file  # the pickle
        self.root = root  # the workflow file's folder: paths in the graph are relative to it
        self.main = main  # the workflow file's name in ``root``
        self.text = text  # its content when the entry was looked up: the key covers it


def entry(path: str | Path, display: str) -> Entry | None:
    """The cache entry for ``path`` shown as ``display``; None when the cache is off or the file unreadable."""
    folder = _folder()
    if folder is None:
        return None
    try:
        resolved = Path(path).resolve()
        if not S_ISREG(os.stat(resolved).st_mode):
            return None  # a FIFO or a device cannot be read twice (here, then by the loader): not cached
        with open(resolved, "rb") as handle:
            text = handle.read(MAX_TEXT + 1)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return None
    if len(text) > MAX_TEXT:
        return None
    key = _key(text, resolved.name, display)
    return Entry(folder / key[:2] / f"{key}.pickle", resolved.parent, resolved.name, text)


def owned(path: Path) -> bool:
    """Whether ``path`` belongs to this user and only this user can change it (always true off POSIX)."""
    return owned_stat(path) is not None


def owned_stat(path: Path) -> os.stat_result | None:
    """``path``'s stat when it belongs to this user and only this user can change it (any owner off POSIX)."""
    stat = path.stat()
    if hasattr(os, "getuid") and (stat.st_uid != os.getuid() or stat.st_mode & 0o022):
        return None
    return stat


# -- writing -------------------------------------------------------------------------------------------------
class _Pickler(pickle.Pickler):
    """Pickles a graph with its paths made relative to ``root`` and its shared tables by name."""

    def __init__(self, file: io.BytesIO, root: Path) -> None:
        super().__init__(file, protocol=5)  # pickle.HIGHEST_PROTOCOL (Python 3.8+)
        self.root = root

    def reducer_override(self, obj: Any) -> Any:
        from llmflow.compiler.graph import Frozen, Location, Workflow
        from llmflow.expressions.conditions import FUNCTIONS, Condition
        from llmflow.expressions.shell import ShellTemplate
        from llmflow.expressions.templates import Template, ValueTemplate

        if isinstance(obj, PurePath):
            return _rooted, (os.path.relpath(obj, self.root),)
        if isinstance(obj, MappingProxyType):
            if obj is FUNCTIONS:
                return _functions, ()
            return _proxy, (dict(obj),)
        if type(obj) is Condition:  # without its pool of idle evaluators
            state = (obj.source, obj.references, obj._tree, obj._functions, obj._positions, obj.plugin_functions)
            return _condition, state
        if type(obj) is Template:  # without its Jinja tree (it holds the environment): parsed again when used
            return _slotted, (
                Template,
                tuple(None if name == "_tree" else getattr(obj, name) for name in _names_of(obj)),
            )
        if type(obj) is ValueTemplate:  # one per step: NEWOBJ and BUILD, which the unpickler runs without
            # calling back into Python (a third faster to read a 1000-step graph than a rebuilding function)
            slots = {"_value": obj._value, "references": obj.references, "is_static": obj.is_static}
            return _NEWOBJ, (ValueTemplate,), (None, slots)
        if type(obj) is ShellTemplate:
            return ShellTemplate, (obj.source, obj.references, None, obj.plugin_filters)
        if type(obj) is Location:  # one per node: made by tuple.__new__ itself, without a Python call
            return _TUPLE_NEW, (Location, tuple(obj))
        if isinstance(obj, Frozen):  # the graph's own classes: only the fields that differ from their default
            cls = type(obj)
            defaults = cls._defaults
            own = cls._names  # not what a workflow works out and keeps beside its fields (``Workflow._memo``)
            fields = {
                name: value
                for name, value in obj.__dict__.items()
                if name in own and value is not defaults.get(name, _UNSET)
            }
            if isinstance(obj, Workflow):
                sources = {os.path.relpath(name, self.root): digest for name, digest in obj.sources.items()}
                fields.pop("sources", None)
                return _workflow, (fields, sources)
            # NEWOBJ and BUILD: the unpickler makes the object and fills its ``__dict__`` without calling back
            # into Python (two calls a step saved, a fifth of reading a large graph)
            return _NEWOBJ, (cls,), fields
        names = _names_of(obj)
        if names:  # the dataclasses' own __setstate__ looks their fields up again for every object
            return _slotted, (type(obj), tuple(getattr(obj, name) for name in names))
        return NotImplemented


def remember(entry: Entry, workflow: Workflow, warnings: list[Diagnostic]) -> None:
    """Store a successfully compiled workflow (best effort: any failure just leaves no entry)."""
    files = {os.path.relpath(name, entry.root): _digest(name) for name in _dependencies(workflow)}
    if None in files.values():
        return
    if entry.main in files and files[entry.main] != sha256_hex(entry.text):
        return  # the file changed while it was compiled: the graph may not be the one its key names
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, entry.root).dump((files, workflow, warnings))
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return  # something in the graph cannot be stored (a plugin's object): compile it every time
    temporary = entry.file.with_name(f"{entry.file.name}.{os.getpid()}.tmp")
    try:
        entry.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(buffer.getvalue())
        os.chmod(temporary, 0o600)
        os.replace(temporary, entry.file)
    except OSError:  # a read-only or full cache folder: no entry, and no half-written file left behind
        with contextlib.suppress(OSError):
            temporary.unlink()
        return
    import random  # here: reading an entry (a cold run's case) does without it

    if random.random() < PRUNE_CHANCE:
        prune(entry.file.parent.parent)


def _dependencies(workflow: Workflow) -> set[str]:
    """Every file the compile read or checked: workflow files, and plugin files (which must exist)."""
    found = set(workflow.sources)
    for flow in workflow.workflows():
        found.update(str(flow.directory / entry) for entry in flow.plugins if entry.endswith(".py"))
    return found


def prune(folder: Path, *, max_age: float = MAX_AGE, now: float | None = None) -> int:
    """Delete the entries of ``folder`` (the graph cache, and its siblings: the ``valid/`` markers and the
    ``templates/`` compiled templates) unused for ``max_age`` seconds, so that a cache used over months does
    not grow without end; return how many."""
    cutoff = (time.time() if now is None else now) - max_age
    removed = 0
    for kept in (folder, folder.parent / "valid", folder.parent / "templates"):
        with contextlib.suppress(OSError), os.scandir(kept) as shards:
            for shard in shards:
                if not shard.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(OSError), os.scandir(shard.path) as entries:
                    for item in entries:
                        with contextlib.suppress(OSError):
                            if item.is_file(follow_symlinks=False) and item.stat().st_mtime < cutoff:
                                os.unlink(item.path)
                                removed += 1
    return removed


# -- reading -------------------------------------------------------------------------------------------------
_UNSET = object()
_ROOT: ContextVar[Path] = ContextVar("llmflow_graph_root")  # the folder paths are rebased onto, while reading


def _rooted(relative: str) -> Path:
    return Path(os.path.normpath(_ROOT.get() / relative))


@cache
def _slot_fields(cls: type) -> tuple[str, ...]:
    """The fields of a frozen record or a dataclass with slots, in order; empty for any other class."""
    if issubclass(cls, FrozenRecord):
        return cast("tuple[str, ...]", cls.__dict__.get("__slots__", ()))
    import dataclasses

    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        return ()
    return tuple(field.name for field in dataclasses.fields(cls))


def _names_of(obj: object) -> tuple[str, ...]:
    """The fields of ``obj`` when it is a frozen record or a dataclass with slots, else empty."""
    return _slot_fields(type(obj))  # type: ignore[arg-type]


def _slotted(cls: type, values: tuple[Any, ...]) -> Any:
    obj: Any = object.__new__(cls)
    for name, value in zip(_slot_fields(cls), values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _proxy(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


def _functions() -> Mapping[str, Callable[..., Any]]:
    from llmflow.expressions.conditions import FUNCTIONS

    return FUNCTIONS


def _condition(source: str, references: Any, tree: Any, functions: Any, positions: Any, plugin_functions: Any) -> Any:
    from llmflow.expressions.conditions import Condition

    return Condition(source, references, tree, functions, positions, plugin_functions)


_new = object.__new__
_set = object.__setattr__


def _frozen(cls: type, state: dict[str, Any]) -> Any:
    """A graph object from the fields that differ from their default (the others are class attributes): no
    ``__init__``, one assignment (this runs for every node, and is most of reading a large graph)."""
    obj: Any = _new(cls)
    _set(obj, "__dict__", state)
    return obj


def _workflow(state: dict[str, Any], sources: dict[str, str]) -> Any:
    from llmflow.compiler.graph import Workflow

    state["sources"] = MappingProxyType({str(_rooted(name)): digest for name, digest in sources.items()})
    return _frozen(Workflow, state)


def recall(entry: Entry) -> tuple[Workflow, list[Diagnostic]] | None:
    """The workflow and warnings remembered in ``entry``, or None when there is no usable one."""
    try:
        stat = owned_stat(entry.file)
        if stat is None or not owned(entry.file.parent):
            return None
        data = entry.file.read_bytes()
    except OSError:
        return None
    token = _ROOT.set(entry.root)
    # Reading builds thousands of objects and no garbage: without this the cyclic collector would walk the
    # whole heap several times meanwhile (~1 ms of reading a 1000-step graph inside a run).
    collecting = gc.isenabled()
    gc.disable()
    try:
        files, workflow, warnings = pickle.loads(data)
    except Exception:  # a damaged or outdated entry is not an error: compile again and overwrite it
        return None
    finally:
        if collecting:
            gc.enable()
        _ROOT.reset(token)
    for name, digest in files.items():  # every file compiled in must still have the content it had
        if name != entry.main and _digest(os.path.join(entry.root, name)) != digest:
            return None  # (the workflow file's own content is in the entry's key)
    if time.time() - stat.st_mtime > TOUCH_AFTER:
        with contextlib.suppress(OSError):
            os.utime(entry.file)  # the time of its last use: what pruning goes by
    return workflow, warnings


def _digest(name: str) -> str | None:
    try:
        with open(name, "rb") as handle:
            return sha256_hex(handle.read())
    except OSError:
        return None
