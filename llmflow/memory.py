"""Vector memory: named collections of texts with metadata, searchable by meaning, stored under ``.llmflow/memory``.

Each collection is one append-only JSON-lines file; a record with an id already present replaces it (the
newest wins), so adding the same text twice — or again after a crash and a resume — stores it once.
Texts are embedded with a built-in, offline, deterministic embedder (feature hashing of words and
character trigrams into 512 dimensions); it finds texts sharing words and word parts, which is what
workflows mostly need. Plugins can register better embedders.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIMENSIONS = 512
_WORD = re.compile(r"\w+", re.UNICODE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Embedder = Callable[[str], list[float]]


def hash_embed(text: str) -> list[float]:
    """The built-in embedder: signed feature hashing of words (weight 1) and character trigrams (0.5)."""
    vector = [0.0] * DIMENSIONS
    words = [word.lower() for word in _WORD.findall(text)]
    features: list[tuple[str, float]] = [(f"w:{word}", 1.0) for word in words]
    for word in words:
        padded = f"^{word}$"
        features.extend((f"c:{padded[i : i + 3]}", 0.5) for i in range(max(1, len(padded) - 2)))
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % DIMENSIONS
        vector[index] += weight if digest[4] & 1 else -weight
    norm = math.sqrt(sum(value * value for value in vector))
    return [round(value / norm, 6) for value in vector] if norm else vector


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two normalised vectors."""
    return sum(x * y for x, y in zip(a, b, strict=False))


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result."""

    id: str
    text: str
    score: float
    metadata: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The form a step's output takes."""
        return {"id": self.id, "text": self.text, "score": round(self.score, 4), "metadata": dict(self.metadata)}


class MemoryStore:
    """The collections under one folder."""

    def __init__(self, folder: Path, embed: Embedder = hash_embed) -> None:
        self.folder = folder
        self.embed = embed

    def _file(self, collection: str) -> Path:
        if not _NAME.match(collection):
            raise ValueError(
                f"collection name {collection!r} must be 1-64 letters, digits, '_', '-' or '.', starting with a"
                " letter or digit"
            )
        return self.folder / f"{collection}.jsonl"

    def add(
        self,
        collection: str,
        texts: Iterable[str],
        metadata: Mapping[str, Any] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Store texts (ids default to a hash of collection and text); return their ids."""
        entries = list(texts)
        if ids is not None and len(ids) != len(entries):
            raise ValueError(f"{len(ids)} ids given for {len(entries)} texts")
        chosen = [
            ids[index] if ids is not None else hashlib.sha256(f"{collection}\0{text}".encode()).hexdigest()[:16]
            for index, text in enumerate(entries)
        ]
        lines = [
            json.dumps(
                {"id": key, "text": text, "metadata": dict(metadata or {}), "vector": self.embed(text)},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for key, text in zip(chosen, entries, strict=True)
        ]
        path = self._file(collection)
        self.folder.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as stream:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX)  # parallel steps, or several runs, may add at once
            text = "".join(line + "\n" for line in lines).encode("utf-8")
            end = stream.seek(0, os.SEEK_END)
            if end:
                stream.seek(end - 1)
                if stream.read(1) != b"\n":  # a torn last line (a crash mid-write) must not swallow the next
                    text = b"\n" + text
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        return chosen

    def records(self, collection: str) -> dict[str, dict[str, Any]]:
        """The current record of every id (later lines replace earlier ones; a torn last line is ignored)."""
        path = self._file(collection)
        found: dict[str, dict[str, Any]] = {}
        if not path.exists():
            return found
        with path.open("r", encoding="utf-8") as stream:
            fcntl.flock(stream.fileno(), fcntl.LOCK_SH)
            for line in stream:
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # a torn or damaged line
                    continue
                if isinstance(record, dict) and "id" in record:
                    found[str(record["id"])] = record
        return found

    def search(self, collection: str, query: str, k: int = 5, where: Mapping[str, Any] | None = None) -> list[Hit]:
        """The ``k`` texts closest to ``query`` whose metadata has every key/value of ``where``."""
        probe = self.embed(query)
        hits = []
        for record in self.records(collection).values():
            meta = record.get("metadata") or {}
            if where and any(meta.get(key) != value for key, value in where.items()):
                continue
            hits.append(Hit(record["id"], record["text"], cosine(probe, record["vector"]), meta))
        hits.sort(key=lambda hit: (-hit.score, hit.id))
        return hits[: max(0, k)]
