"""Throughput benchmark (not a test): bars per second of our engine and of its peers, same data, same strategy.

    .venv/bin/python bench/backtest_throughput.py [--quick] [--profile] [--seed 42] [--repeats 3]

Peers: backtrader (always), backtesting.py (package ``backtesting``, a dev dependency; skipped with the reason if
it does not import) and vectorbt (optional: run only where it imports, otherwise a printed reason). vectorbt is
not a project dependency: pip resolves its newest release (1.2.0) only with pandas 3, outside the project's
pandas < 3; vectorbt 1.0.0 installs with pandas 2 but fails to import with the project's plotly 7 (it looks up
``scattermapbox``). To include it, install it beside the venv, not into it, and put that directory first:

    .venv/bin/pip install --no-deps --target /tmp/vbt_site vectorbt==1.0.0 numba llvmlite 'plotly<7' \\
        matplotlib ipywidgets ...   # the packages `pip install --dry-run vectorbt==1.0.0` lists as missing
    PYTHONPATH=/tmp/vbt_site .venv/bin/python bench/backtest_throughput.py

Every engine runs the strict-cross SMA 10/30 on exact means (``math.fsum(window) / period``), 100 shares per
entry, market orders filled at the next open, IB Fixed commissions, zero slippage, every limit set so it never
binds (``testkit.backtrader_ref.parity_config`` with a margin account and 100,000 of capital per symbol;
``StrictCrossSma`` on the backtrader side). Cases:

- (a) 1 symbol x 100,000 daily bars, all engines; goal: ours >= 25x backtrader and >= 2x backtesting.py;
- (b) 50 symbols x 2,520 daily bars, all engines (backtesting.py is single-symbol: 50 runs, times summed);
  reported: ours vs vectorbt where vectorbt imports;
- (c) 500 symbols x 2,520 daily bars, ours only; goal: >= 3,000,000 bars/s.

Timing, per engine, ``--repeats`` runs in this process (garbage collected before each): the median wall time is
the figure, min-max its spread. Ours is ``build_backtest(...)`` + ``run()`` (indicators included; the
``BarPanel`` is built beforehand); backtrader's the ``PandasData`` feeds + ``cerebro.run()``; backtesting.py's
``Backtest(...)`` + ``run()`` per symbol (its statistics included, its progress bar replaced by a plain
iterator); vectorbt's the signal arrays (our exact means, the same crosses) + ``Portfolio.from_signals`` after
one untimed warm-up call that compiles its numba kernels. A bar is one (session, symbol) cell. Every peer's
fills (date, symbol, side, quantity, price, commission) are compared with ours; a difference is printed as
``identical NO`` with the first differing fill. The peak RSS (``ru_maxrss``, the process high-water mark, so it
never decreases) is printed after each case.

How each peer expresses the rules:

- backtesting.py: ``self.I`` on ``Close`` with ``exact_rolling_mean``; ``buy(size=100)`` when flat,
  ``position.close()`` when long, nothing while an order is pending; ``trade_on_close=False`` (next open),
  ``spread=0``, ``hedging=False``, ``exclusive_orders=False`` (True would make a LONG while long close the
  position; our engine ignores it, and with at most one 100-share position the default already holds one
  position), ``finalize_trades=False`` (a position open at the end stays open, as in ours), cash 10**9
  (``margin=1``: a 100-share lot of a $2,500 synthetic price must never be refused). Commission is the callable
  ``ib_fixed(size, price)``, the same formula and operation order as ``execution.commissions.IbFixedCommission``
  with the config's parameters; backtesting.py charges it at entry and at exit on ``abs(size)`` shares, so the
  fills' commission column is that callable on each fill. Its statistics compute drawdown durations as
  nanosecond timedeltas, which overflow over case (a)'s 383 years of weekdays, so case (a) gets a RangeIndex and
  fills are dated through the bar numbers (``entry_bar``/``exit_bar``); (b) keeps its session dates.
- vectorbt: ``Portfolio.from_signals`` on the open prices with the signals shifted one bar (a close signal fills
  at the next open; one on the last bar never fills), ``size=100`` shares, long only, no accumulation,
  ``fixed_fees`` per bar = IB Fixed of 100 shares at that open (every order is exactly 100 shares), no slippage.

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
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from backtester.engine import BacktestResult, build_backtest
from core.config_models import AppConfig, IbFixedConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from strategy.base import BarArrays, crossed_above, crossed_below
from strategy.sma_crossover import SmaCrossover, exact_rolling_mean
from testkit.backtrader_ref import build_cerebro, pandas_feed, parity_config
from testkit.calendars import WeekdayCalendar

CAPITAL_PER_SYMBOL = 100_000.0
PEER_CASH = 1e9  # backtesting.py and vectorbt: margin 1, so cash must cover any 100-share lot
GOAL_RATIO_A_BACKTRADER = 25.0
GOAL_RATIO_A_BACKTESTING = 2.0
GOAL_BARS_PER_S_C = 3_000_000.0
FILL_KEYS = ["date", "symbol", "side", "quantity", "price", "commission"]
FAST, SLOW, SHARES = 10, 30, 100
BACKTRADER, BACKTESTING, VECTORBT = "backtrader", "backtesting.py", "vectorbt"
PEERS = (BACKTRADER, BACKTESTING, VECTORBT)


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    n_symbols: int
    n_bars: int
    peers: tuple[str, ...]

    @property
    def label(self) -> str:
        noun = "symbol" if self.n_symbols == 1 else "symbols"
        return f"({self.key}) {self.n_symbols:,} {noun} x {self.n_bars:,} bars"


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall times of the repeats of one engine on one case; the median is the figure, min-max the spread."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> str:
        return f"{min(self.samples):.3f}-{max(self.samples):.3f}"


@dataclass(frozen=True, slots=True)
class PeerRun:
    engine: str
    timing: Timing | None  # None: skipped
    fills: int | None
    mismatch: str | None  # None: fills identical to ours
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    case: Case
    bars: int
    ours: Timing
    signals: Timing
    ours_fills: int
    rejections: int
    peers: dict[str, PeerRun]
    peak_rss_mib: float


FULL = (
    Case("a", 1, 100_000, PEERS),
    Case("b", 50, 2_520, PEERS),
    Case("c", 500, 2_520, ()),
)
QUICK = (Case("a", 1, 3_000, PEERS), Case("b", 5, 300, PEERS), Case("c", 20, 300, ()))


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


def load_peer(name: str) -> tuple[ModuleType | None, str | None]:
    """The peer's module, or why it is not run (any import failure: vectorbt can fail on a plotly it dislikes)."""
    try:
        if name == BACKTESTING:
            import backtesting
            import backtesting.backtesting as core

            core._tqdm = lambda seq, **_: seq  # type: ignore[attr-defined]  # its progress bar is not the engine
            return backtesting, None
        import vectorbt

        return vectorbt, None
    except Exception as exc:  # any failure only means this optional peer is skipped
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        hint = " (optional, not a project dependency: see this script's docstring)" if name == VECTORBT else ""
        return None, f"not importable: {type(exc).__name__} {detail}{hint}"


