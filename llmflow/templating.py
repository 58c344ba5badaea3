"""The template library: where templates come from, their metadata, and searching them (see ``scaffolding``)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmflow.errors import UsageError

#: The metadata file and the workflow file of a template folder.
METADATA_FILE = "template.yaml"
WORKFLOW_FILE = "workflow.yaml"

PARAMETER_TYPES = ("string", "integer", "number", "boolean")
_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TAG = re.compile(r"[a-z0-9][a-z0-9+.-]*\Z")
_METADATA_KEYS = {"name", "title", "description", "tags", "parameters"}
_PARAMETER_KEYS = {"description", "default", "type"}
#: Files and folders of a template folder that are never copied into a project.
_SKIPPED_PARTS = {"__pycache__", ".llmflow", "out", ".git"}

Value = str | int | float | bool


@dataclass(frozen=True)
class Parameter:
    """One scaffolding parameter: ``[[ name ]]`` in the workflow file, set with ``--set name=value``."""

    name: str
    description: str
    default: Value
    type: str = "string"


@dataclass(frozen=True)
class Source:
    """A folder of templates and the name the listing shows for it."""

    name: str
    folder: Path


@dataclass(frozen=True)
class Template:
    """A template folder: its metadata, where it was found, and its workflow file."""

    name: str
    title: str
    description: str
    tags: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    source: str
    folder: Path

    @property
    def workflow_file(self) -> Path:
        """The workflow the template scaffolds."""
        return self.folder / WORKFLOW_FILE

    def workflow_text(self) -> str:
        """The workflow file as written (line endings kept)."""
        return self.workflow_file.read_bytes().decode("utf-8")

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, if any."""
        return next((p for p in self.parameters if p.name == name), None)

    def sample_files(self) -> list[Path]:
        """Every file copied beside the scaffolded workflow (sample data, sub-workflows …), relative and sorted."""
        found = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder)
            if not path.is_file() or relative.as_posix() in (METADATA_FILE, WORKFLOW_FILE):
                continue
            if any(part in _SKIPPED_PARTS or part.startswith(".") for part in relative.parts):
                continue
            if path.suffix == ".pyc":
                continue
            found.append(relative)
        return found

    def summary(self) -> dict[str, Any]:
        """What ``templates list --json`` shows for the template."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "source": self.source,
        }


@dataclass
class Library:
    """Every template found, the first of each name winning, and the folders that could not be read."""

    templates: dict[str, Template] = field(default_factory=dict)
    shadowed: list[Template] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        """The template names, sorted."""
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        """The template called ``name``; a UsageError with a "did you mean" when there is none."""
        template = self.templates.get(name)
        if template is not None:
            return template
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "see `llmflow templates list`"
        raise UsageError(f"unknown template '{name}'; {hint}")

    def shadowing(self, template: Template) -> list[Template]:
        """The templates of the same name that ``template`` hides."""
        return [other for other in self.shadowed if other.name == template.name]


# -- sources ---------------------------------------------------------------------------------------


def template_sources() -> list[Source]:
    """Where templates come from, first wins: the project, the user's data folder, the built-in library."""
    from platformdirs import user_data_dir

    from llmflow.resources import templates_dir
    from llmflow.store.location import find_store_root

    return [
        Source("project", find_store_root() / "templates"),
        Source("user", Path(user_data_dir("llmflow")) / "templates"),
        Source("built-in", templates_dir()),
    ]


def load_library(sources: Sequence[Source] | None = None) -> Library:
    """Read every template of every source; a template hides later ones of the same name."""
    library = Library()
    seen: set[Path] = set()
    for source in template_sources() if sources is None else sources:
        folder = source.folder.resolve() if source.folder.is_dir() else None
        if folder is None or folder in seen:  # one folder reached two ways is one source
            continue
        seen.add(folder)
        for candidate in sorted(source.folder.iterdir()):
            if not (candidate / METADATA_FILE).is_file():
                continue
            try:
                template = read_template(candidate, source.name)
            except UsageError as error:
                library.problems.append(str(error))
                continue
            if template.name in library.templates:
                library.shadowed.append(template)
            else:
                library.templates[template.name] = template
    library.templates = dict(sorted(library.templates.items()))
    return library


# -- metadata --------------------------------------------------------------------------------------


