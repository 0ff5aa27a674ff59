"""The simulated venue of the backtester: an ``OrderRouter`` that fills orders against later bars.

Fill rules (no fill uses a price from before the order was submitted):

- MKT: the open of the first session that opens after submission.
- LMT: during the first session after submission, if its range reaches the limit: a buy fills at
  min(open, limit) when low <= limit, a sell at max(open, limit) when high >= limit. DAY orders expire after
  that session; GTC orders keep working.
- MOC: the close of the first session whose MOC cut-off is after submission (a decision taken on a daily close
  therefore trades at the next session's close).
- LOC: as MOC, only if that close satisfies the limit; otherwise the order expires.
- STP (protective stop, GTC): a sell stop fills when the session's low reaches the stop, at the stop, or at the
  open when the open is already through it (a gap: min(open, stop)); a buy stop symmetrically with the high,
  at max(open, stop). Once triggered it is a market order: the same slippage model as MKT (half-spread plus
  participation impact, against the order, on that raw price; no limit caps it) and the same commission model
  as every fill. A stop can trigger on the session its entry filled in when the entry filled at that session's
  open (MKT, LMT: every price of the rest of the session comes after the entry, and the low is at or after the
  open), through ``process_new_stops`` after the entry's fill was booked; a stop of an entry that filled later in
  the session (MOC/LOC at the close, an algo's fill) is matched from the next session on. Its timestamp is the
  session's open, as for LMT fills.
- MKT with an IB algo (a WHEEL order's ``execution``: Adaptive, TWAP): in the same session a MKT order would
  fill in, by the daily-bar models of ``execution.sim_algos`` (rough: only paper or live fills price an algo).

Slippage (half-spread plus participation impact) is applied to the reference price, fills are capped at the
configured share of the bar's volume (MKT remainders keep working on later bars, DAY remainders of other types
expire), and buys are capped to the cash the account can spend, as a broker would refuse the excess.
The backtest engine calls ``process_bar`` *before* the bar is published, as the exchange trades before the
bar completes.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderStatus, OrderType, Side, TimeInForce
from execution.commissions import CommissionModel
from execution.order_state import ManagedOrder
from execution.order_store import OrderStore
from execution.sim_algos import algo_fill
from execution.slippage import SlippageModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """Per bar index: session open, close and MOC cut-off (UTC epoch ns) from the exchange calendar."""

    open_ns: np.ndarray
    close_ns: np.ndarray
    moc_cutoff_ns: np.ndarray


class SimulatedExecutor:
    def __init__(
        self,
        symbols: tuple[str, ...],
        sessions: SessionTimes,
        commission: CommissionModel,
        slippage: SlippageModel,
        put: Callable[[object], None],
        now_ns: Callable[[], int],
        cash_available: Callable[[], float] | None = None,
        outage_bars: frozenset[int] = frozenset(),
    ) -> None:
        self._index = {s: j for j, s in enumerate(symbols)}
        self._sessions = sessions
        self._commission = commission
        self._slippage = slippage
        self._put = put
        self._now_ns = now_ns
        self._cash_available = cash_available
        self._outage_bars = outage_bars  # scenario "broker outage": nothing fills on these bars
        self._spent_this_bar = 0.0
        self.store = OrderStore()
        self._broker_ids = itertools.count(1)
        self._exec_ids = itertools.count(1)
        self._broker_id_of: dict[str, int] = {}
        self.ended_ns: dict[str, int] = {}  # client order id -> when it reached its end (the stops report reads it)
        self._matched_this_bar: set[str] = set()  # orders already considered in the current bar's pass

    # -- OrderRouter ------------------------------------------------------------------------------------------
    def submit(self, order: OrderEvent) -> None:
        if order.client_order_id in self.store:
            log.warning("event=duplicate_submit_ignored client_order_id=%s", order.client_order_id)
            return
        managed = self.store.add(order)
        if order.quantity <= 0 or order.symbol not in self._index:
            managed.transition(OrderStatus.REJECTED)
            self.store.settle_terminal(managed)
            self._fail(
                managed, OrderStatus.REJECTED, f"venue rejected: quantity {order.quantity} symbol {order.symbol}"
            )
            return
        self._broker_id_of[order.client_order_id] = next(self._broker_ids)
        managed.transition(OrderStatus.SUBMITTED)

    def cancel(self, client_order_id: str, reason: str) -> None:
        managed = self.store.get(client_order_id)
        if managed is None or managed.is_terminal:
            return
        managed.transition(OrderStatus.CANCELLED)
        self.store.settle_terminal(managed)
        self._fail(managed, OrderStatus.CANCELLED, reason)

    def cancel_all(self, reason: str) -> None:
        for managed in self.store.working():
            self.cancel(managed.order.client_order_id, reason)

    # -- the venue ---------------------------------------------------------------------------------------------
    def has_working_orders(self) -> bool:
        return self.store.has_working()

    def process_bar(
        self, t: int, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
    ) -> None:
        """Match every working order against bar ``t`` of every symbol.

        On a broker-outage bar, or a bar where the symbol has no valid data (halted, missing, quarantined),
        nothing fills; one-session orders (MOC, LOC, LMT DAY) that were live for this session expire at its end,
        as they would at the broker, while MKT orders wait for the next valid session.
        """
        self._matched_this_bar = set()
        if not self.store.has_working():
            return
        self._spent_this_bar = 0.0  # fills of this pass reach the ledger only after it: count them here
        bar = (open_, high, low, close, volume)
        for managed in self.store.working():
            self._process_order(managed, t, bar)

    def process_new_stops(
        self, t: int, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
    ) -> None:
        """Match the stops placed during bar ``t``'s pass (entries filled at its open) against the rest of bar ``t``.

        Called by the engine after the fills of ``process_bar`` were booked (booking them is what placed the
        stops); a stop of an entry that filled after the open is not eligible yet (see the module doc).
        """
        bar = (open_, high, low, close, volume)
        for managed in self.store.working():
            order = managed.order
            if order.order_type is OrderType.STP and order.client_order_id not in self._matched_this_bar:
                self._process_order(managed, t, bar)

    def _process_order(self, managed: ManagedOrder, t: int, bar: tuple[np.ndarray, ...]) -> None:
        """One working order against bar ``t``: eligibility, the match, the end of a one-session order."""
        order = managed.order
        open_ns = int(self._sessions.open_ns[t])
        if order.order_type in (OrderType.MKT, OrderType.LMT):
            if order.ts_init_ns >= open_ns:
                return  # submitted after this session opened: not eligible yet
        elif order.order_type is OrderType.STP:
            if order.ts_event_ns > open_ns:
                return  # its entry filled after this session opened
        elif order.ts_init_ns >= int(self._sessions.moc_cutoff_ns[t]):
            return  # missed this session's closing-auction cut-off
        self._matched_this_bar.add(order.client_order_id)
        j = self._index[order.symbol]
        open_, high, low, close, volume = bar
        o, h, lo, c, v = float(open_[j]), float(high[j]), float(low[j]), float(close[j]), float(volume[j])
        outage = t in self._outage_bars
        if not (outage or math.isnan(c)):
            self._match(managed, o, h, lo, c, v, open_ns, int(self._sessions.close_ns[t]))
        if not managed.is_terminal and self._expires_after_session(managed):
            managed.transition(OrderStatus.EXPIRED)
            why = "broker outage" if outage else ("no valid bar" if math.isnan(c) else "not (fully) filled")
            self._fail(managed, OrderStatus.EXPIRED, f"{order.order_type} DAY order expired: {why} in session")
        self.store.settle_terminal(managed)

    def _expires_after_session(self, managed: ManagedOrder) -> bool:
        order = managed.order
        if order.order_type in (OrderType.MOC, OrderType.LOC):
            return True
        return order.order_type is OrderType.LMT and order.time_in_force is TimeInForce.DAY

    def _match(
        self, managed: ManagedOrder, o: float, h: float, lo: float, c: float, v: float, open_ns: int, close_ns: int
    ) -> None:
        order = managed.order
        buy = order.side is Side.BUY
        limit = order.limit_price
        spread_share, volume = 1.0, v
        algo = order.execution.algo if order.execution is not None else None
        if algo is not None:
            model = algo_fill(algo, dict(order.execution.algo_params), o, h, lo, c, (close_ns - open_ns) / 6e10)
            raw, spread_share, volume = model.raw_price, model.spread_share, v * model.volume_share
            ts = min(open_ns + int(model.minutes_after_open * 6e10), close_ns)
        elif order.order_type is OrderType.MKT:
            raw, ts = o, open_ns
        elif order.order_type is OrderType.LMT:
            assert limit is not None
            if buy and lo <= limit:
                raw = min(o, limit)
            elif not buy and h >= limit:
                raw = max(o, limit)
            else:
                return
            ts = open_ns
        elif order.order_type is OrderType.STP:
            raw = _stop_trigger_price(buy, float(order.stop_price or 0.0), o, h, lo)
            if raw is None:
                return
            ts = open_ns
        elif order.order_type is OrderType.MOC:
            raw, ts = c, close_ns
        else:  # LOC
            assert limit is not None
            if (buy and c > limit) or (not buy and c < limit):
                return
            raw, ts = c, close_ns
        quantity = min(managed.remaining, self._slippage.max_fill_quantity(v))
        price = self._slippage.fill_price(order.side, raw, quantity, volume, spread_share)
        if order.order_type in (OrderType.LMT, OrderType.LOC):
            price = min(price, limit) if buy else max(price, limit)  # a limit is a limit, slippage included
        cash_capped = False
        if buy and self._cash_available is not None:
            affordable = self._affordable(quantity, price, ts)
            cash_capped, quantity = affordable < quantity, affordable
        if quantity > 0:
            self._fill(managed, quantity, price, raw, ts)
        if cash_capped and not managed.is_terminal:
            managed.transition(OrderStatus.CANCELLED)
            self._fail(
                managed, OrderStatus.CANCELLED, "buy exceeds the cash the account can spend; remainder cancelled"
            )

    def _affordable(self, quantity: int, price: float, ts: int) -> int:
        cash = self._cash_available() - self._spent_this_bar  # type: ignore[misc]
        q = min(quantity, int(cash // price)) if price > 0 else 0
        while q > 0 and q * price + self._commission.commission(Side.BUY, q, price, ts) > cash:
            q -= 1
        return q

    def _fill(self, managed: ManagedOrder, quantity: int, price: float, raw_price: float, ts: int) -> None:
        order = managed.order
        commission = self._commission.commission(order.side, quantity, price, ts)
        self._commission.record_fill(quantity, ts)
        if order.side is Side.BUY:
            self._spent_this_bar += quantity * price + commission
        exec_id = f"SIM-{next(self._exec_ids)}"
        managed.apply_fill(exec_id, quantity, price, commission, ts)
        if managed.is_terminal:
            self.ended_ns[order.client_order_id] = ts
        self._put(
            FillEvent(
                ts_event_ns=ts,
                ts_init_ns=self._now_ns(),
                client_order_id=order.client_order_id,
                broker_order_id=self._broker_id_of.get(order.client_order_id),
                exec_id=exec_id,
                strategy_id=order.strategy_id,
                symbol=order.symbol,
                side=order.side,
                quantity=quantity,
                price=price,
                commission=commission,
                slippage_cost=abs(price - raw_price) * quantity,
                order_type=order.order_type,
            )
        )

    def _fail(self, managed: ManagedOrder, status: OrderStatus, reason: str) -> None:
        order = managed.order
        self.ended_ns[order.client_order_id] = self._now_ns()
        self._put(
            OrderFailedEvent(
                ts_event_ns=self._now_ns(),
                ts_init_ns=self._now_ns(),
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                symbol=order.symbol,
                status=status,
                reason=reason,
                filled_quantity=managed.filled_quantity,
            )
        )


def _stop_trigger_price(buy: bool, stop: float, o: float, h: float, lo: float) -> float | None:
    """The raw price a stop executes at in a session, or None if the session never reached it: at the stop when
    the range crosses it, at the open when the open is already through it (a gap)."""
    if buy:
        return max(o, stop) if h >= stop else None
    return min(o, stop) if lo <= stop else None
