"""Performance metrics shared by the backtester and the live performance tracker.

Both compute their numbers with these functions so a backtest tear sheet and the live tracker can never disagree
on what "Sharpe" or "max drawdown" means. Everything here is a pure function over pandas/numpy: no clock, no I/O.

Conventions a caller must know:

- Returns, drawdowns, volatility, exposure and win rate are fractions (0.23 means 23 %), never percents. The one
  exception is the ``return_pct`` column of a trades frame, which follows the repo's unit rule (``_pct`` is percent).
- Daily returns are simple returns between consecutive equity points; ``initial_capital`` is only the base of
  ``total_return`` and ``cagr`` (it may differ from the first equity point by day-one costs).
- Degenerate inputs never raise. Counts and sums that are empty are 0 / 0.0; ratios that are undefined are nan
  (``float("nan")``); ``profit_factor`` is ``inf`` when there are wins and no losses. Malformed frames (a non-empty
  frame missing a required column, an unknown side) are programming errors and raise ``ValueError``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.calendar import NS_PER_DAY, floor_to_day_ns

log = logging.getLogger(__name__)

TRADE_COLUMNS: tuple[str, ...] = (
    "symbol", "entry_date", "exit_date", "quantity", "entry_price", "exit_price",
    "pnl", "return_pct", "commission", "bars_held",
)
FILL_COLUMNS: tuple[str, ...] = ("date", "symbol", "side", "quantity", "price", "commission", "slippage_cost")
METRIC_KEYS: tuple[str, ...] = (
    "initial_capital", "final_equity", "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_duration_days", "n_trades", "win_rate", "profit_factor", "exposure", "turnover",
    "commissions", "slippage_cost", "avg_trade_pnl", "best_day", "worst_day",
)
DAYS_PER_YEAR = 365.25
_ZERO_STD = 1e-12  # below this a return series is treated as constant (float noise, not risk)
_NAN = float("nan")
_FillDate = pd.Timestamp | int  # a Timestamp on the general path, epoch nanoseconds on the numpy path
_TradeRow = tuple[str, _FillDate, _FillDate, float, float, float, float, float, float]  # TRADE_COLUMNS[:-1]
_NAIVE_NS = np.dtype("datetime64[ns]")
_NAT_NS = np.iinfo(np.int64).min  # NaT as epoch nanoseconds
# numpy kinds whose ndarray.tolist() yields exactly the scalars that iterating the Series yields
_PLAIN_KINDS = "biufO"


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    fills: pd.DataFrame,
    initial_capital: float,
    gross_exposure: pd.Series | None = None,
    risk_free_rate_pct: float = 0.0,
    periods_per_year: int = 252,
) -> dict[str, float | int]:
    """Return the standard metric set, keys in ``METRIC_KEYS`` order.

    ``equity`` is equity at each session close (tz-naive DatetimeIndex); ``trades`` is the round-trip frame
    (``TRADE_COLUMNS``, see ``round_trips_from_fills``); ``fills`` has ``FILL_COLUMNS``. ``risk_free_rate_pct`` is an
    annual percent (2.0 = 2 %), compounded down to one period. Values for degenerate input:

    - fewer than 2 equity points: volatility, Sharpe, Sortino, CAGR, best/worst day are nan; drawdown 0.0.
    - zero volatility: ``annual_volatility`` 0.0, ``sharpe`` nan; no downside: ``sortino`` nan; no drawdown:
      ``calmar`` nan.
    - no trades: ``n_trades`` 0, ``profit_factor`` 0.0, ``win_rate`` and ``avg_trade_pnl`` nan.
    - no fills: ``turnover``, ``commissions``, ``slippage_cost`` 0.0.
    - ``exposure`` without ``gross_exposure`` is the fraction of sessions at whose close a round trip was open
      (entry_date <= day < exit_date); positions still open at the end are invisible to it, so pass
      ``gross_exposure`` whenever the caller has it.

    The arithmetic runs in numpy on the cleaned equity values, in the same order of float operations as the
    pandas expressions it replaced (a sweep computes this once per trial; pandas' per-call overhead was ~3 ms).
    """
    values, dates = _clean_equity_values(equity)
    returns = _simple_returns(values)
    years = _span_years(dates)
    final_equity = float(values[-1]) if len(values) else float(initial_capital)
    total_return = final_equity / initial_capital - 1.0 if initial_capital > 0 else _NAN
    cagr = _cagr(initial_capital, final_equity, years)
    max_drawdown = _max_drawdown(values)
    metrics: dict[str, float | int] = {
        "initial_capital": float(initial_capital),
        "final_equity": final_equity,
        "total_return": total_return,
        "cagr": cagr,
        **_risk_ratios(returns, risk_free_rate_pct, periods_per_year),
        "calmar": cagr / max_drawdown if max_drawdown > 0 and math.isfinite(cagr) else _NAN,
        "max_drawdown": max_drawdown,
        "max_drawdown_duration_days": _max_drawdown_duration_days(values, dates),
        **_trade_stats(trades),
        "exposure": _exposure(values, dates, trades, gross_exposure),
        **_fill_stats(fills, values, years),
        "best_day": float(returns.max()) if len(returns) else _NAN,
        "worst_day": float(returns.min()) if len(returns) else _NAN,
    }
    return {key: metrics[key] for key in METRIC_KEYS}


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Fraction below the running peak at each point (0.0 at a new high, -0.1 when 10 % under it)."""
    eq = _clean_equity(equity)
    drawdown = (eq / eq.cummax() - 1.0).clip(upper=0.0)
    return drawdown.rename("drawdown")


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Compounded return per calendar month: rows are years, columns the months 1..12 (nan where no data).

    Each month is measured from the previous month's last equity point to its own; the first month starts from
    the first equity point, so compounding every cell reproduces ``equity[-1] / equity[0] - 1``.
    """
    eq = _clean_equity(equity)
    months = list(range(1, 13))
    if eq.empty:
        return pd.DataFrame(columns=pd.Index(months, name="month"), index=pd.Index([], name="year"), dtype=float)
    month_end = eq.groupby([eq.index.year, eq.index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = eq.iloc[0]
    table = (month_end / previous - 1.0).unstack()
    table = table.reindex(columns=months)
    table.index.name, table.columns.name = "year", "month"
    return table.astype(float)


def round_trips_from_fills(fills: pd.DataFrame, sessions: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Match fills FIFO per symbol into round trips (``TRADE_COLUMNS``), in the order they closed.

    A fill first closes the oldest opposite lots (partial closes split a lot), and whatever is left opens a new lot
    in its own direction, so a flip through zero yields one closed round trip and one new open lot. A fill's
    commission is split pro-rata by quantity across the round trips it closes and the lot it opens; a lot's entry
    commission follows its quantity into the round trips that close it. ``pnl`` is net of both commissions, so the
    round trips' pnl sums to the fills' realised cash P&L once every symbol is flat. Lots still open at the end are
    not reported. ``bars_held`` counts sessions from entry to exit using ``sessions`` when given (pass the
    backtest's session index), else numpy business days (no holiday calendar).

    A backtest's fills (tz-naive ``datetime64[ns]`` dates, plain numpy columns) take a numpy path that gives the
    same frame as the general path at a fraction of the cost; anything else (tz-aware or object dates, extension
    dtypes) takes the general path.
    """
    if fills.empty:
        return _empty_trades()
    _require_columns(fills, FILL_COLUMNS[:-1], "fills")
    if _has_numpy_fill_columns(fills):
        return _round_trips_numpy(fills, sessions)
    return _round_trips_general(fills, sessions)


def _round_trips_general(fills: pd.DataFrame, sessions: pd.DatetimeIndex | None) -> pd.DataFrame:
    """Any fills frame pandas can sort by date: dates become Timestamps one fill at a time."""
    ordered = fills.sort_values("date", kind="stable")
    rows = _match_fifo(
        ordered["date"], ordered["symbol"], ordered["side"], ordered["quantity"], ordered["price"],
        ordered["commission"], to_date=pd.Timestamp,
    )
    if not rows:
        return _empty_trades()
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS[:-1]))  # same inference as a list of dicts
    trades["bars_held"] = _bars_held(trades["entry_date"], trades["exit_date"], sessions)
    return trades


