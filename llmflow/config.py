"""Settings from ``llmflow.toml`` (project and user config dir) and the project's ``.env`` file."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llmflow.durations import parse_duration
from llmflow.errors import UsageError
from llmflow.records import FrozenRecord

#: The project's settings file, beside ``.llmflow/``.
PROJECT_FILE = "llmflow.toml"
#: The user's settings file, in the user's config folder (``llmflow.folders.user_config_dir``).
USER_FILE = "config.toml"
#: Seconds a model request may take when nothing else says.
DEFAULT_REQUEST_TIMEOUT = 120.0

#: What each section may hold: key -> kind (checked below). ``[providers.NAME]`` of a plugin may hold more.
_DEFAULTS_KEYS = {"model": "model", "timeout": "duration"}
_PROVIDER_KEYS = {
    "base_url": "string",
    "api_key_env": "string",
    "api_key": "string",
    "timeout": "duration",
    "max_concurrency": "count",
    "requests_per_minute": "rate",
    "max_retries": "retries",
    "retry_delay": "duration",
    "max_delay": "duration",
    "max_retry_after": "duration",
    "headers": "headers",
}
_BUILTIN_PROVIDERS = ("openai", "anthropic", "mock")
_SECTIONS = ("defaults", "providers", "prices")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


class Config(FrozenRecord):
    """Merged settings: the user's file, then the project's (which wins key by key), plus ``.env``."""

    __slots__ = ("defaults", "dotenv", "files", "prices", "providers")
    defaults: Mapping[str, Any]
    providers: Mapping[str, Mapping[str, Any]]
    prices: Mapping[str, tuple[float, float]]
    dotenv: Mapping[str, str]
    files: tuple[Path, ...]

    def __init__(
        self,
        defaults: Mapping[str, Any] | None = None,
        providers: Mapping[str, Mapping[str, Any]] | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        dotenv: Mapping[str, str] | None = None,
        files: tuple[Path, ...] = (),
    ) -> None:
        self._set(
            defaults=defaults if defaults is not None else {},
            providers=providers if providers is not None else {},
            prices=prices if prices is not None else {},
            dotenv=dotenv if dotenv is not None else {},
            files=files,
        )

    def env(self, name: str) -> str | None:
        """A variable from the process environment, else from ``.env`` (empty values count as unset)."""
        value = os.environ.get(name) or self.dotenv.get(name)
        return value or None

    def provider(self, name: str) -> Mapping[str, Any]:
        """The ``[providers.NAME]`` table (empty when there is none)."""
        return self.providers.get(name, {})

    @property
    def default_model(self) -> str | None:
        """``[defaults] model``."""
        model = self.defaults.get("model")
        return str(model) if model else None

    @property
    def request_timeout(self) -> float:
        """``[defaults] timeout``: seconds a model request may take, 120 by default."""
        return float(self.defaults.get("timeout", DEFAULT_REQUEST_TIMEOUT))


def user_config_file() -> Path:
    """``config.toml`` in the user's config folder (``$XDG_CONFIG_HOME/llmflow`` on Linux)."""
    from llmflow.folders import user_config_dir

    return user_config_dir() / USER_FILE


def load_config(project_dir: Path) -> Config:
    """Read the user's and the project's settings and the project's ``.env``; ``UsageError`` (file:line) when
    a file is malformed."""
    merged: dict[str, Any] = {}
    files: list[Path] = []
    for path in (user_config_file(), project_dir / PROJECT_FILE):
        if path.is_file():
            _merge(merged, _read_toml(path))
            files.append(path)
    display = str(files[-1]) if files else PROJECT_FILE
    texts = {path: path.read_text(encoding="utf-8", errors="replace") for path in files}
    checker = _Checker(texts, display)
    checker.top(merged)
    return Config(
        defaults=checker.defaults(merged.get("defaults", {})),
        providers=checker.providers(merged.get("providers", {})),
        prices=checker.prices(merged.get("prices", {})),
        dotenv=read_dotenv(project_dir / ".env"),
        files=tuple(files),
    )


def declared_secrets(names: Iterable[str], config: Config) -> dict[str, str]:
    """The values of a workflow's ``secrets:`` names, from the environment or ``.env`` (unset ones are left
    out, so ``secrets.NAME`` of an unset one fails when a template reads it)."""
    values: dict[str, str] = {}
    for name in names:
        found = os.environ.get(name, config.dotenv.get(name))
        if found is not None:
            values[name] = found
    return values


