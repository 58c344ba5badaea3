"""The plugins of a run: one pluggy manager, where each plugin came from, and what the runtime asks of them.

A run with no plugin but llmflow's own (most runs) calls that plugin's hook functions directly; pluggy is
imported, and the manager made, only when another plugin is added or something asks for the manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from llmflow.errors import PluginError, UsageError

if TYPE_CHECKING:
    import pluggy

    from llmflow.config import Config
    from llmflow.engine.actions import ActionRegistry
    from llmflow.engine.events import Sink
    from llmflow.engine.interception import Interceptor
    from llmflow.expressions.extensions import Extensions, FunctionRegistry
    from llmflow.providers import ProviderRegistry

#: The hooks that intercept node instances (a run pays for interception only when a plugin has one).
INTERCEPTION_HOOKS = ("before_step", "after_step", "on_error", "on_branch", "before_iteration")
#: The modules that make up llmflow's own (built-in) plugin, registered before any other.
BUILTIN_MODULES = ("llmflow.actions", "llmflow.providers")
#: The attribute ``builtin_hook`` sets on a hook function of llmflow's own plugin.
BUILTIN_MARK = "llmflow_builtin_hook"

Hook = TypeVar("Hook", bound=Callable[..., Any])


def builtin_hook(function: Hook) -> Hook:
    """Marks a hook function of llmflow's own plugin: as ``@hookimpl(tryfirst=True)`` (before every other
    plugin, so that a plugin may replace what it registers), without importing pluggy."""
    setattr(function, BUILTIN_MARK, True)
    return function


class Origin:
    """Where a plugin came from: ``source`` is ``builtin``, ``entry point``, ``file``, ``module`` or ``object``.

    (Plain classes rather than dataclasses here: building dataclasses costs milliseconds at every start.)
    """

    __slots__ = ("distribution", "entry_point", "path", "shown", "source")

    def __init__(
        self,
        source: str,
        shown: str,
        *,
        path: str | None = None,
        entry_point: str | None = None,
        distribution: str | None = None,
    ) -> None:
        self.source = source
        self.shown = shown  # how messages and listings name it: a module, an entry point, a path as written
        self.path = path  # the file, for file plugins
        self.entry_point = entry_point  # ``name = value``
        self.distribution = distribution  # ``name version`` of the package declaring the entry point

    def __repr__(self) -> str:
        return f"<Origin {self.source} {self.shown}>"


class RunSinks:
    """What ``register_sinks`` receives: the run it is about, and a place to add sinks."""

    __slots__ = ("run_dir", "run_id", "sinks")

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.sinks: list[Sink] = []

    def add(self, sink: Sink) -> None:
        """Attach ``sink`` (``put(event)`` and ``close()``) to the run's events.

        The sink is handed the events by a thread of its own (``PluginSink``): a plugin's sink that blocks or
        raises can neither stall the run nor lose the other sinks' events, and its ``close`` is waited for at
        most ``PluginSink.CLOSE_TIMEOUT`` seconds at the end of the run.
        """
        from llmflow.observability.worker import PluginSink

        self.sinks.append(PluginSink(sink))


class Plugins:
    """A pluggy manager with the plugins of one run, each with its origin, in registration order."""

    def __init__(self) -> None:
        self._manager: pluggy.PluginManager | None = None
        self._plugins: dict[str, object] = {}
        self.origins: dict[str, Origin] = {}

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager, with every plugin added so far (made when first needed)."""
        if self._manager is None:
            self._manager = _new_manager()
            for name, plugin in self._plugins.items():
                self._manager.register(plugin, name=name)
        return self._manager

    def add(self, plugin: object, name: str, origin: Origin) -> None:
        """Register ``plugin`` under ``name``; a plugin with a bad hook is refused with a ``PluginError``."""
        if self._manager is None and origin.source == "builtin":
            if all(known is not plugin for known in self._plugins.values()):
                self._plugins[name] = plugin  # llmflow's own: pluggy registers it when a manager is made
                self.origins[name] = origin
            return
        import pluggy

        manager = self.manager
        if manager.is_registered(plugin):
            return
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            raise PluginError(f"plugin {origin.shown}: {_invalid(error)}") from None
        except ValueError as error:  # a name registered before, e.g. two entry points with the same name
            raise PluginError(f"plugin {origin.shown}: {error}") from None
        unknown = sorted(
            caller.name
            for caller in manager.get_hookcallers(plugin) or ()
            if caller.spec is None
            and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
        )
        if unknown:
            manager.unregister(plugin)
            named = ", ".join(f"'{hook}'" for hook in unknown)
            close = _closest(unknown[0], hook_names()) if len(unknown) == 1 else None
            meant = f"did you mean '{close}'? " if close else ""
            raise PluginError(f"plugin {origin.shown}: unknown hook {named} ({meant}hooks: {', '.join(hook_names())})")
        unmarked = [
            hook
            for hook in hook_names()
            if callable(getattr(plugin, hook, None)) and manager.parse_hookimpl_opts(plugin, hook) is None
        ]
        if unmarked and origin.source != "builtin":
            # pluggy passes over a function without the marker: the plugin would load and silently do nothing.
            manager.unregister(plugin)
            raise PluginError(
                f"plugin {origin.shown}: {unmarked[0]} is not marked as a hook: put @hookimpl above it "
                "(from llmflow.plugins import hookimpl)"
            )
        self._plugins[name] = plugin
        self.origins[name] = origin

    def plugins(self) -> Iterator[tuple[str, object, Origin]]:
        """Every plugin with its name and origin, in registration order."""
        for name, origin in self.origins.items():
            plugin = self._plugins.get(name)
            if plugin is not None:
                yield name, plugin, origin

    # -- what the runtime asks -------------------------------------------------------------------
    def register_actions(self, registry: ActionRegistry, *, builtin: bool = False) -> None:
        """Let the plugins (only the built-in ones with ``builtin``, else every other) add actions."""
        self._call("register_actions", builtin, registry=registry)

    def register_providers(self, registry: ProviderRegistry, *, builtin: bool = False) -> None:
        """Let the plugins (only the built-in ones with ``builtin``, else every other) add providers."""
        self._call("register_providers", builtin, registry=registry)

    def extensions(self) -> Extensions:
        """The template filters and condition functions the plugins register (a later registration wins)."""
        from llmflow.expressions.extensions import Extensions

        filters, functions = _function_registries()
        self._call("register_filters", False, filters=filters)
        self._call("register_functions", False, functions=functions)
        return Extensions(filters.frozen(), functions.frozen())

    def sinks(self, run_id: str, run_dir: Path) -> list[Sink]:
        """The event sinks the plugins add to a run."""
        found = RunSinks(run_id, run_dir)
        self._call("register_sinks", False, sinks=found)
        return found.sinks

    def interceptor(self) -> Interceptor | None:
        """The interception port answered by the plugins; ``None`` when none implements an interception hook."""
        if self._manager is None and not any(
            _builtin_function(plugin, name) for plugin in self._plugins.values() for name in INTERCEPTION_HOOKS
        ):
            return None
        hook = self.manager.hook
        if not any(getattr(hook, name).get_hookimpls() for name in INTERCEPTION_HOOKS):
            return None
        from llmflow.plugins.interception import PluginInterceptor

        return PluginInterceptor(hook)

    def _call(self, hook: str, builtin: bool, **arguments: Any) -> None:
        """Call a registration hook on the built-in plugins or on the others, naming a plugin that fails."""
        for _name, plugin, origin in list(self.plugins()):
            if (origin.source == "builtin") != builtin:
                continue
            caller = self._only(hook, plugin)
            try:
                caller(**arguments)
            except PluginError as error:  # a registry refused what the plugin registered: say which plugin
                raise PluginError(f"plugin {origin.shown}: {hook}: {error}") from None
            except UsageError:
                raise
            except (Exception, SystemExit) as error:  # sys.exit() in a plugin is its failure, not a silent exit
                raise PluginError(f"plugin {origin.shown}: {hook} failed: {type(error).__name__}: {error}") from error

    def _only(self, hook: str, plugin: object) -> Callable[..., Any]:
        """``hook`` called on ``plugin`` alone."""
        if self._manager is None:  # llmflow's own plugin alone: its function is called as pluggy would call it
            return _builtin_function(plugin, hook) or _nothing
        others = [other for other in self.manager.get_plugins() if other is not plugin]
        return self.manager.subset_hook_caller(hook, remove_plugins=others)

    def describe(self, config: Config | None = None) -> list[dict[str, Any]]:
        """What ``llmflow plugins`` shows: each plugin, where it came from, its hooks, actions and providers."""
        from llmflow.config import Config
        from llmflow.engine.actions import ActionRegistry
        from llmflow.providers import ProviderRegistry

        listed = []
        for name, plugin, origin in self.plugins():
            hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ())
            actions, models = ActionRegistry(), ProviderRegistry(config=config or Config())
            filters, functions = _function_registries()
            try:
                self._only("register_actions", plugin)(registry=actions)
                self._only("register_providers", plugin)(registry=models)
                self._only("register_filters", plugin)(filters=filters)
                self._only("register_functions", plugin)(functions=functions)
            except PluginError as error:
                raise PluginError(f"plugin {origin.shown}: {error}") from None
            except (Exception, SystemExit) as error:
                raise PluginError(
                    f"plugin {origin.shown}: registering failed: {type(error).__name__}: {error}"
                ) from error
            entry: dict[str, Any] = {"name": name, "source": origin.source}
            for key in ("path", "entry_point", "distribution"):
                if getattr(origin, key) is not None:
                    entry[key] = getattr(origin, key)
            entry.update(
                hooks=hooks,
                actions=actions.kinds(),
                providers=models.names(),
                filters=filters.names(),
                functions=functions.names(),
            )
            listed.append(entry)
        return listed


