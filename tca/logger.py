"""The TCA log, ``results/tca_log.duckdb``: one row per execution, one per order end, loaded idempotently.

Who writes it: the nightly ETL (or an operator) with ``load_staging`` from the engine's staging file, and the
backtester with ``write_records``. The live engine never does: a DuckDB file that one process holds open for
writing cannot be opened by another, even read-only, so every call here opens the file, does its work in one
transaction and closes it; nothing holds the file between calls.

Idempotent by key: ``executions`` is keyed by ``exec_id``, ``unfilled`` by ``client_order_id``, ``session_closes`` by
(source, run id, symbol, session date). A record whose key is already there is a duplicate and changes nothing, so
loading the same staging file twice, or files that overlap, is safe. A key seen again with *different* content is
a conflict: the first row is kept (the log is append-only) and the key is reported, because one of the two
writers is wrong. ``record_crc`` (CRC-32 of the record's canonical JSON) is what "same content" means.

Failure: another process holding the file raises ``TcaDatabaseBusy`` at once (DuckDB does not wait; neither do
we: the caller chooses whether to retry). A file written by another schema version, or not a DuckDB file, raises
``StateCorruptError``. A failed load leaves the file as it was (one transaction).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow as pa

from core.errors import StateCorruptError, TradingSystemError
from tca.records import ExecutionRecord, SessionClose, TcaRecord, UnfilledRecord, to_json_dict
from tca.staging import TornTail, read_staging
from utils.atomic_files import PRIVATE_FILE_MODE, tighten_mode

DEFAULT_DB_PATH = Path("results/tca_log.duckdb")
DB_SCHEMA_VERSION = 2  # 2: wheel_decision on executions and unfilled (a version-1 file is migrated in place)
log = logging.getLogger(__name__)
SESSION_TZ = ZoneInfo("America/New_York")  # the session date of a fill is its New York date (XNYS)


class TcaDatabaseBusy(TradingSystemError):
    """Another process has the TCA log open; nothing was read or written. Retry when it has finished."""


_S, _I, _F, _D = ("VARCHAR", pa.string()), ("BIGINT", pa.int64()), ("DOUBLE", pa.float64()), ("DATE", pa.date32())

TABLES: dict[str, list[tuple[str, tuple[str, pa.DataType]]]] = {
    "executions": [
        ("exec_id", _S), ("client_order_id", _S), ("ib_order_id", _I), ("perm_id", _I), ("strategy_id", _S),
        ("symbol", _S), ("side", _S), ("order_quantity", _I), ("quantity", _I), ("price", _F), ("commission", _F),
        ("algo", _S), ("algo_params", _S), ("decision_ts", _I), ("decision_price", _F), ("arrival_ts", _I),
        ("arrival_price", _F), ("fill_ts", _I), ("close_price", _F), ("spread_bps_at_arrival", _F),
        ("adv_participation", _F), ("vol_20d", _F), ("minutes_to_close", _F), ("policy_id", _S), ("propensity", _F),
        ("source", _S), ("run_id", _S), ("session_date", _D), ("record_crc", _S), ("wheel_decision", _S),
    ],
    "unfilled": [
        ("client_order_id", _S), ("unfilled_quantity", _I), ("end_ts", _I), ("end_price", _F), ("symbol", _S),
        ("side", _S), ("strategy_id", _S), ("order_quantity", _I), ("decision_ts", _I), ("decision_price", _F),
        ("algo", _S), ("source", _S), ("run_id", _S), ("reason", _S), ("adv_participation", _F),
        ("minutes_to_close", _F), ("record_crc", _S), ("wheel_decision", _S),
    ],
    "session_closes": [
        ("source", _S), ("run_id", _S), ("symbol", _S), ("session_date", _D), ("close_price", _F), ("record_crc", _S),
    ],
}  # fmt: skip
KEYS: dict[str, tuple[str, ...]] = {
    "executions": ("exec_id",),
    "unfilled": ("client_order_id",),
    "session_closes": ("source", "run_id", "symbol", "session_date"),
}
_TABLE_OF: dict[type[TcaRecord], str] = {
    ExecutionRecord: "executions",
    UnfilledRecord: "unfilled",
    SessionClose: "session_closes",
}
_NULLABLE = {"ib_order_id", "perm_id", "arrival_ts", "arrival_price", "close_price", "spread_bps_at_arrival",
             "adv_participation", "vol_20d", "minutes_to_close", "policy_id", "propensity",
             "wheel_decision"}  # fmt: skip
_JSON_COLUMNS = ("algo_params", "wheel_decision")  # dicts kept as canonical JSON text


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What one load changed. ``inserted``/``duplicates`` count records of every kind; ``conflicts`` names keys
    already present with other content (kept as first written); ``closes_applied`` counts executions whose
    ``close_price`` a session close filled in; ``torn_tail``: an incomplete last staging line, left for next time."""

    inserted: int = 0
    duplicates: int = 0
    conflicts: tuple[str, ...] = ()
    inserted_by_table: dict[str, int] = field(default_factory=dict)
    closes_applied: int = 0
    torn_tail: TornTail | None = None


