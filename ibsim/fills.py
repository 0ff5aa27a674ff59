"""Fill models: at what price and in which slices an order executes against the simulated quote.

Pure functions of (order, quote, time) plus a seeded generator, so a run with the same seed fills the same.
- MKT: the touch (buy at the ask, sell at the bid), whole quantity at once.
- LMT: fills at the touch when marketable (price improvement kept), otherwise rests and fills at the touch
  when a later quote crosses the limit.
- STP (stop-market): rests until the replayed market trades through its stop (``auxPrice``): a sell stop once the
  last price is at or below it, a buy stop at or above; then it fills like MKT, at the touch of that moment. A
  price that jumps past the stop (a new session's open, a price shock) fills at the touch after the jump: a gap
  costs what it costs at a real venue.
- MOC / LOC: at the session's closing price when the clock reaches the close, moved against the order by the
  cost profile's close-auction impact; LOC only if that price satisfies the limit (else cancelled at the close),
  and it may also fail the profile's non-fill draw. Orders after the cut-off are rejected.
- Adaptive (``algoStrategy=Adaptive``): one execution between mid and touch; the share of the half-spread
  captured is drawn per order from a seeded generator (ranges per priority from the cost profile, wider for
  Patient than for Urgent), plus the profile's impact and delay drift.
- TWAP: ``slices`` child executions evenly spaced from submission to ``endTime`` (or ``window_s``), each at
  the touch then plus the profile's per-slice offset, capped by the limit (a slice that cannot fill waits for
  the next tick).

The cost terms (impact, non-fill, capture, drift) and their parameters are ``ibsim.cost_profiles``'s; the
``default`` profile reproduces ibsim's fills from before profiles existed exactly.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND
from ibsim import cost_profiles
from ibsim.book import SimOrder
from ibsim.cost_profiles import CostProfile
from ibsim.market import Quote

log = logging.getLogger(__name__)

CLOSE_AUCTION_TYPES = frozenset({"MOC", "LOC"})
SUPPORTED_TYPES = frozenset({"MKT", "LMT", "MOC", "LOC", "STP"})
SUPPORTED_ALGOS = frozenset({"", "ADAPTIVE", "TWAP"})


def touch_price(order: SimOrder, quote: Quote) -> float:
    return quote.ask if order.action == "BUY" else quote.bid


def limit_allows(order: SimOrder, price: float) -> bool:
    """True if ``price`` is at or better than the order's limit (always for MKT-like orders)."""
    if order.lmt_price is None or order.order_type in ("MKT", "MOC", "STP"):
        return True
    return price <= order.lmt_price + 1e-9 if order.action == "BUY" else price >= order.lmt_price - 1e-9


def stop_triggered(order: SimOrder, quote: Quote) -> bool:
    """True once a STP order's stop has been traded through (always for other types)."""
    if order.order_type != "STP" or order.aux_price is None:
        return True
    return quote.last <= order.aux_price + 1e-9 if order.action == "SELL" else quote.last >= order.aux_price - 1e-9


def marketable_price(order: SimOrder, quote: Quote) -> float | None:
    """Execution price for an immediate fill of a MKT/LMT order now, or None if it must rest."""
    price = touch_price(order, quote)
    return price if limit_allows(order, price) else None


def adaptive_priority(order: SimOrder) -> str:
    """The order's ``adaptivePriority`` upper-cased (``NORMAL`` when absent; the profile reads others as Normal)."""
    return dict((k.lower(), v) for k, v in order.algo_params).get("adaptivepriority", "Normal").upper()


def against_order(order: SimOrder, price: float, cost_bps: float) -> float:
    """``price`` moved ``cost_bps`` against the order (a buy pays more, a sell gets less); exact when 0."""
    if cost_bps == 0.0:
        return price
    sign = 1.0 if order.action == "BUY" else -1.0
    return round(price * (1.0 + sign * cost_bps / 10_000.0), 4)


