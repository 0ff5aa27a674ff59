"""Erroneous-order controls: refuse an order that is obviously wrong before it reaches a venue.

In the spirit of SEC rule 15c3-5 and zipline's trading controls: one small class per limit, each a pure
``check(order, book, now_ns) -> Rejection | None`` that never mutates state, so the backtester and the live
engine run the very same checks and a check can be asked again without side effects. History (what was
accepted, and when) moves only through ``PreTradeGate.accept``, which the caller invokes after *every* check,
including the risk manager's, has passed: a refused order must never count towards the duplicate guard or the
rate throttle.

Reduce-only orders (exits, flattening) and the rules, check by check:

- ``RestrictedSymbols``, ``MaxOrderQuantity``, ``PriceCollar``'s limit-price test, ``MaxOrderNotional``'s limit,
  ``MaxAdvParticipation``'s participation limit, ``DuplicateOrderGuard`` and ``OrderRateThrottle`` apply to
  every order: a fat finger or a flood is as dangerous on the way out as on the way in (a duplicated exit of a
  long position opens a short).
- Exempt for reduce-only orders: ``MaxAdvParticipation`` when the volume is unknown, ``PriceCollar`` when the
  last price is unknown or the reference price is missing, and ``MaxOrderNotional`` when no price is known at
  all. Missing data must not trap a position.
- ``NoShortSales`` applies to every SELL; a genuine reduce-only SELL never exceeds the long position, so it
  passes by construction, while a mislabelled one is refused.

The ``reduce_only`` flag is never trusted on its own: an exemption applies only when the book confirms that the
order moves the position toward zero without crossing it (``is_verified_reduce_only``).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeGuard

from core.clock import NS_PER_SECOND
from core.config_models import PreTradeConfig
from core.events import OrderEvent, Side, slot_init

log = logging.getLogger(__name__)

NS_PER_MINUTE = 60 * NS_PER_SECOND


@slot_init
@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an order was refused: ``check`` names the control, ``reason`` is a sentence for a person."""

    check: str
    reason: str


class BookView(Protocol):
    """What the checks may read about the book and the market; unknown values are NaN, never an exception."""

    def position(self, symbol: str) -> int: ...

    def last_price(self, symbol: str) -> float: ...

    def average_daily_volume(self, symbol: str) -> float: ...


class PreTradeCheck(Protocol):
    """One limit. ``check`` must not mutate anything: it may be called again, or for diagnostics only."""

    name: str

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None: ...


def reduces_position(side: Side, quantity: int, position: int) -> bool:
    """True when the order moves ``position`` toward zero without crossing it (a genuine reduce-only order)."""
    if quantity <= 0 or position == 0:
        return False
    return side.sign != (1 if position > 0 else -1) and quantity <= abs(position)


def is_verified_reduce_only(order: OrderEvent, position: int) -> bool:
    """The order claims to be reduce-only *and* the position confirms it; the flag alone proves nothing."""
    return order.reduce_only and reduces_position(order.side, order.quantity, position)


def usable_price(price: float | None) -> TypeGuard[float]:
    """A price we can compute with: present, finite and positive."""
    return price is not None and math.isfinite(price) and price > 0.0


def _valuation_price(order: OrderEvent, last: float) -> tuple[str, float] | None:
    """The first usable of the order's limit price, its reference price and the last price, with its label."""
    if usable_price(order.limit_price):
        return "limit price", order.limit_price
    if usable_price(order.reference_price):
        return "reference price", order.reference_price
    if usable_price(last):
        return "last price", last
    return None


def describe(order: OrderEvent) -> str:
    """The order as a person reads it in a reason, e.g. ``BUY 1,500 AAA``."""
    return f"{order.side} {order.quantity:,} {order.symbol}"


def _pct_away(price: float, anchor: float) -> float:
    return abs(price - anchor) / anchor * 100.0