def _has_numpy_fill_columns(fills: pd.DataFrame) -> bool:
    """True when the numpy path gives the general path's frame: naive ns dates without NaT, plain numpy columns.

    Integer or float quantities only, so the numpy path knows the dtype pandas would infer for ``quantity``.
    """
    if not fills.columns.is_unique or fills["date"].dtype != _NAIVE_NS:
        return False
    if not _is_numpy_kind(fills["quantity"], "if"):
        return False
    if not all(_is_numpy_kind(fills[column], _PLAIN_KINDS) for column in ("symbol", "side", "price", "commission")):
        return False
    return not bool((fills["date"].to_numpy().view(np.int64) == _NAT_NS).any())


def _is_numpy_kind(column: pd.Series, kinds: str) -> bool:
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in kinds


def _round_trips_numpy(fills: pd.DataFrame, sessions: pd.DatetimeIndex | None) -> pd.DataFrame:
    """The general path on numpy values: dates stay int64 nanoseconds and the frame is built column by column.

    Why: a sweep trial's ~100 fills cost ~2 ms through pandas (sorting the whole frame, one Timestamp per fill, a
    frame inferred from a list of Python objects, three ``normalize()`` calls for ``bars_held``); on the values
    what is left is the FIFO loop and the frame's construction (~0.6 ms).
    """
    date_ns = fills["date"].to_numpy().view(np.int64)
    order = np.argsort(date_ns, kind="stable")  # a stable sort: the same order as sort_values(kind="stable")
    columns = [fills[name].to_numpy()[order].tolist() for name in ("symbol", "side", "quantity", "price", "commission")]
    rows = _match_fifo(date_ns[order].tolist(), *columns, to_date=int)
    if not rows:
        return _empty_trades()
    quantity_dtype = np.int64 if fills["quantity"].dtype.kind == "i" else np.float64
    return _trades_frame_from_ns_rows(rows, quantity_dtype, sessions)


