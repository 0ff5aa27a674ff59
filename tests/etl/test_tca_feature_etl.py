"""TCA cost features: hand-computed window means, the 20-session window over the calendar, close instants in UTC
(winter, summer, half day), deterministic Parquet, and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.tca_feature_etl import FEATURE_COLUMNS, cost_features, main, order_frame, run
from tca.logger import read_frames, write_records
from tca.records import ExecutionRecord, UnfilledRecord


def ny_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="America/New_York").value)


def execution(i: int, symbol: str, algo: str, cost_bps: float, fill: str, **changes: Any) -> ExecutionRecord:
    """A BUY of 100 decided and arrived at 10.0, filled at ``fill`` (New York time) at the price costing
    ``cost_bps``."""
    values: dict[str, Any] = {
        "exec_id": f"E{i}",
        "client_order_id": f"O{i}",
        "strategy_id": "momentum",
        "symbol": symbol,
        "side": "BUY",
        "order_quantity": 100,
        "quantity": 100,
        "price": 10.0 * (1 + cost_bps / 1e4),
        "commission": 0.0,
        "algo": algo,
        "decision_ts": ny_ns(fill) - 60_000_000_000,
        "decision_price": 10.0,
        "arrival_price": 10.0,
        "fill_ts": ny_ns(fill),
        "source": "backtest",
        "run_id": "bt-1",
    }
    values.update(changes)
    return ExecutionRecord(**values)


def orders(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """An order frame from (symbol, session date, algo, shortfall bps) tuples."""
    frame = pd.DataFrame(rows, columns=["symbol", "session_date", "algo", "shortfall_bps"])
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    return frame.assign(client_order_id=[f"O{i}" for i in range(len(frame))])


def test_window_means_equal_hand_computed_ones() -> None:
    features = cost_features(
        orders(
            [
                ("AAA", "2024-01-10", "MOC", 4.0),
                ("AAA", "2024-01-10", "MOC", 6.0),
                ("AAA", "2024-01-10", "ADAPTIVE", 10.0),
                ("AAA", "2024-01-12", "MOC", 8.0),
                ("AAA", "2024-01-12", "LMT", 1.0),
                ("BBB", "2024-01-11", "TWAP", 2.0),
            ]
        )
    )
    assert list(features.columns[:2]) == ["symbol", "session_date"] and set(FEATURE_COLUMNS) <= set(features.columns)
    keyed = features.set_index(["symbol", features["session_date"].astype(str)])
    assert list(keyed.index) == [
        ("AAA", "2024-01-10"),
        ("AAA", "2024-01-11"),
        ("AAA", "2024-01-12"),
        ("BBB", "2024-01-11"),
        ("BBB", "2024-01-12"),
    ]
    first, last = keyed.loc[("AAA", "2024-01-10")], keyed.loc[("AAA", "2024-01-12")]
    assert first["tca_shortfall_20d_bps_moc"] == 5.0 and first["tca_shortfall_20d_bps_adaptive"] == 10.0
    assert first["tca_orders_20d"] == 3 and np.isnan(first["tca_shortfall_20d_bps_twap"])
    assert keyed.loc[("AAA", "2024-01-11"), "tca_shortfall_20d_bps_moc"] == 5.0  # no new order: same window
    assert last["tca_shortfall_20d_bps_moc"] == pytest.approx(6.0) and last["tca_orders_20d"] == 5
    assert np.isnan(last["tca_shortfall_20d_bps_mkt"]) and np.isnan(last["tca_shortfall_20d_bps_loc"])
    assert keyed.loc[("BBB", "2024-01-12"), "tca_shortfall_20d_bps_twap"] == 2.0
    assert (features["created_timestamp"] == features["event_timestamp"]).all()


def test_the_window_is_twenty_exchange_sessions() -> None:
    # Sessions 2024-01-02 .. 01-30 are exactly 20 (MLK day, 01-15, is a holiday), so the order of 01-02 counts
    # on 01-30 and has left the window on 01-31.
    features = cost_features(orders([("AAA", "2024-01-02", "MOC", 4.0), ("AAA", "2024-02-01", "MOC", 8.0)]))
    by_day = features.set_index(features["session_date"].astype(str))
    assert "2024-01-15" not in by_day.index and len(by_day) == 22
    assert (
        by_day.loc["2024-01-30", "tca_orders_20d"] == 1 and by_day.loc["2024-01-30", "tca_shortfall_20d_bps_moc"] == 4.0
    )
    assert by_day.loc["2024-01-31", "tca_orders_20d"] == 0 and np.isnan(
        by_day.loc["2024-01-31", "tca_shortfall_20d_bps_moc"]
    )
    assert by_day.loc["2024-02-01", "tca_shortfall_20d_bps_moc"] == 8.0


def test_no_orders_give_an_empty_frame_with_the_columns() -> None:
    empty = cost_features(orders([]))
    assert empty.empty and set(FEATURE_COLUMNS) <= set(empty.columns)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "tca_log.duckdb"
    write_records(
        [
            execution(1, "WIN", "MOC", 3.0, "2024-01-10 16:00:00"),
            execution(2, "SUM", "TWAP", 5.0, "2024-07-10 15:00:00"),
            execution(3, "HALF", "ADAPTIVE", 7.0, "2024-11-29 12:30:00", algo_params={"adaptivePriority": "Normal"}),
            execution(4, "HALF", "LOC", 1.0, "2024-11-29 12:00:00", order_quantity=200),  # still working: left out
            UnfilledRecord(
                client_order_id="U1",
                unfilled_quantity=100,
                end_ts=ny_ns("2024-11-29 12:45:00"),
                end_price=10.1,
                symbol="HALF",
                side="BUY",
                strategy_id="momentum",
                order_quantity=100,
                decision_ts=ny_ns("2024-11-28 09:00:00"),
                decision_price=10.0,
                algo="LOC",
                source="backtest",
                run_id="bt-1",
            ),
        ],
        path,
    )
    return path


def test_order_frame_dates_orders_when_their_cost_was_known(db: Path) -> None:
    frame = order_frame(read_frames(db)).set_index("client_order_id")
    assert sorted(frame.index) == ["O1", "O2", "O3", "U1"]
    assert str(frame.loc["U1", "session_date"].date()) == "2024-11-29"  # its end, not its decision (Thanksgiving)
    assert frame.loc["U1", "shortfall_bps"] == pytest.approx(100.0)  # 0.10 over 10.00 never bought
    assert frame.loc["O3", "shortfall_bps"] == pytest.approx(7.0)


def test_event_timestamp_is_the_session_close_in_utc(db: Path, tmp_path: Path) -> None:
    features = run(db, tmp_path / "out" / "tca.parquet")
    keyed = features.set_index(["symbol", features["session_date"].astype(str)])
    assert keyed.loc[("WIN", "2024-01-10"), "event_timestamp"] == pd.Timestamp("2024-01-10 21:00", tz="UTC")
    assert keyed.loc[("SUM", "2024-07-10"), "event_timestamp"] == pd.Timestamp("2024-07-10 20:00", tz="UTC")
    half = keyed.loc[("HALF", "2024-11-29")]
    assert half["event_timestamp"] == pd.Timestamp("2024-11-29 18:00", tz="UTC")
    assert half["tca_orders_20d"] == 2 and half["tca_shortfall_20d_bps_loc"] == pytest.approx(100.0)
    assert keyed.loc[("WIN", "2024-11-29"), "tca_orders_20d"] == 0  # every session through the log's last one


def test_running_twice_writes_identical_parquet(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "tca.parquet"
    run(db, out)
    first = out.read_bytes()
    run(db, out)
    assert out.read_bytes() == first
    table = pq.read_table(out)
    assert str(table.schema.field("event_timestamp").type) == "timestamp[ns, tz=UTC]"
    assert table.num_rows == len(run(db, tmp_path / "again.parquet"))
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_cli(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.parquet"
    assert main(["--db", str(db), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out) and out.exists()
    assert main(["--db", str(tmp_path / "missing.duckdb"), "--out", str(out)]) == 1
    assert "no TCA log here" in capsys.readouterr().err
    assert main(["--bogus"]) == 2
