"""The journal line format: compact JSON records with a spliced-in CRC32; sizeable outputs compressed, big
ones moved to artifacts."""

from __future__ import annotations

import base64
import json
import sys
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from llmflow.errors import JournalCorrupt, StoreError, UnstorableValue

#: The member that carries a line's checksum; records may not use it themselves.
CHECKSUM_KEY = "c"
#: The record member that may be moved out to an artifact, and the marker left in its place.
OUTPUT_KEY = "output"
ARTIFACT_KEY = "$artifact"
#: Outputs whose JSON is longer than this many bytes go to ``artifacts/``.
ARTIFACT_THRESHOLD = 64 * 1024
#: The member that holds an output stored compressed (base64 of zlib of its JSON) in place of ``output``.
COMPRESSED_KEY = "oz"
#: Outputs whose JSON has at least this many bytes are stored compressed when that saves at least an eighth
#: (text, JSON and code shrink to roughly half even after base64; random data is left as it is).
COMPRESS_THRESHOLD = 1024
#: The zlib level: 6 (the default) costs about as much as 1 on a few KB and packs them a little tighter.
_COMPRESS_LEVEL = 6

_ENCODE_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_DECODER = json.JSONDecoder()
_DECODE = _DECODER.decode
_RAW_DECODE = _DECODER.raw_decode
_CRC32 = zlib.crc32
_ABSENT = object()
# ``,"c":"`` + 8 hex digits + ``"}``: the 16 bytes a checksum adds to the end of a non-empty record; the
# shortest line, an empty record's ``{"c":"…"}``, is 16 bytes too.
_TRAILER = 16
_CHECKSUM_OPENING = b'"c":"'
_CLOSING = b'"}'
_CRC_OF_EMPTY = _CRC32(b"{}")
_HEX_DIGITS = frozenset(b"0123456789abcdef")


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_encoder() -> Callable[[Any], str]:
    """The compact, non-ASCII JSON encoder, as fast as the standard library allows.

    ``JSONEncoder.encode`` builds a new C encoder on every call; building it once and calling it directly
    halves the cost of a small record. Where the C accelerator is missing (or behaves differently), the
    public encoder is used.
    """
    public = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return public
    try:
        # markers=None: no circularity bookkeeping; a cycle ends in RecursionError, reported like any other.
        chunks = make(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, True)
        sample = {"a": [1, 2.5, None, True], "b": {"\u00e9": "x\n"}, "": ""}
        if "".join(chunks(sample, 0)) != public(sample):
            return public
    except Exception:
        return public

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_ENCODE = _make_encoder()


def dump_json(value: Any, *, what: str = "journal record") -> bytes:
    """Compact UTF-8 JSON of ``value``; raises ``StoreError`` naming ``what`` when it is not serialisable."""
    try:
        return _ENCODE(value).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (text decoded with surrogateescape) are not UTF-8; \\u escapes round-trip them.
        return _ENCODE_ASCII(value).encode("ascii")
    except (TypeError, ValueError, RecursionError) as error:
        reason = _unstorable_reason(error)
        raise UnstorableValue(f"{what} is not JSON-serialisable: {reason}", reason) from None


def _unstorable_reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "it is nested too deeply"
    if isinstance(error, ValueError) and "integer string conversion" in str(error):
        return f"it holds an integer of more than {sys.get_int_max_str_digits()} digits (give it as text)"
    return str(error)


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One journal line for ``record``: compact JSON with the checksum member last, and a newline.

    The checksum ``"c"`` is the CRC32 (8 hex digits) of the line's bytes *without* that member::

        {"path":"fetch","status":"succeeded","output":[1,2],"c":"9a0b1c2d"}

    so checking a line is a textual splice plus one ``zlib.crc32``, never a re-serialisation.
    """
    if CHECKSUM_KEY in record:
        raise StoreError(f"journal records may not use the reserved key {CHECKSUM_KEY!r}")
    return _sealed(dump_json(record if type(record) is dict else dict(record)))


def _sealed(body: bytes) -> bytes:
    """The line for a record's compact JSON ``body``: the checksum member spliced in last, and a newline."""
    crc = _CRC32(body)
    if len(body) == 2:  # "{}": there is no member before the checksum, so no comma either
        return b'{"c":"%08x"}\n' % crc
    return body[:-1] + b',"c":"%08x"}\n' % crc


