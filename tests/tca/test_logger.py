"""The DuckDB TCA log: idempotent loads, overlapping files, conflicts, session closes, and a file held elsewhere."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from tca_builders import DECISION_TS, make_close, make_execution, make_unfilled

from core.errors import StateCorruptError
from tca.logger import DB_SCHEMA_VERSION, TcaDatabaseBusy, TcaStore, load_staging, read_frames, write_records
from tca.staging import StagingWriter, encode_record


def _stage(path: Path, records: list) -> Path:
    with StagingWriter(path) as writer:
        for record in records:
            writer.append(record)
    return path


def _table(db: Path, name: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()


def _executions(n: int, start: int = 0) -> list:
    return [make_execution(exec_id=f"E{i}", client_order_id=f"O{i}") for i in range(start, start + n)]


def test_loading_the_same_staging_file_twice_changes_nothing(tmp_path: Path) -> None:
    staging = _stage(tmp_path / "s.jsonl", [*_executions(3), make_unfilled(client_order_id="X", order_quantity=100)])
    db = tmp_path / "results" / "tca_log.duckdb"
    first = load_staging(staging, db)
    assert (first.inserted, first.duplicates, first.conflicts) == (4, 0, ())
    assert first.inserted_by_table == {"executions": 3, "unfilled": 1, "session_closes": 0}
    tables = {name: _table(db, name) for name in ("executions", "unfilled", "session_closes", "schema_version")}
    second = load_staging(staging, db)
    assert (second.inserted, second.duplicates, second.conflicts) == (0, 4, ())
    assert {name: _table(db, name) for name in tables} == tables
    assert tables["schema_version"] == [(DB_SCHEMA_VERSION,)]


def test_overlapping_staging_files_insert_only_what_is_new(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    load_staging(_stage(tmp_path / "a.jsonl", _executions(3)), db)  # E0 E1 E2
    report = load_staging(_stage(tmp_path / "b.jsonl", _executions(4, start=1)), db)  # E1 E2 E3 E4
    assert (report.inserted, report.duplicates) == (2, 2)
    assert [row[0] for row in _table(db, "executions")] == ["E0", "E1", "E2", "E3", "E4"]


def test_records_survive_the_log_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    execs = [
        make_execution(exec_id="E1", algo="TWAP", algo_params={"strategyType": "TWAP", "endTime": "15:55"},
                       policy_id="wheel-v3", propensity=0.25, close_price=10.4),
        make_execution(exec_id="E2", client_order_id="O2", ib_order_id=None, perm_id=None, arrival_ts=None,
                       arrival_price=None, spread_bps_at_arrival=None, adv_participation=None, vol_20d=None,
                       minutes_to_close=None, decision_ts=DECISION_TS + 1),
    ]  # fmt: skip
    ends = [make_unfilled(client_order_id="O3", decision_ts=DECISION_TS + 2, adv_participation=0.03)]
    write_records([*execs, *ends], db)
    assert TcaStore(db).read_records() == (execs, ends)


def test_same_key_with_other_content_is_a_conflict_and_the_first_row_stays(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records([make_execution(exec_id="E1", commission=1.0)], db)
    report = write_records([make_execution(exec_id="E1", commission=1.25), make_execution(exec_id="E2")], db)
    assert report.conflicts == ("executions:E1",)
    assert (report.inserted, report.duplicates) == (1, 1)
    execs, _ = TcaStore(db).read_records()
    assert [(e.exec_id, e.commission) for e in execs] == [("E1", 1.0), ("E2", 1.0)]


def test_a_session_close_fills_in_the_close_whichever_is_loaded_first(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    close = make_close(close_price=10.5)  # AAA on 2024-05-01 (the builders' fills are on that New York date)
    report = write_records([close, make_execution(exec_id="E1"), make_execution(exec_id="E2", symbol="BBB")], db)
    assert report.closes_applied == 1
    later = write_records([make_execution(exec_id="E3", client_order_id="O3")], db)
    assert later.closes_applied == 1
    other_source = write_records([make_execution(exec_id="E4", client_order_id="O4", source="live")], db)
    assert other_source.closes_applied == 0
    closes = {e.exec_id: e.close_price for e in TcaStore(db).read_records()[0]}
    assert closes == {"E1": 10.5, "E2": None, "E3": 10.5, "E4": None}
    assert write_records([close], db).duplicates == 1


def test_a_session_close_with_a_run_id_applies_to_that_run_only(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    runs = [make_execution(exec_id=f"E{run}", client_order_id=f"O{run}", run_id=f"replay-{run}") for run in (1, 2)]
    report = write_records([*runs, make_close(close_price=11.0, run_id="replay-2")], db)
    assert report.closes_applied == 1
    assert {e.run_id: e.close_price for e in TcaStore(db).read_records()[0]} == {"replay-1": None, "replay-2": 11.0}


def test_read_frames_filters_by_decision_time_and_source(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records([
        make_execution(exec_id="E1", client_order_id="O1", decision_ts=100, arrival_ts=None, fill_ts=200),
        make_execution(exec_id="E2", client_order_id="O2", decision_ts=300, arrival_ts=None, fill_ts=400),
        make_execution(exec_id="E3", client_order_id="O3", decision_ts=300, arrival_ts=None, fill_ts=400,
                       source="backtest"),
        make_unfilled(client_order_id="O4", decision_ts=50),
    ], db)  # fmt: skip
    frames = read_frames(db, since_ns=300, source="sim")
    assert list(frames.executions["exec_id"]) == ["E2"]
    assert frames.unfilled.empty
    assert list(read_frames(db).unfilled["client_order_id"]) == ["O4"]


def test_the_log_is_closed_between_calls(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records(_executions(1), db)
    other = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(db)!r}).close()"], timeout=60)
    assert other.returncode == 0  # another process can take the file for writing right after a load


@pytest.fixture
def held_db(tmp_path: Path):
    """A TCA log that a second, real process holds open for writing until the test ends."""
    db = tmp_path / "tca.duckdb"
    write_records(_executions(1), db)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(db)!r}); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield db
    finally:
        holder.communicate(timeout=30)  # closes its stdin: it exits and lets go of the file


def test_a_log_held_by_another_process_fails_at_once_with_a_clear_error(held_db: Path, tmp_path: Path) -> None:
    staging = _stage(tmp_path / "s.jsonl", _executions(2, start=5))
    started = time.monotonic()
    with pytest.raises(TcaDatabaseBusy, match=r"open in another process.*nothing was changed"):
        load_staging(staging, held_db)
    with pytest.raises(TcaDatabaseBusy):
        read_frames(held_db)
    assert time.monotonic() - started < 5.0


def test_torn_staging_tail_is_reported_and_loaded_next_time(tmp_path: Path) -> None:
    staging = _stage(tmp_path / "s.jsonl", _executions(1))
    line = encode_record(make_execution(exec_id="E9", client_order_id="O9"), 2)
    with staging.open("ab") as f:
        f.write(line[:20])  # the engine is in the middle of its append while the loader reads
    db = tmp_path / "tca.duckdb"
    report = load_staging(staging, db)
    assert report.inserted == 1 and report.torn_tail is not None and report.torn_tail.line_number == 2
    with staging.open("ab") as f:
        f.write(line[20:])  # ... and finishes it
    assert load_staging(staging, db).inserted == 1


def test_another_schema_version_or_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records(_executions(1), db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StateCorruptError, match=f"schema version \\[99\\], this code reads \\[{DB_SCHEMA_VERSION}\\]"):
        write_records(_executions(1, start=1), db)
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("hello, this is not a database\n" * 200)
    with pytest.raises(StateCorruptError, match="cannot open the TCA log"):
        write_records(_executions(1), not_duckdb)
    with pytest.raises(FileNotFoundError):
        read_frames(tmp_path / "missing.duckdb")


def test_a_version_1_log_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    """Version 1 had no ``wheel_decision``: the file is upgraded, its rows stay, reloading them is a duplicate."""
    db = tmp_path / "tca.duckdb"
    records = [*_executions(2), make_unfilled(client_order_id="X", order_quantity=100)]
    write_records(records, db)
    with duckdb.connect(str(db)) as conn:  # turn it into what version 1 wrote
        for table in ("executions", "unfilled"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN wheel_decision")
        conn.execute("UPDATE schema_version SET version = 1")
    before = {name: _table(db, name) for name in ("executions", "unfilled")}
    report = write_records(records, db)
    assert (report.inserted, report.duplicates, report.conflicts) == (0, 3, ())
    assert _table(db, "schema_version") == [(DB_SCHEMA_VERSION,)]
    after = {name: [row[:-1] for row in _table(db, name)] for name in ("executions", "unfilled")}
    assert after == before
    assert all(row[-1] is None for name in ("executions", "unfilled") for row in _table(db, name))
