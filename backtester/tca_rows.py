"""TCA rows of one backtest run (``source=backtest``), built from the simulated venue's orders and fills.

Why from the venue's order store and not from ``result.fills`` alone: a TCA row carries its order's decision
context (reference price and time, quantity, order type), and an order that ended with shares left has no fill to
borrow it from. The field mapping mirrors ``tca.from_journal`` (the live engine's rows), so the live and the
simulated rows feed the same ``tca.calculator``:

- ``decision_price``/``decision_ts``: the order's ``reference_price`` and ``ts_event_ns`` (the close it was decided on).
- ``arrival_price``/``arrival_ts``: the first price the market printed after the order was sent, i.e. the open of
  the first session (with a valid bar) opening after submission. For a MKT order that is the fill price before
  slippage; for MOC/LOC/LMT it is the same session's open, so the move from the open to the auction or the limit
  counts as execution cost of that choice. When no such open exists, or it would come after the first fill (an
  order sent inside a session, which daily bars cannot price), the order's reference price stands in and the
  arrival time is the submission time: the delay cost is then zero, not unknown.
  (The live engine records the quote at sending; for a decision taken on the close and sent after it that quote is
  the close, so there the overnight gap lands in execution cost, here in delay. The total is the same.)
- ``close_price``: the official close of the fill's session from the panel.
- ``adv_participation``/``vol_20d``: from the panel's 20 sessions up to the decision (what the decision could see).
- Order ends: every CANCELLED or EXPIRED order with shares left gets an ``UnfilledRecord`` priced at the close of
  the session it ended in. The simulated venue keeps no end time, so that session is the one of the order's last
  fill, else the first session the order was eligible in: exact for expiries and for the venue's cash cap; a
  halt that cancels a MKT remainder several sessions later is dated too early. Rejected orders (refused at
  submission, nothing to price) get no row, as in the live rows.

Ids: simulated exec ids (``SIM-1``...) and client order ids repeat from run to run, while the TCA log is keyed by
them, so both are prefixed with ``run_id`` (``<run_id>/<id>``): runs sharing one log never collide, and writing
the same run twice changes nothing. The rows are a pure function of the backtest and ``run_id``: deterministic
for a seed.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from backtester.engine import Backtest, BacktestResult
from core.events import OrderEvent, OrderStatus, OrderType
from data.panel import BarPanel
from execution.order_state import ManagedOrder, OrderFill
from execution.sim_executor import SessionTimes
from tca.logger import DEFAULT_DB_PATH, LoadReport, write_records
from tca.records import Algo, ExecutionRecord, Source, TcaRecord, UnfilledRecord

LOOKBACK_SESSIONS = 20  # the records' ADV and volatility windows (tca.records)
TRADING_DAYS = 252
_END_REASON = {OrderStatus.CANCELLED: "cancelled", OrderStatus.EXPIRED: "expired"}


def backtest_run_id(strategy: str, config_id: str, data_fingerprint: str) -> str:
    """A run id that is the same for the same strategy, config and data, so rerunning a backtest into one TCA log
    adds nothing (its rows are duplicates) while any change of config or data makes a new run."""
    digest = hashlib.sha256(f"{strategy}\n{config_id}\n{data_fingerprint}".encode()).hexdigest()[:16]
    return f"backtest-{strategy}-{digest}"


def tca_records(backtest: Backtest, result: BacktestResult, run_id: str) -> list[TcaRecord]:
    """One ``ExecutionRecord`` per simulated fill and one ``UnfilledRecord`` per order that ended with shares left.

    ``result`` must be ``backtest.run()``'s: its booked fills are checked against the venue's (ValueError when they
    differ), so TCA and the P&L count the same executions. Orders come in submission order, fills in fill order.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError(f"run_id: must be a non-empty string (got {run_id!r})")
    market = _Market(backtest.panel, backtest.sessions)
    orders = backtest.executor.store.all()
    venue_ids = [fill.exec_id for managed in orders for fill in managed.fills]
    booked_ids = [str(exec_id) for exec_id in result.fills["exec_id"]]
    if sorted(venue_ids) != sorted(booked_ids):
        raise ValueError(
            f"result: its {len(booked_ids)} booked fills are not the venue's {len(venue_ids)} executions; pass the "
            "result of this backtest's run()"
        )
    records: list[TcaRecord] = []
    for managed in orders:
        records.extend(_executions(managed, market, run_id))
        end = _unfilled(managed, market, run_id)
        if end is not None:
            records.append(end)
    return records


