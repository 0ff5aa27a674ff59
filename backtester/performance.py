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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
    """
    eq = _clean_equity(equity)
    returns = _simple_returns(eq)
    years = _span_years(eq)
    final_equity = float(eq.iloc[-1]) if len(eq) else float(initial_capital)
    total_return = final_equity / initial_capital - 1.0 if initial_capital > 0 else _NAN
    cagr = _cagr(initial_capital, final_equity, years)
    max_drawdown = float(-drawdown_series(eq).min()) if len(eq) else 0.0
    metrics: dict[str, float | int] = {
        "initial_capital": float(initial_capital),
        "final_equity": final_equity,
        "total_return": total_return,
        "cagr": cagr,
        **_risk_ratios(returns, risk_free_rate_pct, periods_per_year),
        "calmar": cagr / max_drawdown if max_drawdown > 0 and math.isfinite(cagr) else _NAN,
        "max_drawdown": max_drawdown,
        "max_drawdown_duration_days": _max_drawdown_duration_days(eq),
        **_trade_stats(trades),
        "exposure": _exposure(eq, trades, gross_exposure),
        **_fill_stats(fills, eq, years),
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
    """
    if fills.empty:
        return _empty_trades()
    _require_columns(fills, FILL_COLUMNS[:-1], "fills")
    ordered = fills.sort_values("date", kind="stable")
    open_lots: dict[str, deque[_Lot]] = {}
    rows: list[dict[str, object]] = []
    for date, symbol, side, quantity, price, commission in zip(
        ordered["date"], ordered["symbol"], ordered["side"], ordered["quantity"], ordered["price"],
        ordered["commission"], strict=True,
    ):
        signed_quantity = _signed_quantity(side, quantity)
        if signed_quantity == 0:
            continue
        lots = open_lots.setdefault(str(symbol), deque())
        closed = _apply_fill(lots, str(symbol), pd.Timestamp(date), signed_quantity, float(price), float(commission))
        rows.extend(closed)
    still_open = sum(len(lots) for lots in open_lots.values())
    if still_open:
        log.debug("event=open_lots_not_reported count=%d", still_open)
    if not rows:
        return _empty_trades()
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS[:-1]))
    trades["bars_held"] = _bars_held(trades["entry_date"], trades["exit_date"], sessions)
    return trades


@dataclass(slots=True)
class _Lot:
    """An open FIFO lot: signed quantity still open and the entry commission still attributable to it."""

    quantity: float
    entry_date: pd.Timestamp
    entry_price: float
    commission: float


def _apply_fill(
    lots: deque[_Lot], symbol: str, date: pd.Timestamp, signed_quantity: float, price: float, commission: float
) -> list[dict[str, object]]:
    """Close opposite lots oldest first, open a lot with the rest; return the round trips closed."""
    direction = 1 if signed_quantity > 0 else -1
    remaining = abs(signed_quantity)
    commission_left = commission
    rows: list[dict[str, object]] = []
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
    symbol: str, lot: _Lot, signed_quantity: float, exit_date: pd.Timestamp, exit_price: float, commission: float
) -> dict[str, object]:
    pnl = signed_quantity * (exit_price - lot.entry_price) - commission
    notional = abs(signed_quantity) * lot.entry_price
    return {
        "symbol": symbol,
        "entry_date": lot.entry_date,
        "exit_date": exit_date,
        "quantity": signed_quantity,
        "entry_price": lot.entry_price,
        "exit_price": exit_price,
        "pnl": pnl,
        "return_pct": pnl / notional * 100.0 if notional > 0 else _NAN,
        "commission": commission,
    }


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


def _bars_held(entry: pd.Series, exit_: pd.Series, sessions: pd.DatetimeIndex | None) -> np.ndarray:
    entry_dates = pd.DatetimeIndex(entry).normalize()
    exit_dates = pd.DatetimeIndex(exit_).normalize()
    if sessions is not None:
        session_days = pd.DatetimeIndex(sessions).normalize()
        return session_days.searchsorted(exit_dates) - session_days.searchsorted(entry_dates)
    return np.busday_count(entry_dates.values.astype("datetime64[D]"), exit_dates.values.astype("datetime64[D]"))


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