def _new_manager() -> pluggy.PluginManager:
    """A pluggy manager of project ``llmflow`` that also takes the functions marked with ``builtin_hook``, and
    is told that a module's plain function without a marker is no hook (pluggy looks at every name of a
    plugin module with ``inspect.getattr_static``: ~0.5 ms for llmflow's own modules). Anything else is
    still left to pluggy."""
    import pluggy

    from llmflow.plugins import hookspecs

    class Manager(pluggy.PluginManager):
        def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
            if _builtin_function(plugin, name) is not None:
                return pluggy.HookimplOpts(
                    wrapper=False, hookwrapper=False, optionalhook=False, tryfirst=True, trylast=False, specname=None
                )
            if _plain_unmarked(plugin, name, "llmflow_impl"):
                return None
            return super().parse_hookimpl_opts(plugin, name)

        def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
            if _plain_unmarked(module_or_class, name, "llmflow_spec"):
                return None
            return super().parse_hookspec_opts(module_or_class, name)

    manager = Manager("llmflow")
    manager.add_hookspecs(hookspecs)
    return manager


def _builtin_function(plugin: object, name: str) -> Callable[..., Any] | None:
    """``plugin``'s function ``name`` when it is marked with ``builtin_hook``."""
    function = getattr(plugin, name, None)
    return function if callable(function) and getattr(function, BUILTIN_MARK, False) else None