def decode_lines(data: bytes, *, file_label: str) -> list[dict[str, Any]]:
    """Every record in ``data`` (a journal's bytes), verified and without the checksum member.

    A torn last line (no trailing newline, or the last line failing to parse or verify) is ignored: it
    is what a crash in the middle of a write leaves. Any other bad line raises ``JournalCorrupt``
    naming ``file_label`` and the 1-based line number.
    """
    return decode_journal(data, file_label=file_label)[0]


def decode_journal(data: bytes, *, file_label: str, trusted: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Like ``decode_lines``, plus the length in bytes of the verified part (where a torn tail starts).

    ``trusted``: how many leading lines are known to be exactly as llmflow wrote them (``sealed_lines``);
    their checksums are not checked again.
    """
    lines = data.split(b"\n")
    # Whatever follows the last newline is a fragment of a write that never finished.
    verified = len(data) - len(lines.pop())
    may_drop_last = verified == len(data)
    for index in range(trusted, len(lines)):
        line = lines[index]
        fault = _checksum_fault(line)
        if fault is not None:
            if may_drop_last and index == len(lines) - 1:
                lines.pop()
                verified -= len(line) + 1
                may_drop_last = False  # the line now last was not last in the file
                break
            raise JournalCorrupt(f"{file_label}:{index + 1}: journal record {fault}")
    # Every line passed its checksum, so they can be parsed in one go (far cheaper than one call a line).
    try:
        records: list[Any] = _DECODE((b"[" + b",".join(lines) + b"]").decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        records = []
    if len(records) == len(lines):
        try:
            for record in records:  # a record that is not an object (or lacks the member) goes the slow way
                del record[CHECKSUM_KEY]
        except (TypeError, KeyError, IndexError):
            records = []
    if len(records) != len(lines):
        records, verified = _parse_one_by_one(lines, verified, may_drop_last, file_label)
        for index, record in enumerate(records):
            if record.pop(CHECKSUM_KEY, _ABSENT) is _ABSENT:
                # Only a line a seal vouched for can lack its checksum: a seal made by hand, for other bytes.
                raise JournalCorrupt(f"{file_label}:{index + 1}: journal record does not parse")
    return records, verified


def sealed_lines(data: bytes, seal: object) -> int:
    """How many leading lines of the journal ``data`` the ``seal`` from ``run.json`` vouches for: those of its
    first ``size`` bytes when their CRC-32 is the sealed one (they are then byte for byte what was written,
    each line a record that passed its checksum and shape checks when it was made), else 0.

    One CRC over the prefix costs a few microseconds where checking every line's checksum and members costs
    about 1.3 µs a line. A missing or malformed seal is no error: the journal is then checked line by line.
    """
    if type(seal) is not list or len(seal) != 2 or type(seal[0]) is not int or type(seal[1]) is not int:
        return 0
    size, crc = seal
    if not 0 < size <= len(data) or data[size - 1] != 0x0A or _CRC32(memoryview(data)[:size]) != crc:
        return 0
    return data.count(b"\n", 0, size)


def _checksum_fault(line: bytes) -> str | None:
    """Why ``line`` is not a checksummed record (``fails its checksum``/``does not parse``), or ``None``."""
    if len(line) < _TRAILER or line[-_TRAILER + 1 : -10] != _CHECKSUM_OPENING or line[-2:] != _CLOSING:
        return "does not parse"
    separator = line[-_TRAILER]
    if separator == 0x2C:  # ",": the checksum covers the line with "}" in place of its member
        crc = _CRC32(b"}", _CRC32(line[:-_TRAILER]))
    elif separator == 0x7B and len(line) == _TRAILER:  # "{": the record was empty
        crc = _CRC_OF_EMPTY
    else:
        return "does not parse"
    if b"%08x" % crc != line[-10:-2]:
        return "fails its checksum"
    return None


def _parse_one_by_one(lines: list[bytes], verified: int, may_drop_last: bool, file_label: str) -> tuple[list[Any], int]:
    """The slow path, for lines that pass their checksum yet do not parse as one object each."""
    records: list[Any] = []
    for index, line in enumerate(lines):
        try:
            text = line.decode("utf-8")
            record, end = _RAW_DECODE(text)
        except ValueError:
            record, end, text = None, -1, ""
        except RecursionError:  # a checksum made by hand, for a line nested deeper than the parser goes
            raise JournalCorrupt(f"{file_label}:{index + 1}: journal record is nested too deeply") from None
        if type(record) is dict and end == len(text):
            records.append(record)
        elif may_drop_last and index == len(lines) - 1:
            verified -= len(line) + 1
        else:
            raise JournalCorrupt(f"{file_label}:{index + 1}: journal record does not parse")
    return records, verified


def _is_pair_of(kind: type | tuple[type, ...]) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        return type(value) is list and len(value) == 2 and all(isinstance(item, kind) for item in value)

    return check


def _is_object(value: object) -> bool:
    return type(value) is dict


#: What the members a resume and ``show`` read must hold (others may hold anything), by their description.
_RECORD_SHAPES: dict[str, tuple[str, Callable[[object], bool]]] = {
    "p": ("a string", lambda value: type(value) is str),
    "s": ("a string", lambda value: type(value) is str),
    "m": ("a pair of integers", _is_pair_of(int)),
    "t": ("a pair of numbers", _is_pair_of((int, float))),
    "a": ("an integer", lambda value: type(value) is int),
    "w": ("an object", _is_object),
    "x": ("an object", _is_object),
    "e": ("an object", _is_object),
}


def check_records(records: list[dict[str, Any]], *, file_label: str, trusted: int = 0) -> list[dict[str, Any]]:
    """``records`` (record ``i`` came from line ``i + 1``) when each member listed in ``_RECORD_SHAPES`` has
    its shape; else ``JournalCorrupt`` naming the line of the first that does not. The first ``trusted``
    records are not checked (``sealed_lines``).

    A checksum only proves that a line is as it was written: a record written wrong (by hand, by another
    tool) would otherwise fail far from the journal, wherever the member is first used.
    """
    for index in range(trusted, len(records)):
        record = records[index]
        # Spelled out rather than looked up in the table: this costs well under a microsecond a record.
        times, extra, written, error = record.get("m"), record.get("x"), record.get("w"), record.get("e")
        if (
            type(record.get("p", "")) is str
            and type(record.get("s", "")) is str
            and (times is None or (type(times) is list and len(times) == 2 and type(times[0]) is type(times[1]) is int))
            and (extra is None or type(extra) is dict)
            and (written is None or type(written) is dict)
            and (error is None or type(error) is dict)
            and type(record.get("a", 0)) is int
            and "t" not in record  # journals written before "m" was
        ):
            continue
        for key, value in record.items():
            shape = _RECORD_SHAPES.get(key)
            if shape is not None and not shape[1](value):
                raise JournalCorrupt(f"{file_label}:{index + 1}: journal record member '{key}' is not {shape[0]}")
    return records


def is_artifact_reference(value: object) -> bool:
    """Whether ``value`` has the shape of the marker left in a record whose output went to an artifact."""
    return type(value) is dict and ARTIFACT_KEY in value


def encode_journal_line(record: Mapping[str, Any], store_payload: Callable[[bytes], str]) -> tuple[bytes, int | None]:
    """``encode_record`` for a completion record, and the size in bytes of its output's JSON (``None``
    when the record has no ``output``).

    The output is stored as it is, compressed (``"oz"``: base64 of its zlib-packed JSON) when it is at least
    ``COMPRESS_THRESHOLD`` bytes and packs to under seven eighths, or moved out through ``store_payload``
    when it is over ``ARTIFACT_THRESHOLD`` (which takes the JSON bytes and returns their sha256). An output
    that itself looks like an artifact marker is always moved out, so a marker read back is never mistaken
    for data.
    """
    output = record.get(OUTPUT_KEY, _ABSENT)
    if output is _ABSENT:
        return encode_record(record), None
    if COMPRESSED_KEY in record or CHECKSUM_KEY in record:
        raise StoreError(f"journal records may not use the reserved keys {CHECKSUM_KEY!r} and {COMPRESSED_KEY!r}")
    if not is_artifact_reference(output):
        line = dump_json(record if type(record) is dict else dict(record))
        if len(line) < COMPRESS_THRESHOLD:  # nearly every record: the output is too short to pack or move out
            return _sealed(line), len(dump_json(output))
    payload = dump_json(output)
    size = len(payload)
    if size > ARTIFACT_THRESHOLD or is_artifact_reference(output):
        member = b'"output":' + dump_json({ARTIFACT_KEY: store_payload(payload), "bytes": size})
    elif size >= COMPRESS_THRESHOLD and (packed := _packed(payload)) is not None:
        member = b'"oz":"' + packed + b'"'
    else:
        member = b'"output":' + payload
    body = dump_json({key: value for key, value in record.items() if key != OUTPUT_KEY})
    return _sealed((body[:-1] + b"," if len(body) > 2 else b"{") + member + b"}"), size


def _packed(payload: bytes) -> bytes | None:
    """``payload`` zlib-compressed and base64-encoded, or ``None`` when that does not save an eighth."""
    packed = base64.b64encode(zlib.compress(payload, _COMPRESS_LEVEL))
    return packed if len(packed) * 8 < len(payload) * 7 else None


def _unpacked(packed: object, where: str) -> Any:
    """The output a ``"oz"`` member holds; ``JournalCorrupt`` naming ``where`` when it does not decode."""
    try:
        if type(packed) is not str:
            raise ValueError
        inflate = zlib.decompressobj()
        # The JSON was never over the artifact threshold: anything longer is damage, not data to inflate.
        payload = inflate.decompress(base64.b64decode(packed, validate=True), ARTIFACT_THRESHOLD + 1)
        if len(payload) > ARTIFACT_THRESHOLD or not inflate.eof or inflate.unused_data:
            raise ValueError
        return _DECODE(payload.decode("utf-8"))
    except (ValueError, zlib.error):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise JournalCorrupt(f"{where}: journal record's compressed output does not decode") from None


def may_hold_packed_outputs(data: bytes) -> bool:
    """Whether any record of the journal ``data`` may hold a compressed or artifact-held output: false when
    neither member name appears in it (nor any ``\\u`` escape, which could spell one)."""
    return any(marker in data for marker in _PACKED_MARKERS)


_PACKED_MARKERS = (f'"{COMPRESSED_KEY}"'.encode(), f'"{ARTIFACT_KEY}"'.encode(), b"\\u")


def resolve_artifacts(
    records: list[dict[str, Any]], load_payload: Callable[[str], bytes | None], *, file_label: str
) -> list[dict[str, Any]]:
    """Put compressed and artifact-held outputs back into ``records`` (in place; record ``i`` came from line
    ``i + 1``).

    ``load_payload`` returns the bytes stored under a sha256, or ``None`` when there are none.
    """
    for index, record in enumerate(records):
        if COMPRESSED_KEY in record:
            record[OUTPUT_KEY] = _unpacked(record.pop(COMPRESSED_KEY), f"{file_label}:{index + 1}")
            continue
        reference = record.get(OUTPUT_KEY)
        if type(reference) is not dict or ARTIFACT_KEY not in reference:
            continue
        where = f"{file_label}:{index + 1}"
        digest = reference[ARTIFACT_KEY]
        if not is_sha256(digest):
            raise JournalCorrupt(f"{where}: journal record names an invalid artifact {digest!r}")
        payload = load_payload(digest)
        if payload is None:
            raise JournalCorrupt(f"{where}: artifact {digest} is missing")
        import hashlib  # here: artifacts (outputs over 64 KiB) are rare, and hashlib loads OpenSSL

        if hashlib.sha256(payload).hexdigest() != digest:
            raise JournalCorrupt(f"{where}: artifact {digest} fails its checksum")
        try:
            record[OUTPUT_KEY] = _DECODE(payload.decode("utf-8"))
        except ValueError:
            raise JournalCorrupt(f"{where}: artifact {digest} does not parse") from None
    return records


def is_sha256(text: object) -> bool:
    """Whether ``text`` is a lowercase hex sha256 digest (and so a safe artifact file name)."""
    return isinstance(text, str) and len(text) == 64 and _HEX_DIGITS.issuperset(text.encode("ascii", "replace"))
