"""Run ids (short, time-sortable, prefix-selectable) and the UTC timestamps stored beside them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from llmflow.errors import RunNotFound

_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SUFFIX_LENGTH = 4
#: How many candidates an "ambiguous prefix" message names before summarising the rest.
_SHOWN_IN_MESSAGE = 3
#: A run id as ``new_run_id`` makes it: ``YYYYMMDD-HHMMSS-xxxx``.
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9]{4}$")


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the default clock of the run store)."""
    return datetime.now(timezone.utc)


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id like ``20261126-114807-k3f9``: the UTC second, then 4 random ``[a-z0-9]``.

    Ids sort by creation time to the second; the random tail keeps ids made in the same second apart.
    """
    moment = _as_utc(now)
    # From os.urandom as ``secrets.choice`` would draw them (importing ``secrets``, with ``random`` and ``hmac``,
    # cost ~5 ms of every cold run); the bias of 64 random bits taken modulo 36**4 is below 1e-13.
    number = int.from_bytes(os.urandom(8), "big")
    suffix = ""
    for _ in range(_SUFFIX_LENGTH):
        number, index = divmod(number, len(_SUFFIX_ALPHABET))
        suffix += _SUFFIX_ALPHABET[index]
    return f"{moment:%Y%m%d-%H%M%S}-{suffix}"


def is_plain_name(text: str) -> bool:
    """Whether ``text`` can name a run folder or cache file: not empty, no path separators, not hidden."""
    return bool(text) and not text.startswith(".") and not any(c in text for c in "/\\\0")


def match_run_id(candidates: Iterable[str], selector: str) -> str:
    """The one candidate equal to ``selector``, else the only one it is a prefix of.

    Raises ``RunNotFound`` when nothing matches or when the prefix is ambiguous (naming a few matches).
    """
    pool = set(candidates)
    if selector in pool:
        return selector
    matches = sorted(run_id for run_id in pool if run_id.startswith(selector))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run matches '{selector}'")
    shown = ", ".join(matches[:_SHOWN_IN_MESSAGE])
    more = len(matches) - _SHOWN_IN_MESSAGE
    tail = f" (and {more} more)" if more > 0 else ""
    raise RunNotFound(f"run id prefix '{selector}' is ambiguous: matches {shown}{tail}")


def format_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO 8601 UTC with milliseconds: ``2026-11-26T11:48:07.123Z``."""
    utc = _as_utc(moment)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: object) -> datetime | None:
    """The aware UTC datetime an ISO 8601 string names, or ``None`` when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    # datetime.fromisoformat only learned the "Z" suffix in Python 3.11.
    normalized = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(normalized)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def moment_before(moment: datetime, seconds: float) -> datetime:
    """``moment`` less ``seconds``; the earliest datetime there is when that lies before it (``gc
    --older-than 99999999d``: no run is that old)."""
    try:
        return moment - timedelta(seconds=seconds)
    except OverflowError:
        return datetime.min.replace(tzinfo=moment.tzinfo)


def run_id_time(run_id: str) -> datetime | None:
    """The UTC second encoded at the start of a run id, or ``None`` for ids in another shape."""
    try:
        return datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _as_utc(moment: datetime | None) -> datetime:
    if moment is None:
        return utc_now()
    if moment.tzinfo is None:
        # A naive datetime is taken to be UTC already: the store never writes local times.
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
