"""The TCA staging file: where the live engine appends its records, so it never has to open DuckDB.

Why a file and not the database: a DuckDB file that one process holds open for writing cannot be opened by any
other, and the engine must never block on (or be blocked by) a report or the nightly load. The loader
(``tca.logger.load_staging``) reads this file later and may read it while the engine appends.

Format (the order journal's rules, ``execution/order_journal.py``): JSON Lines, append-only, ASCII, one record per
line: ``v`` (format version), ``seq`` (1, 2, 3, ... with no gaps), ``kind`` (``execution``, ``unfilled``,
``close``), ``record`` (the record's fields, ``tca.records.to_json_dict``) and ``crc`` (CRC-32, 8 hex digits, of
the line's canonical JSON without ``crc``: sorted keys, no spaces).

Failure policy:
- A last line without its newline is a torn write (a crash, or a reader racing the writer): reading ignores and
  reports it. Opening the file for writing moves those bytes to ``<name>.torn`` and truncates them, so new records
  do not glue onto the fragment.
- Any other bad line (not JSON, wrong crc, unknown version or kind, seq gap, invalid record) raises
  ``StateCorruptError`` naming the file and line; it is never skipped.

Each append is flushed and fsynced before it returns (one per execution: rare, and a lost execution is a hole in
the cost record). File and ``.torn`` evidence are ``PRIVATE_FILE_MODE`` (0600): they list the account's trades.
Owned by one thread of one process (the engine's dispatcher); the engine's state-dir lock keeps it to one engine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError
from tca.records import ExecutionRecord, SessionClose, TcaRecord, UnfilledRecord, from_json_dict, kind_of, to_json_dict
from utils.atomic_files import PRIVATE_FILE_MODE, fsync_dir, open_with_mode
from utils.crc_lines import TornTail, checked_record, complete_lines, encode_line

log = logging.getLogger(__name__)

STAGING_VERSION = 1
DEFAULT_STAGING_PATH = Path("state/tca_staging.jsonl")


@dataclass(slots=True)
class StagingContents:
    """Every complete record of a staging file, in file order, and the torn tail if there was one."""

    records: list[TcaRecord] = field(default_factory=list)
    torn_tail: TornTail | None = None
    last_seq: int = 0


def encode_record(record: TcaRecord, seq: int) -> bytes:
    """One staging line for ``record`` at ``seq`` (newline included)."""
    body: dict[str, Any] = {"v": STAGING_VERSION, "seq": seq, "kind": kind_of(record), "record": to_json_dict(record)}
    return encode_line(body)


def record_key(record: TcaRecord) -> tuple[str, ...]:
    """The identity the DuckDB log keys on: an execution by exec_id, an order end by client order id."""
    if isinstance(record, ExecutionRecord):
        return ("execution", record.exec_id)
    if isinstance(record, UnfilledRecord):
        return ("unfilled", record.client_order_id)
    return ("close", record.symbol, record.session_date.isoformat(), record.source.value, record.run_id or "")


def read_staging(path: Path | str) -> StagingContents:
    """The records staged at ``path`` in order; a missing file is empty. Read-only: safe while the engine appends.

    Raises ``StateCorruptError`` naming the file and line for any complete line that cannot be trusted.
    """
    path = Path(path)
    contents = StagingContents()
    if not path.exists():
        return contents
    lines, contents.torn_tail = complete_lines(path.read_bytes())
    for line_number, raw in lines:
        contents.records.append(_parse_line(raw, f"{path}:{line_number}", contents.last_seq + 1))
        contents.last_seq += 1
    if contents.torn_tail is not None:
        log.warning("event=tca_staging_torn_tail path=%s line=%d bytes=%d", path, contents.torn_tail.line_number,
                    contents.torn_tail.length)  # fmt: skip
    return contents


def _parse_line(raw: bytes, where: str, expected_seq: int) -> TcaRecord:
    advice = "the staging file is never repaired automatically: inspect that line, then fix or restore it by hand"
    line = checked_record(raw, where, advice)
    if line.get("v") != STAGING_VERSION:
        raise StateCorruptError(f"{where}: format version {line.get('v')!r}, this code reads {STAGING_VERSION}")
    if line.get("seq") != expected_seq:
        raise StateCorruptError(
            f"{where}: seq {line.get('seq')!r}, expected {expected_seq} (a record is missing or repeated); {advice}"
        )
    record = line.get("record")
    if not isinstance(record, dict):
        raise StateCorruptError(f"{where}: 'record' must be a JSON object (got {record!r}); {advice}")
    try:
        return from_json_dict(str(line.get("kind")), record)
    except ValueError as exc:
        raise StateCorruptError(f"{where}: invalid record ({exc}); {advice}") from exc


class StagingWriter:
    """Append-only writer of the staging file at ``path`` (see the module doc for the format and failure rules).

    Opening reads the file once (to continue ``seq`` and to know which records are already staged) and sets a
    torn tail aside. ``append`` returns False, writing nothing, for a record whose key is already staged (an
    execution IB reports again after a reconnect). Raises ``StateCorruptError`` if the file cannot be trusted or
    a write fails; after a failed write every later append raises too (restart, so the file is re-read).
    """

    def __init__(self, path: Path | str = DEFAULT_STAGING_PATH) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        contents = read_staging(self.path)
        self.recovered_torn_tail = contents.torn_tail
        if contents.torn_tail is not None:
            self._set_aside_torn_tail(contents.torn_tail)
        self._last_seq = contents.last_seq
        self._keys = {record_key(r) for r in contents.records}
        self._fd = open_with_mode(self.path, os.O_WRONLY | os.O_APPEND, PRIVATE_FILE_MODE)
        if created:
            fsync_dir(self.path.parent)
        self._failed: BaseException | None = None

    def append(self, record: ExecutionRecord | UnfilledRecord | SessionClose) -> bool:
        """Append ``record`` and fsync; True once it is on disk, False for an already staged key."""
        if self._failed is not None:
            raise StateCorruptError(f"{self.path}: an earlier write failed ({self._failed}); restart to re-read it")
        key = record_key(record)
        if key in self._keys:
            return False
        line = encode_record(record, self._last_seq + 1)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = exc
            raise StateCorruptError(f"{self.path}: staging write failed: {exc}") from exc
        self._last_seq += 1
        self._keys.add(key)
        return True

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _set_aside_torn_tail(self, torn: TornTail) -> None:
        with self.path.open("rb") as src:
            src.seek(torn.offset)
            fragment = src.read()
        aside = self.path.with_name(self.path.name + ".torn")
        fd = open_with_mode(aside, os.O_WRONLY | os.O_APPEND, PRIVATE_FILE_MODE)
        with open(fd, "ab") as out:
            out.write(fragment + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.truncate(self.path, torn.offset)
        with self.path.open("rb+") as f:
            os.fsync(f.fileno())
        log.warning(
            "event=tca_staging_torn_tail path=%s line=%d bytes=%d moved_to=%s", self.path, torn.line_number,
            torn.length, aside,
        )  # fmt: skip
