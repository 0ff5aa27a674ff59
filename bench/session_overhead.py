"""Session-overhead benchmark (not a test): what one timestamp costs our engine when nothing trades, as a + b*N.

    .venv/bin/python bench/session_overhead.py [--quick] [--seed 42] [--repeats 5] [--sessions 2520]

Why: with next-open fills most sessions of a backtest place no order, so the engine's floor is the cost of a
session in which only the market event is dispatched (the portfolio marks to market, the strategies look up
their signal row) and its growth with the number of symbols N. Issue 17's goal: a <= 2 us per session and
b <= 20 ns per symbol and session.

Method: one seeded ``data.synthetic.generate_market`` universe (XNYS sessions from 2010-01-04; a symbol's path
depends only on the seed and its name, so every N uses the first N symbols of the same market), N in
{1, 10, 50, 200, 500} (``--quick``: {1, 5, 20} x 300 sessions, for a smoke run only). For each N a backtest is
built with ``backtester.engine.build_backtest`` exactly as ``bench/backtest_throughput.py`` builds ours
(``testkit.backtrader_ref.parity_config``, margin account, 100,000 of capital per symbol) but with
``NeverTrades``, a strategy whose signal array is all zeros, so no order is ever placed. Only ``run()`` is
timed (it includes ``prepare``, the per-session loop and the result frames), ``--repeats`` times on a freshly
built backtest each (garbage collected before each); the median is the figure, min-max its spread.

Fit: ordinary least squares of ``median run() / sessions`` on N gives a (us per session) and b (ns per symbol
and session): the goal's definition. The per-run constant (prepare, result frames) is spread over the sessions
there; a second line separates it by also timing the first half of the sessions and fitting
``run() = c + sessions * (a' + b' * N)`` over both lengths.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtester.engine import Backtest, build_backtest
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from strategy.base import BarArrays, SignalArrays, Strategy
from testkit.backtrader_ref import parity_config

CAPITAL_PER_SYMBOL = 100_000.0
GOAL_A_US = 2.0
GOAL_B_NS = 20.0
FULL_SYMBOLS = (1, 10, 50, 200, 500)
QUICK_SYMBOLS = (1, 5, 20)
FULL_SESSIONS = 2_520
QUICK_SESSIONS = 300
START = "2010-01-04"


class NeverTrades(Strategy):
    """Emits no signal, ever: the session loop runs with nothing to do but the market event itself."""

    def __init__(self, strategy_id: str = "never_trades") -> None:
        super().__init__(strategy_id)

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        return SignalArrays(
            codes=np.zeros(bars.close.shape, dtype=np.int8), stop_distance=np.full(bars.close.shape, np.nan)
        )


@dataclass(frozen=True, slots=True)
class Point:
    n_symbols: int
    sessions: int
    samples: tuple[float, ...]  # run() wall seconds

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples)

    @property
    def per_session_us(self) -> float:
        return self.median_s / self.sessions * 1e6


def market(n_symbols: int, sessions: int, seed: int, calendar: TradingCalendar) -> dict[str, pd.DataFrame]:
    """``generate_market`` over exactly ``sessions`` XNYS sessions from 2010-01-04."""
    end = calendar.sessions(START, calendar.last_session)[sessions - 1]
    return generate_market(n_symbols, START, str(end.date()), seed, calendar)


def build(panel: BarPanel, calendar: TradingCalendar) -> Backtest:
    config = parity_config(CAPITAL_PER_SYMBOL * len(panel.symbols), account_type="margin")
    return build_backtest(config, panel, [NeverTrades()], calendar)


def time_runs(panel: BarPanel, calendar: TradingCalendar, repeats: int) -> tuple[float, ...]:
    """``run()`` wall times on freshly built backtests; fails if anything traded (the premise of the figure)."""
    samples = []
    for _ in range(repeats):
        backtest = build(panel, calendar)
        gc.collect()
        started = time.perf_counter()
        result = backtest.run()
        samples.append(time.perf_counter() - started)
        if len(result.fills) or sum(result.rejections.values()):
            raise RuntimeError(f"NeverTrades traded: {len(result.fills)} fills, rejections {result.rejections}")
    return tuple(samples)


def measure(
    symbol_counts: tuple[int, ...], sessions: int, seed: int, repeats: int, calendar: TradingCalendar
) -> list[Point]:
    """Points at every N for the full length and for its first half (the second fit needs two lengths)."""
    frames = market(max(symbol_counts), sessions, seed, calendar)
    names = sorted(frames)
    points = []
    for n in symbol_counts:
        panel = BarPanel.from_frames({name: frames[name] for name in names[:n]}, calendar)
        print(f"N = {n} ...", file=sys.stderr, flush=True)
        for length in (sessions, sessions // 2):
            points.append(Point(n, length, time_runs(panel.truncate(length), calendar, repeats)))
    return points


def fit_per_session(points: list[Point]) -> tuple[float, float]:
    """(a us, b ns/symbol): least squares of median run()/sessions = a + b*N over the full-length points."""
    full = [p for p in points if p.sessions == max(q.sessions for q in points)]
    x = np.array([p.n_symbols for p in full], dtype=float)
    y = np.array([p.median_s / p.sessions for p in full])
    b, a = np.polyfit(x, y, 1)
    return a * 1e6, b * 1e9


def fit_with_constant(points: list[Point]) -> tuple[float, float, float]:
    """(c ms, a' us, b' ns/symbol): least squares of median run() = c + sessions * (a' + b' * N), all points."""
    design = np.array([[1.0, p.sessions, p.sessions * p.n_symbols] for p in points])
    y = np.array([p.median_s for p in points])
    (c, a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    return c * 1e3, a * 1e6, b * 1e9


def print_report(points: list[Point], repeats: int, seed: int, quick: bool) -> None:
    print(f"\nmedian of {repeats} run() per point (spread min-max s), seed {seed}; strategy NeverTrades (no orders)")
    header = f"{'symbols':>8} {'sessions':>9} {'run median s':>13} {'min-max s':>15} {'us/session':>11} {'ns/bar':>8}"
    print(header)
    print("-" * len(header))
    for p in points:
        spread = f"{min(p.samples):.4f}-{max(p.samples):.4f}"
        per_bar = p.median_s / (p.sessions * p.n_symbols) * 1e9
        timing = f"{p.median_s:13.4f} {spread:>15}"
        print(f"{p.n_symbols:8,} {p.sessions:9,} {timing} {p.per_session_us:11.2f} {per_bar:8.1f}")
    a, b = fit_per_session(points)
    full = max(p.sessions for p in points)
    residuals = [p.per_session_us - (a + b * p.n_symbols / 1e3) for p in points if p.sessions == full]
    suffix = " (quick sizes)" if quick else ""
    verdict = lambda ok: ("PASS" if ok else "ABOVE") + suffix  # noqa: E731
    print(f"\nfit over the {full:,}-session points: time_per_session = a + b*N")
    print(f"  a = {a:.2f} us per session   (goal <= {GOAL_A_US:g} us)  {verdict(a <= GOAL_A_US)}")
    print(f"  b = {b:.1f} ns per symbol     (goal <= {GOAL_B_NS:g} ns/symbol)  {verdict(b <= GOAL_B_NS)}")
    print(f"  residuals (us/session, by N): {', '.join(f'{r:+.2f}' for r in residuals)}")
    c, a2, b2 = fit_with_constant(points)
    print("with the per-run constant separated (both lengths): run() = c + sessions * (a' + b'*N)")
    print(f"  c = {c:.2f} ms per run, a' = {a2:.2f} us per session, b' = {b2:.1f} ns per symbol")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Cost of a session with no orders in our engine, fitted as a + b*N symbols.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (verdicts not meaningful)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic market")
    parser.add_argument("--repeats", type=int, default=5, help="run() calls per point; the median is reported")
    parser.add_argument("--sessions", type=int, default=None, help=f"sessions per run (default {FULL_SESSIONS:,})")
    args = parser.parse_args(argv)
    sessions = args.sessions or (QUICK_SESSIONS if args.quick else FULL_SESSIONS)
    if args.repeats < 1 or sessions < 4:
        print("--repeats must be >= 1 and --sessions >= 4", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(
        f"machine: {platform.platform()} | cpu count {os.cpu_count()} | {platform.processor() or platform.machine()}"
        f"\npython {platform.python_version()} | numpy {np.__version__} | pandas {pd.__version__}"
        f"\nload average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    symbol_counts = QUICK_SYMBOLS if args.quick else FULL_SYMBOLS
    points = measure(symbol_counts, sessions, args.seed, args.repeats, TradingCalendar())
    print_report(points, args.repeats, args.seed, args.quick)
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
