"""Small pure functions called by examples/shell-pipeline.yaml (``python: "helpers:word_count"``).

The workflow's folder is on the import path while it runs, so ``helpers`` is this file.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def word_count(text: str) -> dict[str, int]:
    """Count the lines, words and characters of ``text``, like ``wc``."""
    return {
        "lines": len(text.splitlines()),
        "words": len(_WORD.findall(text)),
        "characters": len(text),
    }


def top_words(words: list[str], n: int | str = 5, min_length: int | str = 4) -> list[dict[str, Any]]:
    """The ``n`` most frequent words of at least ``min_length`` letters, most frequent first."""
    shortest = int(min_length)
    counts = Counter(word.lower() for word in words if len(word) >= shortest)
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return [{"word": word, "count": count} for word, count in ranked[: int(n)]]


def format_table(rows: list[dict[str, Any]], title: str = "") -> str:
    """A plain-text table of ``word count`` rows, with an optional title line."""
    lines = [title] if title else []
    width = max((len(str(row["word"])) for row in rows), default=4)
    lines.extend(f"{row['word']:<{width}}  {row['count']:>4}" for row in rows)
    return "\n".join(lines) + "\n"
