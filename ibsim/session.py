"""One client connection: its socket, outbound queue and per-client subscriptions.

Writes go through a queue drained by the session's own writer thread, so handlers running under the
server lock never block on a slow client's socket. Messages to one client keep their order.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from dataclasses import dataclass, field

from ibsim.requests import ContractSpec

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MktDataSub:
    symbol: str
    last_sent: dict[int, float] = field(default_factory=dict)  # tick type → value


@dataclass(slots=True)
class BarSub:
    symbol: str
    last_bucket_s: int = 0


class ClientSession:
    """State of one API connection; ``client_id`` is None until START_API has been accepted."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.client_id: int | None = None
        self.market_data_type = 1
        self.mkt_subs: dict[int, MktDataSub] = {}
        self.bar_subs: dict[int, BarSub] = {}
        self.account_summary_subs: dict[int, tuple[str, ...]] = {}
        self.positions_subscribed = False
        self.pending_contracts: dict[int, ContractSpec] = {}
        self._out: queue.Queue[bytes | None] = queue.Queue()
        self._closed = threading.Event()
        self.writer = threading.Thread(target=self._write_loop, name=f"ibsim-writer-{peer}", daemon=True)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, data: bytes) -> None:
        if not self._closed.is_set():
            self._out.put(data)

    def close_after_flush(self) -> None:
        """Send what is queued, then close (used after error 326)."""
        self._out.put(None)

    def close(self) -> None:
        """Close now; pending output is dropped. Safe to call twice and from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._out.put(None)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def _write_loop(self) -> None:
        while True:
            data = self._out.get()
            if data is None:
                self.close()
                return
            if self._closed.is_set():
                return
            try:
                self.sock.sendall(data)
            except OSError as exc:
                log.info("event=client_write_failed peer=%s client_id=%s error=%s", self.peer, self.client_id, exc)
                self.close()
                return
