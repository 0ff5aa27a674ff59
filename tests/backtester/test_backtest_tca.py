"""Issue 13: the backtester writes TCA rows (source=backtest) from its simulated fills, and its report shows costs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.engine import Backtest, BacktestResult, build_backtest
from backtester.performance import round_trips_from_fills
from backtester.report import write_report
from backtester.tca_rows import tca_records, write_backtest_tca
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from tca.calculator import aggregate, order_shortfalls, records_frame
from tca.logger import TcaStore
from tca.records import Algo, ExecutionRecord, Source, UnfilledRecord
from testkit.bars import make_bar_frame
from testkit.strategies import ScriptedStrategy

CAL = TradingCalendar()
CLOSES = [10.0, 10.5, 11.0, 10.8, 11.2, 11.5, 11.1, 10.9, 11.3, 11.6, 12.0, 11.8]
GAP = 0.01  # every session opens 1 % above the previous close: a visible delay cost for buys
HALF_SPREAD_BPS = 10.0


def gapped_panel() -> BarPanel:
    frame = make_bar_frame(CLOSES, calendar=CAL)
    frame["open"] = frame["close"].shift(1, fill_value=CLOSES[0]) * (1 + GAP)
    frame["high"] = np.maximum(frame["open"], frame["close"]) * 1.005
    frame["low"] = np.minimum(frame["open"], frame["close"]) * 0.995
    return BarPanel.from_frames({"AAA": frame}, CAL)


def backtest(script: dict, order_type: str = "MKT", bars: BarPanel | None = None) -> tuple[Backtest, BacktestResult]:
    config = AppConfig.model_validate({
        "portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": 100}},
        "costs": {"slippage": {"half_spread_bps": HALF_SPREAD_BPS, "impact_coefficient_bps": 0}},
        "pre_trade": {"max_adv_participation_pct": 100},
        "strategies": {"momentum": {"order_type": order_type}},
    })  # fmt: skip
    bt = build_backtest(config, bars or gapped_panel(), [ScriptedStrategy(script)], CAL)
    return bt, bt.run()


def executions(records: list) -> list[ExecutionRecord]:
    return [r for r in records if isinstance(r, ExecutionRecord)]


def unfilled(records: list) -> list[UnfilledRecord]:
    return [r for r in records if isinstance(r, UnfilledRecord)]


def test_issue_13_one_execution_row_per_simulated_fill_with_the_order_context() -> None:
    bars = gapped_panel()
    bt, result = backtest({(2, "AAA"): 1, (5, "AAA"): 2}, bars=bars)
    rows = executions(tca_records(bt, result, "run-a"))
    assert len(rows) == len(result.fills) == 2
    buy, sell = rows
    for row, fill in zip(rows, result.fills.itertuples(), strict=True):
        assert row.source is Source.BACKTEST and row.run_id == "run-a" and row.algo is Algo.MKT
        assert row.exec_id == f"run-a/{fill.exec_id}" and row.client_order_id == f"run-a/{fill.client_order_id}"
        assert (row.symbol, row.side.value, row.quantity) == ("AAA", fill.side, fill.quantity)
        assert (row.price, row.commission, row.fill_ts) == (fill.price, fill.commission, fill.ts_event_ns)
        assert row.order_quantity == 100
    # decided on the close of bar 2, sent after it; the venue's first price is bar 3's open, where it fills
    assert buy.decision_price == bars.close[2, 0] and buy.decision_ts == int(bars.ts_event_ns[2])
    assert buy.arrival_price == pytest.approx(bars.open[3, 0]) and buy.arrival_ts == int(bt.sessions.open_ns[3])
    assert buy.price == pytest.approx(bars.open[3, 0] * (1 + HALF_SPREAD_BPS / 1e4))  # arrival + slippage
    assert buy.close_price == bars.close[3, 0] and sell.close_price == bars.close[6, 0]
    assert sell.decision_price == bars.close[5, 0] and sell.arrival_price == pytest.approx(bars.open[6, 0])


def test_issue_13_shortfall_splits_the_overnight_gap_from_the_simulated_slippage() -> None:
    bt, result = backtest({(2, "AAA"): 1})
    shortfall = order_shortfalls(records_frame(executions(tca_records(bt, result, "r"))), pd.DataFrame())
    (order,) = shortfall.itertuples()
    assert order.delay_bps == pytest.approx(GAP * 1e4)  # open 1 % above the decision close
    assert order.execution_bps == pytest.approx(HALF_SPREAD_BPS * (1 + GAP))  # slippage on the open, per decision
    assert order.fees_bps == pytest.approx(1.0 / (100 * CLOSES[2]) * 1e4)  # IB fixed minimum 1.00


def test_issue_13_an_expired_loc_order_becomes_an_unfilled_row_priced_at_that_sessions_close() -> None:
    bars = gapped_panel()
    # decided at close 10.8 (bar 3): buy limit 10.81; bar 4 closes at 11.2 above it -> the LOC expires unfilled
    bt, result = backtest({(3, "AAA"): 1}, order_type="LOC", bars=bars)
    records = tca_records(bt, result, "r")
    assert result.fills.empty and executions(records) == []
    (end,) = unfilled(records)
    assert (end.unfilled_quantity, end.order_quantity, end.reason, end.algo) == (100, 100, "expired", Algo.LOC)
    assert end.end_price == bars.close[4, 0] and end.end_ts == int(bars.ts_event_ns[4])
    assert end.decision_price == bars.close[3, 0] and end.source is Source.BACKTEST
    (order,) = order_shortfalls(pd.DataFrame(), records_frame([end])).itertuples()
    assert order.opportunity_bps == pytest.approx((11.2 - 10.8) / 10.8 * 1e4)


def test_issue_13_a_filled_moc_order_has_no_unfilled_row_and_arrives_at_the_open() -> None:
    bars = gapped_panel()
    bt, result = backtest({(2, "AAA"): 1}, order_type="MOC", bars=bars)
    records = tca_records(bt, result, "r")
    assert unfilled(records) == [] and len(executions(records)) == 1
    (row,) = executions(records)
    # an MOC sent after bar 2's close trades in bar 3's closing auction; the first price after sending is the open
    assert row.algo is Algo.MOC and row.fill_ts == int(bars.ts_event_ns[3]) and row.close_price == bars.close[3, 0]
    assert row.arrival_price == pytest.approx(bars.open[3, 0])


def test_issue_13_rows_are_written_to_duckdb_once_and_read_back_unchanged(tmp_path: Path) -> None:
    bt, result = backtest({(2, "AAA"): 1, (5, "AAA"): 2, (8, "AAA"): 1})
    records = tca_records(bt, result, "run-a")
    db = tmp_path / "tca_log.duckdb"
    first = write_backtest_tca(records, db)
    assert first.inserted == len(records) and first.conflicts == ()
    again = write_backtest_tca(records, db)
    assert (again.inserted, again.duplicates, again.conflicts) == (0, len(records), ())
    stored_execs, stored_ends = TcaStore(db).read_records()
    assert stored_execs == executions(records) and stored_ends == unfilled(records)


def test_issue_13_two_runs_of_the_same_backtest_do_not_collide_in_one_log(tmp_path: Path) -> None:
    """Simulated exec ids (SIM-1...) and client order ids repeat from run to run; the run id keeps them apart."""
    db = tmp_path / "tca_log.duckdb"
    for run_id in ("run-a", "run-b"):
        bt, result = backtest({(2, "AAA"): 1, (5, "AAA"): 2})
        report = write_backtest_tca(tca_records(bt, result, run_id), db)
        assert (report.inserted, report.conflicts) == (2, ())
    frames = TcaStore(db).read(source="backtest")
    assert sorted(frames.executions["run_id"].unique()) == ["run-a", "run-b"]
    assert len(order_shortfalls(frames.executions, frames.unfilled)) == 4


def test_issue_13_rows_are_deterministic_for_the_same_inputs() -> None:
    script = {(2, "AAA"): 1, (5, "AAA"): 2, (8, "AAA"): 1}
    first = tca_records(*backtest(script), "r")
    second = tca_records(*backtest(script), "r")
    assert first == second and len(first) == 3


def _report(tmp_path: Path, records: list, result: BacktestResult) -> str:
    trades = round_trips_from_fills(result.fills, sessions=result.equity.index)
    path = tmp_path / "report.html"
    write_report(path, {"strategy": "momentum"}, result.equity, trades, tca_records=records)
    return path.read_text(encoding="utf-8")


def test_issue_13_the_backtest_report_has_a_costs_section_from_the_tca_calculator(tmp_path: Path) -> None:
    bt, result = backtest({(2, "AAA"): 1, (5, "AAA"): 2, (8, "AAA"): 1})
    records = tca_records(bt, result, "r")
    page = _report(tmp_path, records, result)
    assert "Transaction costs" in page and 'id="tca-costs"' in page
    table = aggregate(order_shortfalls(records_frame(executions(records)), pd.DataFrame()), by="algo")
    (mkt,) = table.itertuples()
    row = page.split('id="tca-costs"', 1)[1].split("</table>", 1)[0]
    assert "<td>MKT</td>" in row and f"{mkt.mean_total_bps:.2f}" in row
    assert f"[{mkt.ci_low_bps:.2f}, {mkt.ci_high_bps:.2f}]" in row
    assert f"{mkt.mean_delay_bps:.2f}" in row and f"{mkt.mean_fees_bps:.2f}" in row


def test_issue_13_no_costs_section_without_executions(tmp_path: Path) -> None:
    bt, result = backtest({(3, "AAA"): 1}, order_type="LOC")
    assert "Transaction costs" not in _report(tmp_path, tca_records(bt, result, "r"), result)
    assert "Transaction costs" not in _report(tmp_path, [], result)


def test_issue_13_an_order_still_working_when_the_data_ends_has_no_end_row() -> None:
    """A MKT order waiting for a valid bar has not ended: its shares are unaccounted, not an opportunity cost."""
    full = make_bar_frame(CLOSES, calendar=CAL)
    bars = BarPanel.from_frames({"AAA": full.iloc[:-1], "BBB": full}, CAL)
    last = len(CLOSES) - 1
    assert np.isnan(bars.close[last, 0])
    bt, result = backtest({(last - 1, "AAA"): 1}, bars=bars)
    (managed,) = bt.executor.store.all()
    assert not managed.is_terminal
    assert tca_records(bt, result, "r") == []


def test_issue_13_a_result_of_another_backtest_is_refused() -> None:
    bt, result = backtest({(2, "AAA"): 1})
    _, other = backtest({(2, "AAA"): 1, (5, "AAA"): 2})
    with pytest.raises(ValueError, match="booked fills"):
        tca_records(bt, other, "r")
    with pytest.raises(ValueError, match="run_id"):
        tca_records(bt, result, " ")
