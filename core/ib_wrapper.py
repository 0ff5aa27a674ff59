"""The IB connection: socket, reader thread, reconnect supervisor and data watchdog around one ``EClient``.

Why a separate layer: ``ibapi`` gives us a blocking ``EClient`` and an ``EWrapper`` whose callbacks run on the
thread that calls ``EClient.run``. Everything the rest of the engine needs is (a) immutable messages on its
queue (``core.ib_messages``) and (b) a way to send requests. This module keeps the wire to itself
(style.md, "Keep the broker at the edge"): callbacks only build a message and ``put`` it, and every decision
about IB data happens on the dispatcher thread in the adapters.

Threads (one set per ``IbConnection``):

- **supervisor** (``ib-supervisor-<id>``, daemon): connects, watches the link, tears it down, reconnects with
  capped exponential backoff, and watches market data for staleness. It is the only thread that creates or
  disconnects an ``EClient``.
- **connect helper** (``ib-connect-<id>``, short-lived): runs the blocking ``EClient.connect`` handshake so the
  supervisor can abandon a gateway that accepts the socket but never answers (TWS's "accept incoming API
  connection?" dialog does exactly that).
- **run** (``ib-run-<id>``, daemon): ``EClient.run``; every EWrapper callback fires here. Exceptions that escape
  it (a malformed message from the peer kills ``run`` in this ibapi) are caught and logged; the supervisor
  then sees a dead link and reconnects.
- **EReader** (ibapi's own thread): reads the socket into the client's message queue.
- **dispatcher** (the engine's loop, not ours): calls ``next_order_id``, ``send``/``client`` and the
  subscription bookkeeping. Only the dispatcher sends requests: what to ask after a (re)connect is the
  owner's business (the engine's broker sync, the monitor's subscriptions), not the connection's. ibapi's
  ``Connection.sendMsg`` holds a lock, so whole messages from two threads never interleave on the socket.

A fresh ``EClient`` (and wrapper) is built for every connection attempt: a dead client's message queue and
decoder never leak into the next session, and callbacks from an old session cannot change the state of a new
one (each wrapper carries its session number).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import IbConnectionConfig
from core.ib_errors import IbErrorAction, classify
from core.ib_messages import (
    IbAccountValue,
    IbBar,
    IbCommissionReport,
    IbConnected,
    IbContractDetails,
    IbContractDetailsEnd,
    IbDataStale,
    IbDisconnected,
    IbError,
    IbExecDetails,
    IbExecDetailsEnd,
    IbHistoricalEnd,
    IbOpenOrder,
    IbOpenOrderEnd,
    IbOrderStatus,
    IbPosition,
    IbPositionEnd,
    IbTick,
)

log = logging.getLogger(__name__)

Put = Callable[[object], None]

CLIENT_ID_IN_USE = 326
_CONNECTIVITY_LOST = (1100, 2110)  # socket up, IB side down: wait for restoration before reconnecting
_CONNECTIVITY_RESTORED = (1101, 1102)
_POLL_S = 0.05  # supervisor tick: how fast a dead link or stop() is noticed


class _Wrapper(EWrapper):
    """Runs on the run thread. Builds one ``core.ib_messages`` object per callback and ``put``s it.

    Facts the connection itself needs (ready, accounts, closed, errors, data arrival, execution times) are
    reported to ``_Session``'s owner through ``owner._on_*`` calls; the owner decides what they mean.
    """

    def __init__(self, owner: IbConnection, session: int, client_id: int) -> None:
        super().__init__()
        self._owner = owner
        self._session = session
        self._client_id = client_id
        self._put = owner._put
        self._now_ns = owner._clock.now_ns

    def _base(self) -> dict[str, int]:
        return {"ts_init_ns": self._now_ns(), "client_id": self._client_id}

    # ---------------------------------------------------------------- session
    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803 - ibapi names
        self._owner._on_next_valid_id(self._session, orderId)

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        self._owner._on_accounts(self._session, tuple(a for a in accountsList.split(",") if a))

    def connectionClosed(self) -> None:  # noqa: N802
        self._owner._on_connection_closed(self._session)

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:  # noqa: N803
        self._put(IbError(**self._base(), req_id=reqId, code=errorCode, message=errorString))
        self._owner._on_error(self._session, reqId, errorCode, errorString)

    # ---------------------------------------------------------------- orders
    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:  # noqa: N802, N803
        self._put(IbOpenOrder(**self._base(), order_id=orderId, contract=contract, order=order, order_state=orderState))

    def openOrderEnd(self) -> None:  # noqa: N802
        self._put(IbOpenOrderEnd(**self._base()))

    def orderStatus(  # noqa: N802
        self,
        orderId: int,  # noqa: N803
        status: str,
        filled: float,
        remaining: float,
        avgFillPrice: float,  # noqa: N803
        permId: int,  # noqa: N803
        parentId: int,  # noqa: N803
        lastFillPrice: float,  # noqa: N803
        clientId: int,  # noqa: N803
        whyHeld: str,  # noqa: N803
        mktCapPrice: float,  # noqa: N803
    ) -> None:
        self._put(
            IbOrderStatus(
                **self._base(),
                order_id=orderId,
                status=status,
                filled=float(filled),
                remaining=float(remaining),
                avg_fill_price=float(avgFillPrice),
                perm_id=int(permId),
                last_fill_price=float(lastFillPrice),
                why_held=whyHeld,
            )
        )

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:  # noqa: N802, N803
        self._put(IbExecDetails(**self._base(), req_id=reqId, contract=contract, execution=execution))

    def execDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put(IbExecDetailsEnd(**self._base(), req_id=reqId))

    def commissionReport(self, commissionReport: Any) -> None:  # noqa: N802, N803
        self._put(IbCommissionReport(**self._base(), report=commissionReport))

    def position(self, account: str, contract: Any, position: float, avgCost: float) -> None:  # noqa: N803
        self._put(
            IbPosition(
                **self._base(),
                account=account,
                symbol=getattr(contract, "symbol", ""),
                contract=contract,
                position=float(position),
                avg_cost=float(avgCost),
            )
        )

    def positionEnd(self) -> None:  # noqa: N802
        self._put(IbPositionEnd(**self._base()))

    def accountSummary(self, reqId: int, account: str, tag: str, value: str, currency: str) -> None:  # noqa: N802, N803
        self._put(
            IbAccountValue(**self._base(), req_id=reqId, account=account, tag=tag, value=value, currency=currency)
        )

    # ---------------------------------------------------------------- market data
    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:  # noqa: N802, N803
        self._put(IbTick(**self._base(), req_id=reqId, tick_type=int(tickType), value=float(price), is_size=False))
        self._owner._on_market_data()

    def tickSize(self, reqId: int, tickType: int, size: int) -> None:  # noqa: N802, N803
        self._put(IbTick(**self._base(), req_id=reqId, tick_type=int(tickType), value=float(size), is_size=True))
        self._owner._on_market_data()

    def realtimeBar(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        time: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: int,
        wap: float,
        count: int,
    ) -> None:
        self._put(
            IbBar(
                **self._base(),
                req_id=reqId,
                time=str(time),
                open=float(open_),
                high=float(high),
                low=float(low),
                close=float(close),
                volume=float(volume),
                historical=False,
            )
        )
        self._owner._on_market_data()

    def historicalData(self, reqId: int, bar: Any) -> None:  # noqa: N802, N803
        self._put(
            IbBar(
                **self._base(),
                req_id=reqId,
                time=str(bar.date),
                open=float(bar.open),
                high=float(bar.high),
                low=float(bar.low),
                close=float(bar.close),
                volume=float(bar.volume),
                historical=True,
            )
        )

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:  # noqa: N802, N803
        self._put(IbHistoricalEnd(**self._base(), req_id=reqId))

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:  # noqa: N802, N803
        self._put(IbContractDetails(**self._base(), req_id=reqId, details=contractDetails))

    def contractDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put(IbContractDetailsEnd(**self._base(), req_id=reqId))


@dataclass(slots=True)
class _Link:
    """One connection attempt: its client, threads and what the run thread has told us about it.

    Fields written by the run thread (``ready_at_ns``, ``closed``, ``reconnect_reason``, ``saw_client_id_in_use``,
    ``connectivity_lost_ns``) are read by the supervisor under ``IbConnection._lock``.
    """

    session: int
    client_id: int
    client: EClient
    started_ns: int
    run_thread: threading.Thread | None = None
    ready_at_ns: int | None = None
    closed: bool = False
    reconnect_reason: str | None = None
    saw_client_id_in_use: bool = False
    connectivity_lost_ns: int | None = None
    accounts: tuple[str, ...] = field(default_factory=tuple)


class IbConnection:
    """One IB API connection with reconnect supervisor; see the module docstring for the threads.

    ``put`` receives every ``core.ib_messages`` object (thread-safe, e.g. ``EventQueue.put``). Messages carry the
    client id actually in use, which is a fallback id after error 326 (see ``client_id``).

    Lifecycle: ``start()`` returns at once; ``IbConnected(reconnect=False)`` arrives when the first session is
    ready, ``IbDisconnected`` when a ready session is lost, then ``IbConnected(reconnect=True)`` once a new one is
    ready (adapters resubscribe and reconcile on it). ``stop()`` disconnects and joins the threads.
    """

    def __init__(
        self,
        cfg: IbConnectionConfig,
        client_id: int,
        put: Put,
        clock: WallClock,
        *,
        host: str | None = None,
        port: int | None = None,
        fallback_client_ids: Sequence[int] = (),
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        data_stale_after_s: float | None = None,
        connectivity_grace_s: float = 30.0,
    ) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError(
                f"backoff must satisfy 0 < backoff_initial_s <= backoff_max_s "
                f"(got {backoff_initial_s}, {backoff_max_s})"
            )
        if data_stale_after_s is not None and data_stale_after_s <= 0:
            raise ValueError(f"data_stale_after_s must be > 0 or None (got {data_stale_after_s})")
        self._cfg = cfg
        self._host = host if host is not None else cfg.host
        self._port = port if port is not None else cfg.port
        self._client_ids = (client_id, *(c for c in fallback_client_ids if c != client_id))
        self._client_id_index = 0
        self._put = put
        self._clock = clock
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._data_stale_after_s = data_stale_after_s
        self._connectivity_grace_s = connectivity_grace_s

        self._lock = threading.Lock()
        self._stopping = False
        self._supervisor: threading.Thread | None = None
        self._link: _Link | None = None
        self._sessions = 0
        self._ever_ready = False
        self._next_order_id = 0
        self._subscriptions: set[int] = set()
        self._last_data_ns = 0
        self._stale_reported = False

    # ================================================================ public API (any thread)
    @property
    def client_id(self) -> int:
        """The client id in use now (the configured one, or a fallback after error 326)."""
        return self._client_ids[self._client_id_index]

    @property
    def is_ready(self) -> bool:
        """True while the current session has seen ``nextValidId`` and its socket is up."""
        with self._lock:
            link = self._link
            return link is not None and link.ready_at_ns is not None and not link.closed

    @property
    def client(self) -> EClient | None:
        """The current ``EClient`` (None while disconnected). Only the dispatcher thread sends through it.

        It is replaced on every reconnect, so read it each time instead of keeping it. A send can still race
        a disconnect and raise; ``send`` catches that for you.
        """
        with self._lock:
            return self._link.client if self._link is not None else None

    @property
    def accounts(self) -> tuple[str, ...]:
        with self._lock:
            return self._link.accounts if self._link is not None else ()

    def send(self, request: Callable[[EClient], object], what: str = "request") -> bool:
        """Run ``request(client)`` if the session is ready; False (logged) when not ready or the send failed.

        Dispatcher thread. A failed send means the link is dying; the supervisor will notice and reconnect.
        """
        with self._lock:
            link = self._link
            ready = link is not None and link.ready_at_ns is not None and not link.closed
        if not ready or link is None:
            log.warning("event=ib_send_skipped what=%s reason=not_ready client_id=%d", what, self.client_id)
            return False
        try:
            request(link.client)
        except Exception as exc:  # a socket error or a client reset under our feet
            log.warning("event=ib_send_failed what=%s client_id=%d error=%r", what, link.client_id, exc)
            return False
        return True

    def next_order_id(self) -> int:
        """A fresh IB order id: monotonic for the life of this object, never below the gateway's nextValidId."""
        with self._lock:
            if self._next_order_id <= 0:
                raise RuntimeError("next_order_id() before nextValidId: wait for IbConnected")
            order_id = self._next_order_id
            self._next_order_id += 1
            return order_id

    def market_data_subscribed(self, req_id: int) -> None:
        """Tell the watchdog a market data subscription is live (so silence means stale data)."""
        with self._lock:
            self._subscriptions.add(req_id)
            self._last_data_ns = max(self._last_data_ns, self._clock.now_ns())

    def market_data_cancelled(self, req_id: int) -> None:
        with self._lock:
            self._subscriptions.discard(req_id)

    def start(self) -> None:
        """Start the supervisor thread, which connects in the background; returns at once."""
        if self._supervisor is not None:
            raise RuntimeError("IbConnection.start() called twice")
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"ib-supervisor-{self._client_ids[0]}", daemon=True
        )
        self._supervisor.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect cleanly and join our threads (idempotent). Puts ``IbDisconnected`` if a session was up."""
        with self._lock:
            self._stopping = True
        if self._supervisor is not None:
            self._supervisor.join(timeout=timeout_s)
            if self._supervisor.is_alive():
                log.error("event=ib_supervisor_join_timeout client_id=%d timeout_s=%s", self.client_id, timeout_s)

    # ================================================================ supervisor thread
    def _supervise(self) -> None:
        attempt = 0
        try:
            while not self._is_stopping():
                link = self._open_link()
                if link is not None:
                    reason = self._watch(link)
                    was_ready = link.ready_at_ns is not None
                    self._close_link(link, reason)
                    if was_ready:
                        attempt = 0
                        self._put(
                            IbDisconnected(ts_init_ns=self._clock.now_ns(), client_id=link.client_id, reason=reason)
                        )
                    if link.saw_client_id_in_use:
                        self._next_client_id()
                if self._is_stopping():
                    break
                delay_s = min(self._backoff_max_s, self._backoff_initial_s * 2**attempt)
                attempt += 1
                log.info(
                    "event=ib_reconnect_wait client_id=%d attempt=%d delay_s=%.2f", self.client_id, attempt, delay_s
                )
                self._wait(delay_s)
        except Exception:
            log.exception("event=ib_supervisor_crashed client_id=%d", self.client_id)
        log.info("event=ib_supervisor_stopped client_id=%d", self.client_id)

    def _open_link(self) -> _Link | None:
        """Connect (bounded by ``connect_timeout_s``) and start the run thread; None if the socket is not up."""
        client_id = self.client_id
        with self._lock:
            self._sessions += 1
            session = self._sessions
        wrapper = _Wrapper(self, session, client_id)
        client = EClient(wrapper)
        link = _Link(session=session, client_id=client_id, client=client, started_ns=self._clock.now_ns())
        with self._lock:
            self._link = link
        log.info(
            "event=ib_connecting host=%s port=%d client_id=%d session=%d", self._host, self._port, client_id, session
        )
        # A gateway that refuses us (326) may already have closed the socket: still run the client so the queued
        # messages (the error) are decoded and put.
        handshake_done = self._bounded_connect(client, client_id) and (
            client.isConnected() or not client.msg_queue.empty()
        )
        if not handshake_done:
            log.warning(
                "event=ib_connect_failed host=%s port=%d client_id=%d reason=socket_not_connected",
                self._host, self._port, client_id,
            )  # fmt: skip
            self._forget(link)
            return None
        link.run_thread = threading.Thread(target=self._run, args=(link,), name=f"ib-run-{client_id}", daemon=True)
        link.run_thread.start()
        return link

    def _bounded_connect(self, client: EClient, client_id: int) -> bool:
        """Run ``client.connect`` in a helper thread; abandon it after ``connect_timeout_s``.

        ``EClient.connect`` loops until the server's version reply, forever if a gateway accepts but never
        answers. Closing its socket makes that loop return.
        """

        def connect() -> None:
            try:
                client.connect(self._host, self._port, client_id)
            except Exception:
                log.exception("event=ib_connect_raised client_id=%d", client_id)

        helper = threading.Thread(target=connect, name=f"ib-connect-{client_id}", daemon=True)
        helper.start()
        deadline_ns = self._clock.now_ns() + int(self._cfg.connect_timeout_s * NS_PER_SECOND)
        while helper.is_alive() and self._clock.now_ns() < deadline_ns and not self._is_stopping():
            self._clock.sleep(_POLL_S / 5)
        if helper.is_alive():
            log.warning("event=ib_handshake_timeout client_id=%d timeout_s=%s", client_id, self._cfg.connect_timeout_s)
            conn = client.conn
            if conn is not None:
                conn.disconnect()
            helper.join(timeout=2.0)
            return False
        return True

    def _run(self, link: _Link) -> None:
        """Run thread body: ``EClient.run`` with every escaping exception caught (a bad peer must not kill us)."""
        try:
            link.client.run()
        except Exception:
            log.exception("event=ib_reader_failed client_id=%d session=%d", link.client_id, link.session)
            try:
                link.client.disconnect()
            except Exception:
                log.exception("event=ib_disconnect_after_failure_failed client_id=%d", link.client_id)
        with self._lock:
            link.closed = True

    def _watch(self, link: _Link) -> str:
        """Poll the link until it must be torn down; returns the reason. Also the stale-data watchdog."""
        timeout_ns = int(self._cfg.connect_timeout_s * NS_PER_SECOND)
        grace_ns = int(self._connectivity_grace_s * NS_PER_SECOND)
        while True:
            now_ns = self._clock.now_ns()
            with self._lock:
                stopping, closed, asked = self._stopping, link.closed, link.reconnect_reason
                ready_at, lost_ns = link.ready_at_ns, link.connectivity_lost_ns
            if stopping:
                return "stopped"
            if asked is not None:
                return asked
            if closed or not link.client.isConnected():
                return "connection_closed"
            reader = link.client.reader
            if reader is not None and not reader.is_alive():
                return "reader_thread_died"
            if link.run_thread is not None and not link.run_thread.is_alive():
                return "run_thread_died"
            if ready_at is None and now_ns - link.started_ns > timeout_ns:
                return "not_ready_in_time"
            if lost_ns is not None and now_ns - lost_ns > grace_ns:
                return "connectivity_not_restored"
            if ready_at is not None:
                self._check_stale(link, now_ns)
            self._clock.sleep(_POLL_S)

    def _check_stale(self, link: _Link, now_ns: int) -> None:
        if self._data_stale_after_s is None:
            return
        with self._lock:
            if not self._subscriptions or self._stale_reported:
                return
            since_ns = max(self._last_data_ns, link.ready_at_ns or 0)
            silent_s = (now_ns - since_ns) / NS_PER_SECOND
            if silent_s <= self._data_stale_after_s:
                return
            self._stale_reported = True
            count = len(self._subscriptions)
        log.warning(
            "event=ib_market_data_stale client_id=%d silent_for_s=%.2f subscriptions=%d",
            link.client_id, silent_s, count,
        )  # fmt: skip
        self._put(IbDataStale(ts_init_ns=now_ns, client_id=link.client_id, silent_for_s=silent_s, subscriptions=count))

    def _close_link(self, link: _Link, reason: str) -> None:
        log.warning("event=ib_link_down client_id=%d session=%d reason=%s", link.client_id, link.session, reason)
        try:
            if link.client.isConnected():
                link.client.disconnect()
        except Exception:
            log.exception("event=ib_disconnect_failed client_id=%d", link.client_id)
        if link.run_thread is not None:
            link.run_thread.join(timeout=5.0)
            if link.run_thread.is_alive():
                log.error("event=ib_run_thread_join_timeout client_id=%d session=%d", link.client_id, link.session)
        self._forget(link)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            if self._link is link:
                self._link = None
            self._subscriptions.clear()  # subscriptions die with the socket; the handler re-registers them
            self._stale_reported = False

    def _next_client_id(self) -> None:
        if len(self._client_ids) == 1:
            log.error(
                "event=ib_client_id_in_use client_id=%d action=retry_same_id hint=%s",
                self.client_id, "engine and monitor need distinct ids; configure fallback ids or stop the other client",
            )  # fmt: skip
            return
        old = self.client_id
        self._client_id_index = (self._client_id_index + 1) % len(self._client_ids)
        log.warning("event=ib_client_id_fallback old_client_id=%d new_client_id=%d", old, self.client_id)

    def _is_stopping(self) -> bool:
        with self._lock:
            return self._stopping

    def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` through the clock in short slices so ``stop()`` is honoured within ``_POLL_S``."""
        deadline_ns = self._clock.now_ns() + int(seconds * NS_PER_SECOND)
        while not self._is_stopping():
            left_s = (deadline_ns - self._clock.now_ns()) / NS_PER_SECOND
            if left_s <= 0:
                return
            self._clock.sleep(min(_POLL_S, left_s))

    # ================================================================ run thread (called by _Wrapper)
    def _current(self, session: int) -> _Link | None:
        link = self._link
        return link if link is not None and link.session == session else None

    def _on_next_valid_id(self, session: int, order_id: int) -> None:
        """Seed the order ids; on a session's first nextValidId announce readiness (and reconcile on reconnect)."""
        with self._lock:
            self._next_order_id = max(self._next_order_id, order_id)
            link = self._current(session)
            if link is None or link.ready_at_ns is not None:
                return
            link.ready_at_ns = self._clock.now_ns()
            self._last_data_ns = link.ready_at_ns
            reconnect, self._ever_ready = self._ever_ready, True
            accounts, next_id = link.accounts, self._next_order_id
        log.info(
            "event=ib_ready client_id=%d session=%d next_valid_id=%d accounts=%s reconnect=%s",
            link.client_id, session, next_id, ",".join(accounts), reconnect,
        )  # fmt: skip
        self._put(
            IbConnected(
                ts_init_ns=self._clock.now_ns(),
                client_id=link.client_id,
                next_valid_id=next_id,
                accounts=accounts,
                reconnect=reconnect,
            )
        )

    def _on_accounts(self, session: int, accounts: tuple[str, ...]) -> None:
        with self._lock:
            link = self._current(session)
            if link is not None:
                link.accounts = accounts

    def _on_connection_closed(self, session: int) -> None:
        with self._lock:
            link = self._current(session)
            if link is not None:
                link.closed = True

    def _on_error(self, session: int, req_id: int, code: int, message: str) -> None:
        """Record what the supervisor must act on: client id in use, link-level errors, IB connectivity."""
        if code < 0:
            return
        verdict = classify(code, message)
        level = logging.INFO if verdict.action is IbErrorAction.IGNORE_INFO else logging.WARNING
        log.log(level, "event=ib_error client_id=%d req_id=%d code=%d action=%s message=%r",
                self.client_id, req_id, code, verdict.action, message)  # fmt: skip
        with self._lock:
            link = self._current(session)
            if link is None:
                return
            if code == CLIENT_ID_IN_USE:
                link.saw_client_id_in_use = True
            elif code in _CONNECTIVITY_LOST:
                link.connectivity_lost_ns = self._clock.now_ns()
            elif code in _CONNECTIVITY_RESTORED:
                link.connectivity_lost_ns = None
            elif verdict.action is IbErrorAction.RECONNECT and link.reconnect_reason is None:
                link.reconnect_reason = f"ib_error_{code}"

    def _on_market_data(self) -> None:
        now_ns = self._clock.now_ns()
        with self._lock:
            self._last_data_ns = now_ns
            self._stale_reported = False