def _trades_frame_from_ns_rows(
    rows: list[_TradeRow], quantity_dtype: type, sessions: pd.DatetimeIndex | None
) -> pd.DataFrame:
    """The frame ``pd.DataFrame(rows)`` would infer (Python ints are int64, floats float64), without inferring."""
    symbol, entry_ns, exit_ns, quantity, *float_columns = zip(*rows, strict=True)
    entry_ns_values = np.array(entry_ns, dtype=np.int64)
    exit_ns_values = np.array(exit_ns, dtype=np.int64)
    data: dict[str, object] = {
        "symbol": list(symbol),
        "entry_date": entry_ns_values.view(_NAIVE_NS),
        "exit_date": exit_ns_values.view(_NAIVE_NS),
        "quantity": np.array(quantity, dtype=quantity_dtype),
    }
    for name, values in zip(TRADE_COLUMNS[4:-1], float_columns, strict=True):
        data[name] = np.array(values, dtype=np.float64)
    data["bars_held"] = _bars_held_ns(entry_ns_values, exit_ns_values, sessions)
    return pd.DataFrame(data, copy=False)  # the arrays are ours: not copying them into blocks saves ~0.1 ms


def _match_fifo(
    dates: Iterable[object],
    symbols: Iterable[object],
    sides: Iterable[object],
    quantities: Iterable[float],
    prices: Iterable[float],
    commissions: Iterable[float],
    to_date: Callable[[object], _FillDate],
) -> list[_TradeRow]:
    """Run the date-ordered fills through per-symbol FIFO lots; return the closed round trips in closing order."""
    open_lots: dict[str, deque[_Lot]] = {}
    rows: list[_TradeRow] = []
    for date, symbol, side, quantity, price, commission in zip(
        dates, symbols, sides, quantities, prices, commissions, strict=True
    ):
        signed_quantity = _signed_quantity(side, quantity)
        if signed_quantity == 0:
            continue
        lots = open_lots.setdefault(str(symbol), deque())
        rows.extend(_apply_fill(lots, str(symbol), to_date(date), signed_quantity, float(price), float(commission)))
    still_open = sum(len(lots) for lots in open_lots.values())
    if still_open:
        log.debug("event=open_lots_not_reported count=%d", still_open)
    return rows


@dataclass(slots=True)
class _Lot:
    """An open FIFO lot: signed quantity still open and the entry commission still attributable to it."""

    quantity: float
    entry_date: _FillDate
    entry_price: float
    commission: float


def _apply_fill(
    lots: deque[_Lot], symbol: str, date: _FillDate, signed_quantity: float, price: float, commission: float
) -> list[_TradeRow]:
    """Close opposite lots oldest first, open a lot with the rest; return the round trips closed."""
    direction = 1 if signed_quantity > 0 else -1
    remaining = abs(signed_quantity)
    commission_left = commission
    rows: list[_TradeRow] = []
    while remaining > 0 and lots and lots[0].quantity * direction < 0:
        lot = lots[0]
        lot_size = abs(lot.quantity)
        closed = min(lot_size, remaining)
        entry_commission = lot.commission * closed / lot_size
        exit_commission = commission_left * closed / remaining  # remaining before this close: remainder-exact
        lot.commission -= entry_commission
        lot.quantity += direction * closed
        commission_left -= exit_commission
        remaining -= closed
        if lot.quantity == 0:
            lots.popleft()
        signed_closed = -direction * closed
        rows.append(_round_trip(symbol, lot, signed_closed, date, price, entry_commission + exit_commission))
    if remaining > 0:
        lots.append(_Lot(direction * remaining, date, price, commission_left))
    return rows