@dataclass(frozen=True, slots=True)
class TcaFrames:
    """The log's rows as DataFrames (columns as in ``TABLES``); what ``tca.calculator.order_shortfalls`` reads."""

    executions: pd.DataFrame
    unfilled: pd.DataFrame


def record_crc(record: TcaRecord) -> str:
    """CRC-32 (8 hex digits) of the record's canonical JSON: equal content, equal crc."""
    content = to_json_dict(record)
    if content.get("wheel_decision", 0) is None:
        del content["wheel_decision"]  # schema 2's new field: absent and None hash alike, so version-1 crcs hold
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return f"{zlib.crc32(text.encode('ascii')):08x}"


def session_date_of(ts_ns: int) -> date:
    """The New York calendar date of a UTC epoch-ns timestamp (a fill's session)."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).astimezone(SESSION_TZ).date()


def _row(record: TcaRecord) -> dict[str, Any]:
    row = to_json_dict(record)
    for name in _JSON_COLUMNS:
        if row.get(name) is not None:
            row[name] = json.dumps(row[name], sort_keys=True, separators=(",", ":"))
    if isinstance(record, ExecutionRecord):
        row["session_date"] = session_date_of(record.fill_ts)
    elif isinstance(record, SessionClose):
        row["session_date"] = record.session_date
        row["run_id"] = record.run_id or ""
    row["record_crc"] = record_crc(record)
    return row


class TcaStore:
    """The TCA log at ``db_path``; each method opens the file, works in one transaction and closes it."""

    def __init__(self, db_path: Path | str = DEFAULT_DB_PATH) -> None:
        self.db_path = Path(db_path)

    def load_staging(self, staging_path: Path | str) -> LoadReport:
        """Insert every complete record of the staging file not already in the log (see the module doc)."""
        contents = read_staging(staging_path)
        report = self.write_records(contents.records)
        return LoadReport(report.inserted, report.duplicates, report.conflicts, report.inserted_by_table,
                          report.closes_applied, contents.torn_tail)  # fmt: skip

    def write_records(self, records: Iterable[TcaRecord]) -> LoadReport:
        """Insert ``records`` (any mix of kinds) not already in the log; the backtester's direct path."""
        by_table: dict[str, list[TcaRecord]] = {table: [] for table in TABLES}
        for record in records:
            by_table[_TABLE_OF[type(record)]].append(record)
        inserted: dict[str, int] = {}
        duplicates, conflicts = 0, []
        with self._connect(read_only=False) as conn:
            _ensure_schema(conn, self.db_path)
            conn.begin()
            for table, batch in by_table.items():
                inserted[table], dup, conf = _insert_new(conn, table, batch)
                duplicates += dup
                conflicts.extend(conf)
            applied = _apply_session_closes(conn)
            conn.commit()
        return LoadReport(sum(inserted.values()), duplicates, tuple(conflicts), inserted, applied)

    def read(self, *, since_ns: int | None = None, source: str | None = None) -> TcaFrames:
        """Executions and order ends decided at or after ``since_ns`` (UTC epoch ns), of ``source`` if given.

        Raises FileNotFoundError for a missing log (reading never creates one), ``StateCorruptError`` for a file
        that is not a TCA log of this schema version.
        """
        if not self.db_path.exists():
            raise FileNotFoundError(f"{self.db_path}: no TCA log here (load staging records or run a backtest first)")
        where, params = ["TRUE"], []
        if since_ns is not None:
            where.append("decision_ts >= ?")
            params.append(since_ns)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        frames = {}
        with self._connect(read_only=True) as conn:
            _check_version(conn, self.db_path)
            for table in ("executions", "unfilled"):
                sql = f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY decision_ts, {KEYS[table][0]}"
                frames[table] = conn.execute(sql, params).df()
        return TcaFrames(frames["executions"], frames["unfilled"])

    def read_records(self) -> tuple[list[ExecutionRecord], list[UnfilledRecord]]:
        """Every execution and order end as records again, in log order (the log keeps them faithfully)."""
        if not self.db_path.exists():
            raise FileNotFoundError(f"{self.db_path}: no TCA log here")
        with self._connect(read_only=True) as conn:
            _check_version(conn, self.db_path)
            execs = [ExecutionRecord(**row) for row in _rows(conn, "executions", ExecutionRecord)]
            ends = [UnfilledRecord(**row) for row in _rows(conn, "unfilled", UnfilledRecord)]
        return execs, ends

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        created = not self.db_path.exists()
        if not read_only:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(self.db_path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise TcaDatabaseBusy(
                    f"{self.db_path}: the TCA log is open in another process ({exc}); nothing was changed: retry "
                    "when that process (a report, a load, a notebook) has closed it"
                ) from exc
            raise StateCorruptError(f"{self.db_path}: cannot open the TCA log ({exc})") from exc
        try:
            if created and not read_only:
                tighten_mode(self.db_path, PRIVATE_FILE_MODE, quiet=True)  # it lists every trade of the account
            yield conn
        finally:
            conn.close()


def _rows(conn: duckdb.DuckDBPyConnection, table: str, cls: type) -> list[dict[str, Any]]:
    names = list(cls.__dataclass_fields__)
    cursor = conn.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY decision_ts, {KEYS[table][0]}")
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:
        for name in _JSON_COLUMNS:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
    return rows


def _ensure_schema(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = conn.execute("SELECT version FROM schema_version").fetchall()
    if not found:
        conn.execute("INSERT INTO schema_version VALUES (?)", [DB_SCHEMA_VERSION]).fetchall()
    elif found == [(1,)]:
        _migrate_from_1(conn, path)
    _check_version(conn, path)
    for table, columns in TABLES.items():
        defs = ", ".join(
            f"{name} {sql_type}{'' if name in _NULLABLE else ' NOT NULL'}" for name, (sql_type, _) in columns
        )
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({defs}, PRIMARY KEY ({', '.join(KEYS[table])}))")


def _migrate_from_1(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Version 1 -> 2 in place (inside the caller's transaction): the nullable ``wheel_decision`` column; every
    existing row keeps its content and its crc (a row without a wheel decision has the same canonical JSON)."""
    for table in ("executions", "unfilled"):
        exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
        if exists.fetchone() == (1,):
            conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS wheel_decision VARCHAR")
    conn.execute("UPDATE schema_version SET version = ?", [DB_SCHEMA_VERSION])
    log.warning("event=tca_schema_migrated path=%s from=1 to=%d", path, DB_SCHEMA_VERSION)


def _check_version(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        found = [v for (v,) in conn.execute("SELECT version FROM schema_version").fetchall()]
    except duckdb.CatalogException as exc:
        raise StateCorruptError(f"{path}: not a TCA log (no schema_version table)") from exc
    if found != [DB_SCHEMA_VERSION]:
        raise StateCorruptError(
            f"{path}: TCA log schema version {found}, this code reads [{DB_SCHEMA_VERSION}]; migrate it or use "
            "another --db"
        )


def _insert_new(conn: duckdb.DuckDBPyConnection, table: str, batch: list[TcaRecord]) -> tuple[int, int, list[str]]:
    """Insert the records of ``batch`` whose key is new; returns (inserted, duplicates, conflicting keys)."""
    if not batch:
        return 0, 0, []
    columns = TABLES[table]
    keys = KEYS[table]
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    duplicates, conflicts = 0, []
    for record in batch:
        row = _row(record)
        key = tuple(row[k] for k in keys)
        if key in first:
            duplicates += 1
            if first[key]["record_crc"] != row["record_crc"]:
                conflicts.append(f"{table}:{'/'.join(map(str, key))}")
            continue
        first[key] = row
    schema = pa.schema([(name, arrow_type) for name, (_, arrow_type) in columns])
    candidates = pa.Table.from_pylist(list(first.values()), schema=schema)
    conn.register("tca_candidates", candidates)
    try:
        join = " AND ".join(f"t.{k} = c.{k}" for k in keys)
        clash = conn.execute(
            f"SELECT {', '.join('c.' + k for k in keys)} FROM tca_candidates c JOIN {table} t ON {join} "
            "WHERE t.record_crc <> c.record_crc"
        ).fetchall()
        conflicts.extend(f"{table}:{'/'.join(map(str, key))}" for key in clash)
        names = ", ".join(name for name, _ in columns)
        ((inserted,),) = conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM tca_candidates c "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {join})"
        ).fetchall()
    finally:
        conn.unregister("tca_candidates")
    return inserted, duplicates + len(first) - inserted, conflicts


def _apply_session_closes(conn: duckdb.DuckDBPyConnection) -> int:
    """Fill in ``close_price`` of executions whose session close is now known; returns how many rows changed."""
    result = conn.execute(
        "UPDATE executions SET close_price = c.close_price FROM session_closes c "
        "WHERE executions.close_price IS NULL AND executions.symbol = c.symbol "
        "AND executions.session_date = c.session_date AND executions.source = c.source "
        "AND (c.run_id = '' OR c.run_id = executions.run_id)"
    ).fetchall()  # fetchall, not fetchone: DuckDB keeps a partly fetched result open and refuses the next call
    return int(result[0][0]) if result else 0


def load_staging(staging_path: Path | str, db_path: Path | str = DEFAULT_DB_PATH) -> LoadReport:
    """Load the engine's staging file into the TCA log (idempotent); the nightly ETL's entry point."""
    return TcaStore(db_path).load_staging(staging_path)


def write_records(records: Iterable[TcaRecord], db_path: Path | str = DEFAULT_DB_PATH) -> LoadReport:
    """Write records straight into the TCA log (idempotent); the backtester's entry point (``source=backtest``)."""
    return TcaStore(db_path).write_records(records)


def read_frames(
    db_path: Path | str = DEFAULT_DB_PATH, *, since_ns: int | None = None, source: str | None = None
) -> TcaFrames:
    """The log's executions and order ends as DataFrames (see ``TcaStore.read``)."""
    return TcaStore(db_path).read(since_ns=since_ns, source=source)