def peer_version(loaded: Mapping[str, tuple[ModuleType | None, str | None]], name: str) -> str:
    module = loaded[name][0]
    return getattr(module, "__version__", "?") if module is not None else "absent"


def ib_fixed_commission(cfg: IbFixedConfig) -> Callable[[float, float], float]:
    """IB Fixed as backtesting.py's ``commission(size, price)`` callable, bit-identical to ours.

    ``execution.commissions.IbFixedCommission``'s formula and operation order (the minimum first, the percentage
    cap last); backtesting.py passes the signed order size at entry and the trade's size at exit, hence ``abs``.
    """
    per_share, minimum, fraction = cfg.per_share_usd, cfg.min_per_order_usd, cfg.max_pct_of_value / 100.0

    def commission(size: float, price: float) -> float:
        quantity = abs(size)
        if quantity <= 0:
            return 0.0
        return min(max(per_share * quantity, minimum), fraction * quantity * price)

    return commission


def backtesting_strategy(btp: ModuleType) -> type:
    """Strict-cross SMA for backtesting.py: exact means through ``self.I``, 100 shares, one position."""

    class StrictCrossSmaBtp(btp.Strategy):  # type: ignore[name-defined,misc]
        fast = FAST
        slow = SLOW
        size = SHARES

        def init(self) -> None:
            self.fast_ma = self.I(exact_rolling_mean, self.data.Close, self.fast, name="fast")
            self.slow_ma = self.I(exact_rolling_mean, self.data.Close, self.slow, name="slow")

        def next(self) -> None:
            if self.orders:  # our one-working-order-per-symbol rule (never binds with next-open fills)
                return
            f0, s0, f1, s1 = self.fast_ma[-1], self.slow_ma[-1], self.fast_ma[-2], self.slow_ma[-2]
            if f0 > s0 and f1 <= s1:
                if not self.position:
                    self.buy(size=self.size)
            elif f0 < s0 and f1 >= s1 and self.position:
                self.position.close()

    return StrictCrossSmaBtp


