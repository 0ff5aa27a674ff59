"""CURVE for the engine's ZeroMQ sockets: the engine is the server, each authorized client pins its public key.

Both the command channel (ROUTER) and, on TCP, the heartbeat (PUB) use the engine's keypair and the same list of
authorized client keys (``core.ipc_keys``). A ZAP authenticator thread must run in the socket's context *before*
the socket binds: without a ZAP handler libzmq accepts any CURVE client that knows the server's public key.

For a subscriber this means: a publisher that does not hold the engine's secret key cannot complete the handshake
with it, so a process squatting the heartbeat port cannot fake the engine's beats; and a client whose key is not
authorized gets nothing from the engine's publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import zmq
from zmq.auth.thread import ThreadAuthenticator

from core.clock import NS_PER_SECOND, Clock
from core.ipc_keys import (
    ensure_keys,
    load_authorized_keys,
    load_client_keypair,
    load_server_keypair,
    load_server_public_key,
)

log = logging.getLogger(__name__)

DENIAL_LOG_INTERVAL_NS = 60 * NS_PER_SECOND
HANDSHAKE_TIMEOUT_MS = 2_000  # a peer that has not completed its CURVE handshake by then is dropped (fds bounded)


class AuthorizedKeys:
    """ZAP credentials provider: runs on the authenticator thread; reads an immutable map swapped atomically."""

    def __init__(self, keys: Mapping[bytes, str], clock: Clock, what: str) -> None:
        self._keys: Mapping[bytes, str] = MappingProxyType(dict(keys))
        self._clock = clock
        self._what = what
        self._lock = threading.Lock()
        self._denied_count = 0
        self._last_denial_log_ns: dict[bytes, int] = {}

    @property
    def denied_count(self) -> int:
        with self._lock:
            return self._denied_count

    def replace(self, keys: Mapping[bytes, str]) -> None:
        self._keys = MappingProxyType(dict(keys))

    def name_for(self, z85_key: bytes) -> str | None:
        return self._keys.get(z85_key)

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by pyzmq's authenticator for each CURVE handshake; logs denials (at most once a minute a key)."""
        if key in self._keys:
            return True
        now_ns = self._clock.now_ns()
        with self._lock:
            self._denied_count += 1
            count = self._denied_count
            last = self._last_denial_log_ns.get(key)
            should_log = last is None or now_ns - last >= DENIAL_LOG_INTERVAL_NS
            if should_log:
                self._last_denial_log_ns[key] = now_ns
        if should_log:
            log.warning("event=%s_auth_denied client_key=%s domain=%s reason=key not authorized denied_total=%d",
                        self._what, key.decode(errors="replace"), domain, count)  # fmt: skip
        return False


class CurveServer:
    """The engine's CURVE side in one ZeroMQ context: keys ensured, the ZAP thread started, sockets made servers.

    ``what`` names the channel in logs (``command``, ``heartbeat``). Call ``secure(socket)`` before binding it.
    """

    def __init__(self, context: zmq.Context, keys_dir: Path, authorized_clients: Sequence[str], clock: Clock,
                 what: str) -> None:  # fmt: skip
        self.keys_dir = Path(keys_dir)
        ensure_keys(self.keys_dir, authorized_clients)
        self._public, self._secret = load_server_keypair(self.keys_dir)
        self.authorized = AuthorizedKeys(load_authorized_keys(self.keys_dir), clock, what)
        self._auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap.{what}"))
        self._auth.start()
        self._auth.configure_curve_callback("*", credentials_provider=self.authorized)

    def secure(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self._public
        socket.curve_server = True
        socket.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_TIMEOUT_MS)

    def reload(self) -> dict[bytes, str]:
        keys = load_authorized_keys(self.keys_dir)
        self.authorized.replace(keys)
        return keys

    def is_alive(self) -> bool:
        return self._auth.is_alive()

    def stop(self) -> None:
        self._auth.stop()


def secure_client(socket: zmq.Socket, keys_dir: Path, client_name: str) -> None:
    """Make ``socket`` a CURVE client of the engine: this client's keypair, the engine's public key pinned."""
    public, secret = load_client_keypair(Path(keys_dir), client_name)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = load_server_public_key(Path(keys_dir))
