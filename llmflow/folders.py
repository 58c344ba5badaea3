"""The user's config and cache folders for llmflow: platformdirs' answers.

On Linux they come straight from the XDG variables, as platformdirs reads them, so that a run does not import
platformdirs (~5 ms of every start); elsewhere, and whenever the home folder is not plain, platformdirs answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "llmflow"


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/llmflow`` (``~/.config/llmflow``) on Linux."""
    return _xdg("XDG_CONFIG_HOME", ".config") or _platformdirs("user_config_dir")


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/llmflow`` (``~/.cache/llmflow``) on Linux."""
    return _xdg("XDG_CACHE_HOME", ".cache") or _platformdirs("user_cache_dir")


def _xdg(variable: str, default: str) -> Path | None:
    """The folder as platformdirs' ``Unix`` class finds it, or None when it is not that class's plain case."""
    if not sys.platform.startswith("linux") or hasattr(sys, "getandroidapilevel") or "ANDROID_DATA" in os.environ:
        return None
    given = os.environ.get(variable, "")
    if given.startswith("/"):
        return Path(given, APP)
    home = os.environ.get("HOME", "")
    if not home.startswith("/"):
        return None  # unset or relative: platformdirs looks the user up
    return Path(home.rstrip("/") or "/", default, APP)


def _platformdirs(name: str) -> Path:
    import platformdirs

    return Path(getattr(platformdirs, name)(APP))