@dataclass(frozen=True, slots=True)
class BtpInput:
    symbol: str
    data: pd.DataFrame  # Open, High, Low, Close, Volume
    dates: pd.DatetimeIndex  # the session date of each bar number


def backtesting_inputs(frames: Mapping[str, pd.DataFrame], bar_numbers: bool) -> list[BtpInput]:
    """backtesting.py's capitalized frames; with ``bar_numbers`` a RangeIndex (see the module docstring)."""
    inputs = []
    for symbol in sorted(frames):
        frame = frames[symbol]
        data = frame.rename(columns=str.capitalize)
        if bar_numbers:
            data = data.reset_index(drop=True)
        inputs.append(BtpInput(symbol, data, pd.DatetimeIndex(frame.index)))
    return inputs


def run_backtesting(
    btp: ModuleType, strategy: type, inputs: list[BtpInput], commission: Callable[[float, float], float]
) -> pd.DataFrame:
    """One single-symbol ``Backtest(...).run()`` per input; the fills of all of them."""
    rows: list[dict[str, Any]] = []
    for item in inputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "some trades remain open" is the rule here (finalize_trades=False)
            stats = btp.Backtest(
                item.data, strategy, cash=PEER_CASH, spread=0.0, commission=commission, margin=1.0,
                trade_on_close=False, hedging=False, exclusive_orders=False, finalize_trades=False,
            ).run()  # fmt: skip
        done = stats._strategy
        for trade in (*done.closed_trades, *done.trades):
            rows.extend(trade_fills(item, trade, commission))
    return pd.DataFrame(rows, columns=FILL_KEYS)


def trade_fills(item: BtpInput, trade: Any, commission: Callable[[float, float], float]) -> list[dict[str, Any]]:
    """A backtesting.py trade as our fills: the entry, and the exit unless the trade is still open."""
    legs = [(trade.entry_bar, "BUY", trade.entry_price)]
    if trade.exit_bar is not None:
        legs.append((trade.exit_bar, "SELL", trade.exit_price))
    quantity = abs(int(trade.size))
    return [
        {"date": item.dates[bar], "symbol": item.symbol, "side": side, "quantity": quantity, "price": price,
         "commission": commission(trade.size, price)}
        for bar, side, price in legs
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class VbtInput:
    bars: BarArrays
    dates: pd.DatetimeIndex
    fees: np.ndarray  # IB Fixed of 100 shares at each open


def vectorbt_input(panel: BarPanel, cfg: IbFixedConfig) -> VbtInput:
    quantity, fraction = float(SHARES), cfg.max_pct_of_value / 100.0
    fees = np.minimum(max(cfg.per_share_usd * quantity, cfg.min_per_order_usd), fraction * quantity * panel.open)
    bars = BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)
    return VbtInput(bars, pd.DatetimeIndex(panel.dates), fees)


