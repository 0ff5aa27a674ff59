"""What ibsim does with each client request: one routing table from request type to handler.

The gateway owns the shared state (book, market, order desk, data feed) and the sessions by clientId.
Every method runs under the server's lock, so handlers see and change one consistent book.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd

from core.clock import NS_PER_SECOND
from ibsim import responses
from ibsim.book import ACCOUNT_TAGS, Book, Execution
from ibsim.config import Faults, SimConfig
from ibsim.feeds import MarketDataFeed
from ibsim.market import Market
from ibsim.orders import OrderDesk
from ibsim.requests import (
    CancelOrder,
    Malformed,
    MsgId,
    NoArgs,
    PlaceOrder,
    ReqAccountSummary,
    ReqContractDetails,
    ReqExecutions,
    ReqHistoricalData,
    ReqId,
    ReqMarketDataType,
    ReqMktData,
    ReqRealTimeBars,
    Request,
    StartApi,
    Unsupported,
)
from ibsim.session import ClientSession

log = logging.getLogger(__name__)

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


class Gateway:
    def __init__(self, cfg: SimConfig, market: Market, book: Book, faults: Faults) -> None:
        self.cfg = cfg
        self.market = market
        self.book = book
        self.faults = faults
        self.sessions: dict[int, ClientSession] = {}
        self.desk = OrderDesk(book, market, faults, self.sessions, cfg, self._after_fill)
        self.feed = MarketDataFeed(market, faults)
        self._routes: dict[type, Callable[[ClientSession, Request], None]] = {
            ReqContractDetails: self._contract_details,
            ReqMktData: lambda s, r: self.feed.subscribe(s, r),
            ReqRealTimeBars: lambda s, r: self.feed.subscribe_bars(s, r),
            ReqHistoricalData: lambda s, r: self.feed.historical(s, r),
            ReqMarketDataType: self._market_data_type,
            PlaceOrder: lambda s, r: self.desk.place(s.client_id, r),
            CancelOrder: lambda s, r: self.desk.cancel(s.client_id, r.order_id),
            ReqExecutions: self._executions,
            ReqAccountSummary: self._account_summary,
            ReqId: self._req_id,
            NoArgs: self._no_args,
            StartApi: lambda s, r: log.warning("event=duplicate_start_api client_id=%s", s.client_id),
            Unsupported: lambda s, r: log.info(
                "event=unsupported_message msg_id=%d client_id=%s", r.msg_id, s.client_id
            ),
            Malformed: lambda s, r: log.warning(
                "event=malformed_message msg_id=%d client_id=%s reason=%s", r.msg_id, s.client_id, r.reason
            ),
        }

    # ------------------------------------------------------------ sessions
    def start_api(self, session: ClientSession, req: StartApi) -> bool:
        """Register the clientId; False (after error 326) when it is taken."""
        if req.client_id in self.sessions:
            text = "Unable to connect as the client id is already in use. Retry with a unique client id."
            session.send(responses.error(-1, 326, text))
            return False
        session.client_id = req.client_id
        self.sessions[req.client_id] = session
        session.send(responses.managed_accounts([self.book.account]))
        session.send(responses.next_valid_id(self.book.next_valid_id(req.client_id)))
        for code, text in FARM_NOTICES:
            session.send(responses.error(-1, code, text))
        self.desk.replay_working(session)
        log.info("event=client_started client_id=%d peer=%s", req.client_id, session.peer)
        return True

    def end_session(self, session: ClientSession) -> None:
        if session.client_id is not None and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            log.info("event=client_left client_id=%d", session.client_id)

    def handle(self, session: ClientSession, req: Request) -> None:
        route = self._routes.get(type(req))
        if route is None:
            log.warning("event=unrouted_request type=%s", type(req).__name__)
            return
        route(session, req)

    def broadcast(self, data: bytes) -> None:
        for session in list(self.sessions.values()):
            session.send(data)

    def on_tick(self) -> None:
        self.desk.on_tick()
        self.feed.on_tick(list(self.sessions.values()))

    # ------------------------------------------------------------ handlers
    def _contract_details(self, session: ClientSession, req: ReqContractDetails) -> None:
        c = req.contract
        stock = self.market.stocks.get(c.symbol)
        if stock is None and c.con_id:
            stock = next((s for s in self.market.stocks.values() if s.con_id == c.con_id), None)
        if stock is None or c.sec_type not in ("STK", "") or c.currency not in ("USD", ""):
            session.send(responses.error(req.req_id, 200, "No security definition has been found for the request"))
            return
        session.send(responses.contract_data(req.req_id, stock))
        session.send(responses.contract_data_end(req.req_id))

    def _market_data_type(self, session: ClientSession, req: ReqMarketDataType) -> None:
        session.market_data_type = req.data_type

    def _req_id(self, session: ClientSession, req: ReqId) -> None:
        if req.msg_id == MsgId.CANCEL_MKT_DATA:
            session.mkt_subs.pop(req.req_id, None)
        elif req.msg_id == MsgId.CANCEL_REAL_TIME_BARS:
            session.bar_subs.pop(req.req_id, None)
        elif req.msg_id == MsgId.CANCEL_ACCOUNT_SUMMARY:
            session.account_summary_subs.pop(req.req_id, None)

    def _no_args(self, session: ClientSession, req: NoArgs) -> None:
        m = req.msg_id
        if m == MsgId.REQ_CURRENT_TIME:
            session.send(responses.current_time(self.market.now_ns() // NS_PER_SECOND))
        elif m == MsgId.REQ_IDS:
            session.send(responses.next_valid_id(self.book.next_valid_id(session.client_id)))
        elif m in (MsgId.REQ_OPEN_ORDERS, MsgId.REQ_ALL_OPEN_ORDERS):
            if m == MsgId.REQ_ALL_OPEN_ORDERS:
                for order in self.book.working_orders():
                    session.send(responses.open_order(order))
                    session.send(responses.order_status(order))
            else:
                self.desk.replay_working(session)
            session.send(responses.open_order_end())
        elif m == MsgId.REQ_GLOBAL_CANCEL:
            self.desk.cancel_all()
        elif m == MsgId.REQ_POSITIONS:
            session.positions_subscribed = True
            for symbol, pos in sorted(self.book.positions.items()):
                session.send(
                    responses.position(self.book.account, self.market.stocks[symbol], pos.quantity, pos.avg_cost)
                )
            session.send(responses.position_end())
        elif m == MsgId.CANCEL_POSITIONS:
            session.positions_subscribed = False
        elif m == MsgId.REQ_MANAGED_ACCTS:
            session.send(responses.managed_accounts([self.book.account]))
        else:
            log.info("event=request_ignored msg_id=%d client_id=%s", m, session.client_id)

    def _executions(self, session: ClientSession, req: ReqExecutions) -> None:
        since_ns = _filter_time_ns(req.time)
        sees_all = session.client_id is not None and session.client_id == self.cfg.master_client_id
        for e in self.book.executions:
            if not sees_all and e.client_id != session.client_id:
                continue  # as at TWS: a client sees its own executions only, unless it is the master client
            if req.client_id and e.client_id != req.client_id:
                continue
            if req.account and req.account != e.account:
                continue
            if req.symbol and req.symbol.upper() != e.stock.symbol:
                continue
            if req.sec_type and req.sec_type.upper() != "STK":
                continue
            if req.side and req.side.upper() not in (e.side, "BUY" if e.side == "BOT" else "SELL"):
                continue
            if since_ns is not None and e.time_ns < since_ns:
                continue
            session.send(responses.execution_data(req.req_id, e))
            session.send(responses.commission_report(e))
        session.send(responses.execution_data_end(req.req_id))

    def _account_summary(self, session: ClientSession, req: ReqAccountSummary) -> None:
        session.account_summary_subs[req.req_id] = req.tags
        self._send_account_summary(session, req.req_id, req.tags)

    def _send_account_summary(self, session: ClientSession, req_id: int, tags: tuple[str, ...]) -> None:
        values = self.book.account_values(self._marks())
        wanted = [t for t in ACCOUNT_TAGS if t in tags or "All" in tags]
        for tag in wanted:
            session.send(responses.account_summary(req_id, self.book.account, tag, f"{values[tag]:.2f}", "USD"))
        session.send(responses.account_summary_end(req_id))

    def _marks(self) -> dict[str, float]:
        idx, now = self.market.position()
        return {s: self.market.price_at(s, idx, now) for s in self.book.positions}

    def _after_fill(self, execution: Execution) -> None:
        """Push position and account-summary updates to subscribed sessions after every execution."""
        symbol = execution.stock.symbol
        pos = self.book.positions[symbol]
        for session in list(self.sessions.values()):
            if session.positions_subscribed:
                session.send(responses.position(self.book.account, execution.stock, pos.quantity, pos.avg_cost))
            for req_id, tags in list(session.account_summary_subs.items()):
                self._send_account_summary(session, req_id, tags)


def _filter_time_ns(text: str) -> int | None:
    """ExecutionFilter.time ``yyyymmdd hh:mm:ss`` (or ``yyyymmdd-hh:mm:ss``), New York time; None = any."""
    text = (text or "").strip()
    if not text:
        return None
    parts = text.replace("-", " ").split()
    try:
        local = pd.Timestamp(f"{parts[0]} {parts[1] if len(parts) > 1 else '00:00:00'}")
    except (ValueError, IndexError):
        log.warning("event=bad_execution_filter_time value=%r", text)
        return None
    tz = parts[2] if len(parts) > 2 and parts[2] not in ("EST", "EDT") else "America/New_York"
    try:
        return int(local.tz_localize(tz).tz_convert("UTC").value)
    except Exception:  # unknown zone names: fall back to New York
        return int(local.tz_localize("America/New_York").tz_convert("UTC").value)
