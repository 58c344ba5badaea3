"""The user's folders are platformdirs' answers, also where llmflow reads the XDG variables itself."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from llmflow import folders


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"XDG_CONFIG_HOME": "/x/config", "XDG_CACHE_HOME": "/x/cache/"},
        {"XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": "relative/cache"},
        {"HOME": "/"},
        {"HOME": "/home/someone/"},
        {"HOME": "relative"},
        {"HOME": None},
    ],
    ids=["unset", "absolute", "empty-or-relative", "root-home", "trailing-slash", "relative-home", "no-home"],
)
def test_the_folders_are_platformdirs_answers(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str | None]
) -> None:
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert folders.user_config_dir() == Path(platformdirs.user_config_dir("llmflow"))
    assert folders.user_cache_dir() == Path(platformdirs.user_cache_dir("llmflow"))
