"""llmflow.digests: the interpreter's own SHA-256 until hashlib is loaded, equal to hashlib's."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from llmflow import digests


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 300, "é\u2028".encode()])
def test_sha256_equals_hashlib(data: bytes) -> None:
    assert digests.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    running = digests.sha256(data[:7])
    running.update(data[7:])
    assert running.digest() == hashlib.sha256(data).digest()
    builtin = digests._builtin  # what a process without hashlib uses (this one has it)
    assert builtin is not None
    assert builtin(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_openssl_is_loaded_only_for_large_data_until_something_else_loads_it() -> None:
    probe = (
        "import sys; from llmflow import digests\n"
        "print(type(digests.sha256(b'x')).__module__, 'hashlib' in sys.modules)\n"
        "print(type(digests.sha256(bytes(2 << 20))).__module__, 'hashlib' in sys.modules)\n"
        "print(type(digests.sha256(b'x')).__module__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:3] == [f"{BUILTIN} False", "_hashlib True", "_hashlib"]


BUILTIN = "_sha2" if sys.version_info >= (3, 12) else "_sha256"
