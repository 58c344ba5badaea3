"""The free names a condition or template reads (``steps.fetch.output``), found without running it."""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from llmflow.records import FrozenRecord

if TYPE_CHECKING:
    from jinja2 import nodes

#: How many constant names after the root a Reference keeps.
MAX_PATH = 3
#: Names every template sees besides its context (they are never references).
TEMPLATE_GLOBALS = frozenset({"range", "dict", "cycler", "joiner", "namespace"})
#: The filters or condition functions an expression calls that a plugin must provide: each name once, with the
#: offset in the source where it is first called (None when unknown).
PluginNames = tuple[tuple[str, int | None], ...]


def valid_plugin_name(name: object) -> bool:
    """Whether ``name`` can name a plugin's filter or function: an identifier, not a keyword, not private."""
    import keyword

    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


class Reference(FrozenRecord):
    """One free name an expression reads, with the constant keys read from it.

    ``steps.fetch.output.count`` and ``steps['fetch'].output.count`` both give
    ``Reference("steps", ("fetch", "output", "count"))``; the path stops at the first key that is not a
    constant string (``steps[name]`` gives ``Reference("steps", ())``, ``items[0].x`` gives
    ``Reference("items", ())``) and keeps at most three names. ``offset`` is the 0-based character
    offset of the root name in the source for conditions, None for templates.
    """

    __slots__ = ("offset", "path", "root")
    root: str
    path: tuple[str, ...]
    offset: int | None

    def __init__(self, root: str, path: tuple[str, ...] = (), offset: int | None = None) -> None:
        self._set(root=root, path=path, offset=offset)

    def _field_names(self) -> tuple[str, ...]:
        return ("root", "path", "offset")

    def __str__(self) -> str:
        return ".".join((self.root, *self.path))


def _path_of(keys: Iterable[object]) -> tuple[str, ...]:
    path: list[str] = []
    for key in keys:
        if not isinstance(key, str) or len(path) == MAX_PATH:
            break
        path.append(key)
    return tuple(path)


# --- conditions (Python syntax) ---------------------------------------------------------------------


def condition_references(
    tree: ast.AST, ignored: Collection[str], offset_of: Callable[[ast.AST], int | None]
) -> frozenset[Reference]:
    """Every free name in a parsed condition; names in ``ignored`` (the functions) are skipped."""
    walker = _PythonWalker(ignored, offset_of)
    walker.visit(tree, frozenset())
    return frozenset(walker.found)


def _python_targets(target: ast.AST) -> frozenset[str]:
    return frozenset(node.id for node in ast.walk(target) if isinstance(node, ast.Name))


def _python_key(accessor: ast.AST) -> object:
    if isinstance(accessor, ast.Attribute):
        return accessor.attr
    if isinstance(accessor, ast.Subscript) and isinstance(accessor.slice, ast.Constant):
        return accessor.slice.value
    return None


class _PythonWalker:
    def __init__(self, ignored: Collection[str], offset_of: Callable[[ast.AST], int | None]) -> None:
        self.ignored = ignored
        self.offset_of = offset_of
        self.found: set[Reference] = set()

    def visit(self, node: ast.AST, bound: frozenset[str]) -> None:
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            accessors: list[ast.AST] = []
            base: ast.AST = node
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                accessors.append(base)
                if isinstance(base, ast.Subscript):
                    self.visit(base.slice, bound)
                base = base.value
            if isinstance(base, ast.Name):
                self.name(base, bound, [_python_key(item) for item in reversed(accessors)])
            else:
                self.visit(base, bound)
        elif isinstance(node, ast.Name):
            self.name(node, bound, [])
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = bound
            for generator in node.generators:
                self.visit(generator.iter, inner)
                inner = inner | _python_targets(generator.target)
                for condition in generator.ifs:
                    self.visit(condition, inner)
            results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for result in results:
                self.visit(result, inner)
        elif isinstance(node, ast.Call):
            # x.get(...) calls a method: the reference is x, not x.get
            if isinstance(node.func, ast.Attribute):
                self.visit(node.func.value, bound)
            elif not isinstance(node.func, ast.Name):
                self.visit(node.func, bound)
            for argument in node.args:
                self.visit(argument, bound)
            for keyword in node.keywords:
                self.visit(keyword.value, bound)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, bound)

    def name(self, node: ast.Name, bound: frozenset[str], keys: Sequence[object]) -> None:
        if node.id in bound or node.id in self.ignored:
            return
        self.found.add(Reference(node.id, _path_of(keys), self.offset_of(node)))


# --- templates (Jinja syntax) -----------------------------------------------------------------------


