"""Remembering which workflow texts passed schema validation, so unchanged files skip it next time.

The schema check costs most of a cold ``llmflow validate`` or ``run`` (importing ``jsonschema`` alone takes
~100 ms). Its result depends only on the text, the schema and the checking code, so a valid text is
remembered as an empty marker file named by the hash of all three in the user cache folder. Invalid texts
are never remembered: their diagnostics are always computed afresh. ``LLMFLOW_NO_CACHE=1`` turns this off.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from llmflow.digests import sha256


@lru_cache(maxsize=1)
def _folder() -> Path | None:
    if os.environ.get("LLMFLOW_NO_CACHE"):
        return None
    from llmflow.folders import user_cache_dir

    return user_cache_dir() / "valid"


@lru_cache(maxsize=1)
def _fingerprint() -> bytes:
    """What else the result depends on: the schema text, the checking code and the version."""
    from llmflow import __version__
    from llmflow.resources import schema_text

    digest = sha256(schema_text().encode())
    digest.update(__version__.encode())
    here = Path(__file__).parent
    for name in ("validator.py", "fastschema.py"):
        stat = (here / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.digest()


def cache_key(text: str) -> str | None:
    """The marker name for ``text``, or ``None`` when remembering is off."""
    if _folder() is None:
        return None
    return sha256(_fingerprint() + text.encode("utf-8", "surrogatepass")).hexdigest()


def known_valid(key: str) -> bool:
    """True when ``key``'s text was found valid before."""
    folder = _folder()
    return folder is not None and (folder / key[:2] / key).exists()


def remember_valid(key: str) -> None:
    """Record that ``key``'s text is valid (best effort: a read-only cache folder is not an error)."""
    folder = _folder()
    if folder is None:
        return
    try:
        target = folder / key[:2]
        target.mkdir(parents=True, exist_ok=True)
        (target / key).touch()
    except OSError:
        pass
