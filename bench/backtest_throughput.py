"""Throughput benchmark (not a test): bars per second of our engine and of backtrader, same data, same strategy.

    .venv/bin/python bench/backtest_throughput.py [--quick] [--profile] [--seed 42] [--repeats 3]

Both sides run the strict-cross SMA 10/30, 100 shares per entry, market orders filled at the next open, IB Fixed
commissions, zero slippage, every limit set so it never binds (``testkit.backtrader_ref.parity_config`` with a
margin account and 100,000 of capital per symbol; ``StrictCrossSma`` on the backtrader side). Cases:

- (a) 1 symbol x 100,000 daily bars, ours and backtrader; goal: ours >= 25x backtrader;
- (b) 50 symbols x 2,520 daily bars, ours and backtrader;
- (c) 500 symbols x 2,520 daily bars, ours only; goal: >= 3,000,000 bars/s.

Timing: ours is ``build_backtest(...)`` + ``run()`` (indicator computation included; the ``BarPanel`` is built
beforehand); backtrader's is the ``PandasData`` feed construction + ``cerebro.run()`` (which loads the feeds and
computes its indicators). Each side is run ``--repeats`` times in this process and the best wall time is
reported. A bar is one (session, symbol) cell. Every case also checks that the two sides produced identical fills
and shows how much of our time is ``compute_signals`` (indicators and signal codes, vectorized).

Data, all seeded: (a) a log-price random walk with slow mean reversion (so 100,000 bars stay in a realistic
price range; cents-rounded, valid OHLCV) on Mon-Fri sessions from 1800-01-01 (``testkit.calendars.
WeekdayCalendar``, since XNYS does not reach back 400 years); (b) and (c) ``data.synthetic.generate_market`` on
XNYS sessions from 2010-01-04. ``--quick`` shrinks every case for a smoke run; its verdicts are not the goals'.
``--profile`` adds a cProfile of our engine on case (c), top 25 functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import logging
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from backtester.engine import BacktestResult, build_backtest
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from strategy.base import BarArrays
from strategy.sma_crossover import SmaCrossover
from testkit.backtrader_ref import build_cerebro, pandas_feed, parity_config
from testkit.calendars import WeekdayCalendar

CAPITAL_PER_SYMBOL = 100_000.0
GOAL_RATIO_A = 25.0
GOAL_BARS_PER_S_C = 3_000_000.0
FILL_KEYS = ["date", "symbol", "side", "quantity", "price", "commission"]


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    n_symbols: int
    n_bars: int
    with_backtrader: bool

    @property
    def label(self) -> str:
        noun = "symbol" if self.n_symbols == 1 else "symbols"
        return f"({self.key}) {self.n_symbols:,} {noun} x {self.n_bars:,} bars"


@dataclass(frozen=True, slots=True)
class Measurement:
    case: Case
    bars: int
    ours_s: float
    signals_s: float
    backtrader_s: float | None
    ours_fills: int
    backtrader_fills: int | None
    identical_fills: bool | None
    rejections: int


FULL = (Case("a", 1, 100_000, True), Case("b", 50, 2_520, True), Case("c", 500, 2_520, False))
QUICK = (Case("a", 1, 3_000, True), Case("b", 5, 300, True), Case("c", 20, 300, False))


def random_walk_frames(n_bars: int, seed: int) -> dict[str, pd.DataFrame]:
    """One symbol of seeded daily OHLCV on weekdays from 1800-01-01, cents-rounded, high >= open, close >= low."""
    rng = np.random.default_rng(seed)
    dates = pd.DatetimeIndex(pd.bdate_range("1800-01-01", "2262-01-01")[:n_bars], name="date")
    level, reversion, daily_vol = np.log(50.0), np.log(2) / 252, 0.015  # half-life one year: log sd ~ 0.2
    shocks = rng.standard_normal((3, n_bars))
    log_close = np.empty(n_bars)
    x = level
    for t in range(n_bars):  # an AR(1) in log price; vectorizing it is not worth the obscurity here
        x += reversion * (level - x) + daily_vol * shocks[0, t]
        log_close[t] = x
    close = np.round(np.exp(log_close), 2)
    prev_close = np.concatenate(([close[0]], close[:-1]))
    open_ = np.round(prev_close * np.exp(0.4 * daily_vol * shocks[1]), 2)
    reach = np.abs(shocks[2]) * 0.5 * daily_vol
    high = np.maximum.reduce([np.round(np.maximum(open_, close) * np.exp(reach), 2), open_, close])
    low = np.minimum.reduce([np.round(np.minimum(open_, close) * np.exp(-reach), 2), open_, close])
    volume = np.rint(1_000_000 * np.exp(0.3 * rng.standard_normal(n_bars)))
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=dates)
    return {"SYN": frame}


def xnys_frames(n_symbols: int, n_bars: int, seed: int, calendar: TradingCalendar) -> dict[str, pd.DataFrame]:
    """``generate_market`` over exactly ``n_bars`` XNYS sessions from 2010-01-04."""
    end = calendar.sessions("2010-01-04", calendar.last_session)[n_bars - 1]
    return generate_market(n_symbols, "2010-01-04", str(end.date()), seed, calendar)


def run_ours(config: AppConfig, panel: BarPanel, calendar: TradingCalendar | WeekdayCalendar) -> BacktestResult:
    strategy = SmaCrossover(config.strategies.sma_crossover.params)
    return build_backtest(config, panel, [strategy], calendar).run()  # type: ignore[arg-type]


def run_backtrader(frames: dict[str, pd.DataFrame], cash: float) -> pd.DataFrame:
    feeds = {symbol: pandas_feed(frame, symbol) for symbol, frame in frames.items()}
    strategy = build_cerebro(feeds, cash).run()[0]
    return pd.DataFrame(strategy.fills)


def best_of(repeats: int, func: Callable[[], object]) -> tuple[float, object]:
    """Best wall time over ``repeats`` calls (garbage collected before each) and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
    return best, result