def run_vectorbt(vbt: ModuleType, params: Any, item: VbtInput) -> pd.DataFrame:
    """Our exact means and strict crosses, shifted one bar, into ``Portfolio.from_signals`` at the opens."""
    fast, slow = SmaCrossover(params).moving_averages(item.bars)
    entries, exits = np.zeros(fast.shape, dtype=bool), np.zeros(fast.shape, dtype=bool)
    entries[1:], exits[1:] = crossed_above(fast, slow)[:-1], crossed_below(fast, slow)[:-1]
    frame = lambda a: pd.DataFrame(a, index=item.dates, columns=list(item.bars.symbols))  # noqa: E731
    portfolio = vbt.Portfolio.from_signals(
        close=frame(item.bars.close), entries=frame(entries), exits=frame(exits), price=frame(item.bars.open),
        size=float(SHARES), size_type="amount", direction="longonly", accumulate=False, init_cash=PEER_CASH,
        fees=0.0, fixed_fees=frame(item.fees), slippage=0.0,
    )  # fmt: skip
    rec = portfolio.orders.values
    return pd.DataFrame(
        {
            "date": item.dates[rec["idx"]],
            "symbol": np.asarray(item.bars.symbols, dtype=object)[rec["col"]],
            "side": np.where(rec["side"] == 0, "BUY", "SELL"),
            "quantity": rec["size"],
            "price": rec["price"],
            "commission": rec["fees"],
        }
    )


def timed(repeats: int, func: Callable[[], Any]) -> tuple[Timing, Any]:
    """Wall time of each of ``repeats`` calls (garbage collected before each) and the last call's result."""
    samples, result = [], None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = func()
        samples.append(time.perf_counter() - started)
    return Timing(tuple(samples)), result