def _nothing(**_: Any) -> None:
    """A hook called on a plugin that does not implement it."""


def _plain_unmarked(namespace: object, name: str, marker: str) -> bool:
    """Whether ``name`` of module ``namespace`` can be no hook: a plain function without ``marker``, or
    anything pluggy never hooks (only functions and methods are), read from the module's ``__dict__``."""
    if type(namespace) is not ModuleType:
        return False
    value = namespace.__dict__.get(name)
    if type(value) is FunctionType:
        return marker not in value.__dict__
    return not isinstance(value, (MethodType, staticmethod, classmethod))


def _function_registries() -> tuple[FunctionRegistry, FunctionRegistry]:
    """Empty registries for plugin template filters and condition functions (the built-ins cannot be replaced)."""
    from llmflow.expressions.extensions import FunctionRegistry

    return FunctionRegistry("filter"), FunctionRegistry("function")


def _closest(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def hook_names() -> list[str]:
    """Every hook a plugin may implement."""
    from llmflow.plugins import hookspecs

    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "llmflow_spec"))


def _invalid(error: Exception) -> str:
    """pluggy's several lines about a hook implementation that does not fit its hook, as one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    definition = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("hookimpl definition:")), "")
    return f"{definition}: {lines[-1]}" if definition else " ".join(lines)