def _round_trip(
    symbol: str, lot: _Lot, signed_quantity: float, exit_date: _FillDate, exit_price: float, commission: float
) -> _TradeRow:
    """One ``TRADE_COLUMNS[:-1]`` row (a tuple: both paths build their frame from it)."""
    pnl = signed_quantity * (exit_price - lot.entry_price) - commission
    notional = abs(signed_quantity) * lot.entry_price
    return_pct = pnl / notional * 100.0 if notional > 0 else _NAN
    return (symbol, lot.entry_date, exit_date, signed_quantity, lot.entry_price, exit_price, pnl, return_pct,
            commission)


def _signed_quantity(side: object, quantity: float) -> float:
    """+quantity for a buy, -quantity for a sell; accepts "BUY"/"SELL" strings or an enum with that value."""
    side_name = str(getattr(side, "value", side)).upper()
    if quantity < 0:
        raise ValueError(f"fill quantity must be positive with the direction in 'side' (got {quantity!r})")
    if side_name == "BUY":
        return quantity
    if side_name == "SELL":
        return -quantity
    raise ValueError(f"fill side must be 'BUY' or 'SELL' (got {side!r})")


def _bars_held(
    entry: pd.Series | np.ndarray, exit_: pd.Series | np.ndarray, sessions: pd.DatetimeIndex | None
) -> np.ndarray:
    entry_dates = pd.DatetimeIndex(entry).normalize()
    exit_dates = pd.DatetimeIndex(exit_).normalize()
    if sessions is not None:
        session_days = pd.DatetimeIndex(sessions).normalize()
        return session_days.searchsorted(exit_dates) - session_days.searchsorted(entry_dates)
    return np.busday_count(entry_dates.values.astype("datetime64[D]"), exit_dates.values.astype("datetime64[D]"))


def _bars_held_ns(entry_ns: np.ndarray, exit_ns: np.ndarray, sessions: pd.DatetimeIndex | None) -> np.ndarray:
    """``_bars_held`` on epoch nanoseconds: floor to midnight in numpy instead of ``DatetimeIndex.normalize()``
    (~0.2 ms on a two-year session index, most of it inferring a freq nobody reads).

    Sessions that are not a NaT-free tz-naive ns ``DatetimeIndex`` go through ``_bars_held``.
    """
    if sessions is not None and not _is_naive_ns_index(sessions):
        return _bars_held(entry_ns.view(_NAIVE_NS), exit_ns.view(_NAIVE_NS), sessions)
    entry_day_ns, exit_day_ns = floor_to_day_ns(entry_ns), floor_to_day_ns(exit_ns)
    if sessions is None:
        return np.busday_count((entry_day_ns // NS_PER_DAY).view("datetime64[D]"),
                               (exit_day_ns // NS_PER_DAY).view("datetime64[D]"))
    session_day_ns = floor_to_day_ns(sessions.asi8)
    return np.searchsorted(session_day_ns, exit_day_ns) - np.searchsorted(session_day_ns, entry_day_ns)


def _is_naive_ns_index(index: object) -> bool:
    return isinstance(index, pd.DatetimeIndex) and index.dtype == _NAIVE_NS and not index.hasnans


def _empty_trades() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=_trade_dtype(column)) for column in TRADE_COLUMNS})


def _trade_dtype(column: str) -> str:
    if column == "symbol":
        return "object"
    if column.endswith("_date"):
        return "datetime64[ns]"
    return "int64" if column == "bars_held" else "float64"


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} frame is missing columns {missing} (has {list(frame.columns)}); "
            f"build it with the columns documented in backtester.performance"
        )


def _clean_equity(equity: pd.Series) -> pd.Series:
    """Float, finite, time-ordered, one point per timestamp (the last wins)."""
    eq = pd.Series(equity, dtype=float)
    eq = eq[np.isfinite(eq.to_numpy())]
    eq = eq[~eq.index.duplicated(keep="last")]
    return eq.sort_index()


