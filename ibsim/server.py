"""``IbSim``: the TCP server, its threads, and the fault-injection API tests drive in-process.

Threads: one acceptor, one reader and one writer per connection, one market ticker. All state changes run
under one ``RLock`` (``self.lock``), so a fill, a cancel from another client and a tick never interleave;
writes are queued per session and never block the lock. ``start()`` returns the bound port; ``stop()``
closes everything and joins the threads. Bad input from a client is logged and survived; only a broken
frame (not a TWS client) closes that one connection.
"""

from __future__ import annotations

import logging
import socket
import threading

from core.clock import WallClock
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.synthetic import generate_market
from ibsim import responses
from ibsim.book import Book
from ibsim.config import Faults, SimConfig
from ibsim.gateway import Gateway
from ibsim.market import Market, session_time_text
from ibsim.requests import Malformed, StartApi, parse_request
from ibsim.session import ClientSession
from ibsim.wire import HELLO_PREFIX, FrameBuffer, FramingError, split_fields

log = logging.getLogger(__name__)

_ERROR_TEXTS = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
}


def build_market(cfg: SimConfig) -> Market:
    """The replay market named by ``cfg.data``: the seeded synthetic market or a bar store folder."""
    calendar = TradingCalendar()
    if cfg.data == "synthetic":
        frames = generate_market(list(cfg.symbols), cfg.history_start, cfg.end_session, cfg.seed, calendar)
    else:
        store = BarStore(cfg.data, calendar)
        symbols = [s for s in cfg.symbols if store.has(s)] or store.symbols()
        frames = {s: store.read(s, cfg.history_start, cfg.end_session) for s in symbols}
        frames = {s: f for s, f in frames.items() if len(f)}
    market = Market(frames, calendar, cfg.start_session, cfg.speed, cfg.seed, cfg.spread_bps)
    if cfg.price_shock is not None:
        seconds, pct = cfg.price_shock
        market.add_price_shock_after_start(seconds, pct)
    return market


