"""SHA-256 of small texts (workflow files, cache keys) without loading OpenSSL.

``hashlib`` loads the OpenSSL library when it is first imported: ~4 ms of a cold ``llmflow run`` that hashes a
few kilobytes. CPython also has its own SHA-256 (``_sha2``, ``_sha256`` before 3.12), ~6× slower but loaded at
once: it serves until something loads ``hashlib``, and for up to a megabyte. Artifacts keep using ``hashlib``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # (a Protocol class costs ~0.4 ms to define, on every cold run)
    from collections.abc import Callable
    from typing import Protocol

    class Hash(Protocol):
        """What ``hashlib``'s hash objects and the built-in ones both have."""

        def update(self, data: bytes, /) -> None: ...
        def digest(self) -> bytes: ...
        def hexdigest(self) -> str: ...


#: From this size on, loading OpenSSL costs less than hashing without it.
_LARGE = 1 << 20
_builtin: Callable[[bytes], Hash] | None
try:
    from _sha2 import sha256 as _builtin  # type: ignore[import-not-found,no-redef,unused-ignore]
except ImportError:
    try:
        from _sha256 import sha256 as _builtin  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:  # a Python built without its own hashes
        _builtin = None


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hexadecimal digits."""
    return sha256(data).hexdigest()


def sha256(data: bytes = b"") -> Hash:
    """A SHA-256 hash object (``update``, ``digest``, ``hexdigest``), started with ``data``: OpenSSL's once
    ``hashlib`` is loaded anyway (it is ~6× faster: 0.02 against 0.13 ms for a 32 KB workflow file) or for more
    than a megabyte, else the interpreter's."""
    if "hashlib" not in sys.modules and _builtin is not None and len(data) <= _LARGE:
        return _builtin(data)
    import hashlib

    return cast("Hash", hashlib.sha256(data))