def _clean_equity_values(equity: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``_clean_equity`` as (values, index); an equity series that is already clean skips its four pandas copies.

    Already clean (the backtester's equity always is): float64, finite, index strictly increasing without NaT.
    """
    if _is_clean_equity(equity):
        return np.ascontiguousarray(equity.to_numpy()), equity.index
    eq = _clean_equity(equity)
    return eq.to_numpy(), eq.index


def _is_clean_equity(equity: object) -> bool:
    if not isinstance(equity, pd.Series) or equity.dtype != np.float64:
        return False
    index = equity.index
    if index.hasnans or not index.is_monotonic_increasing or not index.is_unique:
        return False
    return bool(np.isfinite(equity.to_numpy()).all())


def _simple_returns(values: np.ndarray) -> np.ndarray:
    """Finite ``pct_change`` of clean equity values: numpy computes the same ``x[t] / x[t-1] - 1.0``."""
    with np.errstate(all="ignore"):  # as in pandas: a zero equity point gives inf/nan, dropped here, not a warning
        returns = values[1:] / values[:-1] - 1.0
    return returns[np.isfinite(returns)]


def _span_years(dates: pd.Index) -> float:
    if len(dates) < 2:
        return 0.0
    return (dates[-1] - dates[0]).total_seconds() / 86_400.0 / DAYS_PER_YEAR


def _cagr(initial_capital: float, final_equity: float, years: float) -> float:
    if years <= 0 or initial_capital <= 0:
        return _NAN
    if final_equity <= 0:
        return -1.0
    return (final_equity / initial_capital) ** (1.0 / years) - 1.0


def _risk_ratios(returns: np.ndarray, risk_free_rate_pct: float, periods_per_year: int) -> dict[str, float]:
    """Annualised volatility, Sharpe and Sortino from per-period simple returns.

    Sortino's denominator is the target semi-deviation of Sortino & Price: the root mean square of
    min(excess, 0) over *all* periods (not only the losing ones), with the per-period risk-free rate as target.
    """
    if len(returns) < 2:
        return {"annual_volatility": _NAN, "sharpe": _NAN, "sortino": _NAN}
    rf_per_period = (1.0 + risk_free_rate_pct / 100.0) ** (1.0 / periods_per_year) - 1.0
    excess = returns - rf_per_period
    scale = math.sqrt(periods_per_year)
    std = float(np.std(excess, ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))
    mean_excess = float(np.mean(excess))
    volatile = std > _ZERO_STD
    return {
        "annual_volatility": std * scale if volatile else 0.0,
        "sharpe": mean_excess / std * scale if volatile else _NAN,
        "sortino": mean_excess / downside * scale if downside > _ZERO_STD else _NAN,
    }


def _max_drawdown(values: np.ndarray) -> float:
    """``-drawdown_series(eq).min()`` on the values: the same division, clip and nan-skipping min, minus ~0.8 ms."""
    if not len(values):
        return 0.0
    with np.errstate(all="ignore"):  # 0 / 0 at a zero peak is nan, skipped like Series.min skips it
        drawdown = values / np.maximum.accumulate(values) - 1.0
    clipped = np.where(drawdown > 0.0, 0.0, drawdown)  # clip(upper=0.0) keeps nan
    present = clipped[~np.isnan(clipped)]
    return float(-present.min()) if len(present) else _NAN


def _max_drawdown_duration_days(values: np.ndarray, dates: pd.Index) -> int:
    """Longest calendar-day span from a peak to the first point back at or above it (or to the end)."""
    if len(values) < 2:
        return 0
    at_peak = values >= np.maximum.accumulate(values)
    positions = np.arange(len(values))
    last_peak = np.maximum.accumulate(np.where(at_peak, positions, 0))
    recoveries = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    peaks = last_peak[recoveries - 1]
    if not at_peak[-1]:  # still under water at the end: the episode runs to the last point
        recoveries = np.append(recoveries, len(values) - 1)
        peaks = np.append(peaks, last_peak[-1])
    return int(max(_calendar_days(dates, peaks, recoveries), default=0))


def _calendar_days(dates: pd.Index, starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """Whole days from ``dates[starts]`` to ``dates[ends]`` (``ends >= starts``), as ``Timedelta.days`` counts them.

    A ``DatetimeIndex`` subtracts its int64 ticks (UTC for tz-aware, so DST does not matter) in numpy: indexing
    and subtracting the index itself costs ~0.1 ms a call. Any other index goes through pandas.
    """
    if isinstance(dates, pd.DatetimeIndex) and not dates.hasnans:
        ticks = dates.asi8
        ticks_per_day = np.timedelta64(1, "D") // np.timedelta64(1, dates.unit)
        return ((ticks[ends] - ticks[starts]) // ticks_per_day).tolist()
    return list((dates[ends] - dates[starts]).days)


def _trade_stats(trades: pd.DataFrame) -> dict[str, float | int]:
    if trades.empty:
        return {"n_trades": 0, "win_rate": _NAN, "profit_factor": 0.0, "avg_trade_pnl": _NAN}
    _require_columns(trades, ("pnl",), "trades")
    pnl = _float_values(trades["pnl"])
    gross_wins = float(pnl[pnl > 0].sum())
    gross_losses = float(-pnl[pnl < 0].sum())
    no_loss_factor = math.inf if gross_wins > 0 else 0.0
    profit_factor = gross_wins / gross_losses if gross_losses > 0 else no_loss_factor
    return {
        "n_trades": len(pnl),
        "win_rate": float(np.mean(pnl > 0)),
        "profit_factor": profit_factor,
        "avg_trade_pnl": float(np.mean(pnl)),
    }


def _float_values(column: pd.Series) -> np.ndarray:
    """``column.astype(float).to_numpy()``; a numeric numpy column converts directly (no intermediate Series)."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return np.ascontiguousarray(column.to_numpy(dtype=np.float64))
    return column.astype(float).to_numpy()


def _exposure(values: np.ndarray, dates: pd.Index, trades: pd.DataFrame, gross_exposure: pd.Series | None) -> float:
    if not len(values):
        return _NAN
    if gross_exposure is not None:
        return _mean_exposure_ratio(values, dates, gross_exposure)
    if trades.empty:
        return 0.0
    _require_columns(trades, ("entry_date", "exit_date"), "trades")
    starts = dates.searchsorted(pd.DatetimeIndex(trades["entry_date"]), side="left")
    ends = dates.searchsorted(pd.DatetimeIndex(trades["exit_date"]), side="left")
    open_count = np.zeros(len(dates) + 1, dtype=np.int64)
    np.add.at(open_count, starts, 1)
    np.add.at(open_count, ends, -1)
    return float(np.mean(np.cumsum(open_count)[:-1] > 0))


def _mean_exposure_ratio(values: np.ndarray, dates: pd.Index, gross_exposure: pd.Series) -> float:
    """Mean finite ``|gross| / equity`` over the equity's dates (gross reindexed onto them).

    A gross series already on the equity's index (the backtester's is) skips the reindex; ``np.mean`` sums as
    ``Series.mean`` does (pairwise, then one division) when bottleneck is not installed, so the number is the same.
    """
    if isinstance(gross_exposure, pd.Series) and gross_exposure.index.equals(dates):
        gross = _float_values(gross_exposure)
    else:
        gross = pd.Series(gross_exposure, dtype=float).reindex(dates).to_numpy()
    with np.errstate(all="ignore"):  # zero equity: inf/nan, filtered below
        ratio = np.abs(gross) / values
    ratio = ratio[np.isfinite(ratio)]
    return float(np.mean(ratio)) if len(ratio) else _NAN


def _fill_stats(fills: pd.DataFrame, values: np.ndarray, years: float) -> dict[str, float]:
    """Turnover and cost totals; ``np.nansum`` is ``Series.sum`` (nan as 0, then numpy's pairwise sum)."""
    if fills.empty:
        return {"turnover": 0.0, "commissions": 0.0, "slippage_cost": 0.0}
    _require_columns(fills, ("quantity", "price", "commission", "slippage_cost"), "fills")
    with np.errstate(all="ignore"):  # inf * 0 is nan and skipped, silently as in pandas
        notional = float(np.nansum(np.abs(_float_values(fills["quantity"])) * np.abs(_float_values(fills["price"]))))
    mean_equity = float(np.mean(values)) if len(values) else _NAN
    if notional == 0:
        turnover = 0.0
    elif years > 0 and mean_equity > 0:
        turnover = notional / mean_equity / years
    else:
        turnover = _NAN
    return {
        "turnover": turnover,
        "commissions": float(np.nansum(_float_values(fills["commission"]))),
        "slippage_cost": float(np.nansum(_float_values(fills["slippage_cost"]))),
    }
