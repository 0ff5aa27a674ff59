"""CURVE key files for the command channel, and the loopback rule for IPC endpoints.

Both ends of the command channel need the same key layout: the engine (server) and its authorized clients (the
risk monitor and the operator CLI). ``risk_monitor.py`` imports no engine runtime module, so the layout lives here,
beside the other IPC helpers.

Layout under ``keys_dir`` (``state/keys`` by default; directories 0700, files 0600)::

    server.key, server.key_secret                  the engine's keypair (pyzmq certificate format)
    clients/<name>.key, clients/<name>.key_secret  each client's keypair
    authorized_clients/<name>.key                  public keys the engine accepts; delete one to revoke it

Keys are created once and then reused: ``ensure_keys`` never overwrites an existing key file. Creation is safe when
two processes start together (engine and monitor): a keypair is written in a private temporary folder and
hard-linked into place, which fails if the name exists, so the loser of a race reads the winner's files. A client
is added to ``authorized_clients/`` only when its keypair is created, so a revoked client stays revoked.

All three processes run on one host as one user; the 0600/0700 modes keep other local users out of the secrets.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth

from core.errors import ConfigError, StateCorruptError

log = logging.getLogger(__name__)

DEFAULT_CLIENTS: tuple[str, ...] = ("risk_monitor", "operator")
SERVER_NAME = "server"
CLIENTS_SUBDIR = "clients"
AUTHORIZED_SUBDIR = "authorized_clients"
DIR_MODE = 0o700
FILE_MODE = 0o600
_CLIENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyFiles:
    """Where ``ensure_keys`` put (or found) every key file."""

    keys_dir: Path
    server_public: Path
    server_secret: Path
    authorized_dir: Path
    client_secrets: Mapping[str, Path]


def ensure_keys(keys_dir: Path, clients: Sequence[str] = DEFAULT_CLIENTS) -> KeyFiles:
    """Create the server keypair and each client's keypair if missing; reuse whatever exists.

    Safe to call from every process at start-up (engine, monitor, CLI). Raises ``ConfigError`` for a bad client
    name (lower-case letters, digits and ``_``, at most 32, starting with a letter).
    """
    bad = [name for name in clients if not _CLIENT_NAME.match(name)]
    if bad:
        raise ConfigError("ensure_keys", [f"client names must match {_CLIENT_NAME.pattern} (got {bad})"])
    keys_dir = Path(keys_dir)
    clients_dir = keys_dir / CLIENTS_SUBDIR
    authorized_dir = keys_dir / AUTHORIZED_SUBDIR
    for folder in (keys_dir, clients_dir, authorized_dir):
        _ensure_private_dir(folder)
    server_public, server_secret = _ensure_keypair(keys_dir, SERVER_NAME)
    client_secrets: dict[str, Path] = {}
    for name in clients:
        _, client_secrets[name] = _ensure_keypair(clients_dir, name, authorize_in=authorized_dir)
    return KeyFiles(
        keys_dir=keys_dir,
        server_public=server_public,
        server_secret=server_secret,
        authorized_dir=authorized_dir,
        client_secrets=client_secrets,
    )


def load_server_keypair(keys_dir: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys of the engine; only the engine needs the secret."""
    return _load_keypair(Path(keys_dir) / f"{SERVER_NAME}.key_secret")


def load_server_public_key(keys_dir: Path) -> bytes:
    """The engine's Z85 public key, which every client pins (a client never talks to another server)."""
    return _load_public(Path(keys_dir) / f"{SERVER_NAME}.key")