class MaxOrderQuantity:
    """Refuses a quantity outside 1..max shares: a fat-fingered size is the classic erroneous order.

    A verified reduce-only order (an exit no larger than the position) may exceed the maximum: it cannot be a
    fat finger beyond what is held, and refusing it would trap a position that grew past the limit.
    """

    name = "max_order_quantity"

    def __init__(self, max_quantity: int) -> None:
        self.max_quantity = max_quantity

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        if order.quantity < 1:
            return Rejection(
                self.name, f"{describe(order)}: the quantity must be at least 1 share (got {order.quantity:,})."
            )
        if order.quantity > self.max_quantity and not is_verified_reduce_only(order, book.position(order.symbol)):
            return Rejection(
                self.name,
                f"{describe(order)}: the quantity of {order.quantity:,} shares is above the per-order limit of "
                f"{self.max_quantity:,} shares (pre_trade.max_order_quantity); split the order or raise the limit.",
            )
        return None


class MaxOrderNotional:
    """Refuses an order worth more than the limit, valued at the limit, else the reference, else the last price.

    The limit price comes first because it is the worst price the order can fill at. An order that cannot be
    valued at all is refused unless it is a verified reduce-only order, and a verified reduce-only order is never
    refused for its size: a position whose value grew past the limit must still be closable.
    """

    name = "max_order_notional"

    def __init__(self, max_notional_usd: float) -> None:
        self.max_notional_usd = max_notional_usd

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        last = book.last_price(order.symbol)
        priced = _valuation_price(order, last)
        if priced is None:
            if is_verified_reduce_only(order, book.position(order.symbol)):
                return None
            return Rejection(
                self.name,
                f"{describe(order)}: the order cannot be valued because it has no usable limit, reference or last "
                f"price (got {order.limit_price}, {order.reference_price}, {last}); it is refused until a price "
                "is known.",
            )
        label, price = priced
        notional = order.quantity * price
        if notional > self.max_notional_usd and not is_verified_reduce_only(order, book.position(order.symbol)):
            return Rejection(
                self.name,
                f"{describe(order)}: the order is worth ${notional:,.2f} ({order.quantity:,} shares at the {label} "
                f"${price:,.2f}), above the per-order limit of ${self.max_notional_usd:,.2f} "
                "(pre_trade.max_order_notional_usd); split the order or raise the limit.",
            )
        return None


class MaxAdvParticipation:
    """Refuses an order above ``max_pct`` of the symbol's average daily volume: it would move the market.

    Unknown volume (a new listing, a data gap) is refused too, because participation cannot be bounded, except
    for verified reduce-only orders, which missing data must not trap. Known volume binds every order: a large
    exit must be split by the caller.
    """

    name = "max_adv_participation"

    def __init__(self, max_pct: float) -> None:
        self.max_pct = max_pct

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        adv = book.average_daily_volume(order.symbol)
        if not (math.isfinite(adv) and adv > 0.0):
            if is_verified_reduce_only(order, book.position(order.symbol)):
                return None
            return Rejection(
                self.name,
                f"{describe(order)}: the average daily volume of {order.symbol} is unknown (got {adv}), so the "
                f"order's share of the market cannot be checked against the limit of {self.max_pct:g}%; only "
                "reduce-only orders may trade a symbol without volume history.",
            )
        participation_pct = order.quantity / adv * 100.0
        if participation_pct > self.max_pct:
            return Rejection(
                self.name,
                f"{describe(order)}: the quantity is {participation_pct:.2f}% of the average daily volume of "
                f"{adv:,.0f} shares, above the limit of {self.max_pct:g}% (pre_trade.max_adv_participation_pct); "
                "split the order over several sessions.",
            )
        return None