def same_fills(ours: pd.DataFrame, theirs: pd.DataFrame) -> bool:
    if len(ours) != len(theirs):
        return False
    if not len(ours):
        return True
    a = ours[FILL_KEYS].sort_values(["date", "symbol", "side"], ignore_index=True)
    b = theirs[FILL_KEYS].sort_values(["date", "symbol", "side"], ignore_index=True)
    return all((a[k].to_numpy() == b[k].to_numpy()).all() for k in FILL_KEYS)


def measure(case: Case, seed: int, repeats: int, xnys: TradingCalendar) -> Measurement:
    calendar: TradingCalendar | WeekdayCalendar
    if case.key == "a":
        frames, calendar = random_walk_frames(case.n_bars, seed), WeekdayCalendar()
    else:
        frames, calendar = xnys_frames(case.n_symbols, case.n_bars, seed, xnys), xnys
    panel = BarPanel.from_frames(frames, calendar)  # type: ignore[arg-type]
    cash = CAPITAL_PER_SYMBOL * case.n_symbols
    config = parity_config(cash, account_type="margin")
    ours_s, result = best_of(repeats, lambda: run_ours(config, panel, calendar))
    assert isinstance(result, BacktestResult)
    bars = BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)
    strategy = SmaCrossover(config.strategies.sma_crossover.params)
    signals_s, _ = best_of(repeats, lambda: strategy.compute_signals(bars))
    bt_s, bt_fills = (None, None)
    if case.with_backtrader:
        bt_s, bt_fills = best_of(repeats, lambda: run_backtrader(frames, cash))
    return Measurement(
        case=case,
        bars=panel.n_bars,
        ours_s=ours_s,
        signals_s=signals_s,
        backtrader_s=bt_s,
        ours_fills=len(result.fills),
        backtrader_fills=None if bt_fills is None else len(bt_fills),
        identical_fills=None if bt_fills is None else same_fills(result.fills, bt_fills),
        rejections=sum(result.rejections.values()),
    )