def canonical_fills(fills: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Fills as comparable rows (date, symbol, side, quantity, price, commission), sorted by date, symbol, side."""
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(fills["date"]).to_numpy(),
            "symbol": fills["symbol"].astype(str).to_numpy(),
            "side": fills["side"].astype(str).to_numpy(),
            "quantity": fills["quantity"].astype("int64").to_numpy(),
            "price": fills["price"].astype("float64").to_numpy(),
            "commission": fills["commission"].astype("float64").to_numpy(),
        }
    )
    frame = frame.sort_values(["date", "symbol", "side"], ignore_index=True, kind="stable")
    return list(frame.itertuples(index=False, name=None))


def fill_mismatch(ours: pd.DataFrame, theirs: pd.DataFrame) -> str | None:
    """None when both sides filled the same (date, symbol, side, quantity, price, commission) bit for bit;
    otherwise the counts and the first differing fill of each side."""
    a, b = canonical_fills(ours), canonical_fills(theirs)
    if a == b:
        return None
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    def show(rows: list[tuple[Any, ...]]) -> str:
        if first >= len(rows):
            return "none"
        date, symbol, side, quantity, price, commission = rows[first]
        return f"{pd.Timestamp(date).date()} {symbol} {side} {quantity} @ {price!r} comm {commission!r}"

    return f"{len(a)} fills vs {len(b)}; first difference at sorted fill {first}: ours {show(a)} | theirs {show(b)}"


@dataclass(frozen=True, slots=True)
class CaseData:
    frames: dict[str, pd.DataFrame]
    panel: BarPanel
    calendar: TradingCalendar | WeekdayCalendar
    config: AppConfig


def case_data(case: Case, seed: int, xnys: TradingCalendar) -> CaseData:
    calendar: TradingCalendar | WeekdayCalendar
    if case.key == "a":
        frames, calendar = random_walk_frames(case.n_bars, seed), WeekdayCalendar()
    else:
        frames, calendar = xnys_frames(case.n_symbols, case.n_bars, seed, xnys), xnys
    panel = BarPanel.from_frames(frames, calendar)  # type: ignore[arg-type]
    config = parity_config(CAPITAL_PER_SYMBOL * case.n_symbols, account_type="margin")
    return CaseData(frames, panel, calendar, config)


def peer_runner(engine: str, module: ModuleType, case: Case, data: CaseData) -> Callable[[], pd.DataFrame]:
    """A zero-argument run of one peer on the case, its inputs prepared (and vectorbt's kernels compiled)."""
    if engine == BACKTRADER:
        cash = CAPITAL_PER_SYMBOL * case.n_symbols
        return lambda: run_backtrader(data.frames, cash)
    cfg = data.config.costs.ib_fixed
    if engine == BACKTESTING:
        strategy, commission = backtesting_strategy(module), ib_fixed_commission(cfg)
        inputs = backtesting_inputs(data.frames, bar_numbers=case.key == "a")
        return lambda: run_backtesting(module, strategy, inputs, commission)
    params = data.config.strategies.sma_crossover.params
    run_vectorbt(module, params, vectorbt_input(data.panel.truncate(min(200, len(data.panel.dates))), cfg))  # warm-up
    item = vectorbt_input(data.panel, cfg)
    return lambda: run_vectorbt(module, params, item)


def run_peer(
    engine: str, case: Case, data: CaseData, repeats: int, ours_fills: pd.DataFrame, loaded: Mapping[str, Any]
) -> PeerRun:
    module, reason = loaded[engine]
    if module is None:
        return PeerRun(engine, None, None, None, skipped=reason)
    print(f"  {engine} ...", file=sys.stderr, flush=True)
    timing, fills = timed(repeats, peer_runner(engine, module, case, data))
    return PeerRun(engine, timing, len(fills), fill_mismatch(ours_fills, fills))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def measure(case: Case, seed: int, repeats: int, xnys: TradingCalendar, loaded: Mapping[str, Any]) -> Measurement:
    data = case_data(case, seed, xnys)
    panel = data.panel
    ours, result = timed(repeats, lambda: run_ours(data.config, panel, data.calendar))
    assert isinstance(result, BacktestResult)
    bars = BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)
    strategy = SmaCrossover(data.config.strategies.sma_crossover.params)
    signals, _ = timed(repeats, lambda: strategy.compute_signals(bars))
    peers = {engine: run_peer(engine, case, data, repeats, result.fills, loaded) for engine in case.peers}
    return Measurement(
        case=case,
        bars=panel.n_bars,
        ours=ours,
        signals=signals,
        ours_fills=len(result.fills),
        rejections=sum(result.rejections.values()),
        peers=peers,
        peak_rss_mib=peak_rss_mib(),
    )


def ratio(m: Measurement, engine: str) -> float | None:
    """Our speed over the peer's: the peer's median wall time over ours (None when the peer did not run)."""
    run = m.peers.get(engine)
    if run is None or run.timing is None:
        return None
    return run.timing.median / m.ours.median


def goal_lines(results: list[Measurement], quick: bool) -> list[str]:
    """The issue's verdicts on the medians: (a) both ratios, (b) ours vs vectorbt, (c) bars/s."""
    suffix = " (quick sizes)" if quick else ""
    mark = lambda ok: ("PASS" if ok else "BELOW") + suffix  # noqa: E731
    lines = []
    for m in results:
        if m.case.key == "a":
            oks = []
            for engine, goal in ((BACKTRADER, GOAL_RATIO_A_BACKTRADER), (BACKTESTING, GOAL_RATIO_A_BACKTESTING)):
                r = ratio(m, engine)
                if r is None:
                    lines.append(f"(a) ours >= {goal:g}x {engine}: not run ({engine} not importable)")
                    oks.append(False)
                    continue
                oks.append(r >= goal)
                lines.append(f"(a) ours >= {goal:g}x {engine}: {r:.1f}x  {mark(r >= goal)}")
            lines.append(f"(a) goal (both ratios): {mark(all(oks))}")
        elif m.case.key == "b":
            r = ratio(m, VECTORBT)
            detail = f"{r:.2f}x (no threshold set)" if r is not None else "not run (vectorbt not importable)"
            lines.append(f"(b) ours vs {VECTORBT}: {detail}")
        elif m.case.key == "c":
            rate = m.bars / m.ours.median
            lines.append(f"(c) ours >= {GOAL_BARS_PER_S_C:,.0f} bars/s: {rate:,.0f}  {mark(rate >= GOAL_BARS_PER_S_C)}")
    return lines


def table_rows(m: Measurement) -> list[str]:
    rows = [
        f"{m.case.label:30} {'ours':15} {m.bars:>9,} {m.ours.median:9.3f} {m.ours.spread:>13} "
        f"{m.bars / m.ours.median:12,.0f} {'-':>8} {m.ours_fills:>6}  -"
    ]
    for engine, run in m.peers.items():
        if run.timing is None:
            rows.append(f"{m.case.label:30} {engine:15} skipped (not importable, see above)")
            continue
        same = "yes" if run.mismatch is None else "NO"
        rows.append(
            f"{m.case.label:30} {engine:15} {m.bars:>9,} {run.timing.median:9.3f} {run.timing.spread:>13} "
            f"{m.bars / run.timing.median:12,.0f} {ratio(m, engine):7.2f}x {run.fills:>6}  identical {same}"
        )
    return rows


def print_report(results: list[Measurement], quick: bool, repeats: int, seed: int) -> None:
    print(f"\nmedian of {repeats} runs per engine (spread min-max s), seed {seed}; bars = (session, symbol) cells")
    header = (
        f"{'case':30} {'engine':15} {'bars':>9} {'median s':>9} {'min-max s':>13} {'bars/s':>12} {'ours x':>8} "
        f"{'fills':>6}  identical to ours"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        for row in table_rows(m):
            print(row)
    print("\ngoals (on the medians)")
    for line in goal_lines(results, quick):
        print(f"  {line}")
    print("\nchecks")
    for m in results:
        print(
            f"  {m.case.label}: ours fills {m.ours_fills}, rejections {m.rejections}, signals "
            f"{m.signals.median:.3f} s of ours {m.ours.median:.3f} s; peak RSS after the case {m.peak_rss_mib:,.0f} MiB"
        )
        for engine, run in m.peers.items():
            if run.mismatch is not None:
                print(f"    {engine} identical NO: {run.mismatch}")


def print_machine(loaded: Mapping[str, tuple[ModuleType | None, str | None]]) -> None:
    print(
        f"machine: {platform.platform()} | cpu count {os.cpu_count()} | {platform.processor() or platform.machine()}\n"
        f"python {platform.python_version()} | numpy {np.__version__} | pandas {pd.__version__} | "
        f"backtrader {bt.__version__} | backtesting {peer_version(loaded, BACKTESTING)} | "
        f"vectorbt {peer_version(loaded, VECTORBT)}\n"
        f"load average (1, 5, 15 min) at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes "
        "share the cores: compare ratios within a case rather than absolute rates across runs)"
    )
    for name in (BACKTESTING, VECTORBT):
        if loaded[name][1] is not None:
            print(f"skipping {name}: {loaded[name][1]}")


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
        description="Bars/s of our engine vs backtrader, backtesting.py and vectorbt (SMA 10/30, 100 shares, "
        "next-open fills, IB Fixed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run (verdicts not meaningful)")
    parser.add_argument("--profile", action="store_true", help="also cProfile our engine on case (c)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine; the median is reported")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print("--repeats must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loaded: dict[str, tuple[ModuleType | None, str | None]] = {BACKTRADER: (bt, None)}
    loaded.update({name: load_peer(name) for name in (BACKTESTING, VECTORBT)})
    print_machine(loaded)
    cases = QUICK if args.quick else FULL
    xnys = TradingCalendar()
    results = []
    for case in cases:
        print(f"running {case.label} ...", file=sys.stderr, flush=True)
        results.append(measure(case, args.seed, args.repeats, xnys, loaded))
    print_report(results, args.quick, args.repeats, args.seed)
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.profile:
        profile_case(cases[-1], args.seed, xnys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