class PriceCollar:
    """Refuses prices too far from the price the decision was made on (a fat finger, or a stale decision).

    Two tests against the order's reference price: its limit price, and the book's last price. An unknown last
    price (or a missing reference) passes only a verified reduce-only order; the limit-price test binds every
    order that carries both prices.
    """

    name = "price_collar"

    def __init__(self, collar_pct: float) -> None:
        self.collar_pct = collar_pct

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        reference = order.reference_price
        reduce_only = is_verified_reduce_only(order, book.position(order.symbol))
        if not usable_price(reference):
            if reduce_only:
                return None
            return Rejection(
                self.name,
                f"{describe(order)}: the order has no usable reference price (got {reference}), so its price "
                f"cannot be checked against the collar of {self.collar_pct:g}%.",
            )
        if order.limit_price is not None:
            away_pct = _pct_away(order.limit_price, reference) if usable_price(order.limit_price) else math.inf
            if away_pct > self.collar_pct:
                return Rejection(
                    self.name,
                    f"{describe(order)}: the limit price {order.limit_price} is {away_pct:.2f}% away from the "
                    f"reference price ${reference:,.2f}, beyond the collar of {self.collar_pct:g}% "
                    "(pre_trade.price_collar_pct).",
                )
        last = book.last_price(order.symbol)
        if not usable_price(last):
            if reduce_only:
                return None
            return Rejection(
                self.name,
                f"{describe(order)}: the last price of {order.symbol} is unknown (got {last}), so the reference "
                f"price ${reference:,.2f} cannot be confirmed; only reduce-only orders pass without a last price.",
            )
        away_pct = _pct_away(last, reference)
        if away_pct > self.collar_pct:
            return Rejection(
                self.name,
                f"{describe(order)}: the last price ${last:,.2f} is {away_pct:.2f}% away from the order's reference "
                f"price ${reference:,.2f}, beyond the collar of {self.collar_pct:g}% (pre_trade.price_collar_pct); "
                "the decision is stale or the market jumped, decide again on fresh prices.",
            )
        return None


class NoShortSales:
    """When short sales are not allowed, refuses a SELL larger than the current long position.

    With ``allowed=True`` the check passes everything (the risk manager still bounds exposure).
    """

    name = "no_short_sales"

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        if self.allowed or order.side is not Side.SELL:
            return None
        position = book.position(order.symbol)
        if order.quantity > max(position, 0):
            return Rejection(
                self.name,
                f"{describe(order)}: selling {order.quantity:,} shares against a position of {position:,} would "
                f"take it to {position - order.quantity:,} shares, a short sale, and short sales are not allowed "
                "(pre_trade.allow_short_sales: false); sell at most the long position.",
            )
        return None


class RestrictedSymbols:
    """Refuses a symbol outside the configured list: a typo or a stray signal must not reach the market."""

    name = "restricted_symbols"

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        if order.symbol not in self.allowed:
            return Rejection(
                self.name,
                f"{describe(order)}: the symbol {order.symbol!r} is not in the configured list of "
                f"{len(self.allowed)} symbols (symbols in config.yaml); add it there to trade it.",
            )
        return None