class IbSim:
    """A simulated IB Gateway; see the module docstring for threads and locking."""

    def __init__(self, cfg: SimConfig | None = None, market: Market | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.market = market or build_market(self.cfg)
        self.book = Book(self.cfg.account, self.cfg.cash_usd, self.cfg.costs)
        self.faults = Faults()
        self.gateway = Gateway(self.cfg, self.market, self.book, self.faults)
        self.lock = threading.RLock()
        self.port = self.cfg.port
        self._clock = WallClock()
        self._listener: socket.socket | None = None
        self._all_sessions: set[ClientSession] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._refuse_until_ns = 0
        self._listener_lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> int:
        """Bind, start the acceptor and ticker threads; returns the bound port."""
        self._open_listener()
        for target, name in ((self._accept_loop, "ibsim-accept"), (self._tick_loop, "ibsim-ticker")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("event=ibsim_started host=%s port=%d symbols=%d", self.cfg.host, self.port, len(self.market.stocks))
        return self.port

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()
        self.drop_all_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        log.info("event=ibsim_stopped port=%d", self.port)

    def __enter__(self) -> IbSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_listener(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.cfg.host, self.port))
        sock.listen(16)
        sock.settimeout(0.1)
        self.port = sock.getsockname()[1]
        with self._listener_lock:
            self._listener = sock

    def _close_listener(self) -> None:
        with self._listener_lock:
            sock, self._listener = self._listener, None
        if sock is not None:
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            with self._listener_lock:
                listener = self._listener
            if listener is None:
                if self._refuse_until_ns and self._clock.now_ns() >= self._refuse_until_ns:
                    self._refuse_until_ns = 0
                    try:
                        self._open_listener()
                        log.info("event=accepting_again port=%d", self.port)
                    except OSError as exc:
                        log.error("event=rebind_failed port=%d error=%s", self.port, exc)
                        self._refuse_until_ns = self._clock.now_ns() + 500_000_000
                self._clock.sleep(0.05)
                continue
            try:
                conn, addr = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = ClientSession(conn, f"{addr[0]}:{addr[1]}")
            with self.lock:
                self._all_sessions.add(session)
            session.writer.start()
            threading.Thread(target=self._serve, args=(session,), name=f"ibsim-reader-{addr[1]}", daemon=True).start()

    def _tick_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                with self.lock:
                    self.gateway.on_tick()
            except Exception:
                log.exception("event=tick_failed")
            self._clock.sleep(self.cfg.tick_interval_s)

    # ------------------------------------------------------------ one connection
    def _serve(self, session: ClientSession) -> None:
        buf = FrameBuffer()
        stage = "prefix"
        try:
            while not session.closed:
                try:
                    data = session.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                buf.feed(data)
                stage = self._consume(session, buf, stage)
                if stage == "closed":
                    break
        except FramingError as exc:
            log.warning("event=bad_frame peer=%s error=%s", session.peer, exc)
        except Exception:
            log.exception("event=session_failed peer=%s client_id=%s", session.peer, session.client_id)
        finally:
            with self.lock:
                self.gateway.end_session(session)
                self._all_sessions.discard(session)
            if stage != "closed":
                session.close()

    def _consume(self, session: ClientSession, buf: FrameBuffer, stage: str) -> str:
        """Process every complete frame in ``buf``; returns the new handshake stage."""
        if stage == "prefix":
            if not buf.take_prefix(HELLO_PREFIX):
                return stage
            stage = "hello"
        while (payload := buf.next_payload()) is not None:
            if stage == "hello":
                log.debug("event=client_hello peer=%s versions=%r", session.peer, payload)
                with self.lock:
                    session.send(responses.server_version(session_time_text(self.market.now_ns())))
                stage = "start_api"
                continue
            request = parse_request(split_fields(payload))
            with self.lock:
                if stage == "start_api":
                    if not isinstance(request, StartApi):
                        log.warning("event=request_before_start_api peer=%s request=%s", session.peer, request)
                        continue
                    if not self.gateway.start_api(session, request):
                        session.close_after_flush()
                        return "closed"
                    stage = "api"
                    continue
                try:
                    self.gateway.handle(session, request)
                except Exception:
                    log.exception("event=handler_failed client_id=%s request=%s", session.client_id, request)
                    if not isinstance(request, Malformed):
                        continue
        return stage

    # ------------------------------------------------------------ fault injection
    def drop_all_connections(self) -> None:
        """Close every client socket at once (clients see connectionClosed); the book is kept."""
        with self.lock:
            sessions = list(self._all_sessions)
        for session in sessions:
            session.close()
        log.info("event=fault_drop_all sessions=%d", len(sessions))

    def refuse_connections(self, seconds: float) -> None:
        """Close the listening socket for ``seconds`` (connects fail with ECONNREFUSED → client error 502)."""
        self._refuse_until_ns = self._clock.now_ns() + int(seconds * 1e9)
        self._close_listener()
        log.info("event=fault_refuse_connections seconds=%s", seconds)

    def accepting(self) -> bool:
        with self._listener_lock:
            return self._listener is not None

    def nightly_restart(self, down_s: float) -> None:
        """Drop everyone and refuse connections for ``down_s``, then accept again, like the daily reset."""
        self.refuse_connections(down_s)
        self.drop_all_connections()

    def emit_error(self, code: int, text: str | None = None, req_id: int = -1) -> None:
        """Send ERR_MSG(req_id, code, text) to every connected client."""
        with self.lock:
            self.gateway.broadcast(responses.error(req_id, code, text or _ERROR_TEXTS.get(code, f"ibsim error {code}")))

    def connectivity_lost(self) -> None:
        """1100 to all and market data stops; sockets stay open."""
        with self.lock:
            self.faults.market_data_silenced = True
            self.emit_error(1100)

    def connectivity_restored(self, data_lost: bool = False) -> None:
        """1101 (subscriptions dropped: clients must resubscribe) or 1102 (data maintained); data resumes."""
        with self.lock:
            if data_lost:
                for session in self.gateway.sessions.values():
                    session.mkt_subs.clear()
                    session.bar_subs.clear()
            self.faults.market_data_silenced = False
            self.emit_error(1101 if data_lost else 1102)

    def farm_broken(self) -> None:
        self.emit_error(2103)

    def farm_ok(self) -> None:
        self.emit_error(2104)

    def silence_market_data(self, silenced: bool = True) -> None:
        with self.lock:
            self.faults.market_data_silenced = silenced

    def withhold_order_acks(self, withhold: bool = True, deliver_held: bool = True) -> None:
        """While on, placed orders are held with no answer; turning it off processes (or drops) them."""
        with self.lock:
            if withhold:
                self.faults.withhold_acks = True
            else:
                self.gateway.desk.release_held(deliver_held)

    def reject_next_order(self, reason: str = "ibsim fault injection") -> None:
        with self.lock:
            self.faults.reject_next_reason = reason

    def partial_fill_next_order(self, fraction: float = 0.5) -> None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1) (got {fraction})")
        with self.lock:
            self.faults.partial_next_fraction = fraction

    def duplicate_next_exec_details(self) -> None:
        with self.lock:
            self.faults.duplicate_next_exec = True

    def price_shock(self, pct: float) -> None:
        """Move every price by ``pct`` percent from now on (see ``Market.add_price_shock``), then run one tick."""
        with self.lock:
            self.market.add_price_shock(pct)
            self.gateway.on_tick()

    def advance_market_s(self, seconds: float) -> None:
        """Fast-forward the sim clock by ``seconds`` of trading time, then run one tick."""
        with self.lock:
            self.market.advance_s(seconds)
            self.gateway.on_tick()
