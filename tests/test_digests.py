"""llmflow.digests: the interpreter's own SHA-256, equal to hashlib's."""

from __future__ import annotations

import hashlib

import pytest

from llmflow import digests


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 300, "é\u2028".encode()])
def test_sha256_equals_hashlib(data: bytes) -> None:
    assert digests.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    running = digests.sha256(data[:7])
    running.update(data[7:])
    assert running.digest() == hashlib.sha256(data).digest()


def test_the_builtin_is_used_where_the_interpreter_has_one() -> None:
    try:
        import _sha2 as builtin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        import _sha256 as builtin  # type: ignore[import-not-found,no-redef,unused-ignore]
    assert type(digests.sha256(b"x")) is type(builtin.sha256(b"x"))
