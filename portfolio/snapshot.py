"""The portfolio snapshot in ``state/``: what the engine needs to restart without forgetting its books.

File format (JSON, one object; change it only together with ``SNAPSHOT_VERSION``)::

    {"format": "portfolio_snapshot", "version": 1, "written_at_utc": "...Z",
     "checksum": "sha256:<hex of the canonical JSON of snapshot>", "snapshot": {...}}

``snapshot`` holds ``ts_ns`` (clock time of the snapshot, UTC epoch ns), ``ledger`` (``Ledger.snapshot()``),
``peak_equity`` and ``high_water_mark`` (the risk manager's, USD, null before the first mark),
``trading_state`` and ``halt_reason``, ``monthly_trades`` (trades counted in the month of ``ts_ns``) and
``fills_today`` (``{"session_date": "YYYY-MM-DD" | null, "count": n}``).

Why each rule:

- Atomic replacement (temp file in the same directory, fsync, ``os.replace``, fsync of the directory): a crash
  at any instant leaves either the old or the new file, never a mix. The temp name is fixed
  (``.<name>.tmp``), so a leftover from a crash is simply overwritten by the next write and never read.
- A checksum over the canonical body catches a torn or hand-edited file; NaN is refused at write time
  (``allow_nan=False``) so every file written is strict JSON.
- Corruption is never repaired or silently replaced: ``read_snapshot`` raises ``StateCorruptError`` naming the
  file and what is wrong, and the operator decides (reconcile from the broker, restore a backup). A path that is
  not a regular file (a directory) or cannot be read is the same case, not a traceback.
- The file is the account's books: written ``PRIVATE_FILE_MODE`` (0600) whatever the umask.

Plain functions, no state: the engine calls them from the dispatcher thread (one writer per file).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError
from execution.order_log import format_ts_utc
from portfolio.ledger import Ledger
from utils.atomic_files import PRIVATE_FILE_MODE, atomic_write_bytes, temp_path_for

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "portfolio_snapshot"
SNAPSHOT_VERSION = 1
DEFAULT_SNAPSHOT_PATH = Path("state/portfolio_snapshot.json")
SNAPSHOT_KEYS: tuple[str, ...] = (
    "ts_ns", "ledger", "peak_equity", "high_water_mark", "trading_state", "halt_reason", "monthly_trades",
    "fills_today",
)  # fmt: skip
_ADVICE = "the snapshot is never replaced automatically: move it aside and reconcile from the broker, or restore a copy"


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, no NaN): the text the checksum is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def checksum(body: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


def write_snapshot(path: Path | str, snapshot: Mapping[str, Any]) -> None:
    """Write ``snapshot`` (the body, with every key of ``SNAPSHOT_KEYS``) atomically to ``path``.

    Raises ValueError, before touching the disk, when a key is missing or a value is not strict JSON (NaN,
    an object): writing a snapshot that cannot be read back would be worse than keeping the previous one.
    """
    path = Path(path)
    missing = [key for key in SNAPSHOT_KEYS if key not in snapshot]
    if missing:
        raise ValueError(f"snapshot for {path} is missing keys {missing} (needs {list(SNAPSHOT_KEYS)})")
    body = dict(snapshot)
    try:
        envelope = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "written_at_utc": format_ts_utc(int(body["ts_ns"])),
            "checksum": checksum(body),
            "snapshot": body,
        }
        data = (json.dumps(envelope, sort_keys=True, indent=1, allow_nan=False) + "\n").encode("ascii")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"snapshot for {path} is not strict JSON ({exc}); nothing was written") from exc
    atomic_write_bytes(path, data, mode=PRIVATE_FILE_MODE)
    log.debug("event=snapshot_written path=%s ts_ns=%s bytes=%d", path, body["ts_ns"], len(data))


def read_snapshot(path: Path | str) -> dict[str, Any] | None:
    """The snapshot body stored at ``path``, or None when there is no file (first start).

    Raises StateCorruptError naming the file for a path that is not a regular file, unreadable bytes, bad JSON,
    another format or version, a checksum mismatch, missing keys or a ledger that cannot be rebuilt. A stale temp
    file left by a crash is ignored (and logged): only a completed ``os.replace`` ever produced ``path``.
    """
    path = Path(path)
    temp = temp_path_for(path)
    if temp.exists():
        log.warning("event=snapshot_stale_temp_ignored path=%s temp=%s (left by a crash mid-write)", path, temp)
    if not path.exists():
        return None
    if not path.is_file():
        raise StateCorruptError(f"{path}: the snapshot path is a {'directory' if path.is_dir() else 'special file'}, "
                                f"not a regular file; {_ADVICE}")  # fmt: skip
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StateCorruptError(f"{path}: the snapshot cannot be read ({exc.strerror}); {_ADVICE}") from exc
    try:
        envelope = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateCorruptError(f"{path}: not a JSON snapshot ({exc}); {_ADVICE}") from exc
    if not isinstance(envelope, dict):
        raise StateCorruptError(f"{path}: expected a JSON object, got {type(envelope).__name__}; {_ADVICE}")
    if envelope.get("format") != SNAPSHOT_FORMAT or envelope.get("version") != SNAPSHOT_VERSION:
        raise StateCorruptError(
            f"{path}: format/version {envelope.get('format')!r}/{envelope.get('version')!r} is not "
            f"{SNAPSHOT_FORMAT!r}/{SNAPSHOT_VERSION}; {_ADVICE}"
        )
    body = envelope.get("snapshot")
    if not isinstance(body, dict):
        raise StateCorruptError(f"{path}: no 'snapshot' object in the file; {_ADVICE}")
    stored, computed = envelope.get("checksum"), checksum(body)
    if stored != computed:
        raise StateCorruptError(
            f"{path}: checksum mismatch (stored {stored!r}, computed {computed!r}): the file was modified or torn; "
            f"{_ADVICE}"
        )
    _validate_body(path, body)
    return body


def _validate_body(path: Path, body: dict[str, Any]) -> None:
    missing = [key for key in SNAPSHOT_KEYS if key not in body]
    if missing:
        raise StateCorruptError(f"{path}: snapshot is missing keys {missing}; {_ADVICE}")
    problems = []
    if not isinstance(body["ts_ns"], int):
        problems.append(f"ts_ns must be an integer (got {body['ts_ns']!r})")
    if not isinstance(body["monthly_trades"], int) or body["monthly_trades"] < 0:
        problems.append(f"monthly_trades must be a non-negative integer (got {body['monthly_trades']!r})")
    fills_today = body["fills_today"]
    if not (isinstance(fills_today, dict) and isinstance(fills_today.get("count"), int)):
        problems.append(f"fills_today must be an object with an integer count (got {fills_today!r})")
    if body["trading_state"] not in ("ACTIVE", "REDUCING", "HALTED"):
        problems.append(f"trading_state must be ACTIVE, REDUCING or HALTED (got {body['trading_state']!r})")
    for key in ("peak_equity", "high_water_mark"):
        value = body[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"{key} must be a number or null (got {value!r})")
    if not isinstance(body["ledger"], dict):
        problems.append("ledger must be an object")
    if problems:
        raise StateCorruptError(f"{path}: {'; '.join(problems)}; {_ADVICE}")
    try:
        Ledger.from_snapshot(body["ledger"])
    except StateCorruptError as exc:
        raise StateCorruptError(f"{path}: {exc}; {_ADVICE}") from exc