@slot_init
@dataclass(frozen=True, slots=True)
class AcceptedOrder:
    """What the history keeps of an accepted order."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    ts_ns: int


class OrderHistory:
    """Accepted orders, oldest first, kept for ``retention_ns`` and at most ``max_records`` (memory bound).

    Written only by ``record`` (the gate's ``accept``); read by the duplicate guard and the throttle. Times must
    not go backwards (one clock); an earlier time is clamped to the latest recorded one so reads stay ordered.
    Because they are ordered, a window's count is a bisection and the newest identical order is one dict lookup:
    the backtester checks every order of a 500-symbol session against the others, and scanning the records each
    time was the largest single cost of a cross-sectional run.
    """

    def __init__(self, retention_ns: int, max_records: int) -> None:
        self.retention_ns = retention_ns
        self.max_records = max_records
        self._records: list[AcceptedOrder] = []
        self._ts: list[int] = []  # the records' times, for bisection
        self._head = 0  # records before it were dropped (kept until compaction, never read)
        self._newest_identical: dict[tuple[str, Side, int], int] = {}  # (symbol, side, qty) -> absolute index
        self._dropped_before = 0  # absolute index of ``_records[0]``

    def __len__(self) -> int:
        return len(self._records) - self._head

    def record(self, order: OrderEvent, now_ns: int) -> None:
        if len(self) and now_ns < self._ts[-1]:
            log.warning("event=clock_went_backwards now_ns=%d last_ns=%d", now_ns, self._ts[-1])
            now_ns = self._ts[-1]
        accepted = AcceptedOrder(order.client_order_id, order.symbol, order.side, order.quantity, now_ns)
        self._newest_identical[(accepted.symbol, accepted.side, accepted.quantity)] = self._dropped_before + len(
            self._records
        )
        self._records.append(accepted)
        self._ts.append(now_ns)
        self._head = max(self._head, len(self._records) - self.max_records)
        self._head = bisect.bisect_right(self._ts, now_ns - self.retention_ns, lo=self._head)
        if self._head > 1024 and self._head * 2 > len(self._records):
            self._compact()

    def _compact(self) -> None:
        """Drop the records before the head (amortized O(1) per record); prune the index of what they held."""
        self._dropped_before += self._head
        del self._records[: self._head], self._ts[: self._head]
        self._head = 0
        first = self._dropped_before
        self._newest_identical = {k: i for k, i in self._newest_identical.items() if i >= first}

    def _first_after(self, cutoff_ns: int) -> int:
        return bisect.bisect_right(self._ts, cutoff_ns, lo=self._head)

    def count_recent(self, now_ns: int, window_ns: int) -> int:
        return len(self._records) - self._first_after(now_ns - window_ns)

    def newest_identical(self, order: OrderEvent, now_ns: int, window_ns: int) -> AcceptedOrder | None:
        """The newest kept order with ``order``'s symbol, side and quantity accepted in the last ``window_ns``."""
        index = self._newest_identical.get((order.symbol, order.side, order.quantity))
        if index is None:
            return None
        local = index - self._dropped_before
        if local < self._head:
            return None
        accepted = self._records[local]
        return accepted if accepted.ts_ns > now_ns - window_ns else None


class DuplicateOrderGuard:
    """Refuses an order identical in symbol, side and quantity to one accepted less than ``window_s`` ago.

    A repeated order is the signature of a retry loop or a double-fired signal. It binds exits too: a duplicated
    exit of a long position would open a short.
    """

    name = "duplicate_order"

    def __init__(self, window_s: float, history: OrderHistory) -> None:
        self.window_s = window_s
        self._window_ns = round(window_s * NS_PER_SECOND)
        self._history = history

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        accepted = self._history.newest_identical(order, now_ns, self._window_ns)
        if accepted is not None:
            age_s = (now_ns - accepted.ts_ns) / NS_PER_SECOND
            return Rejection(
                self.name,
                f"{describe(order)}: an identical order ({accepted.client_order_id}) was accepted {age_s:.3f} s "
                f"ago, inside the duplicate window of {self.window_s:g} s (pre_trade.duplicate_window_s); "
                "send it again after the window if it is intended.",
            )
        return None


class OrderRateThrottle:
    """Refuses an order when the sliding last second or last minute already holds the maximum of accepted orders.

    Binds every order, reduce-only included: a flood is a flood, whatever its direction.
    """

    name = "order_rate"

    def __init__(self, max_per_second: int, max_per_minute: int, history: OrderHistory) -> None:
        self.max_per_second = max_per_second
        self.max_per_minute = max_per_minute
        self._history = history

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        windows = (("second", NS_PER_SECOND, self.max_per_second), ("minute", NS_PER_MINUTE, self.max_per_minute))
        for unit, window_ns, limit in windows:
            count = self._history.count_recent(now_ns, window_ns)
            if count >= limit:
                return Rejection(
                    self.name,
                    f"{describe(order)}: {count:,} orders were accepted in the last {unit}, the limit is "
                    f"{limit:,} per {unit} (pre_trade.max_orders_per_{unit}); wait before sending more.",
                )
        return None


class PreTradeGate:
    """Every pre-trade check in a fixed order, plus the history that ``accept`` moves.

    The order goes from facts about the order alone (symbol, size), to the market (price, value, volume), to
    our position, to our own recent history, so the first rejection names the most basic problem.
    """

    def __init__(self, cfg: PreTradeConfig, allowed_symbols: Iterable[str]) -> None:
        retention_ns = max(NS_PER_MINUTE, round(cfg.duplicate_window_s * NS_PER_SECOND))
        minutes = math.ceil(retention_ns / NS_PER_MINUTE)
        self.history = OrderHistory(retention_ns, max_records=cfg.max_orders_per_minute * minutes + 1)
        # the size limits ``size_cap`` reads on every entry, kept apart so it need not search the checks
        self._max_quantity = MaxOrderQuantity(cfg.max_order_quantity)
        self._max_notional = MaxOrderNotional(cfg.max_order_notional_usd)
        self._max_adv = MaxAdvParticipation(cfg.max_adv_participation_pct)
        self.checks: tuple[PreTradeCheck, ...] = (
            RestrictedSymbols(allowed_symbols),
            self._max_quantity,
            PriceCollar(cfg.price_collar_pct),
            self._max_notional,
            self._max_adv,
            NoShortSales(cfg.allow_short_sales),
            DuplicateOrderGuard(cfg.duplicate_window_s, self.history),
            OrderRateThrottle(cfg.max_orders_per_second, cfg.max_orders_per_minute, self.history),
        )

    def check(self, order: OrderEvent, book: BookView, now_ns: int) -> Rejection | None:
        """The first failing check, or None. Moves nothing: call ``accept`` once every check has passed."""
        for control in self.checks:
            rejection = control.check(order, book, now_ns)
            if rejection is not None:
                log.warning(
                    'event=order_rejected check=%s client_order_id=%s symbol=%s side=%s qty=%d reason="%s"',
                    rejection.check,
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    order.quantity,
                    rejection.reason,
                )
                return rejection
        return None

    def size_cap(self, order: OrderEvent, book: BookView) -> tuple[int, str] | None:
        """The most shares ``order`` may have under the per-order quantity, notional and ADV-share limits, and the
        binding one; None when none binds (verified reduce-only orders are never cut here)."""
        if is_verified_reduce_only(order, book.position(order.symbol)):
            return None
        caps = [(self._max_quantity.max_quantity, self._max_quantity.name)]
        priced = _valuation_price(order, book.last_price(order.symbol))
        if priced is not None:
            caps.append((math.floor(self._max_notional.max_notional_usd / priced[1] + 1e-9), self._max_notional.name))
        adv = book.average_daily_volume(order.symbol)
        if math.isfinite(adv) and adv > 0.0:
            caps.append((math.floor(self._max_adv.max_pct / 100.0 * adv + 1e-9), self._max_adv.name))
        quantity, name = min(caps)
        return (max(quantity, 0), name) if quantity < order.quantity else None

    def check_all(self, order: OrderEvent, book: BookView, now_ns: int) -> list[Rejection]:
        """Every failing check, in gate order, for diagnostics (does not log, does not move anything)."""
        return [r for control in self.checks if (r := control.check(order, book, now_ns)) is not None]

    def accept(self, order: OrderEvent, now_ns: int) -> None:
        """Record an order that passed every check (ours and the risk manager's): the only state change here."""
        self.history.record(order, now_ns)
        log.debug(
            "event=order_accepted client_order_id=%s symbol=%s side=%s qty=%d",
            order.client_order_id,
            order.symbol,
            order.side,
            order.quantity,
        )