def read_dotenv(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a ``.env`` file (``export``, comments and quotes as shells write them)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name = name.strip()
        if sep and name.isidentifier():
            values[name] = _dotenv_value(value.strip())
    return values


def _dotenv_value(value: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        body = value[1:end] if end > 0 else value[1:]
        if quote == '"':
            body = body.replace("\\n", "\n").replace('\\"', '"')
        return body
    comment = value.find(" #")
    return (value[:comment] if comment >= 0 else value).strip()


def _read_toml(path: Path) -> dict[str, Any]:
    # Imported here: most runs have no settings file, and the TOML parser costs ~5 ms to import.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    try:
        with path.open("rb") as stream:
            data: dict[str, Any] = tomllib.load(stream)
            return data
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _TOML_POSITION.search(message)
        reason = _TOML_POSITION.sub("", message).strip()
        where = f"{path}:{found.group(1)}:{found.group(2)}" if found else str(path)
        raise UsageError(f"{where}: invalid TOML: {reason}") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Merge tables key by key; ``other`` wins."""
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class _Checker:
    """Checks the merged tables, naming the file and line of a bad value."""

    def __init__(self, texts: Mapping[Path, str], display: str) -> None:
        self.texts = texts
        self.display = display

    def fail(self, section: str, key: str, message: str) -> UsageError:
        for path, text in reversed(list(self.texts.items())):  # the project's file wins, so look there first
            line = _line_of(text, section, key)
            if line:
                return UsageError(f"{path}:{line}: {message}")
        return UsageError(f"{self.display}: {message}")

    def top(self, merged: Mapping[str, Any]) -> None:
        for key in merged:
            if key not in _SECTIONS:
                raise self.fail("", key, f"unknown section [{key}] (known: {', '.join(_SECTIONS)})")

    def defaults(self, table: Any) -> dict[str, Any]:
        return self._table("defaults", table, _DEFAULTS_KEYS, strict=True)

    def providers(self, table: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(table, dict):
            raise self.fail("", "providers", "[providers] must be a table of [providers.NAME] tables")
        found: dict[str, dict[str, Any]] = {}
        for name, settings in table.items():
            section = f"providers.{name}"
            if not isinstance(settings, dict):
                raise self.fail("providers", name, f"[{section}] must be a table")
            found[name] = self._table(section, settings, _PROVIDER_KEYS, strict=name in _BUILTIN_PROVIDERS)
        return found

    def prices(self, table: Any) -> dict[str, tuple[float, float]]:
        if not isinstance(table, dict):
            raise self.fail("", "prices", '[prices] must be a table of "provider/model" = [input, output]')
        found: dict[str, tuple[float, float]] = {}
        for model, pair in table.items():
            numbers = pair if isinstance(pair, list) else []
            ok = len(numbers) == 2 and all(_number(n) and n >= 0 for n in numbers)
            if "/" not in model or not ok:
                raise self.fail(
                    "prices", model, f'[prices] "{model}" must be "provider/model" = [input, output] in $ per million'
                )
            found[model] = (float(numbers[0]), float(numbers[1]))
        return found

    def _table(self, section: str, table: Any, keys: Mapping[str, str], *, strict: bool) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail("", section, f"[{section}] must be a table")
        checked: dict[str, Any] = {}
        for key, value in table.items():
            kind = keys.get(key)
            if kind is None:
                if strict:
                    known = ", ".join(keys)
                    raise self.fail(section, key, f"unknown key '{key}' in [{section}] (known: {known})")
                checked[key] = value
                continue
            checked[key] = self._value(section, key, value, kind)
        return checked

    def _value(self, section: str, key: str, value: Any, kind: str) -> Any:
        where = f"[{section}] {key}"
        if kind in ("string", "model"):
            if not isinstance(value, str) or not value:
                raise self.fail(section, key, f"{where} must be a non-empty string")
            if kind == "model" and "/" not in value:
                raise self.fail(section, key, f"{where} must be written provider/model, e.g. openai/gpt-4o-mini")
            return value
        if kind == "duration":
            try:
                return parse_duration(value)
            except ValueError as error:
                raise self.fail(section, key, f"{where}: {error}") from None
        if kind in ("count", "retries"):
            low = 1 if kind == "count" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise self.fail(section, key, f"{where} must be a whole number of at least {low}")
            return value
        if kind == "rate":
            if not _number(value) or value <= 0:
                raise self.fail(section, key, f"{where} must be a number above 0")
            return float(value)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(section, key, f"{where} must be a table of header names to strings")
        return dict(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _line_of(text: str, section: str, key: str) -> int | None:
    """The line where ``key`` is set inside ``[section]`` (or where the table ``[section.key]`` starts)."""
    current = ""
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
    assignment = re.compile(r'^\s*(?:"([^"]+)"|\'([^\']+)\'|([A-Za-z0-9_.-]+))\s*=')
    wanted_table = f"{section}.{key}" if section else key
    for number, line in enumerate(text.splitlines(), start=1):
        table = header.match(line)
        if table:
            current = table.group(1).replace('"', "").replace("'", "").replace(" ", "")
            if current == wanted_table or (not section and current.startswith(key + ".")):
                return number
            continue
        found = assignment.match(line)
        if found and current == section and key in (found.group(1), found.group(2), found.group(3)):
            return number
    return None
