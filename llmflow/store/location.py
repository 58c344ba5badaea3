"""Finding the run store: ``--state-dir``, then ``LLMFLOW_HOME``, then the nearest ``.llmflow/`` like git."""

from __future__ import annotations

import os
from pathlib import Path

#: The name of the store folder inside a project.
STORE_DIRNAME = ".llmflow"
#: The environment variable that overrides where the store lives.
HOME_VARIABLE = "LLMFLOW_HOME"


def find_store_root(start: Path | None = None, override: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds (or will hold) the run store.

    Precedence: ``override`` (the ``--state-dir`` flag), then the ``LLMFLOW_HOME`` environment variable,
    then the nearest existing ``.llmflow/`` in ``start`` (default: the current folder) or one of its
    parents, else ``start/.llmflow``. Nothing is created here: the folder appears when something is
    written. Relative overrides are taken relative to the current folder, as a shell user expects.
    """
    if override is not None and os.fspath(override) != "":
        return _absolute(Path(os.fspath(override)).expanduser())
    from_environment = os.environ.get(HOME_VARIABLE, "")
    if from_environment:
        return _absolute(Path(from_environment).expanduser())
    origin = _absolute(start if start is not None else Path.cwd())
    for folder in (origin, *origin.parents):
        candidate = folder / STORE_DIRNAME
        if candidate.is_dir():
            return candidate
    return origin / STORE_DIRNAME


def project_root(store_root: Path) -> Path:
    """The project a store belongs to: the parent of a ``.llmflow`` folder, else the current folder."""
    if store_root.name == STORE_DIRNAME:
        return store_root.parent
    return _absolute(Path.cwd())


def _absolute(path: Path) -> Path:
    # abspath (not resolve) normalises ".." without following symlinks, so paths stay the ones users typed.
    return Path(os.path.abspath(path))
