"""Files that are not plain small files (a named pipe, an endless device, one enormous line) and names too long."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result

INVALID = "version: 1\nname: piped\nstepz: []\n"

posix_only = pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="named pipes and /dev/zero exist on POSIX only"
)


def feed(fifo: Path, text: str) -> threading.Thread:
    """Write ``text`` into ``fifo`` once, as ``cat file > fifo`` does (one writer, then end of file)."""

    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


@posix_only
@pytest.mark.parametrize("text", [INVALID, "version: 1\nname: piped\nsteps: [{run: echo hi}]\n"], ids=["bad", "good"])
def test_validate_reads_a_named_pipe_once(tmp_path: Path, cli: Callable[..., Result], text: str) -> None:
    # The graph cache and the quoted source line each opened the file again: a pipe has no second writer.
    fifo = tmp_path / "piped.yaml"
    os.mkfifo(fifo)
    feed(fifo, text)
    result = cli("validate", "piped.yaml", timeout=30)
    if text == INVALID:
        assert result.code == 1
        assert result.stdout.startswith("piped.yaml:3:1: error[unknown-key]: unknown key 'stepz' at the top level\n")
    else:
        assert (result.code, result.stdout, result.stderr) == (0, "", "1 file valid\n")


@posix_only
def test_validate_stops_reading_an_endless_device(cli: Callable[..., Result]) -> None:
    result = cli("validate", "/dev/zero", timeout=30)
    assert result.code == 1
    assert result.stdout == (
        "/dev/zero:1:1: error[file-too-large]: the file is 5242881 bytes; the limit is 5242880 bytes\n"
        "      = hint: move groups of steps into sub-workflow files (workflow: part.yaml), "
        "or data into a file a step reads\n"
    )


def test_a_long_line_is_quoted_around_the_problem(workflow: Callable[..., Path], cli: Callable[..., Result]) -> None:
    steps = "{run: echo hi}, " * 3000
    text = "{version: 1, name: wide, steps: [" + steps + "{run: echo, bogus: 1}]}\n"
    workflow(text, "wide.yaml")
    result = cli("validate", "wide.yaml")
    assert result.code == 1
    head, quoted, caret = result.stdout.splitlines()[:3]
    assert head.startswith(f"wide.yaml:1:{text.index('bogus') + 1}: error[unknown-key]: unknown key 'bogus'")
    assert quoted.startswith("    1 | …cho hi}, ") and quoted.endswith("{run: echo, bogus: 1}]}")
    assert len(quoted) == len("    1 | ") + 1 + 160
    assert quoted[caret.index("^")] + quoted[caret.index("^") + 1 :].split(":")[0] == "bogus"


@pytest.mark.parametrize("args", [["a" * 260], ["flow", "--dir", "b" * 300]], ids=["name", "dir"])
def test_new_with_a_name_too_long_for_the_file_system(
    tmp_path: Path, cli: Callable[..., Result], args: list[str]
) -> None:
    result = cli("new", *args)
    target = f"{args[0]}.yaml" if len(args) == 1 else f"{args[2]}/flow.yaml"
    assert (result.code, result.stdout) == (1, "")
    assert result.stderr == f"error: cannot write {target}: File name too long\n"
    assert list(tmp_path.iterdir()) == []
