"""Market data for clients: streaming ticks, 5-second real-time bars and daily historical bars.

Ticks and bars are driven by the replay clock: every server tick compares the quote with what each
subscription last saw and sends only changes. With market data silenced (fault) nothing is sent while
sockets stay open, which is what a stalled farm looks like to a client. Called under the server lock.
"""

from __future__ import annotations

import logging
import re

import pandas as pd

from core.clock import NS_PER_SECOND
from ibsim import responses
from ibsim.config import Faults
from ibsim.market import Market, Quote
from ibsim.requests import ReqHistoricalData, ReqMktData, ReqRealTimeBars
from ibsim.responses import Tick
from ibsim.session import BarSub, ClientSession, MktDataSub

log = logging.getLogger(__name__)

_NO_SECURITY = "No security definition has been found for the request"
_DAYS_PER_UNIT = {"D": 1, "W": 5, "M": 21, "Y": 252}
_DAILY_BAR_SIZES = {"1 DAY", "1 D", "1D", "1DAY"}
_RT_BAR_S = 5


class MarketDataFeed:
    def __init__(self, market: Market, faults: Faults) -> None:
        self.market = market
        self.faults = faults

    # ------------------------------------------------------------ ticks
    def subscribe(self, session: ClientSession, req: ReqMktData) -> None:
        symbol = req.contract.symbol
        if not self.market.has(symbol):
            session.send(responses.error(req.req_id, 200, _NO_SECURITY))
            return
        session.send(responses.tick_req_params(req.req_id))
        if session.market_data_type in (3, 4):
            session.send(responses.market_data_type(req.req_id, session.market_data_type))
        sub = MktDataSub(symbol)
        self._send_changes(session, req.req_id, sub, self.market.quote(symbol), full=True)
        if req.snapshot:
            session.send(responses.tick_snapshot_end(req.req_id))
            return
        session.mkt_subs[req.req_id] = sub

    def _send_changes(self, session: ClientSession, req_id: int, sub: MktDataSub, q: Quote, full: bool) -> None:
        delayed = session.market_data_type in (3, 4)

        def tt(tick_type: int) -> int:
            return responses.delayed_tick(tick_type) if delayed else tick_type

        prices = (
            (Tick.BID, q.bid, q.bid_size), (Tick.ASK, q.ask, q.ask_size), (Tick.LAST, q.last, q.last_size),
            (Tick.HIGH, q.high, 0), (Tick.LOW, q.low, 0), (Tick.CLOSE, q.prev_close, 0), (Tick.OPEN, q.open, 0),
        )  # fmt: skip
        for tick_type, price, size in prices:
            key_size = tick_type + 1000
            if full or sub.last_sent.get(tick_type) != price or (size and sub.last_sent.get(key_size) != size):
                session.send(responses.tick_price(req_id, tt(tick_type), price, size))
                sub.last_sent[tick_type], sub.last_sent[key_size] = price, size
        if full or sub.last_sent.get(Tick.VOLUME) != q.volume:
            session.send(responses.tick_size(req_id, tt(Tick.VOLUME), q.volume))
            sub.last_sent[Tick.VOLUME] = q.volume

    # ------------------------------------------------------------ real-time bars
    def subscribe_bars(self, session: ClientSession, req: ReqRealTimeBars) -> None:
        if not self.market.has(req.contract.symbol):
            session.send(responses.error(req.req_id, 200, _NO_SECURITY))
            return
        now_s = self.market.now_ns() // NS_PER_SECOND
        session.bar_subs[req.req_id] = BarSub(req.contract.symbol, now_s - now_s % _RT_BAR_S)

    def _send_bar(self, session: ClientSession, req_id: int, sub: BarSub, idx: int, now_ns: int) -> None:
        now_s = now_ns // NS_PER_SECOND
        bucket = now_s - now_s % _RT_BAR_S - _RT_BAR_S  # the last completed bar
        if bucket < sub.last_bucket_s:
            return
        open_ns, close_ns = self.market.session_bounds_ns(idx)
        start_ns = max(bucket * NS_PER_SECOND, open_ns)
        points = [self.market.price_at(sub.symbol, idx, start_ns + k * NS_PER_SECOND) for k in range(_RT_BAR_S + 1)]
        bar = self.market.bar(sub.symbol, idx)
        session_s = max(1, (close_ns - open_ns) // NS_PER_SECOND)
        volume = 0 if bar is None else int(float(bar["volume"]) * _RT_BAR_S / session_s)
        session.send(responses.real_time_bar(req_id, bucket, points[0], max(points), min(points), points[-1], volume))
        sub.last_bucket_s = bucket + _RT_BAR_S

    # ------------------------------------------------------------ history
    def historical(self, session: ClientSession, req: ReqHistoricalData) -> None:
        symbol = req.contract.symbol
        if not self.market.has(symbol):
            session.send(responses.error(req.req_id, 200, _NO_SECURITY))
            return
        if req.bar_size.strip().upper() not in _DAILY_BAR_SIZES:
            text = f"Historical Market Data Service error message:ibsim serves daily bars only (got {req.bar_size!r})"
            session.send(responses.error(req.req_id, 162, text))
            return
        days = _duration_days(req.duration)
        if days is None:
            text = f"Historical Market Data Service error message:invalid duration {req.duration!r} (e.g. '1 Y')"
            session.send(responses.error(req.req_id, 162, text))
            return
        idx, _now = self.market.position()
        bars = self.market.daily_bars(symbol, idx, 10**9)
        end = _parse_end(req.end_date_time)
        if end is not None:
            bars = bars.loc[bars.index <= end]
        bars = bars.tail(days)
        if bars.empty:
            session.send(
                responses.error(
                    req.req_id, 162, "Historical Market Data Service error message:HMDS query returned no data"
                )
            )
            return
        start_text = f"{bars.index[0]:%Y%m%d}  00:00:00"
        end_text = f"{bars.index[-1]:%Y%m%d}  23:59:59"
        session.send(responses.historical_data(req.req_id, start_text, end_text, bars))

    # ------------------------------------------------------------ streaming
    def on_tick(self, sessions: list[ClientSession]) -> None:
        if self.faults.market_data_silenced:
            return
        idx, now = self.market.position()
        quotes: dict[str, Quote] = {}
        for session in sessions:
            for req_id, sub in list(session.mkt_subs.items()):
                q = quotes.get(sub.symbol) or quotes.setdefault(sub.symbol, self.market.quote_at(sub.symbol, idx, now))
                self._send_changes(session, req_id, sub, q, full=False)
            for req_id, bar_sub in list(session.bar_subs.items()):
                self._send_bar(session, req_id, bar_sub, idx, now)


def _duration_days(text: str) -> int | None:
    match = re.fullmatch(r"\s*(\d+)\s*([DWMY])\s*", text.upper())
    if not match:
        return None
    return int(match.group(1)) * _DAYS_PER_UNIT[match.group(2)]


def _parse_end(text: str) -> pd.Timestamp | None:
    """``yyyymmdd[ -]hh:mm:ss[ tz]`` or empty (= now); only the date matters for daily bars."""
    match = re.match(r"\s*(\d{8})", text or "")
    return pd.Timestamp(match.group(1)) if match else None
