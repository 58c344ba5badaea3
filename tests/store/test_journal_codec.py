"""The journal line format: checksummed compact JSON, torn tails, corruption, compressed outputs and the artifact
indirection."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from types import MappingProxyType
from typing import Any

import pytest

from llmflow.errors import JournalCorrupt, StoreError
from llmflow.store.journal import (
    ARTIFACT_THRESHOLD,
    COMPRESS_THRESHOLD,
    decode_journal,
    decode_lines,
    encode_journal_line,
    encode_record,
    resolve_artifacts,
)

LABEL = "runs/x/journal.jsonl"


def _journal(*records: dict[str, Any]) -> bytes:
    return b"".join(encode_record(record) for record in records)


def test_a_line_is_compact_json_with_the_checksum_of_the_rest_spliced_in_last() -> None:
    line = encode_record({"path": "fetch", "output": "caf\u00e9"})
    covered = '{"path":"fetch","output":"caf\u00e9"}'.encode()
    assert line == covered[:-1] + b',"c":"%08x"}\n' % zlib.crc32(covered)
    assert json.loads(line)["c"] == f"{zlib.crc32(covered):08x}"


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"path": "a"},
        {"output": "caf\u00e9 \u2615 \U0001f600 \u2028 \x00"},
        {"output": {"nested": [{"deep": [[1], [2.5], [None]]}], "flag": False}},
        {"output": 10**30, "negative": -1, "float": 1e-300},
        {"output": "lone \udcff surrogate"},
        {"output": 'quote " backslash \\ newline \n'},
        {"": "empty key", "c2": "not the reserved key"},
    ],
    ids=["empty", "plain", "unicode", "nested", "numbers", "surrogate", "escapes", "odd-keys"],
)
def test_records_round_trip(record: dict[str, Any]) -> None:
    data = _journal(record, record)
    assert data.count(b"\n") == 2
    assert decode_lines(data, file_label=LABEL) == [record, record]


def test_any_mapping_can_be_encoded() -> None:
    assert decode_lines(encode_record(MappingProxyType({"a": 1})), file_label=LABEL) == [{"a": 1}]


def test_the_checksum_key_is_reserved() -> None:
    with pytest.raises(StoreError, match="reserved key 'c'"):
        encode_record({"c": 1})


def test_a_record_that_is_not_json_is_refused_in_one_line() -> None:
    with pytest.raises(StoreError, match="journal record is not JSON-serialisable") as caught:
        encode_record({"output": {1, 2}})
    assert "\n" not in str(caught.value)


def test_a_record_that_contains_itself_is_refused() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        encode_record({"output": looped})


def test_an_empty_journal_has_no_records() -> None:
    assert decode_journal(b"", file_label=LABEL) == ([], 0)


@pytest.mark.parametrize(
    "tail",
    [
        b'{"path":"thr',
        b'{"path":"three","c":"0000',
        b"\x00\x00\x00\x00",
        b"\x00\x00\n",
        b'{"path":"x","c":"00000000"}\n',
    ],
    ids=["no-newline", "no-newline-in-checksum", "zeros", "zeros-with-newline", "bad-checksum-last"],
)
def test_a_torn_last_line_is_ignored(tail: bytes) -> None:
    good = _journal({"path": "one"}, {"path": "two"})
    records, verified = decode_journal(good + tail, file_label=LABEL)
    assert records == [{"path": "one"}, {"path": "two"}]
    assert verified == len(good)


def test_a_complete_record_without_its_newline_is_still_torn() -> None:
    data = _journal({"path": "one"}, {"path": "two"})
    assert decode_lines(data[:-1], file_label=LABEL) == [{"path": "one"}]


@pytest.mark.parametrize(
    ("middle", "reason"),
    [
        (encode_record({"path": "two"}).replace(b"two", b"tw0"), "fails its checksum"),
        (encode_record({"path": "two"}).replace(b'"c":"', b'"C":"'), "does not parse"),
        (b'{"path":"two"}\n', "does not parse"),
        (b"\n", "does not parse"),
        (b'["x","c":"00000000"]\n', "does not parse"),
    ],
    ids=["flipped-byte", "damaged-checksum-member", "no-checksum", "blank", "not-an-object"],
)
def test_a_bad_line_before_the_last_raises_journal_corrupt_with_its_number(middle: bytes, reason: str) -> None:
    data = _journal({"path": "one"}) + middle + _journal({"path": "three"})
    with pytest.raises(JournalCorrupt) as caught:
        decode_lines(data, file_label=LABEL)
    assert str(caught.value) == f"{LABEL}:2: journal record {reason}"


def test_a_bad_complete_line_followed_by_a_torn_fragment_is_corruption() -> None:
    data = _journal({"path": "one"}) + b"garbage\n" + b'{"path":"thr'
    with pytest.raises(JournalCorrupt, match=r":2: journal record does not parse$"):
        decode_lines(data, file_label=LABEL)


def _checksummed(covered: bytes) -> bytes:
    return covered[:-1] + b',"c":"%08x"}\n' % zlib.crc32(covered)


def test_a_line_that_passes_its_checksum_but_holds_two_values_is_corruption() -> None:
    smuggled = _checksummed(b'{"a":1},{"b":2}')
    data = _journal({"path": "one"}) + smuggled + _journal({"path": "three"})
    with pytest.raises(JournalCorrupt, match=r":2: journal record does not parse$"):
        decode_lines(data, file_label=LABEL)
    good = _journal({"path": "one"})
    assert decode_journal(good + smuggled, file_label=LABEL) == ([{"path": "one"}], len(good))


def test_a_checksum_failure_on_the_last_line_does_not_excuse_the_line_before() -> None:
    data = _journal({"path": "one"}) + _checksummed(b'{"a":1},{"b":2}') + b'{"path":"x","c":"00000000"}\n'
    with pytest.raises(JournalCorrupt, match=r":2: journal record does not parse$"):
        decode_lines(data, file_label=LABEL)


class FakeArtifacts:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.puts = 0

    def put(self, payload: bytes) -> str:
        self.puts += 1
        digest = hashlib.sha256(payload).hexdigest()
        self.files.setdefault(digest, payload)
        return digest

    def get(self, digest: str) -> bytes | None:
        return self.files.get(digest)


def encode_with_artifacts(record: dict[str, Any], put: Any) -> bytes:
    return encode_journal_line(record, put)[0]


def incompressible(size: int) -> str:
    """``size`` characters of base64 of random bytes: zlib cannot pack them by an eighth."""
    return base64.b64encode(os.urandom(size)).decode()[:size]


@pytest.mark.parametrize(
    "output",
    [incompressible(ARTIFACT_THRESHOLD - 100), "x" * (COMPRESS_THRESHOLD - 3), {"a": 1}, None],
    ids=["incompressible", "under-the-compression-threshold", "small", "null"],
)
def test_an_output_that_does_not_pack_stays_in_the_line_as_it_is(output: Any) -> None:
    artifacts = FakeArtifacts()
    record = {"path": "a", "output": output}
    line, size = encode_journal_line(record, artifacts.put)
    assert line == encode_record(record)
    assert size == len(json.dumps(output, separators=(",", ":")).encode())
    assert artifacts.puts == 0


def test_a_record_without_output_has_no_size() -> None:
    assert encode_journal_line({"p": "a", "s": "reset"}, FakeArtifacts().put) == (
        encode_record({"p": "a", "s": "reset"}),
        None,
    )


@pytest.mark.parametrize(
    "output",
    [
        "x" * COMPRESS_THRESHOLD,
        "The quick brown fox jumps over the lazy dog. " * 200,
        {"items": [{"name": f"item {i}", "caf\u00e9": "\u2615 \U0001f600", "ok": i % 2 == 0} for i in range(60)]},
        "lone \udcff surrogate " * 100,
    ],
    ids=["threshold", "prose", "json", "surrogate"],
)
def test_a_sizeable_output_that_packs_is_stored_compressed_and_read_back_the_same(output: Any) -> None:
    artifacts = FakeArtifacts()
    record = {"p": "a", "s": "succeeded", "output": output, "wo": 1}
    line, size = encode_journal_line(record, artifacts.put)
    [stored] = decode_lines(line, file_label=LABEL)
    assert "output" not in stored and isinstance(stored["oz"], str)
    assert len(line) * 8 < size * 7  # it saved at least an eighth
    assert artifacts.puts == 0
    assert resolve_artifacts([stored], artifacts.get, file_label=LABEL) == [record]


def test_a_record_may_not_use_the_compressed_member_itself() -> None:
    with pytest.raises(StoreError, match="reserved keys"):
        encode_journal_line({"p": "a", "oz": "x", "output": 1}, FakeArtifacts().put)


@pytest.mark.parametrize(
    "packed",
    [
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b'"valid" trailing')).decode(),
        base64.b64encode(zlib.compress(b'"cut short"')[:-4]).decode(),
        base64.b64encode(zlib.compress(b"[" + b"0," * ARTIFACT_THRESHOLD + b"0]")).decode(),
        base64.b64encode(zlib.compress(b'"ok"') + b"extra").decode(),
        base64.b64encode(zlib.compress(b'"\xff"')).decode(),
        12,
    ],
    ids=["base64", "zlib", "json", "truncated", "over-the-threshold", "trailing-data", "utf-8", "not-text"],
)
def test_a_compressed_output_that_does_not_decode_is_reported_with_the_line(packed: Any) -> None:
    records = decode_lines(encode_record({"p": "a"}) + encode_record({"p": "b", "oz": packed}), file_label=LABEL)
    with pytest.raises(JournalCorrupt, match=rf"^{LABEL}:2: journal record's compressed output does not decode$"):
        resolve_artifacts(records, FakeArtifacts().get, file_label=LABEL)


def test_a_large_output_is_replaced_by_a_reference_and_resolved_back() -> None:
    artifacts = FakeArtifacts()
    output = ["\u00e9" * 1000] * 40
    line = encode_with_artifacts({"path": "a", "output": output}, artifacts.put)
    [stored] = decode_lines(line, file_label=LABEL)
    payload = json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode()
    assert stored["output"] == {"$artifact": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    assert resolve_artifacts([stored], artifacts.get, file_label=LABEL) == [{"path": "a", "output": output}]


@pytest.mark.parametrize("size", [ARTIFACT_THRESHOLD - 1, ARTIFACT_THRESHOLD + 1, 3 * ARTIFACT_THRESHOLD])
def test_a_long_text_output_goes_to_an_artifact_exactly_when_its_json_passes_the_threshold(size: int) -> None:
    artifacts = FakeArtifacts()
    output = "\u00e9" * (size // 2) + "x" * (size % 2)  # two UTF-8 bytes a character: the JSON is ~2x longer
    line = encode_with_artifacts({"path": "a", "output": output}, artifacts.put)
    [stored] = decode_lines(line, file_label=LABEL)
    payload = json.dumps(output, ensure_ascii=False).encode()
    assert artifacts.puts == (1 if len(payload) > ARTIFACT_THRESHOLD else 0)
    assert resolve_artifacts([stored], artifacts.get, file_label=LABEL) == [{"path": "a", "output": output}]


def test_a_large_record_with_a_small_output_keeps_the_output_inline() -> None:
    artifacts = FakeArtifacts()
    record = {"path": "a", "vars": "v" * (ARTIFACT_THRESHOLD + 1), "output": 1}
    assert encode_with_artifacts(record, artifacts.put) == encode_record(record)
    assert artifacts.puts == 0


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda files, digest: files.pop(digest), "is missing"),
        (lambda files, digest: files.__setitem__(digest, b'"other"'), "fails its checksum"),
    ],
    ids=["missing", "tampered"],
)
def test_a_bad_artifact_is_reported_with_the_line(tamper: Any, message: str) -> None:
    artifacts = FakeArtifacts()
    data = encode_record({"path": "a"}) + encode_with_artifacts({"output": "y" * 70_000}, artifacts.put)
    records = decode_lines(data, file_label=LABEL)
    tamper(artifacts.files, records[1]["output"]["$artifact"])
    with pytest.raises(JournalCorrupt, match=rf"^{LABEL}:2: artifact [0-9a-f]{{64}} {message}$"):
        resolve_artifacts(records, artifacts.get, file_label=LABEL)


def test_a_reference_to_an_invalid_digest_is_reported() -> None:
    records = [{"output": {"$artifact": "../../etc/passwd", "bytes": 1}}]
    with pytest.raises(JournalCorrupt, match="names an invalid artifact"):
        resolve_artifacts(records, FakeArtifacts().get, file_label=LABEL)


def test_a_journal_without_packed_outputs_is_told_apart_cheaply() -> None:
    from llmflow.store.journal import may_hold_packed_outputs

    plain = encode_record({"p": "a", "s": "succeeded", "output": {"x": "oz and $artifact as text"}})
    assert not may_hold_packed_outputs(plain)
    packed, _ = encode_journal_line({"p": "a", "output": "x" * 5000}, lambda payload: "0" * 64)
    assert may_hold_packed_outputs(packed)
    moved, _ = encode_journal_line({"p": "a", "output": "x" * 100_000}, lambda payload: "0" * 64)
    assert may_hold_packed_outputs(moved)
    assert may_hold_packed_outputs(b'{"p":"a","\\u006fz":"..."}\n')  # an escape could spell a member name


def test_a_checksummed_line_nested_too_deeply_to_parse_is_reported_with_its_line() -> None:
    from llmflow.store.journal import _sealed

    deep = b'{"p":"a","s":"succeeded","output":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    data = encode_record({"p": "first", "s": "succeeded"}) + _sealed(deep) + encode_record({"p": "b", "s": "failed"})
    with pytest.raises(JournalCorrupt, match=r"^journal\.jsonl:2: journal record is nested too deeply$"):
        decode_lines(data, file_label="journal.jsonl")
