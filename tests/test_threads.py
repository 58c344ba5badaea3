"""Background: a function on a bare thread, joined by whoever started it."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from llmflow.threads import Background


def test_join_waits_for_the_function_and_can_be_repeated() -> None:
    gate = threading.Event()
    seen: list[str] = []
    job = Background(lambda: (gate.wait(5), seen.append("done")))
    assert job.join(timeout=0.01) is False  # still waiting at the gate
    gate.set()
    assert job.join() is True
    assert seen == ["done"]
    assert job.join(timeout=0) is True


def test_a_function_that_raises_still_ends_its_thread_and_its_error_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable.exc_value))

    def fail() -> None:
        raise RuntimeError("boom")

    job = Background(fail)
    assert job.join(timeout=5) is True
    for _ in range(500):  # the report comes just after the thread let its joiners go
        if reported:
            break
        time.sleep(0.01)
    assert [str(error) for error in reported] == ["boom"]


def test_arguments_are_passed_on() -> None:
    got: list[tuple[int, str]] = []
    Background(lambda a, b: got.append((a, b)), 1, "x").join()
    assert got == [(1, "x")]
