"""Peer parity: our engine and backtrader run the same strict-cross SMA(10/30) on the five shared real-data files.

Both sides get the very same bar frames (``load_csv(path).clean``, unadjusted), buy 100 shares at the next open
on a cross up, sell everything at the next open on a cross down, and pay IB Fixed commissions. The reference
is ``testkit.backtrader_ref``; its docstring lists the rules aligned between the two.

Tolerances: trade dates, sides, quantities, fill prices and commissions must be *exactly* equal (float ==):
both sides fill at the bar's open and compute the commission with the same operations. Final equity must agree
within 1e-9 relative, because the two ledgers add the same cash flows in a different order.

Ties: a bar where fast == slow (or |fast - slow| <= 1e-12 * close) is collected on each side with the signal
and the order of that bar and of the next one; both sides must list the same tie bars with the same means and
decide the same way at each. Run with ``-s`` to see the tables.
"""

from __future__ import annotations

from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from backtester.engine import BacktestResult, build_backtest
from data.calendar import TradingCalendar
from data.csv_loader import load_csv
from data.panel import BarPanel
from strategy.base import EXIT, LONG, BarArrays
from strategy.sma_crossover import SmaCrossover
from testkit.backtrader_ref import (
    NONE,
    TIE_COLUMNS,
    TIE_RELATIVE_TOLERANCE,
    BacktraderRun,
    pandas_feed,
    parity_config,
    run_backtrader,
    run_backtrader_feeds,
)

pytestmark = pytest.mark.shared_data

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FILES = ("yhoo-1996-2015.txt", "orcl-1995-2014.txt", "yhoo-2003-2005.txt", "orcl-2003-2005.txt", "orcl-2014.txt")
PAIR = ("yhoo-2003-2005.txt", "orcl-2003-2005.txt")
CAPITAL_PER_SYMBOL = 100_000.0
FILL_KEYS = ["date", "symbol", "side", "quantity", "price", "commission"]
# Observed on the shared files (sha256 in ../shared/data/README.md): the one tie is ORCL on 2004-06-29, where
# both means are exactly 11.375; it lies in both ORCL files that cover mid-2004.
EXPECTED_TIE_DATES = {
    "yhoo-1996-2015.txt": [],
    "orcl-1995-2014.txt": ["2004-06-29"],
    "yhoo-2003-2005.txt": [],
    "orcl-2003-2005.txt": ["2004-06-29"],
    "orcl-2014.txt": [],
}
CAL = TradingCalendar()
_SIGNAL_NAMES = {LONG: "LONG", EXIT: "EXIT", 0: NONE}


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared real-data folder sits beside the repository checkout")
    return path


def frames_for(*names: str) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    for name in names:
        guarded = load_csv(shared_file(name))
        assert guarded.quarantined.empty, f"{name}: the shared files hold no bad bars"
        frames[name.split("-", 1)[0].upper()] = guarded.clean
    return frames


def run_ours(frames: dict[str, pd.DataFrame]) -> tuple[BacktestResult, BarPanel, SmaCrossover]:
    config = parity_config(CAPITAL_PER_SYMBOL * len(frames))
    panel = BarPanel.from_frames(frames, CAL)
    strategy = SmaCrossover(config.strategies.sma_crossover.params)
    return build_backtest(config, panel, [strategy], CAL).run(), panel, strategy


def our_ties(result: BacktestResult, panel: BarPanel, strategy: SmaCrossover) -> pd.DataFrame:
    """Our tie bars in backtrader_ref's layout: means, signal codes, and the order each bar sent (seen as the
    fill at the next session's open)."""
    bars = BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)
    fast, slow = strategy.moving_averages(bars)
    codes = strategy.compute_signals(bars).codes
    with np.errstate(invalid="ignore"):
        tie = (fast == slow) | (np.abs(fast - slow) <= TIE_RELATIVE_TOLERANCE * panel.close)
    fills = {(row.date, row.symbol): row.side for row in result.fills.itertuples()}
    dates = panel.dates
    last = len(dates) - 1

    def action(t: int, symbol: str) -> str:
        return fills.get((dates[t + 1], symbol), NONE) if t < last else NONE

    rows = []
    for t, j in zip(*np.nonzero(tie), strict=True):
        symbol = panel.symbols[j]
        nxt = t + 1 if t < last else None
        rows.append(
            {
                "date": dates[t],
                "symbol": symbol,
                "fast": float(fast[t, j]),
                "slow": float(slow[t, j]),
                "exact": bool(fast[t, j] == slow[t, j]),
                "signal": _SIGNAL_NAMES[int(codes[t, j])],
                "action": action(t, symbol),
                "next_date": dates[nxt] if nxt is not None else pd.NaT,
                "next_signal": _SIGNAL_NAMES[int(codes[nxt, j])] if nxt is not None else NONE,
                "next_action": action(nxt, symbol) if nxt is not None else NONE,
            }
        )
    return pd.DataFrame(rows, columns=TIE_COLUMNS).sort_values(["date", "symbol"], ignore_index=True)


def sorted_fills(fills: pd.DataFrame) -> pd.DataFrame:
    out = fills[FILL_KEYS].sort_values(["date", "symbol", "side"], kind="stable", ignore_index=True)
    return out.astype({"quantity": "int64", "price": "float64", "commission": "float64"})


