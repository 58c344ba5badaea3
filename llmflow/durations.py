"""Durations as written in workflows: ``500ms``, ``30s``, ``5m``, ``1h30m``, or a number of seconds."""

from __future__ import annotations

import re
import time

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` with a readable message when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({value})")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _WHOLE.match(text):
            return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if seconds >= 0:
                return seconds
    raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 30s, 5m, 1h30m or a number of seconds)")


def format_duration(seconds: float) -> str:
    """A short human form: ``850ms``, ``12.3s``, ``4m05s``, ``1h02m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_moment(epoch: float) -> str:
    """A moment (seconds since the epoch) for messages: ``2026-11-29 10:40:31 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
