"""Binding the engine's IPC endpoints so that only this user can reach them, or refusing with a clear message.

``ipc://PATH`` (the default) is a Unix domain socket: its folder is made 0700 before the bind and the socket file
0600 after it, so no other local user can connect, read the heartbeat or publish in its place. A socket file that a
live process still answers on is refused (a second engine, or someone squatting the path); a stale one left by a
crash is replaced, as libzmq does. ``tcp://HOST:PORT`` stays available for a monitor on another host: the caller
secures it with CURVE (``core.ipc_curve``); a port already taken is refused naming it.

A refusal is an ``EndpointUnavailable`` (a ``ConfigError``): the entry points exit 2 with the message.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

import zmq

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
