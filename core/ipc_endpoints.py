"""Binding the engine's IPC endpoints so that only this user can reach them, or refusing with a clear message.

``ipc://PATH`` (the default) is a Unix domain socket: its folder is made 0700 before the bind and the socket file
0600 after it, so no other local user can connect, read the heartbeat or publish in its place. A socket file that a
live process still answers on is refused (a second engine, or someone squatting the path); a stale one left by a
crash is replaced, as libzmq does. ``tcp://HOST:PORT`` stays available for a monitor on another host: the caller
secures it with CURVE (``core.ipc_curve``); a port already taken is refused naming it.

A refusal is an ``EndpointUnavailable`` (a ``ConfigError``): the entry points exit 2 with the message.

On TCP anyone on the host can connect, so ``PeerGuard`` bounds what a connection flood can cost: it counts the
socket's peers from its monitor events and, above ``max_peers``, unbinds for a pause (the kernel then refuses new
connections, so they take no file descriptor of ours) while the CURVE handshake timeout drops the idle ones.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

import zmq
from zmq.utils.monitor import recv_monitor_message

from core.clock import NS_PER_SECOND, Clock
from core.errors import ConfigError
from core.ipc_keys import check_bind_endpoint

log = logging.getLogger(__name__)

RUN_DIR_MODE = 0o700
SOCKET_FILE_MODE = 0o600
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


class EndpointUnavailable(ConfigError):
    """The engine cannot own one of its endpoints; the message names it and says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__("ipc", [f"{key}: {problem}"])


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an ``ipc://`` endpoint, None for any other transport."""
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


def is_tcp(endpoint: str) -> bool:
    return urlsplit(endpoint).scheme == "tcp"


def bind_private(sock: zmq.Socket, endpoint: str, key: str) -> str:
    """Bind ``sock`` to ``endpoint`` so that only this user reaches it; returns the bound endpoint.

    ``key`` is the config key, named in a refusal (``operational_risk.heartbeat_endpoint``).
    """
    path = ipc_path(endpoint)
    if path is not None:
        _prepare_socket_path(path, endpoint, key)
    else:
        check_bind_endpoint(endpoint)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        hint = ""
        if is_tcp(endpoint):
            port = urlsplit(endpoint).port
            hint = f"; another process holds the port (see: ss -ltnp 'sport = :{port}')"
        raise EndpointUnavailable(key, f"cannot bind {endpoint}: {exc}{hint}") from exc
    if path is not None:
        os.chmod(path, SOCKET_FILE_MODE)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _prepare_socket_path(path: Path, endpoint: str, key: str) -> None:
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise EndpointUnavailable(key, f"the socket path of {endpoint} is longer than {UNIX_PATH_MAX} bytes; "
                                       "use a shorter path")  # fmt: skip
    folder = path.parent
    try:
        folder.mkdir(mode=RUN_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise EndpointUnavailable(key, f"cannot create the folder of {endpoint}: {exc}") from exc
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode != RUN_DIR_MODE:
        log.warning("event=ipc_dir_permissions_tightened path=%s was=%o now=%o", folder, mode, RUN_DIR_MODE)
        os.chmod(folder, RUN_DIR_MODE)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not stat.S_ISSOCK(path.lstat().st_mode):
        raise EndpointUnavailable(key, f"{path} exists and is not a socket; it is left alone (remove it by hand)")
    if _answers(path):
        raise EndpointUnavailable(key, f"a live process already listens on {endpoint} (a second engine on the same "
                                       "state?); stop it first")  # fmt: skip
    log.info("event=ipc_stale_socket_replaced path=%s", path)


def _answers(path: Path) -> bool:
    """True when something accepts connections on the Unix socket ``path`` (a stale file refuses them)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class PeerGuard:
    """Bounds the TCP peers of one bound socket (see the module docstring); ``poll`` on the socket's own thread.

    Peers are counted from monitor events (accepted +1, disconnected -1). Above ``max_peers`` the endpoint is
    unbound for ``pause_s``, which also closes every connection accepted through it, the flood's and the authorized
    clients' alike (they retry: the command client's lazy pirate, the monitor's own fallback); then it is bound
    again.
    """

    def __init__(self, sock: zmq.Socket, endpoint: str, clock: Clock, *, max_peers: int = 64,
                 pause_s: float = 5.0) -> None:  # fmt: skip
        self._sock, self._endpoint, self._clock = sock, endpoint, clock
        self._max, self._pause_ns = max_peers, int(pause_s * NS_PER_SECOND)
        self._monitor = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.peers = 0
        self.paused_until_ns: int | None = None
        self.pauses = 0

    def poll(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            self.peers += 1 if event == zmq.EVENT_ACCEPTED else -1
        self.peers = max(0, self.peers)
        now = self._clock.now_ns()
        if self.paused_until_ns is None and self.peers > self._max:
            self._sock.unbind(self._endpoint)  # closes the listener and every connection accepted through it
            self.paused_until_ns = now + self._pause_ns
            self.pauses += 1
            log.warning("event=ipc_peer_flood endpoint=%s peers=%d max_peers=%d action=unbound pause_s=%.1f",
                        self._endpoint, self.peers, self._max, self._pause_ns / NS_PER_SECOND)  # fmt: skip
            self.peers = 0  # libzmq reports no disconnect for the connections the unbind closed
        elif self.paused_until_ns is not None and now >= self.paused_until_ns:
            try:
                self._sock.bind(self._endpoint)
            except zmq.ZMQError as exc:  # taken meanwhile: try again after another pause
                self.paused_until_ns = now + self._pause_ns
                log.error("event=ipc_rebind_failed endpoint=%s error=%s", self._endpoint, exc)
                return
            self.paused_until_ns = None
            log.warning("event=ipc_peer_flood_over endpoint=%s peers=%d action=bound again", self._endpoint, self.peers)

    def close(self) -> None:
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
