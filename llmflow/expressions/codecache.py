"""Compiled Jinja templates remembered across runs, so a process does not generate their code again.

Jinja turns a template into Python source and compiles it: ~2 ms for a prompt with a loop and a condition,
on every run of the workflow (simple ``{{ path | filter }}`` templates never reach Jinja). The code depends
only on the template's text, its kind, whether it renders to a value, Jinja's version and llmflow's own
code (filters a plugin adds are looked up when the template runs, not compiled in), so it is kept as a
marshalled code object in the user cache folder under the hash of all of them.

Loading code runs it, so as for the graph cache an entry is read only from a folder and a file that belong to
the current user and that nobody else can write; anything unreadable, foreign or damaged is compiled again
and written anew. ``LLMFLOW_NO_CACHE=1`` turns it off; entries unused for 30 days are pruned with the graph
cache's.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import time
from pathlib import Path
from types import CodeType

from llmflow.digests import sha256

FORMAT = 1
#: A read marks an entry used (its mtime) only when the mark is older than this, as the graph cache does.
TOUCH_AFTER = 24 * 3600


def _folder() -> Path | None:
    if os.environ.get("LLMFLOW_NO_CACHE"):
        return None
    from llmflow.folders import user_cache_dir

    return user_cache_dir() / "templates"


def entry(kind: str, native: bool, source: str) -> Path | None:
    """Where the code of ``source`` is remembered; None when the cache is off."""
    folder = _folder()
    if folder is None:
        return None
    from jinja2 import __version__ as jinja_version

    from llmflow.graphcache import fingerprint

    digest = sha256(fingerprint())
    digest.update(f"{FORMAT}\0{jinja_version}\0{kind}\0{int(native)}\0".encode())
    digest.update(source.encode("utf-8", "surrogatepass"))
    key = digest.hexdigest()
    return folder / key[:2] / f"{key}.code"


def recall(file: Path) -> CodeType | None:
    """The code remembered in ``file``, or None when there is no usable entry."""
    from llmflow.graphcache import owned, owned_stat

    try:
        stat = owned_stat(file)
        if stat is None or not owned(file.parent):
            return None
        data = file.read_bytes()
    except OSError:
        return None
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):  # damaged, or written by another Python
        return None
    if not isinstance(code, CodeType):
        return None
    if time.time() - stat.st_mtime > TOUCH_AFTER:
        with contextlib.suppress(OSError):
            os.utime(file)
    return code


def remember(file: Path, code: CodeType) -> None:
    """Store ``code`` in ``file`` (best effort: a read-only or full cache folder just leaves no entry)."""
    temporary = file.with_name(f"{file.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")  # two writers never share it
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(marshal.dumps(code))
        os.chmod(temporary, 0o600)
        os.replace(temporary, file)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            temporary.unlink()