def template_references(template: nodes.Template, ignored: Collection[str]) -> frozenset[Reference]:
    """Every free name in a parsed Jinja template; ``ignored`` holds the environment's globals."""
    walker = _JinjaWalker(ignored)
    walker.body(template.body, frozenset())
    return frozenset(walker.found)


class _JinjaWalker:
    """Follows Jinja's scoping closely enough: loop targets, ``set``, macro and call-block arguments."""

    def __init__(self, ignored: Collection[str]) -> None:
        from jinja2 import nodes

        self.nodes = nodes
        self.ignored = ignored
        self.found: set[Reference] = set()

    def body(self, statements: Iterable[nodes.Node], bound: frozenset[str]) -> frozenset[str]:
        for statement in statements:
            bound = self.statement(statement, bound)
        return bound

    def targets(self, target: nodes.Node, bound: frozenset[str]) -> frozenset[str]:
        n = self.nodes
        if isinstance(target, n.NSRef):  # {% set ns.x = ... %} reads ns
            self.name(target.name, bound, [])
            return frozenset()
        if isinstance(target, n.Name):
            return frozenset({target.name})
        return frozenset(node.name for node in target.find_all(n.Name))

    def statement(self, node: nodes.Node, bound: frozenset[str]) -> frozenset[str]:
        n = self.nodes
        if isinstance(node, n.For):
            self.expr(node.iter, bound)
            inner = bound | self.targets(node.target, bound) | {"loop"}
            self.expr(node.test, inner)
            self.body(node.body, inner)
            self.body(node.else_, bound)
            return bound
        if isinstance(node, n.If):
            self.expr(node.test, bound)
            after = self.body(node.body, bound)
            for branch in node.elif_:
                after |= self.statement(branch, bound)
            return after | self.body(node.else_, bound)
        if isinstance(node, n.Assign):
            self.expr(node.node, bound)
            return bound | self.targets(node.target, bound)
        if isinstance(node, n.AssignBlock):
            self.body(node.body, bound)
            self.expr(node.filter, bound)
            return bound | self.targets(node.target, bound)
        if isinstance(node, (n.Macro, n.CallBlock)):
            for default in node.defaults:
                self.expr(default, bound)
            if isinstance(node, n.CallBlock):
                self.expr(node.call, bound)
            own = {node.name} if isinstance(node, n.Macro) else set()
            inner = bound | {arg.name for arg in node.args} | {"varargs", "kwargs", "caller"} | own
            self.body(node.body, inner)
            return bound | own
        if isinstance(node, n.With):
            for value in node.values:
                self.expr(value, bound)
            inner = bound.union(*(self.targets(target, bound) for target in node.targets))
            self.body(node.body, inner)
            return bound
        if isinstance(node, n.FilterBlock):
            self.body(node.body, bound)
            self.expr(node.filter, bound)
            return bound
        if isinstance(node, n.Output):
            for child in node.nodes:
                self.expr(child, bound)
            return bound
        for child in node.iter_child_nodes():
            if isinstance(child, n.Stmt):
                bound = self.statement(child, bound)
            else:
                self.expr(child, bound)
        return bound

    def expr(self, node: nodes.Node | None, bound: frozenset[str]) -> None:
        n = self.nodes
        if node is None:
            return
        if isinstance(node, (n.Getattr, n.Getitem)):
            accessors: list[Any] = []
            base: nodes.Node = node
            while isinstance(base, (n.Getattr, n.Getitem)):
                accessors.append(base)
                if isinstance(base, n.Getitem):
                    self.expr(base.arg, bound)
                base = base.node
            if isinstance(base, n.Name):
                keys = [self._key(item) for item in reversed(accessors)]
                self.name(base.name, bound, keys)
            else:
                self.expr(base, bound)
        elif isinstance(node, n.Name):
            if node.ctx == "load":
                self.name(node.name, bound, [])
        elif isinstance(node, n.Call) and isinstance(node.node, n.Getattr):
            self.expr(node.node.node, bound)  # a method call reads the object, not the method
            for child in node.iter_child_nodes(exclude=("node",)):
                self.expr(child, bound)
        else:
            for child in node.iter_child_nodes():
                self.expr(child, bound)

    def _key(self, accessor: Any) -> object:
        if isinstance(accessor, self.nodes.Getattr):
            return accessor.attr
        if isinstance(accessor.arg, self.nodes.Const):
            return accessor.arg.value
        return None

    def name(self, name: str, bound: frozenset[str], keys: Sequence[object]) -> None:
        if name in bound or name in self.ignored:
            return
        self.found.add(Reference(name, _path_of(keys)))


def simple_reference(root: str, keys: Iterable[object]) -> Reference:
    """The Reference of a simple path found by the template fast path."""
    return Reference(root, _path_of(keys))
