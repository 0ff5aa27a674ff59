"""Positions, average cost and realized P&L per symbol and per strategy, rebuilt from the engine's order log.

Why from the order log: it is the one record of every fill the dashboard may read (the engine's ledger lives in
the engine process, which the dashboard must not depend on: it keeps working when the engine is frozen or gone).
Each ``partial``/``fill`` row carries the cumulative filled quantity of its order and this execution's price, so
the execution's shares are the increase of the cumulative quantity. Average cost is the average-cost method of
the engine's ledger (gross of commissions: the order log has none); realized P&L is booked when a position
shrinks. Marks come from elsewhere (the engine's STATUS), so unrealized P&L is computed by the caller's marks.

Pure: rows in, numbers out; one owner (the dashboard's collector thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FILL_EVENTS = frozenset({"partial", "fill"})
FLATTEN_STRATEGY_ID = "flatten"  # portfolio.portfolio_manager's id for the orders a flatten sends
TERMINAL_EVENTS = frozenset({"fill", "cancel", "reject", "expire"})
_EPS = 1e-9


@dataclass(slots=True)
class Lot:
    """One book line: shares held (negative for short), their average cost and what closing trades realized."""

    quantity: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0

    def apply(self, signed_shares: float, price: float) -> None:
        if abs(self.quantity) < _EPS or self.quantity * signed_shares > 0:  # opening or adding
            total = self.quantity + signed_shares
            self.avg_cost = (self.avg_cost * self.quantity + price * signed_shares) / total
            self.quantity = total
            return
        closing = min(abs(signed_shares), abs(self.quantity))
        direction = 1.0 if self.quantity > 0 else -1.0
        self.realized_pnl += (price - self.avg_cost) * closing * direction
        remainder = abs(signed_shares) - closing
        self.quantity += signed_shares
        if abs(self.quantity) < _EPS:
            self.quantity, self.avg_cost = 0.0, 0.0
        elif remainder > _EPS:  # flipped through zero: the rest opens at this price
            self.avg_cost = price


@dataclass(slots=True)
class OrderBook:
    """Folds order-log rows (dicts keyed by the log's columns) into positions, working orders and fills."""

    by_symbol: dict[str, Lot] = field(default_factory=dict)
    by_strategy: dict[tuple[str, str], Lot] = field(default_factory=dict)
    working: dict[str, dict[str, str]] = field(default_factory=dict)
    fills: list[dict[str, object]] = field(default_factory=list)
    _filled: dict[str, float] = field(default_factory=dict)
    max_fills_kept: int = 50

    def apply_row(self, row: Mapping[str, str]) -> None:
        event, order_id = row.get("event", ""), row.get("client_order_id", "")
        if not order_id:
            return
        if event in FILL_EVENTS:
            self._apply_fill(row, order_id)
        if event in TERMINAL_EVENTS:
            self.working.pop(order_id, None)
        elif event in ("submit", "ack", "partial"):
            self.working[order_id] = dict(row)

    def _apply_fill(self, row: Mapping[str, str], order_id: str) -> None:
        cumulative, price = _number(row.get("filled_quantity")), _number(row.get("fill_price"))
        if cumulative is None or price is None:
            return
        shares = cumulative - self._filled.get(order_id, 0.0)
        if shares <= _EPS:
            return
        self._filled[order_id] = cumulative
        sign = 1.0 if row.get("side") == "BUY" else -1.0
        symbol, strategy = row.get("symbol", ""), row.get("strategy_id", "") or "-"
        self.by_symbol.setdefault(symbol, Lot()).apply(sign * shares, price)
        if strategy == FLATTEN_STRATEGY_ID:
            self._close_strategies(symbol, sign * shares, price)
        else:
            self.by_strategy.setdefault((strategy, symbol), Lot()).apply(sign * shares, price)
        self.fills.append({"ts_utc": row.get("ts_utc"), "ts_ns": _int(row.get("ts_ns")), "symbol": symbol,
                           "strategy_id": strategy, "side": row.get("side"), "shares": shares, "price": price,
                           "client_order_id": order_id})  # fmt: skip
        del self.fills[: -self.max_fills_kept]


    def _close_strategies(self, symbol: str, signed_shares: float, price: float) -> None:
        """A flatten's fill closes the strategies' lots of ``symbol`` pro rata (their realized P&L is booked on
        them); shares beyond what they hold go to a ``flatten`` line."""
        opposite = {k: lot for k, lot in self.by_strategy.items()
                    if k[1] == symbol and lot.quantity * signed_shares < -_EPS}  # fmt: skip
        held = sum(abs(lot.quantity) for lot in opposite.values())
        closing = min(abs(signed_shares), held)
        direction = 1.0 if signed_shares > 0 else -1.0
        for lot in opposite.values():
            lot.apply(direction * closing * abs(lot.quantity) / held, price)
        rest = abs(signed_shares) - closing
        if rest > _EPS:
            self.by_strategy.setdefault((FLATTEN_STRATEGY_ID, symbol), Lot()).apply(direction * rest, price)


def position_rows(lots: Mapping[object, Lot], marks: Mapping[str, float]) -> list[dict[str, object]]:
    """Table rows with mark and unrealized P&L (None where no mark is known); lines never traded are skipped."""
    rows = []
    for key, lot in sorted(lots.items(), key=lambda item: str(item[0])):
        strategy, symbol = key if isinstance(key, tuple) else (None, str(key))
        mark = marks.get(symbol)
        unrealized = None if mark is None or abs(lot.quantity) < _EPS else (mark - lot.avg_cost) * lot.quantity
        rows.append({"strategy_id": strategy, "symbol": symbol, "quantity": lot.quantity,
                     "avg_cost": lot.avg_cost if abs(lot.quantity) >= _EPS else None, "mark": mark,
                     "unrealized_pnl": unrealized, "realized_pnl": lot.realized_pnl})  # fmt: skip
    return rows


def symbol_rows(ledger: Mapping[str, Mapping[str, float | None]] | None, lots: Mapping[str, Lot],
                broker: Mapping[str, float], marks: Mapping[str, float] | None = None) -> list[dict[str, object]]:
    """One row per symbol held by the engine, the broker or the order log's book, or with realized P&L.

    Quantity and average cost are the engine ledger's (``ledger``: STATUS's ``book.symbols``, the owner of
    positions, reconciled with the broker at start) when the caller has a current one, else the order log's book
    (the engine gone, frozen, or a fill newer than its last STATUS); marks are the ledger's last prices (``marks``,
    or the ledger's own); realized P&L is the order log's (gross of commissions); ``broker_quantity`` is what the
    monitor's own IB connection sees.
    """
    rows = []
    for symbol in sorted(set(lots) | set(broker) | set(ledger or {})):
        lot, line = lots.get(symbol, Lot()), (ledger or {}).get(symbol)
        quantity = float(line["quantity"] or 0.0) if line is not None else lot.quantity
        avg_cost = line.get("avg_cost") if line is not None else (lot.avg_cost if abs(lot.quantity) >= _EPS else None)
        mark = (marks or {}).get(symbol) if line is None else line.get("mark")
        if abs(quantity) < _EPS and abs(lot.realized_pnl) < _EPS and abs(broker.get(symbol, 0.0)) < _EPS:
            continue
        unrealized = None if mark is None or avg_cost is None else (mark - avg_cost) * quantity
        rows.append({"symbol": symbol, "quantity": quantity, "broker_quantity": float(broker.get(symbol, 0.0)),
                     "avg_cost": avg_cost, "mark": mark, "unrealized_pnl": unrealized,
                     "realized_pnl": lot.realized_pnl, "source": "engine" if line is not None else "order log"})
    return rows


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None