def write_backtest_tca(records: list[TcaRecord], db_path: Path | str = DEFAULT_DB_PATH) -> LoadReport:
    """Write one run's rows into the TCA log in one transaction (idempotent: a second write inserts nothing)."""
    return write_records(records, db_path)


class _Market:
    """The panel and session times, asked the few questions the rows need (by symbol, session, time)."""

    def __init__(self, panel: BarPanel, sessions: SessionTimes) -> None:
        self.panel = panel
        self.sessions = sessions
        self.n_sessions = len(panel.dates)
        self._column = {symbol: j for j, symbol in enumerate(panel.symbols)}

    def column(self, symbol: str) -> int:
        return self._column[symbol]

    def session_of(self, ts_ns: int) -> int:
        """The session whose close is at or after ``ts_ns`` (a fill at an open or at a close, a decision's close)."""
        return int(np.searchsorted(self.sessions.close_ns, ts_ns, side="left"))

    def first_eligible(self, order: OrderEvent) -> int:
        """The first session the venue matches the order in (``SimulatedExecutor.process_bar``'s rule)."""
        if order.order_type in (OrderType.MKT, OrderType.LMT):
            return int(np.searchsorted(self.sessions.open_ns, order.ts_init_ns, side="right"))
        return int(np.searchsorted(self.sessions.moc_cutoff_ns, order.ts_init_ns, side="right"))

    def first_open_after(self, ts_ns: int, j: int) -> tuple[int, float] | None:
        start = int(np.searchsorted(self.sessions.open_ns, ts_ns, side="right"))
        valid = np.flatnonzero(np.isfinite(self.panel.open[start:, j]))
        if not valid.size:
            return None
        t = start + int(valid[0])
        return int(self.sessions.open_ns[t]), float(self.panel.open[t, j])

    def close(self, t: int, j: int) -> float | None:
        """Session ``t``'s close, None when out of the panel or not a valid bar."""
        if not 0 <= t < self.n_sessions:
            return None
        value = float(self.panel.close[t, j])
        return value if math.isfinite(value) else None

    def last_close(self, t: int, j: int) -> float | None:
        """The last valid close at or before session ``t`` (what was known when an order ended there)."""
        closes = self.panel.close[: min(t, self.n_sessions - 1) + 1, j]
        valid = np.flatnonzero(np.isfinite(closes))
        return float(closes[valid[-1]]) if valid.size else None

    def adv_participation(self, quantity: int, t: int, j: int) -> float | None:
        volumes = self.panel.volume[max(0, t - LOOKBACK_SESSIONS + 1) : t + 1, j]
        volumes = volumes[np.isfinite(volumes)]
        adv = float(volumes.mean()) if volumes.size else 0.0
        return quantity / adv if adv > 0 else None

    def vol_20d(self, t: int, j: int) -> float | None:
        closes = self.panel.close[max(0, t - LOOKBACK_SESSIONS) : t + 1, j]
        returns = np.diff(closes) / closes[:-1]
        returns = returns[np.isfinite(returns)]
        return float(returns.std(ddof=1) * math.sqrt(TRADING_DAYS)) if returns.size >= 2 else None


