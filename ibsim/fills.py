"""Fill models: at what price and in which slices an order executes against the simulated quote.

Pure functions of (order, quote, time) plus a seeded generator, so a run with the same seed fills the same.
- MKT: the touch (buy at the ask, sell at the bid), whole quantity at once.
- LMT: fills at the touch when marketable (price improvement kept), otherwise rests and fills at the touch
  when a later quote crosses the limit.
- MOC / LOC: at the session's closing price when the clock reaches the close; LOC only if the close
  satisfies the limit (else cancelled at the close). Orders after the cut-off are rejected.
- Adaptive (``algoStrategy=Adaptive``): one execution between mid and touch; the share of the half-spread
  captured is drawn per order from a seeded generator, wider for Patient than for Urgent priority.
- TWAP: ``slices`` child executions evenly spaced from submission to ``endTime`` (or ``window_s``), each at
  the touch then, capped by the limit (a slice that cannot fill waits for the next tick).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND
from ibsim.book import SimOrder
from ibsim.market import Quote

log = logging.getLogger(__name__)

CLOSE_AUCTION_TYPES = frozenset({"MOC", "LOC"})
SUPPORTED_TYPES = frozenset({"MKT", "LMT", "MOC", "LOC"})
SUPPORTED_ALGOS = frozenset({"", "ADAPTIVE", "TWAP"})
_CAPTURE_BY_PRIORITY = {"URGENT": (0.0, 0.3), "NORMAL": (0.2, 0.6), "PATIENT": (0.4, 0.9)}


def touch_price(order: SimOrder, quote: Quote) -> float:
    return quote.ask if order.action == "BUY" else quote.bid


def limit_allows(order: SimOrder, price: float) -> bool:
    """True if ``price`` is at or better than the order's limit (always for MKT-like orders)."""
    if order.lmt_price is None or order.order_type in ("MKT", "MOC"):
        return True
    return price <= order.lmt_price + 1e-9 if order.action == "BUY" else price >= order.lmt_price - 1e-9


def marketable_price(order: SimOrder, quote: Quote) -> float | None:
    """Execution price for an immediate fill of a MKT/LMT order now, or None if it must rest."""
    price = touch_price(order, quote)
    return price if limit_allows(order, price) else None


def adaptive_price(order: SimOrder, quote: Quote, rng: np.random.Generator) -> float | None:
    """Mid plus (1 - capture) × half-spread toward the touch; None if the limit forbids it."""
    priority = dict((k.lower(), v) for k, v in order.algo_params).get("adaptivepriority", "Normal").upper()
    lo, hi = _CAPTURE_BY_PRIORITY.get(priority, _CAPTURE_BY_PRIORITY["NORMAL"])
    capture = float(rng.uniform(lo, hi))
    half = (quote.ask - quote.bid) / 2.0
    sign = 1.0 if order.action == "BUY" else -1.0
    price = round(quote.mid + sign * (1.0 - capture) * half, 4)
    if limit_allows(order, price):
        return price
    return float(order.lmt_price) if order.lmt_price is not None and limit_allows(order, order.lmt_price) else None


def twap_schedule(order: SimOrder, now_ns: int, close_ns: int, slices: int, window_s: float) -> list[tuple[int, float]]:
    """Child slices (due sim ns, shares): whole shares, the remainder on the last slice; ends by the close."""
    end_ns = _parse_end_time(dict(order.algo_params).get("endTime", ""), now_ns) or now_ns + int(window_s * 1e9)
    end_ns = min(max(end_ns, now_ns + NS_PER_SECOND), close_ns)
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


def close_auction_fills(order: SimOrder, close_price: float) -> bool:
    """True if a MOC/LOC order executes at ``close_price`` in the closing auction."""
    return order.order_type == "MOC" or limit_allows(order, close_price)