def _simple_returns(eq: pd.Series) -> pd.Series:
    returns = eq.pct_change().iloc[1:]
    return returns[np.isfinite(returns.to_numpy())]


def _span_years(eq: pd.Series) -> float:
    if len(eq) < 2:
        return 0.0
    return (eq.index[-1] - eq.index[0]).total_seconds() / 86_400.0 / DAYS_PER_YEAR


def _cagr(initial_capital: float, final_equity: float, years: float) -> float:
    if years <= 0 or initial_capital <= 0:
        return _NAN
    if final_equity <= 0:
        return -1.0
    return (final_equity / initial_capital) ** (1.0 / years) - 1.0


def _risk_ratios(returns: pd.Series, risk_free_rate_pct: float, periods_per_year: int) -> dict[str, float]:
    """Annualised volatility, Sharpe and Sortino from per-period simple returns.

    Sortino's denominator is the target semi-deviation of Sortino & Price: the root mean square of
    min(excess, 0) over *all* periods (not only the losing ones), with the per-period risk-free rate as target.
    """
    if len(returns) < 2:
        return {"annual_volatility": _NAN, "sharpe": _NAN, "sortino": _NAN}
    rf_per_period = (1.0 + risk_free_rate_pct / 100.0) ** (1.0 / periods_per_year) - 1.0
    excess = returns.to_numpy() - rf_per_period
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


def _max_drawdown_duration_days(eq: pd.Series) -> int:
    """Longest calendar-day span from a peak to the first point back at or above it (or to the end)."""
    if len(eq) < 2:
        return 0
    values = eq.to_numpy()
    at_peak = values >= np.maximum.accumulate(values)
    positions = np.arange(len(values))
    last_peak = np.maximum.accumulate(np.where(at_peak, positions, 0))
    recoveries = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    dates = eq.index
    spans = list((dates[recoveries] - dates[last_peak[recoveries - 1]]).days)
    if not at_peak[-1]:
        spans.append((dates[-1] - dates[last_peak[-1]]).days)
    return int(max(spans, default=0))


def _trade_stats(trades: pd.DataFrame) -> dict[str, float | int]:
    if trades.empty:
        return {"n_trades": 0, "win_rate": _NAN, "profit_factor": 0.0, "avg_trade_pnl": _NAN}
    _require_columns(trades, ("pnl",), "trades")
    pnl = trades["pnl"].astype(float).to_numpy()
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


def _exposure(eq: pd.Series, trades: pd.DataFrame, gross_exposure: pd.Series | None) -> float:
    if eq.empty:
        return _NAN
    if gross_exposure is not None:
        ratio = pd.Series(gross_exposure, dtype=float).reindex(eq.index).abs() / eq
        ratio = ratio[np.isfinite(ratio.to_numpy())]
        return float(ratio.mean()) if len(ratio) else _NAN
    if trades.empty:
        return 0.0
    _require_columns(trades, ("entry_date", "exit_date"), "trades")
    dates = eq.index
    starts = dates.searchsorted(pd.DatetimeIndex(trades["entry_date"]), side="left")
    ends = dates.searchsorted(pd.DatetimeIndex(trades["exit_date"]), side="left")
    open_count = np.zeros(len(dates) + 1, dtype=np.int64)
    np.add.at(open_count, starts, 1)
    np.add.at(open_count, ends, -1)
    return float(np.mean(np.cumsum(open_count)[:-1] > 0))


def _fill_stats(fills: pd.DataFrame, eq: pd.Series, years: float) -> dict[str, float]:
    if fills.empty:
        return {"turnover": 0.0, "commissions": 0.0, "slippage_cost": 0.0}
    _require_columns(fills, ("quantity", "price", "commission", "slippage_cost"), "fills")
    notional = float((fills["quantity"].astype(float).abs() * fills["price"].astype(float).abs()).sum())
    mean_equity = float(eq.mean()) if len(eq) else _NAN
    if notional == 0:
        turnover = 0.0
    elif years > 0 and mean_equity > 0:
        turnover = notional / mean_equity / years
    else:
        turnover = _NAN
    return {
        "turnover": turnover,
        "commissions": float(fills["commission"].astype(float).sum()),
        "slippage_cost": float(fills["slippage_cost"].astype(float).sum()),
    }
