"""How the backtester's simulated venue works IB Adaptive and TWAP orders from daily bars.

Rough on purpose, and said so: a daily bar holds four prices and a volume, so these models can only rank the algos
the way their mechanics suggest, not price them. Only paper or live fills (TCA rows with ``source`` paper/live)
teach what an algo really costs; the AlgoWheel learns from those, not from these. What the model does:

- **Adaptive** (a marketable order worked for a few minutes after the open): fills at the open moved a share of
  the way to the session's typical price ``(H + L + C) / 3`` (how long the priority lets it wait: Urgent 0, Normal
  5 %, Patient 15 %), and pays the cost model's half-spread reduced by the spread it captures (Urgent 15 %, Normal
  40 %, Patient 65 %) plus the usual participation impact.
- **TWAP** over ``startTime``-``endTime`` (``window_minutes``; a session when unknown): fills at the open moved
  ``window / session`` of the way to the typical price (the time average of a window that starts at the open),
  pays the full half-spread (marketable slices) and the impact of its participation in the window's share of
  the day's volume, and is timestamped at the window's middle.

Every order fills in the session after its submission, like a MKT order (the caller checks that); the volume cap
and the cash cap of the venue apply as for any other order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

SESSION_MINUTES = 390.0
ADAPTIVE_WAIT_SHARE = {"URGENT": 0.0, "NORMAL": 0.05, "PATIENT": 0.15}
ADAPTIVE_SPREAD_CAPTURE = {"URGENT": 0.15, "NORMAL": 0.40, "PATIENT": 0.65}
_EPOCH = datetime(1970, 1, 1)
_IB_TIME = re.compile(r"(\d{8})[- ](\d{1,2}):(\d{2})(?::(\d{2}))?")


@dataclass(frozen=True, slots=True)
class AlgoFill:
    """The raw price (before spread and impact), the share of the half-spread paid, the share of the bar's
    volume the order competes for, and the fill's offset from the session open in minutes."""

    raw_price: float
    spread_share: float
    volume_share: float
    minutes_after_open: float


def algo_fill(algo: str, params: Mapping[str, str], o: float, h: float, lo: float, c: float,
              session_minutes: float) -> AlgoFill:  # fmt: skip
    """The daily-bar model of one algo order (see the module docstring); ValueError for an unknown algo."""
    typical = (h + lo + c) / 3.0
    name = algo.upper()
    if name == "ADAPTIVE":
        priority = {k.lower(): v for k, v in params.items()}.get("adaptivepriority", "Normal").upper()
        wait = ADAPTIVE_WAIT_SHARE.get(priority, ADAPTIVE_WAIT_SHARE["NORMAL"])
        capture = ADAPTIVE_SPREAD_CAPTURE.get(priority, ADAPTIVE_SPREAD_CAPTURE["NORMAL"])
        return AlgoFill(o + wait * (typical - o), 1.0 - capture, 1.0, wait * session_minutes)
    if name == "TWAP":
        window = twap_window_minutes(params, session_minutes)
        share = min(window / session_minutes, 1.0) if session_minutes > 0 else 1.0
        return AlgoFill(o + share * (typical - o), 1.0, share, window / 2.0)
    raise ValueError(f"algo must be Adaptive or Twap for the simulated venue (got {algo!r})")


def twap_window_minutes(params: Mapping[str, str], session_minutes: float) -> float:
    """``endTime − startTime`` in minutes when both are IB date-times (``YYYYMMDD HH:MM:SS``), else the session."""
    start, end = _minutes_of(params.get("startTime", "")), _minutes_of(params.get("endTime", ""))
    if start is None or end is None or end <= start:
        return session_minutes
    return min(end - start, session_minutes)


def _minutes_of(text: str) -> float | None:
    """Minutes since 1970-01-01 of an IB time text (its zone ignored: only differences are used), or None."""
    match = _IB_TIME.search(text)
    if match is None:
        return None
    day, hh, mm, ss = match.groups()
    try:
        moment = datetime.strptime(f"{day} {hh}:{mm}:{ss or '0'}", "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    return (moment - _EPOCH).total_seconds() / 60.0
