"""Approved parameters (what the live engine may trade) and the recalibration audit trail.

``state/approved_params/<strategy>.yaml`` is written atomically (temp file, fsync, rename) and only after every
mandate rule passed, so a failed or interrupted recalibration can never leave a half-written or unvalidated
file behind. Every run, pass or fail, appends one row to ``results/recalibration_audit.duckdb``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from core.errors import StateCorruptError
from utils.atomic_files import atomic_write_bytes

AUDIT_TABLE = "recalibration_audit"


def approved_params_path(state_dir: str | Path, strategy: str) -> Path:
    return Path(state_dir) / "approved_params" / f"{strategy}.yaml"


def read_approved_params(path: Path) -> dict[str, Any] | None:
    """The approved record, None when there is none; an unreadable file is an error, never ignored."""
    if not path.exists():
        return None
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StateCorruptError(
            f"{path}: approved params unreadable ({exc}); restore it or re-run recalibration"
        ) from exc
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise StateCorruptError(
            f"{path}: approved params file has no 'params' mapping; restore it or re-run recalibration"
        )
    return record


def write_approved_params(path: Path, record: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, yaml.safe_dump(dict(record), sort_keys=False).encode("utf-8"))


def append_audit(db_path: Path, record: Mapping[str, Any]) -> None:
    """One row per recalibration run; JSON columns keep every metric and every rule's verdict."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db_path)) as con:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
                ts_utc TIMESTAMP, strategy VARCHAR, git_commit VARCHAR, data_fingerprint VARCHAR,
                config_id VARCHAR, params JSON, metrics JSON, verdicts JSON, passed BOOLEAN,
                promoted BOOLEAN, dry_run BOOLEAN, results_dir VARCHAR)"""
        )
        con.execute(
            f"INSERT INTO {AUDIT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record["ts_utc"]
                if isinstance(record["ts_utc"], datetime)
                else datetime.fromisoformat(record["ts_utc"]),
                record["strategy"],
                record["git_commit"],
                record["data_fingerprint"],
                record["config_id"],
                json.dumps(record["params"], default=str),
                json.dumps(record["metrics"], default=str),
                json.dumps(record["verdicts"], default=str),
                bool(record["passed"]),
                bool(record["promoted"]),
                bool(record["dry_run"]),
                str(record.get("results_dir", "")),
            ],
        )


def read_audit(db_path: Path) -> list[dict[str, Any]]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM {AUDIT_TABLE} ORDER BY ts_utc")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