def assert_same_run(ours: BacktestResult, theirs: BacktraderRun) -> None:
    mine, peer = sorted_fills(ours.fills), sorted_fills(theirs.fills)
    assert len(mine) > 0, "the test needs trades to compare"
    assert len(mine) == len(peer), f"{len(mine)} fills here, {len(peer)} in backtrader"
    for column in FILL_KEYS:  # exact equality, column by column, so a failure names the first differing row
        differs = mine[column] != peer[column]
        assert not differs.any(), (
            f"{column} differs at {int(differs.sum())} fills; first:\n"
            f"ours {mine[differs].head(1).to_dict('records')}\nbacktrader {peer[differs].head(1).to_dict('records')}"
        )
    # backtrader's own order.executed.price is (0 + size * price) / size, an ulp-level rounding of the same open
    np.testing.assert_allclose(theirs.fills["reported_price"], theirs.fills["price"], rtol=1e-12, atol=0)
    assert ours.equity.iloc[-1] == pytest.approx(theirs.final_value, rel=1e-9, abs=0)


def assert_same_ties(name: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    peer = theirs.sort_values(["date", "symbol"], ignore_index=True)
    print(f"\n{name}: {len(ours)} tie bar(s) here, {len(peer)} in backtrader (|fast - slow| <= 1e-12 * close)")
    for side, table in (("ours", ours), ("backtrader", peer)):
        if len(table):
            print(f"  {side}:\n{table.to_string(index=False)}")
    pd.testing.assert_frame_equal(ours, peer, check_exact=True, check_dtype=False)


@pytest.mark.parametrize("name", FILES)
def test_single_symbol_matches_backtrader_trade_for_trade(name: str) -> None:
    frames = frames_for(name)
    ours, panel, strategy = run_ours(frames)
    theirs = run_backtrader(frames, CAPITAL_PER_SYMBOL, record_ties=True)
    print(
        f"\n{name}: {len(ours.fills)} fills here, {len(theirs.fills)} in backtrader; final equity "
        f"{float(ours.equity.iloc[-1])!r} here, {theirs.final_value!r} in backtrader"
    )
    assert_same_run(ours, theirs)
    ties = our_ties(ours, panel, strategy)
    assert_same_ties(name, ties, theirs.ties)
    assert [str(d.date()) for d in ties["date"]] == EXPECTED_TIE_DATES[name]


def test_exact_tie_waits_for_the_next_bar_on_both_sides() -> None:
    """ORCL 2004-06-29: fast == slow == 11.375 exactly. Strict '>' means no cross on the tie bar; on 06-30 the
    tie counts as 'fast[-1] <= slow[-1]', fast is above, so both sides go LONG and buy at the 07-01 open."""
    frames = frames_for("orcl-2003-2005.txt")
    ours, panel, strategy = run_ours(frames)
    tie = our_ties(ours, panel, strategy).iloc[0]
    assert (str(tie["date"].date()), tie["fast"], tie["slow"], tie["exact"]) == ("2004-06-29", 11.375, 11.375, True)
    assert (tie["signal"], tie["action"], tie["next_signal"], tie["next_action"]) == (NONE, NONE, "LONG", "BUY")
    assert pd.Timestamp("2004-07-01") in set(ours.fills.loc[ours.fills["side"] == "BUY", "date"])


def test_two_symbols_in_one_portfolio_match_backtrader() -> None:
    frames = frames_for(*PAIR)
    ours, panel, strategy = run_ours(frames)
    theirs = run_backtrader(frames, CAPITAL_PER_SYMBOL * len(frames), record_ties=True)
    assert set(ours.fills["symbol"]) == {"YHOO", "ORCL"}
    assert_same_run(ours, theirs)
    assert_same_ties("+".join(PAIR), our_ties(ours, panel, strategy), theirs.ties)


def test_pandas_feed_equals_yahoo_csv_feed_without_adjustment_or_rounding() -> None:
    """The claim in backtrader_ref: PandasData over load_csv(path).clean == YahooFinanceCSVData(adjclose=False,
    round=False), value for value, and so trade for trade. orcl-1995-2014 is the hardest file for it: Adj Close !=
    Close on every row (adjclose must be off) and 2,635 closes are sub-cent (pandas' parser must agree with float())."""
    path = shared_file("orcl-1995-2014.txt")
    frame = load_csv(path).clean
    yahoo = bt.feeds.YahooFinanceCSVData(dataname=str(path), adjclose=False, round=False, name="ORCL")
    pandas = pandas_feed(frame, "ORCL")
    via_yahoo = run_backtrader_feeds({"ORCL": yahoo}, CAPITAL_PER_SYMBOL)
    via_pandas = run_backtrader_feeds({"ORCL": pandas}, CAPITAL_PER_SYMBOL)
    for line in ("open", "high", "low", "close", "volume"):
        loaded = np.asarray(getattr(yahoo.lines, line).array)
        assert len(loaded) == len(frame)
        np.testing.assert_array_equal(loaded, frame[line].to_numpy(), err_msg=line)
        np.testing.assert_array_equal(np.asarray(getattr(pandas.lines, line).array), loaded, err_msg=line)
    yahoo_dates = [bt.num2date(x).date() for x in yahoo.lines.datetime.array]
    assert yahoo_dates == [d.date() for d in frame.index]
    pd.testing.assert_frame_equal(via_yahoo.fills, via_pandas.fills, check_exact=True)
    assert via_yahoo.final_value == via_pandas.final_value
    assert len(via_yahoo.fills) > 0
