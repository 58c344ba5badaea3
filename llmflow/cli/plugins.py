"""``llmflow plugins``: the plugins a run would load, where each comes from, and what it registers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llmflow.cli import exits

_SOURCES = {"builtin": "built-in", "entry point": "entry point", "file": "file", "module": "module", "object": "object"}


def list_plugins(file: Path | None, *, as_json: bool) -> int:
    """List the built-in plugin, installed entry points and (with ``file``) the workflow's ``plugins:``.

    A plugin that cannot be imported ends the command with one line naming it (exit status 2).
    """
    from llmflow.plugins import PluginError, load_plugins

    workflow = None
    if file is not None:
        from llmflow.cli.validate import load_or_exit

        workflow = load_or_exit(file)
    try:
        listed = load_plugins(workflow).describe()
    except PluginError as error:
        from llmflow.cli.terminal import terminal_text

        sys.stderr.write(terminal_text(f"error: {error}") + "\n")
        return exits.USAGE
    if as_json:
        sys.stdout.write(json.dumps({"plugins": listed}, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render(listed))
    return exits.SUCCEEDED


def render(listed: list[dict[str, Any]]) -> str:
    """The listing for people: one block per plugin, its origin first."""
    lines: list[str] = []
    for plugin in listed:
        source = _SOURCES.get(plugin["source"], plugin["source"])
        if plugin["source"] == "entry point":
            where = plugin["entry_point"] + (f"  ({plugin['distribution']})" if plugin.get("distribution") else "")
        elif plugin["source"] == "file":
            where = plugin["path"]
        else:
            where = plugin["name"]
        lines.append(f"{source:<12} {where}")
        for key in ("hooks", "actions", "providers", "filters", "functions"):
            if plugin[key]:
                lines.append(f"{'':<12} {key}: {', '.join(plugin[key])}")
    return "\n".join(lines) + "\n"