def _common(managed: ManagedOrder, market: _Market, run_id: str) -> dict[str, object]:
    """The order's context, as ``tca.from_journal._common`` maps it, plus the panel's size and volatility."""
    order = managed.order
    j, decided = market.column(order.symbol), market.session_of(order.ts_event_ns)
    return {
        "client_order_id": f"{run_id}/{order.client_order_id}", "strategy_id": order.strategy_id,
        "symbol": order.symbol, "side": order.side, "order_quantity": order.quantity,
        "decision_ts": order.ts_event_ns, "decision_price": order.reference_price,
        "algo": _algo(order), "source": Source.BACKTEST, "run_id": run_id,
        "adv_participation": market.adv_participation(order.quantity, decided, j), **_wheel(order),
    }  # fmt: skip


def _algo(order: OrderEvent) -> Algo:
    """ADAPTIVE/TWAP for a WHEEL order worked by an IB algo, else its order type (as ``tca.from_journal``)."""
    algo = order.execution.algo if order.execution is not None else None
    return Algo(algo.upper()) if algo is not None else Algo(order.order_type.value)


def _wheel(order: OrderEvent) -> dict[str, object]:
    """A WHEEL order's decision record and the minutes it had to the close; nothing for other orders."""
    if order.execution is None:
        return {}
    decision = dict(order.execution.decision)
    return {"wheel_decision": decision, "minutes_to_close": (decision.get("context") or {}).get("minutes_to_close")}


def _policy(order: OrderEvent) -> dict[str, object]:
    """The execution rows' algo parameters and policy fields (the unfilled rows have no such columns)."""
    choice = order.execution
    if choice is None:
        return {}
    return {"algo_params": dict(choice.algo_params), "policy_id": choice.policy_id, "propensity": choice.propensity}


def _arrival(managed: ManagedOrder, market: _Market) -> tuple[int, float]:
    """(arrival ts, arrival price): the first open after sending, else the reference price (see the module doc)."""
    order = managed.order
    found = market.first_open_after(order.ts_init_ns, market.column(order.symbol))
    first_fill_ts = min((_fill_ts(fill) for fill in managed.fills), default=None)
    if found is None or (first_fill_ts is not None and found[0] > first_fill_ts):
        return order.ts_init_ns, order.reference_price
    return found


def _fill_ts(fill: OrderFill) -> int:
    if fill.ts_ns is None:
        raise ValueError(f"execution {fill.exec_id}: the simulated venue recorded no fill time")
    return fill.ts_ns


def _executions(managed: ManagedOrder, market: _Market, run_id: str) -> list[ExecutionRecord]:
    if not managed.fills:
        return []
    common = _common(managed, market, run_id)
    arrival_ts, arrival_price = _arrival(managed, market)
    j = market.column(managed.order.symbol)
    decided = market.session_of(managed.order.ts_event_ns)
    vol = market.vol_20d(decided, j)
    return [ExecutionRecord(
        exec_id=f"{run_id}/{fill.exec_id}", quantity=fill.quantity, price=fill.price,
        commission=fill.commission or 0.0, arrival_ts=arrival_ts, arrival_price=arrival_price,
        fill_ts=_fill_ts(fill), close_price=market.close(market.session_of(_fill_ts(fill)), j), vol_20d=vol,
        **_policy(managed.order), **common,
    ) for fill in managed.fills]  # fmt: skip


def _unfilled(managed: ManagedOrder, market: _Market, run_id: str) -> UnfilledRecord | None:
    """The order's end if it was cancelled or expired with shares left and an end price is known, else None."""
    reason = _END_REASON.get(managed.status)
    if reason is None or managed.remaining <= 0:
        return None
    j = market.column(managed.order.symbol)
    if managed.fills:
        ended = market.session_of(max(_fill_ts(fill) for fill in managed.fills))
    else:
        ended = market.first_eligible(managed.order)
    if ended >= market.n_sessions:
        return None  # cannot happen for an order the venue ended; no session to price it in
    end_price = market.last_close(ended, j)
    if end_price is None:
        return None  # no valid close yet: no opportunity cost can be measured (as in tca.from_journal)
    return UnfilledRecord(unfilled_quantity=managed.remaining, end_ts=int(market.sessions.close_ns[ended]),
                          end_price=end_price, reason=reason, **_common(managed, market, run_id))  # fmt: skip