def read_template(folder: Path, source: str) -> Template:
    """The template in ``folder``; a UsageError naming the file when its metadata is not right."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    file = folder / METADATA_FILE
    try:
        data = YAML(typ="safe", pure=True).load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as error:
        raise UsageError(f"{file}: cannot read the template metadata: {first_line(error)}") from None
    problems = metadata_problems(data, folder.name)
    if not (folder / WORKFLOW_FILE).is_file():
        problems.append(f"there is no {WORKFLOW_FILE} beside it")
    if problems:
        raise UsageError(f"{file}: " + "; ".join(problems))
    parameters = tuple(
        Parameter(name, spec["description"], spec["default"], spec.get("type", "string"))
        for name, spec in (data.get("parameters") or {}).items()
    )
    return Template(
        name=data["name"],
        title=data["title"],
        description=" ".join(data.get("description", "").split()),
        tags=tuple(data.get("tags") or ()),
        parameters=parameters,
        source=source,
        folder=folder,
    )


def metadata_problems(data: Any, folder_name: str) -> list[str]:
    """Everything wrong with a parsed ``template.yaml`` (an empty list when it is right)."""
    if not isinstance(data, dict):
        return ["the metadata must be a mapping"]
    problems = [f"unknown key '{key}'" for key in data if key not in _METADATA_KEYS]
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append("'name' must be a slug ([a-z][a-z0-9_-]*)")
    elif name != folder_name:
        problems.append(f"'name' is '{name}' but the folder is '{folder_name}'")
    if not isinstance(data.get("title"), str) or not data["title"].strip():
        problems.append("'title' must be a non-empty string")
    if not isinstance(data.get("description", ""), str):
        problems.append("'description' must be a string")
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) and _TAG.match(tag) for tag in tags):
        problems.append("'tags' must be a list of lowercase words ([a-z0-9][a-z0-9+.-]*)")
    parameters = data.get("parameters")
    if parameters is None:  # `parameters:` with nothing under it
        parameters = {}
    if not isinstance(parameters, dict):
        problems.append("'parameters' must map each parameter name to its description and default")
        return problems
    for key, spec in parameters.items():
        problems.extend(f"parameter '{key}': {problem}" for problem in _parameter_problems(key, spec))
    return problems


def _parameter_problems(name: Any, spec: Any) -> list[str]:
    if not isinstance(name, str) or not PARAMETER_NAME.match(name):
        return ["a parameter name is [A-Za-z_][A-Za-z0-9_]*"]
    if not isinstance(spec, dict):
        return ["must be a mapping with 'description' and 'default'"]
    problems = [f"unknown key '{key}'" for key in spec if key not in _PARAMETER_KEYS]
    if not isinstance(spec.get("description"), str) or not spec["description"].strip():
        problems.append("needs a 'description'")
    kind = spec.get("type", "string")
    if kind not in PARAMETER_TYPES:
        problems.append(f"'type' must be one of {', '.join(PARAMETER_TYPES)}")
    elif "default" not in spec:
        problems.append("needs a 'default'")
    elif not _has_type(spec["default"], kind):
        problems.append(f"the default {spec['default']!r} is not of type {kind}")
    return problems


def _has_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def first_line(error: BaseException) -> str:
    """A YAML or OS error on one line, with the line number when the parser knows it."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}: {problem}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- search ----------------------------------------------------------------------------------------


def search(library: Library, query: str) -> list[Template]:
    """The templates matching every word of ``query`` (case-insensitive), best first.

    A word counts most in the name, then in a tag, the title and the description.
    """
    words = query.lower().split()
    if not words:
        raise UsageError("the search query is empty")
    ranked = []
    for template in library.templates.values():
        scores = [_score(template, word) for word in words]
        if all(scores):
            ranked.append((-sum(scores), template.name, template))
    return [template for _, _, template in sorted(ranked, key=lambda item: (item[0], item[1]))]


def _score(template: Template, word: str) -> int:
    score = 0
    if word == template.name:
        score += 100
    elif word in template.name:
        score += 40
    if word in template.tags:
        score += 30
    elif any(word in tag for tag in template.tags):
        score += 15
    title = template.title.lower()
    if re.search(rf"\b{re.escape(word)}", title):
        score += 20
    elif word in title:
        score += 10
    if word in template.description.lower():
        score += 5
    return score
