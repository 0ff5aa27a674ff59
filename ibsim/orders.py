"""The order desk: accepts, rejects, fills and cancels orders, and tells the owning client (TWS ordering, §6).

Fills are decided by ``ibsim.fills`` against ``Market`` quotes, with the costs of ``SimConfig.cost_profile``
(``ibsim.cost_profiles``); accounting is ``Book``'s. Every method is called under the server lock. Messages go
to the session owning the order's clientId; if it is gone the order still fills (as at TWS) and the client sees
it through reqExecutions / reqOpenOrders later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from core.config_models import WheelArm
from ibsim import cost_profiles, fills, responses
from ibsim.book import Book, Execution, SimOrder
from ibsim.config import Faults, SimConfig
from ibsim.cost_profiles import CostContext
from ibsim.market import Market, Quote, Stock, con_id_for
from ibsim.requests import PlaceOrder
from ibsim.session import ClientSession

log = logging.getLogger(__name__)
_VOL_DAYS = 20


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
        self.profile = cost_profiles.get_profile(cfg.cost_profile)
        # the profile's own draws (drift, LOC non-fills) have a stream of their own: under the default profile,
        # which draws nothing, every fill is what it was before profiles existed
        self._cost_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0xC057])))
        self._twap_offsets: dict[tuple[int, int], list[float]] = {}  # per TWAP order: each slice's cost, bps
        self._volatility: dict[tuple[str, int], float] = {}
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
            self._schedule_twap(order)
        log.info(
            "event=order_accepted client_id=%d order_id=%d symbol=%s action=%s qty=%s type=%s algo=%s ref=%s",
            client_id, order.order_id, order.stock.symbol, order.action, order.quantity, order.order_type,
            order.algo_strategy or "-", order.order_ref or "-",
        )  # fmt: skip
        self._ack(order)
        self.try_fill(order)

    def _schedule_twap(self, order: SimOrder) -> None:
        """The TWAP's child slices (the profile's slice count, else ``twap_slices``) and each one's cost offset."""
        _, close_ns = self.market.session_bounds_ns(order.session_idx)
        slices = self.profile.twap.slices or self.cfg.twap_slices
        now_ns, window_s = order.submitted_ns, self.cfg.twap_window_s
        order.schedule = fills.twap_schedule(order, now_ns, close_ns, slices, window_s)
        if self.profile.is_neutral or not order.schedule:
            return
        window_minutes = (fills.twap_end_ns(order, now_ns, close_ns, window_s) - now_ns) / 60e9
        ctx = self._cost_context(order, self.market.quote_at(order.stock.symbol, order.session_idx, now_ns), now_ns)
        self._twap_offsets[order.key] = cost_profiles.twap_slice_offsets_bps(
            self.profile, ctx, len(order.schedule), window_minutes, self._cost_rng
        )

    # ------------------------------------------------------------ cost context
    def _participation(self, order: SimOrder, idx: int) -> float:
        """The order's remaining shares over session ``idx``'s volume (0 when the volume is unknown)."""
        bar = self.market.bar(order.stock.symbol, idx)
        volume = 0.0 if bar is None else float(bar["volume"])
        return order.remaining / volume if volume > 0 else 0.0

    def _volatility_pct(self, symbol: str, idx: int) -> float:
        """Annualized volatility of the 20 daily closes before session ``idx``, in percent (0 without history)."""
        key = (symbol, idx)
        if key not in self._volatility:
            closes = self.market.daily_bars(symbol, idx, _VOL_DAYS + 1)["close"].to_numpy(dtype=float)
            returns = np.diff(np.log(closes[closes > 0]))
            vol = float(np.std(returns, ddof=1) * np.sqrt(252.0) * 100.0) if len(returns) >= 2 else 0.0
            self._volatility[key] = vol if np.isfinite(vol) else 0.0
        return self._volatility[key]

    def _cost_context(self, order: SimOrder, quote: Quote, now_ns: int) -> CostContext:
        """What the cost profile needs about ``order`` now: participation, volatility, spread, minutes left."""
        _, close_ns = self.market.session_bounds_ns(order.session_idx)
        spread_bps = (quote.ask - quote.bid) / quote.mid * 10_000.0 if quote.mid > 0 else 0.0
        return CostContext(
            participation=self._participation(order, order.session_idx),
            volatility_20d_pct=self._volatility_pct(order.stock.symbol, order.session_idx),
            spread_bps=max(spread_bps, 0.0),
            minutes_to_close=(close_ns - now_ns) / 60e9,
        )

    def _adaptive_extra_bps(self, order: SimOrder, quote: Quote, now_ns: int) -> float:
        """The profile's Adaptive impact and delay drift for ``order`` now (0 under a neutral profile)."""
        if self.profile.is_neutral:
            return 0.0
        ctx = self._cost_context(order, quote, now_ns)
        return cost_profiles.adaptive_extra_bps(self.profile, fills.adaptive_priority(order), ctx, self._cost_rng)

    # ------------------------------------------------------------ orders
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
        if order.order_type == "STP" and (order.aux_price is None or order.aux_price <= 0):
            return f"STP order needs a positive auxPrice, its stop price (got {order.aux_price})"
        if order.order_type == "STP" and order.algo_strategy:
            return f"STP order takes no algoStrategy (got {order.algo_strategy})"
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
        order.aux_price = req.aux_price
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
        if not fills.stop_triggered(order, quote):
            return  # a stop rests until the market trades through it
        algo = order.algo_strategy.upper()
        if algo == "TWAP":
            self._fill_twap_slices(order, quote, now)
            return
        price = (
            fills.adaptive_price(order, quote, self._rng, self.profile, self._adaptive_extra_bps(order, quote, now))
            if algo == "ADAPTIVE"
            else fills.marketable_price(order, quote)
        )
        if price is not None:
            self._execute(order, order.remaining, price, now)

    def _fill_twap_slices(self, order: SimOrder, quote: Quote, now: int) -> None:
        """Every slice due by ``now``, at the touch plus its cost offset; stops at a slice the limit forbids."""
        offsets = self._twap_offsets.get(order.key, [])
        while order.schedule and order.schedule[0][0] <= now and order.is_working:
            price = fills.twap_slice_price(order, quote, offsets[0] if offsets else 0.0)
            if price is None:
                return
            _, shares = order.schedule.pop(0)
            if offsets:
                offsets.pop(0)
            self._execute(order, shares if order.schedule else order.remaining, price, now)
        if not order.schedule:
            self._twap_offsets.pop(order.key, None)

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
        """Run the closing auction of session ``idx``: MOC fill, LOC fill or cancel, at the close price moved
        against the order by the profile's close-auction impact for its share of the session's volume."""
        _, close_ns = self.market.session_bounds_ns(idx)
        for order in self.book.working_orders():
            if order.order_type not in fills.CLOSE_AUCTION_TYPES or order.session_idx > idx:
                continue
            participation = self._participation(order, idx)
            arm = WheelArm.MOC if order.order_type == "MOC" else WheelArm.LOC
            impact_bps = cost_profiles.close_auction_impact_bps(self.profile, arm, participation)
            price = fills.against_order(order, self.market.close_price(order.stock.symbol, idx), impact_bps)
            if not fills.close_auction_fills(order, price):
                self._cancel(order, "LOC limit not reached in the closing auction")
                continue
            unfilled = self._loc_unfilled_reason(participation) if order.order_type == "LOC" else None
            if unfilled is not None:
                self._cancel(order, unfilled)
                continue
            order.status = "Submitted"
            self._execute(order, order.remaining, price, close_ns)

    def _loc_unfilled_reason(self, participation: float) -> str | None:
        """Why a LOC that reached its limit still does not fill (the profile's non-fill draw), or None."""
        q = self.profile.loc.non_fill_probability(participation)
        if q <= 0.0 or (q < 1.0 and float(self._cost_rng.random()) >= q):
            return None
        return (
            f"LOC not filled in the closing auction (cost profile {self.profile.name}: non-fill probability "
            f"{q:.2f} at {participation:.2%} of the session's volume)"
        )

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
        self._twap_offsets.pop(order.key, None)
        log.info("event=order_cancelled client_id=%d order_id=%d reason=%s", order.client_id, order.order_id, reason)
        self._send(order.client_id, responses.error(order.order_id, 202, f"Order Canceled - reason:{reason}"))
        self._send(order.client_id, responses.order_status(order))