def verdict(m: Measurement, quick: bool) -> tuple[str, str]:
    ours_rate = m.bars / m.ours_s
    if m.case.key == "a" and m.backtrader_s is not None:
        goal, ok = f">= {GOAL_RATIO_A:g}x backtrader", ours_rate / (m.bars / m.backtrader_s) >= GOAL_RATIO_A
    elif m.case.key == "c":
        goal, ok = f">= {GOAL_BARS_PER_S_C:,.0f} bars/s", ours_rate >= GOAL_BARS_PER_S_C
    else:
        return "-", "-"
    return goal, ("PASS" if ok else "BELOW") + (" (quick sizes)" if quick else "")


def print_report(results: list[Measurement], quick: bool, repeats: int, seed: int) -> None:
    print(f"\nbest of {repeats} runs per side, seed {seed}; bars = (session, symbol) cells")
    header = f"{'case':34} {'bars':>9} {'ours bars/s':>13} {'backtrader bars/s':>18} {'ratio':>8}  {'goal':27} verdict"
    print(header)
    print("-" * len(header))
    for m in results:
        ours_rate = m.bars / m.ours_s
        bt_rate = f"{m.bars / m.backtrader_s:18,.0f}" if m.backtrader_s else f"{'-':>18}"
        ratio = f"{ours_rate / (m.bars / m.backtrader_s):7.1f}x" if m.backtrader_s else f"{'-':>8}"
        goal, result = verdict(m, quick)
        print(f"{m.case.label:34} {m.bars:>9,} {ours_rate:13,.0f} {bt_rate} {ratio}  {goal:27} {result}")
    print("\nchecks")
    for m in results:
        bt_part = (
            f"backtrader fills {m.backtrader_fills}, identical {'yes' if m.identical_fills else 'NO'}"
            if m.backtrader_fills is not None
            else "backtrader not run"
        )
        seconds = f"ours {m.ours_s:.3f} s (signals {m.signals_s:.3f} s)" + (
            f", backtrader {m.backtrader_s:.3f} s" if m.backtrader_s else ""
        )
        print(f"  {m.case.label}: ours fills {m.ours_fills}, {bt_part}, rejections {m.rejections}; {seconds}")


def print_machine() -> None:
    print(
        f"machine: {platform.platform()} | cpu count {os.cpu_count()} | {platform.processor() or platform.machine()}\n"
        f"python {platform.python_version()} | numpy {np.__version__} | pandas {pd.__version__} | "
        f"backtrader {bt.__version__}"
    )


def profile_case(case: Case, seed: int, xnys: TradingCalendar, top: int = 25) -> None:
    frames = xnys_frames(case.n_symbols, case.n_bars, seed, xnys)
    panel = BarPanel.from_frames(frames, xnys)
    config = parity_config(CAPITAL_PER_SYMBOL * case.n_symbols, account_type="margin")
    profiler = cProfile.Profile()
    profiler.enable()
    run_ours(config, panel, xnys)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    print(f"\ncProfile of our engine on {case.label} (build_backtest + run), top {top} by tottime")
    print(out.getvalue().rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Bars/s of our engine vs backtrader (SMA 10/30, 100 shares, next-open fills, IB Fixed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (verdicts not meaningful)")
    parser.add_argument("--profile", action="store_true", help="also cProfile our engine on case (c)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; the best wall time is reported")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print("--repeats must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print_machine()
    cases = QUICK if args.quick else FULL
    xnys = TradingCalendar()
    results = []
    for case in cases:
        print(f"running {case.label} ...", file=sys.stderr, flush=True)
        results.append(measure(case, args.seed, args.repeats, xnys))
    print_report(results, args.quick, args.repeats, args.seed)
    if args.profile:
        profile_case(cases[-1], args.seed, xnys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
