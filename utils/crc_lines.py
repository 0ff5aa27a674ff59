"""The CRC-checked JSON Lines format of the order journal and the TCA staging file: one record per line.

Each line is a record's canonical JSON (sorted keys, no spaces, ASCII, no NaN) with a ``crc`` field: the CRC-32 (8
hex digits) of the canonical JSON without it. A last line without its newline is a torn write from a crash: readers
report it (``TornTail``) and use the state before it; any other bad line is for the caller to refuse.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from core.errors import StateCorruptError


@dataclass(frozen=True, slots=True)
class TornTail:
    """A last line without its newline: ``line_number`` (1-based), byte ``offset`` where it starts, ``length``."""

    line_number: int
    offset: int
    length: int


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_CRC_KEY = "crc"


def canonical(body: Mapping[str, object]) -> str:
    """Sorted keys, no spaces, ASCII, no NaN: ``json.dumps`` with those options (one encoder, built once)."""
    return _CANONICAL.encode(body)


def crc_of(body: Mapping[str, object]) -> str:
    """The CRC of ``body`` (without a ``crc`` field)."""
    return f"{zlib.crc32(canonical(body).encode('ascii')):08x}"


def encode_line(body: Mapping[str, object]) -> bytes:
    """``body`` with its ``crc``, as one line (newline included); raises ValueError for NaN or unserializable data.

    Serialized once, not twice (the journal writes one line per order before it is sent): the keys below ``"crc"``
    and those above it are encoded as two objects; their items joined are the canonical body the CRC covers, and
    the same items with the ``crc`` item between them are the canonical line (sorted keys put it exactly there).
    """
    if _CRC_KEY in body or not all(type(key) is str for key in body):
        return (canonical({**body, _CRC_KEY: crc_of(body)}) + "\n").encode("ascii")
    low = _CANONICAL.encode({k: v for k, v in body.items() if k < _CRC_KEY})[1:-1]
    high = _CANONICAL.encode({k: v for k, v in body.items() if k > _CRC_KEY})[1:-1]
    text = "{" + low + ("," if low and high else "") + high + "}"
    crc_item = f'"{_CRC_KEY}":"{zlib.crc32(text.encode("ascii")):08x}"'
    return ("{" + ",".join(part for part in (low, crc_item, high) if part) + "}\n").encode("ascii")


def complete_lines(data: bytes) -> tuple[list[tuple[int, bytes]], TornTail | None]:
    """(line number, line without its newline) for every complete line of ``data``, and the torn tail if any."""
    lines: list[tuple[int, bytes]] = []
    for line_number, offset, end in _spans(data):
        if end < 0:
            return lines, TornTail(line_number, offset, len(data) - offset)
        lines.append((line_number, data[offset:end]))
    return lines, None


def _spans(data: bytes) -> Iterator[tuple[int, int, int]]:
    offset, line_number = 0, 0
    while offset < len(data):
        line_number += 1
        end = data.find(b"\n", offset)
        yield line_number, offset, end
        if end < 0:
            return
        offset = end + 1


def checked_record(raw: bytes, where: str, advice: str) -> dict[str, object]:
    """The record of one complete line with its CRC verified (and removed); ``StateCorruptError`` naming ``where``
    (``file:line``) and the ``advice`` for anything that cannot be trusted."""
    try:
        record = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateCorruptError(f"{where}: not a JSON record ({exc}); {advice}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("crc"), str):
        raise StateCorruptError(f"{where}: expected a JSON object with a crc field (got {raw[:80]!r}); {advice}")
    crc = record.pop("crc")
    try:
        expected = crc_of(record)
    except ValueError as exc:
        raise StateCorruptError(f"{where}: record is not canonical JSON ({exc}); {advice}") from exc
    if crc != expected:
        raise StateCorruptError(f"{where}: crc {crc} does not match the record ({expected}); {advice}")
    return record
