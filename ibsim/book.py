"""The shared account book: cash, positions, orders and executions, one account for all client sessions.

Rules: cash moves by ``-signed_qty * price - commission`` per execution (full float precision, as
``execution.commissions``; no rounding to cents, so the numbers reconcile exactly with the fills a client
saw). ``avgCost`` includes commissions, as IB reports it. Commission per execution is the order's IB Fixed
commission on its cumulative quantity minus what earlier executions of the same order already paid, so an
order split into several executions pays exactly the per-order formula (minimum once, not per slice).
Settlement is immediate (SettledCash = TotalCashValue) and BuyingPower is that of a cash account.

Thread-safety: none; the server calls it under its one lock.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

from core.config_models import CostsConfig
from core.events import Side
from execution.commissions import CommissionModel, build_commission_model
from ibsim.market import Stock

log = logging.getLogger(__name__)

WORKING_STATUSES = frozenset({"PendingSubmit", "PreSubmitted", "Submitted"})
ACCOUNT_TAGS = ("NetLiquidation", "TotalCashValue", "SettledCash", "BuyingPower", "GrossPositionValue")


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """One order as ibsim tracks it; ``client_id``/``order_id`` is the key clients know, ``perm_id`` ours."""

    client_id: int
    order_id: int
    perm_id: int
    stock: Stock
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    parent_id: int
    algo_strategy: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()
    submitted_ns: int = 0
    status: str = "PreSubmitted"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    commission_paid: float = 0.0
    session_idx: int = 0
    partial_fraction: float | None = None  # fault: fill only this share, the rest stays working
    schedule: list[tuple[int, float]] = field(default_factory=list)  # TWAP child slices (sim ns, shares)

    @property
    def key(self) -> tuple[int, int]:
        return (self.client_id, self.order_id)

    @property
    def remaining(self) -> float:
        return max(0.0, self.quantity - self.filled)

    @property
    def is_working(self) -> bool:
        return self.status in WORKING_STATUSES

    @property
    def side(self) -> Side:
        return Side.BUY if self.action == "BUY" else Side.SELL


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    exec_id: str
    client_id: int
    order_id: int
    perm_id: int
    stock: Stock
    side: str  # BOT / SLD
    shares: float
    price: float
    time_ns: int
    cum_qty: float
    avg_price: float
    order_ref: str
    account: str
    commission: float
    realized_pnl: float | None


@dataclass(slots=True)
class Position:
    quantity: float = 0.0
    avg_cost: float = 0.0  # per share, commissions included


class Book:
    """Account state shared by all sessions; see the module docstring for the accounting rules."""

    def __init__(self, account: str = "DU111111", cash_usd: float = 1_000_000.0, costs: CostsConfig | None = None):
        self.account = account
        self.cash = cash_usd
        self.positions: dict[str, Position] = {}
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self.max_order_id: dict[int, int] = {}
        self._commission: CommissionModel = build_commission_model(costs or CostsConfig())
        self._perm_ids = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)

    def next_perm_id(self) -> int:
        return next(self._perm_ids)

    def next_valid_id(self, client_id: int) -> int:
        return self.max_order_id.get(client_id, 0) + 1

    def note_order_id(self, client_id: int, order_id: int) -> None:
        self.max_order_id[client_id] = max(self.max_order_id.get(client_id, 0), order_id)

    def working_orders(self, client_id: int | None = None) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.is_working and (client_id is None or o.client_id == client_id)]

    def fill(self, order: SimOrder, shares: float, price: float, ts_ns: int) -> Execution:
        """Record one execution of ``order``: order progress, commission, cash and position."""
        shares = min(shares, order.remaining)
        if shares <= 0:
            raise ValueError(f"order {order.key} has nothing left to fill (remaining={order.remaining})")
        new_filled = order.filled + shares
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * shares) / new_filled
        order.filled = new_filled
        order.last_fill_price = price
        total_commission = self._commission.commission(order.side, round(new_filled), price, ts_ns)
        commission = max(0.0, total_commission - order.commission_paid)
        order.commission_paid += commission
        self._commission.record_fill(round(shares), ts_ns)
        signed = shares if order.side is Side.BUY else -shares
        self.cash -= signed * price + commission
        realized = self._apply_position(order.stock.symbol, signed, price, commission)
        seq = next(self._exec_seq)
        execution = Execution(
            exec_id=f"0000e0d5.{order.perm_id:08x}.{seq % 256:02x}.01",
            client_id=order.client_id,
            order_id=order.order_id,
            perm_id=order.perm_id,
            stock=order.stock,
            side="BOT" if order.side is Side.BUY else "SLD",
            shares=shares,
            price=price,
            time_ns=ts_ns,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
            account=self.account,
            commission=commission,
            realized_pnl=realized,
        )
        self.executions.append(execution)
        if order.remaining <= 1e-9:
            order.status = "Filled"
        log.info(
            "event=execution exec_id=%s order_id=%d client_id=%d symbol=%s side=%s shares=%s price=%.4f",
            execution.exec_id, order.order_id, order.client_id, order.stock.symbol, execution.side, shares, price,
        )  # fmt: skip
        return execution

    def _apply_position(self, symbol: str, signed: float, price: float, commission: float) -> float | None:
        """Update the position; returns realized P&L (after commission) when the fill reduces it, else None."""
        pos = self.positions.setdefault(symbol, Position())
        if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            cost = pos.avg_cost * abs(pos.quantity) + price * abs(signed) + commission
            pos.quantity += signed
            pos.avg_cost = cost / abs(pos.quantity)
            return None
        closing = min(abs(signed), abs(pos.quantity))
        direction = 1.0 if pos.quantity > 0 else -1.0
        realized = (price - pos.avg_cost) * closing * direction - commission
        pos.quantity += signed
        if abs(pos.quantity) < 1e-9:
            pos.quantity, pos.avg_cost = 0.0, 0.0
        elif (pos.quantity > 0) != (direction > 0):  # flipped: the rest opens at this price
            pos.avg_cost = price
        return realized

    def account_values(self, marks: dict[str, float]) -> dict[str, float]:
        """The summary tags, all from the same cash and marks, so NetLiquidation = cash + Σ qty × mark."""
        market_value = sum(p.quantity * marks.get(s, p.avg_cost) for s, p in self.positions.items())
        gross = sum(abs(p.quantity) * marks.get(s, p.avg_cost) for s, p in self.positions.items())
        return {
            "NetLiquidation": self.cash + market_value,
            "TotalCashValue": self.cash,
            "SettledCash": self.cash,
            "BuyingPower": max(0.0, self.cash),
            "GrossPositionValue": gross,
        }
