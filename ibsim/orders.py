"""The order desk: accepts, rejects, fills and cancels orders, and tells the owning client (TWS ordering, §6).

Fills are decided by ``ibsim.fills`` against ``Market`` quotes; accounting is ``Book``'s. Every method is
called under the server lock. Messages go to the session owning the order's clientId; if it is gone the
order still fills (as at TWS) and the client sees it through reqExecutions / reqOpenOrders later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ibsim import fills, responses
from ibsim.book import Book, Execution, SimOrder
from ibsim.config import Faults, SimConfig
from ibsim.market import Market, Stock, con_id_for
from ibsim.requests import PlaceOrder
from ibsim.session import ClientSession

log = logging.getLogger(__name__)


class OrderDesk:
    def __init__(
        self,
        book: Book,
        market: Market,
        faults: Faults,
        sessions: dict[int, ClientSession],
        cfg: SimConfig,
        on_fill: Callable[[Execution], None],
    ) -> None:
        self.book = book
        self.market = market
        self.faults = faults
        self.sessions = sessions
        self.cfg = cfg
        self._on_fill = on_fill
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0xA16])))
        self._auctions_done = -1

    # ------------------------------------------------------------ messaging
    def _send(self, client_id: int, data: bytes) -> None:
        session = self.sessions.get(client_id)
        if session is not None:
            session.send(data)

    def _ack(self, order: SimOrder) -> None:
        self._send(order.client_id, responses.open_order(order))
        self._send(order.client_id, responses.order_status(order))

    def replay_working(self, session: ClientSession) -> None:
        """OPEN_ORDER + ORDER_STATUS for each working order of this client (after START_API / reqOpenOrders)."""
        for order in self.book.working_orders(session.client_id):
            session.send(responses.open_order(order))
            session.send(responses.order_status(order))

    # ------------------------------------------------------------ placing
    def place(self, client_id: int, req: PlaceOrder) -> None:
        if self.faults.withhold_acks:
            log.info("event=order_ack_withheld client_id=%d order_id=%d", client_id, req.order_id)
            self.faults.held_orders.append((client_id, req))
            return
        existing = self.book.orders.get((client_id, req.order_id))
        if existing is not None and existing.is_working:
            self._modify(existing, req)
            return
        if req.order_id <= self.book.max_order_id.get(client_id, 0):
            self._send(client_id, responses.error(req.order_id, 103, "Duplicate order id"))
            return
        self.book.note_order_id(client_id, req.order_id)
        order = self._new_order(client_id, req)
        if not self.market.has(order.stock.symbol) or req.contract.sec_type not in ("STK", ""):
            order.status = "Inactive"
            self._send(
                client_id, responses.error(req.order_id, 200, "No security definition has been found for the request")
            )
            self._send(client_id, responses.order_status(order))
            return
        reason = self._rejection(order)
        if reason is None and self.faults.reject_next_reason is not None:
            reason, self.faults.reject_next_reason = self.faults.reject_next_reason, None
        if reason is not None:
            self._reject(order, reason)
            return
        if self.faults.partial_next_fraction is not None:
            order.partial_fraction, self.faults.partial_next_fraction = self.faults.partial_next_fraction, None
        order.status = "PreSubmitted" if order.order_type in fills.CLOSE_AUCTION_TYPES else "Submitted"
        if order.algo_strategy.upper() == "TWAP":
            _, close_ns = self.market.session_bounds_ns(order.session_idx)
            order.schedule = fills.twap_schedule(
                order, order.submitted_ns, close_ns, self.cfg.twap_slices, self.cfg.twap_window_s
            )
        log.info(
            "event=order_accepted client_id=%d order_id=%d symbol=%s action=%s qty=%s type=%s algo=%s ref=%s",
            client_id, order.order_id, order.stock.symbol, order.action, order.quantity, order.order_type,
            order.algo_strategy or "-", order.order_ref or "-",
        )  # fmt: skip
        self._ack(order)
        self.try_fill(order)

    def _new_order(self, client_id: int, req: PlaceOrder) -> SimOrder:
        symbol = req.contract.symbol
        stock = self.market.stocks.get(symbol) or Stock(symbol, con_id_for(symbol))
        idx, now = self.market.position()
        order = SimOrder(
            client_id=client_id,
            order_id=req.order_id,
            perm_id=self.book.next_perm_id(),
            stock=stock,
            action=req.action,
            quantity=req.total_quantity,
            order_type=req.order_type,
            lmt_price=req.lmt_price,
            aux_price=req.aux_price,
            tif=req.tif,
            account=req.account or self.book.account,
            order_ref=req.order_ref,
            parent_id=req.parent_id,
            algo_strategy=req.algo_strategy,
            algo_params=req.algo_params,
            submitted_ns=now,
            session_idx=idx,
        )
        self.book.orders[order.key] = order
        return order

    def _rejection(self, order: SimOrder) -> str | None:
        """Why the order cannot be accepted (text after ``Order rejected - reason:``), or None."""
        if order.action not in ("BUY", "SELL"):
            return f"action must be BUY or SELL (got {order.action!r})"
        if not order.quantity > 0 or order.quantity != int(order.quantity):
            return f"totalQuantity must be a positive whole number of shares (got {order.quantity})"
        if order.order_type not in fills.SUPPORTED_TYPES:
            return f"order type {order.order_type} is not supported by ibsim (use {sorted(fills.SUPPORTED_TYPES)})"
        if order.order_type in ("LMT", "LOC") and (order.lmt_price is None or order.lmt_price <= 0):
            return f"{order.order_type} order needs a positive lmtPrice (got {order.lmt_price})"
        if order.algo_strategy.upper() not in fills.SUPPORTED_ALGOS:
            return f"algoStrategy {order.algo_strategy} is not supported by ibsim (use Adaptive or Twap)"
        if order.order_type in fills.CLOSE_AUCTION_TYPES:
            day = self.market.sessions[order.session_idx]
            cutoff = self.market.calendar.moc_cutoff_ns(day, self.cfg.moc_cutoff_minutes)
            if order.submitted_ns > cutoff:
                minutes = self.cfg.moc_cutoff_minutes
                return f"{order.order_type} orders must be submitted by {minutes} min before the close"
        return None

    def _reject(self, order: SimOrder, reason: str) -> None:
        order.status = "Inactive"
        log.info("event=order_rejected client_id=%d order_id=%d reason=%s", order.client_id, order.order_id, reason)
        self._send(order.client_id, responses.error(order.order_id, 201, f"Order rejected - reason:{reason}"))
        self._send(order.client_id, responses.order_status(order))

    def _modify(self, order: SimOrder, req: PlaceOrder) -> None:
        """A PLACE_ORDER with a working order's id changes its quantity and limit (TWS modify)."""
        if req.total_quantity < order.filled or req.total_quantity <= 0:
            self._send(
                order.client_id, responses.error(order.order_id, 201, "Order rejected - reason:quantity below filled")
            )
            return
        order.quantity = req.total_quantity
        order.lmt_price = req.lmt_price
        self._ack(order)
        self.try_fill(order)

    def release_held(self, deliver: bool) -> None:
        """End of the withhold-acks fault: process (``deliver``) or drop the orders held meanwhile."""
        held, self.faults.held_orders = self.faults.held_orders, []
        self.faults.withhold_acks = False
        if deliver:
            for client_id, req in held:
                self.place(client_id, req)

    # ------------------------------------------------------------ filling
    def try_fill(self, order: SimOrder) -> None:
        """Fill what the order's model allows right now (called on placement and on every tick)."""
        if not order.is_working or order.order_type in fills.CLOSE_AUCTION_TYPES:
            return
        if order.partial_fraction is not None and order.filled > 0:
            return  # fault: the remainder stays working until cancelled
        idx, now = self.market.position()
        quote = self.market.quote_at(order.stock.symbol, idx, now)
        algo = order.algo_strategy.upper()
        if algo == "TWAP":
            while order.schedule and order.schedule[0][0] <= now and order.is_working:
                price = fills.marketable_price(order, quote)
                if price is None:
                    return
                _, shares = order.schedule.pop(0)
                self._execute(order, shares if order.schedule else order.remaining, price, now)
            return
        price = (
            fills.adaptive_price(order, quote, self._rng)
            if algo == "ADAPTIVE"
            else fills.marketable_price(order, quote)
        )
        if price is not None:
            self._execute(order, order.remaining, price, now)

    def _execute(self, order: SimOrder, shares: float, price: float, now_ns: int) -> None:
        if order.partial_fraction is not None:
            shares = max(1.0, float(int(order.quantity * order.partial_fraction)))
        execution = self.book.fill(order, shares, price, now_ns)
        self._send(order.client_id, responses.execution_data(-1, execution))
        if self.faults.duplicate_next_exec:
            self.faults.duplicate_next_exec = False
            self._send(order.client_id, responses.execution_data(-1, execution))
        if order.status == "Filled":
            self._send(order.client_id, responses.open_order(order))
        self._send(order.client_id, responses.order_status(order))
        self._send(order.client_id, responses.commission_report(execution))
        master = self.cfg.master_client_id
        if master is not None and master != order.client_id:  # TWS's master API client sees every execution
            self._send(master, responses.execution_data(-1, execution))
            self._send(master, responses.commission_report(execution))
        self._on_fill(execution)

    def on_tick(self) -> None:
        idx, now = self.market.position()
        _, close_ns = self.market.session_bounds_ns(idx)
        last_done = idx - 1 if now < close_ns else idx
        while self._auctions_done < last_done:
            self._auctions_done += 1
            self._close_auction(self._auctions_done)
        for order in list(self.book.working_orders()):
            self.try_fill(order)

    def _close_auction(self, idx: int) -> None:
        """Run the closing auction of session ``idx``: MOC fill, LOC fill or cancel at the close price."""
        _, close_ns = self.market.session_bounds_ns(idx)
        for order in self.book.working_orders():
            if order.order_type not in fills.CLOSE_AUCTION_TYPES or order.session_idx > idx:
                continue
            close_price = self.market.close_price(order.stock.symbol, idx)
            if fills.close_auction_fills(order, close_price):
                order.status = "Submitted"
                self._execute(order, order.remaining, close_price, close_ns)
            else:
                self._cancel(order, "LOC limit not reached in the closing auction")

    # ------------------------------------------------------------ cancelling
    def cancel(self, client_id: int, order_id: int) -> None:
        order = self.book.orders.get((client_id, order_id))
        if order is None:
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            self._send(client_id, responses.error(order_id, 10147, text))
            return
        if not order.is_working:
            text = f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}."
            self._send(client_id, responses.error(order_id, 10148, text))
            return
        self._cancel(order, "")

    def cancel_all(self) -> None:
        """reqGlobalCancel: every working order of every client; each owner hears about its own."""
        for order in list(self.book.working_orders()):
            self._cancel(order, "")

    def _cancel(self, order: SimOrder, reason: str) -> None:
        order.status = "Cancelled"
        order.schedule = []
        log.info("event=order_cancelled client_id=%d order_id=%d reason=%s", order.client_id, order.order_id, reason)
        self._send(order.client_id, responses.error(order.order_id, 202, f"Order Canceled - reason:{reason}"))
        self._send(order.client_id, responses.order_status(order))