def adaptive_price(
    order: SimOrder,
    quote: Quote,
    rng: np.random.Generator,
    profile: CostProfile = cost_profiles.DEFAULT,
    extra_bps: float = 0.0,
) -> float | None:
    """Mid plus (1 - capture) × half-spread toward the touch, plus ``extra_bps`` of the mid against the order
    (the profile's impact and delay drift); None if the limit forbids it. One uniform draw of ``rng``."""
    capture = cost_profiles.adaptive_capture(profile, adaptive_priority(order), rng)
    half = (quote.ask - quote.bid) / 2.0
    sign = 1.0 if order.action == "BUY" else -1.0
    price = round(quote.mid + sign * ((1.0 - capture) * half + quote.mid * extra_bps / 10_000.0), 4)
    if limit_allows(order, price):
        return price
    return float(order.lmt_price) if order.lmt_price is not None and limit_allows(order, order.lmt_price) else None


def twap_slice_price(order: SimOrder, quote: Quote, offset_bps: float) -> float | None:
    """A TWAP slice now: the touch moved by the slice's cost offset; None while the limit forbids it."""
    price = against_order(order, touch_price(order, quote), offset_bps)
    return price if limit_allows(order, price) else None


def twap_end_ns(order: SimOrder, now_ns: int, close_ns: int, window_s: float) -> int:
    """When the TWAP window ends: its ``endTime`` (else ``window_s`` from now), at least 1 s away, by the close."""
    end_ns = _parse_end_time(dict(order.algo_params).get("endTime", ""), now_ns) or now_ns + int(window_s * 1e9)
    return min(max(end_ns, now_ns + NS_PER_SECOND), close_ns)


def twap_start_ns(order: SimOrder, now_ns: int) -> int:
    """When the TWAP window starts: its ``startTime`` when later than now (an order sent before the open waits
    for it, as at IB), else now."""
    start_ns = _parse_end_time(dict(order.algo_params).get("startTime", ""), now_ns)
    return now_ns if start_ns is None else max(start_ns, now_ns)


def twap_schedule(order: SimOrder, now_ns: int, close_ns: int, slices: int, window_s: float) -> list[tuple[int, float]]:
    """Child slices (due sim ns, shares) from ``startTime`` (else now) to ``endTime`` (else ``window_s`` later):
    whole shares, the remainder on the last slice; ends by the close."""
    now_ns = min(twap_start_ns(order, now_ns), close_ns - NS_PER_SECOND)
    end_ns = twap_end_ns(order, now_ns, close_ns, window_s)
    n = max(1, min(slices, int(order.remaining)))
    base = int(order.remaining) // n
    sizes = [float(base)] * n
    sizes[-1] += order.remaining - base * n
    step = (end_ns - now_ns) / n
    return [(int(now_ns + step * i), size) for i, size in enumerate(sizes) if size > 0]


def _parse_end_time(text: str, now_ns: int) -> int | None:
    """``HH:MM:SS [tz]`` on the order's day (New York) or ``YYYYMMDD-HH:MM:SS``; None when absent/unreadable."""
    text = text.strip()
    if not text:
        return None
    match = re.match(r"^(?:(\d{8})[- ])?(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if not match:
        log.warning("event=twap_end_time_unreadable value=%r", text)
        return None
    day_text, hh, mm, ss = match.groups()
    now_local = pd.Timestamp(now_ns, tz="UTC").tz_convert("America/New_York")
    day = pd.Timestamp(day_text) if day_text else now_local.normalize().tz_localize(None)
    local = pd.Timestamp(year=day.year, month=day.month, day=day.day, hour=int(hh), minute=int(mm), second=int(ss or 0))
    return int(local.tz_localize("America/New_York").tz_convert("UTC").value)


def close_auction_fills(order: SimOrder, auction_price: float) -> bool:
    """True if a MOC/LOC order's limit allows ``auction_price`` (the close after its impact) in the closing auction."""
    return order.order_type == "MOC" or limit_allows(order, auction_price)