def load_client_keypair(keys_dir: Path, client_name: str) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys of one client; raises ``ConfigError`` if that client has no keys yet."""
    return _load_keypair(Path(keys_dir) / CLIENTS_SUBDIR / f"{client_name}.key_secret")


def load_authorized_keys(keys_dir: Path) -> dict[bytes, str]:
    """Z85 public key -> client name, for every ``authorized_clients/<name>.key``; unreadable files are skipped."""
    authorized: dict[bytes, str] = {}
    folder = Path(keys_dir) / AUTHORIZED_SUBDIR
    for path in sorted(folder.glob("*.key")):
        try:
            authorized[_load_public(path)] = path.stem
        except (ConfigError, StateCorruptError) as exc:
            log.error("event=authorized_key_unreadable path=%s error=%s", path, exc)
    return authorized


def check_bind_endpoint(endpoint: str) -> None:
    """Log a warning when a socket is about to bind beyond this host.

    The defaults bind 127.0.0.1 only; an operator may choose otherwise explicitly, and this makes that visible.
    """
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp":
        return
    host = (parts.hostname or "").strip("[]")
    if host not in _LOOPBACK_HOSTS:
        log.warning("event=ipc_bind_not_loopback endpoint=%s hint=use tcp://127.0.0.1:PORT unless intended", endpoint)


def _ensure_private_dir(folder: Path) -> None:
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(folder, DIR_MODE)


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current != mode:
        if current & ~mode:
            log.warning("event=key_permissions_tightened path=%s was=%o now=%o", path, current, mode)
        os.chmod(path, mode)


def _ensure_keypair(folder: Path, name: str, authorize_in: Path | None = None) -> tuple[Path, Path]:
    """Create ``folder/name.key{,_secret}`` unless the secret exists; returns (public, secret) paths."""
    public = folder / f"{name}.key"
    secret = folder / f"{name}.key_secret"
    if secret.exists():
        _tighten(secret, FILE_MODE)
        if not public.exists():
            log.warning("event=public_key_missing path=%s action=rewritten_from_secret", public)
            _write_public_from(secret, public)
        _tighten(public, FILE_MODE)
        return public, secret
    with tempfile.TemporaryDirectory(dir=folder, prefix=".keygen-") as tmp:
        tmp_public, tmp_secret = (Path(p) for p in zmq.auth.create_certificates(tmp, name))
        for path in (tmp_public, tmp_secret):
            os.chmod(path, FILE_MODE)
        try:
            os.link(tmp_secret, secret)
        except FileExistsError:  # another process won the race: use its keypair
            log.info("event=keypair_created_concurrently name=%s path=%s", name, secret)
            return _ensure_keypair(folder, name, authorize_in=None)
        _link_or_keep(tmp_public, public)
        if authorize_in is not None:
            _link_or_keep(tmp_public, authorize_in / f"{name}.key")
    log.info("event=keypair_created name=%s path=%s authorized=%s", name, secret, authorize_in is not None)
    return public, secret


def _link_or_keep(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        log.warning("event=key_file_kept path=%s reason=already exists", target)


def _write_public_from(secret: Path, public: Path) -> None:
    public_key, _ = _load_keypair(secret)
    with tempfile.TemporaryDirectory(dir=public.parent, prefix=".keygen-") as tmp:
        tmp_public = Path(tmp) / public.name
        tmp_public.write_text(f'metadata\ncurve\n    public-key = "{public_key.decode()}"\n', encoding="utf-8")
        os.chmod(tmp_public, FILE_MODE)
        _link_or_keep(tmp_public, public)


def _load_public(path: Path) -> bytes:
    public, _ = _read_certificate(path)
    return public


def _load_keypair(path: Path) -> tuple[bytes, bytes]:
    public, secret = _read_certificate(path)
    if secret is None:
        raise StateCorruptError(f"{path}: no secret-key line; delete the file and run ensure_keys to recreate it")
    return public, secret


def _read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    if not path.exists():
        raise ConfigError(
            str(path), [f"CURVE key file missing: {path}; start the engine once or call ensure_keys({path.parent})"]
        )
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise StateCorruptError(f"{path}: unreadable CURVE certificate ({exc}); delete it to recreate") from exc
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise StateCorruptError(f"{path}: CURVE keys must be 40 Z85 characters; delete it to recreate")
    return public, secret
