"""Session-overhead benchmark (not a test): what one timestamp costs our engine when nothing trades, as a + b*N.

    .venv/bin/python bench/session_overhead.py [--quick] [--seed 42] [--repeats 9] [--sessions 2520]

Why: with next-open fills most sessions of a backtest place no order, so the engine's floor is the cost of a
session in which only the market event is dispatched (the portfolio marks to market, the strategies look up
their signal row) and its growth with the number of symbols N. Issue 17's goal: a <= 2 us per session and
b <= 20 ns per symbol and session.

Method: one seeded ``data.synthetic.generate_market`` universe (XNYS sessions from 2010-01-04; a symbol's path
depends only on the seed and its name, so every N uses the first N symbols of the same market), N in
{1, 10, 50, 200, 500} (``--quick``: {1, 5, 20} x 300 sessions, for a smoke run only). For each N a backtest is
built with ``backtester.engine.build_backtest`` exactly as ``bench/backtest_throughput.py`` builds ours
(``testkit.backtrader_ref.parity_config``, margin account, 100,000 of capital per symbol), with one of two
strategies ("books"):

- flat: ``NeverTrades``, a signal array of zeros: no order, no position, ever (the goal's figure);
- held: ``BuysOnceAndHolds``, LONG on every symbol at the first close and nothing after: the entries fill at
  the second session's open, then every session marks N positions and places no order (what a backtest that
  holds positions pays per session besides its orders).

Only ``run()`` is timed (it includes ``prepare``, the per-session loop and the result frames), ``--repeats``
times on a freshly built backtest each (garbage collected before each); the median is the figure, min-max its
spread. Each run checks its fills (none; exactly N) so a figure never silently includes trading.

Fit, per book: ordinary least squares of ``median run() / sessions`` on N at the full length gives a (us per
session) and b (ns per symbol and session): the goal's definition, where the per-run cost (prepare, result
frames, the held book's N entries) is spread over the sessions. A second fit separates it: the first half of
the sessions is timed too and ``run() = c + d*N + sessions * (a' + b'*N)`` is fitted over both lengths; its a'
and b' are what one more timestamp costs, judged against the same goal (both verdicts are printed).
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
from strategy.base import LONG, BarArrays, SignalArrays, Strategy
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


class BuysOnceAndHolds(NeverTrades):
    """LONG on every symbol at the first close, then nothing: after session 1 every session has N positions
    to mark and no order (the same book a long-held crossover carries, without its orders)."""

    def __init__(self) -> None:
        super().__init__("buys_once_and_holds")

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        signals = super().compute_signals(bars)
        signals.codes[0, :] = LONG
        return signals


BOOKS: dict[str, type[NeverTrades]] = {"flat": NeverTrades, "held": BuysOnceAndHolds}


@dataclass(frozen=True, slots=True)
class Point:
    book: str
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


def build(panel: BarPanel, calendar: TradingCalendar, book: str) -> Backtest:
    config = parity_config(CAPITAL_PER_SYMBOL * len(panel.symbols), account_type="margin")
    return build_backtest(config, panel, [BOOKS[book]()], calendar)


def time_runs(panel: BarPanel, calendar: TradingCalendar, book: str, repeats: int) -> tuple[float, ...]:
    """``run()`` wall times on freshly built backtests; fails unless the book traded as its premise says
    (flat: no fill at all; held: exactly one entry fill per symbol, at the second session's open)."""
    samples = []
    expected = 0 if book == "flat" else len(panel.symbols)
    for _ in range(repeats):
        backtest = build(panel, calendar, book)
        gc.collect()
        started = time.perf_counter()
        result = backtest.run()
        samples.append(time.perf_counter() - started)
        if len(result.fills) != expected or sum(result.rejections.values()):
            raise RuntimeError(f"{book}: {len(result.fills)} fills (expected {expected}), {result.rejections}")
    return tuple(samples)


def measure(
    symbol_counts: tuple[int, ...], sessions: int, seed: int, repeats: int, calendar: TradingCalendar
) -> list[Point]:
    """Points of both books at every N, for the full length and for its first half (the second fit needs two)."""
    frames = market(max(symbol_counts), sessions, seed, calendar)
    names = sorted(frames)
    for book in BOOKS:  # untimed: first calls (imports, caches) out of the first point
        time_runs(BarPanel.from_frames({names[0]: frames[names[0]]}, calendar), calendar, book, 1)
    points = []
    for n in symbol_counts:
        panel = BarPanel.from_frames({name: frames[name] for name in names[:n]}, calendar)
        print(f"N = {n} ...", file=sys.stderr, flush=True)
        for book in BOOKS:
            for length in (sessions, sessions // 2):
                points.append(Point(book, n, length, time_runs(panel.truncate(length), calendar, book, repeats)))
    return points


def fit_per_session(points: list[Point]) -> tuple[float, float]:
    """(a us, b ns/symbol): least squares of median run()/sessions = a + b*N over the full-length points."""
    full = [p for p in points if p.sessions == max(q.sessions for q in points)]
    x = np.array([p.n_symbols for p in full], dtype=float)
    y = np.array([p.median_s / p.sessions for p in full])
    b, a = np.polyfit(x, y, 1)
    return a * 1e6, b * 1e9


def fit_with_constant(points: list[Point]) -> tuple[float, float, float, float]:
    """(c ms, d us/symbol, a' us, b' ns/symbol): least squares of median run() = c + d*N + sessions * (a' + b'*N)
    over both lengths; c + d*N is what a run pays once (prepare, the result frames, the held book's entries)."""
    design = np.array([[1.0, p.n_symbols, p.sessions, p.sessions * p.n_symbols] for p in points])
    y = np.array([p.median_s for p in points])
    (c, d, a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    return c * 1e3, d * 1e6, a * 1e6, b * 1e9


def print_table(points: list[Point], repeats: int, seed: int) -> None:
    print(f"\nmedian of {repeats} run() per point (spread min-max s), seed {seed}; no order after the first session")
    header = (
        f"{'book':5} {'symbols':>8} {'sessions':>9} {'run median s':>13} {'min-max s':>15} {'us/session':>11} "
        f"{'ns/bar':>8}"
    )
    print(header)
    print("-" * len(header))
    for p in points:
        spread = f"{min(p.samples):.4f}-{max(p.samples):.4f}"
        per_bar = p.median_s / (p.sessions * p.n_symbols) * 1e9
        timing = f"{p.median_s:13.4f} {spread:>15}"
        print(f"{p.book:5} {p.n_symbols:8,} {p.sessions:9,} {timing} {p.per_session_us:11.2f} {per_bar:8.1f}")


def print_fits(book: str, points: list[Point], quick: bool) -> None:
    """The goal's fit (run()/sessions on N at the full length) and the fit with the per-run cost separated."""
    a, b = fit_per_session(points)
    full = max(p.sessions for p in points)
    residuals = [p.per_session_us - (a + b * p.n_symbols / 1e3) for p in points if p.sessions == full]
    suffix = " (quick sizes)" if quick else ""
    verdict = lambda ok: ("PASS" if ok else "ABOVE") + suffix  # noqa: E731
    what = "NeverTrades, the goal's figure" if book == "flat" else "BuysOnceAndHolds, N positions marked"
    print(f"\nbook {book} ({what}), fit over the {full:,}-session points: time_per_session = a + b*N")
    print(f"  {book}: a = {a:.2f} us per session   (goal <= {GOAL_A_US:g} us)  {verdict(a <= GOAL_A_US)}")
    print(f"  {book}: b = {b:.1f} ns per symbol     (goal <= {GOAL_B_NS:g} ns/symbol)  {verdict(b <= GOAL_B_NS)}")
    print(f"  {book}: residuals (us/session, by N): {', '.join(f'{r:+.2f}' for r in residuals)}")
    c, d, a2, b2 = fit_with_constant(points)
    print(f"  {book}: per-run cost separated (both lengths): run() = c + d*N + sessions * (a' + b'*N)")
    print(f"  {book}: c = {c:.2f} ms, d = {d:.2f} us/symbol, a' = {a2:.2f} us per session, b' = {b2:.1f} ns per symbol")
    print(f"  {book}: marginal cost of a timestamp (a', b'): {verdict(a2 <= GOAL_A_US and b2 <= GOAL_B_NS)} "
          f"against a <= {GOAL_A_US:g} us, b <= {GOAL_B_NS:g} ns/symbol")


def print_report(points: list[Point], repeats: int, seed: int, quick: bool) -> None:
    print_table(points, repeats, seed)
    for book in BOOKS:
        print_fits(book, [p for p in points if p.book == book], quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Cost of a session with no orders in our engine, fitted as a + b*N symbols.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (verdicts not meaningful)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic market")
    parser.add_argument("--repeats", type=int, default=9, help="run() calls per point; the median is reported")
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
