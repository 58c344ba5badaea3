"""Vector memory: add and search through workflows, ids, metadata filters, idempotent adds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import llmflow
from llmflow.memory import MemoryStore, cosine, hash_embed
from llmflow.runtime import RunOptions, RunSummary, start_run


def run(tmp_path: Path, text: str, **inputs: Any) -> RunSummary:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    options = RunOptions(state_dir=str(tmp_path / "state"), handle_signals=False)
    return asyncio.run(start_run(llmflow.load(path), inputs, options))


WORKFLOW = """
version: 1
name: memory
steps:
  - id: store
    memory:
      collection: notes
      add: ["the invoice total is due in march", "our cat sleeps on the keyboard", "invoices are paid by bank transfer"]
      metadata: {source: inbox}
  - id: other
    memory: {collection: notes, add: "invoice template for the design agency", metadata: {source: archive}}
  - id: find
    memory: {collection: notes, search: "when is the invoice due", k: 2}
  - id: filtered
    memory: {collection: notes, search: invoice, k: 5, where: {source: archive}}
outputs:
  ids: "{{ steps.store.output | length }}"
  best: "{{ steps.find.output[0].text }}"
  hits: "{{ steps.find.count }}"
  filtered: "{{ steps.filtered.output | map(attribute='text') | list }}"
"""


def test_add_then_search_in_a_workflow(tmp_path: Path) -> None:
    summary = run(tmp_path, WORKFLOW)
    assert summary.status == "succeeded", summary.error
    assert summary.outputs == {
        "ids": 3,
        "best": "the invoice total is due in march",
        "hits": 2,
        "filtered": ["invoice template for the design agency"],
    }
    assert (tmp_path / "state" / "memory" / "notes.jsonl").exists()


def test_adding_the_same_text_twice_stores_it_once(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    first = store.add("c", ["alpha beta"])
    second = store.add("c", ["alpha beta"])
    assert first == second
    assert len(store.records("c")) == 1


def test_explicit_ids_replace_earlier_records(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path)
    store.add("c", ["old text"], ids=["doc-1"])
    store.add("c", ["new text"], ids=["doc-1"])
    assert [hit.text for hit in store.search("c", "text", k=5)] == ["new text"]


def test_bad_collection_name_fails_the_step(tmp_path: Path) -> None:
    summary = run(tmp_path, "version: 1\nname: t\nsteps:\n  - memory: {collection: '../x', add: hi}\n")
    assert summary.status == "failed"
    assert summary.error is not None and "collection name '../x'" in summary.error


def test_embedding_is_deterministic_and_normalised() -> None:
    vector = hash_embed("Hello, world")
    assert vector == hash_embed("Hello, world")
    assert abs(cosine(vector, vector) - 1.0) < 1e-3
    assert cosine(hash_embed("invoice due date"), hash_embed("invoices due")) > cosine(
        hash_embed("invoice due date"), hash_embed("sleeping cat")
    )


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "memory")
    store.add("notes", ["first note"])
    with (tmp_path / "memory" / "notes.jsonl").open("a", encoding="utf-8") as stream:
        stream.write('{"id":"torn","te')  # a crash in the middle of a write
    store.add("notes", ["second note", "third note"])
    texts = sorted(record["text"] for record in store.records("notes").values())
    assert texts == ["first note", "second note", "third note"]
