"""Command channel: the risk monitor and the operator CLI tell the engine to STATUS, HALT, CANCEL_ALL or FLATTEN.

Security, in layers:

1. ZeroMQ CURVE: traffic is encrypted and the client pins the engine's public key (keys: ``core.ipc_keys``).
2. ZAP: a ``ThreadAuthenticator`` accepts only public keys listed in ``authorized_clients/``; any other client's
   handshake is refused, so it cannot even deliver a message (the denial is logged and counted).
3. The server re-checks every message's authenticated ``User-Id`` (in case the ZAP handler were missing, when
   libzmq would fall back to encryption without authentication) and that the claimed client name matches it.
4. Replay: each command carries a nonce that must increase per client, and a timestamp that must be within
   ``max_age_s`` of the engine's clock. Refusals are logged with their reason and answered with a clear code.
5. Resources: by default the endpoint is a Unix socket in a 0700 folder (``core.ipc_endpoints``: no other user can
   connect at all). On TCP, a peer must finish its CURVE handshake within 2 s, messages are capped at
   ``MAX_MESSAGE_BYTES`` and parsed with a depth limit, and ``PeerGuard`` unbinds for a pause above its peer cap,
   so a connection flood cannot exhaust the engine's file descriptors.

Wire format: UTF-8 JSON. Request ``{"verb", "nonce", "ts_ns", "client", "reason"}``; reply ``{"ok", "code",
"message", "verb", "nonce", "data"}``. The server uses a ROUTER socket (a REP socket would wedge if one reply
failed to go out); clients use REQ with the lazy-pirate pattern: after a timeout the socket is closed and rebuilt,
and a retry is a new command with a new nonce. HALT, CANCEL_ALL and FLATTEN are idempotent, so a retry after a
lost reply is harmless.

Threading model: ``CommandServer.serve_once`` is called from the engine's dispatcher thread, which owns the socket
and runs ``handler`` there, so the handler may touch engine state without locks; "the engine answers" then also
means "the engine loop is alive", which is what the monitor needs to know. The ZAP check runs on the
authenticator's own thread and only reads an immutable key map. ``CommandClient`` is safe to share between threads
(one lock serializes ``send``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import zmq

from core.clock import NS_PER_SECOND, Clock
from core.ipc_curve import CurveServer
from core.ipc_endpoints import PeerGuard, bind_private, is_tcp
from core.ipc_keys import (
    DEFAULT_CLIENTS,
    load_authorized_keys,
    load_client_keypair,
    load_server_public_key,
)

log = logging.getLogger(__name__)

DEFAULT_COMMAND_ENDPOINT = "tcp://127.0.0.1:5557"
DEFAULT_MAX_AGE_S = 5.0
MAX_MESSAGE_BYTES = 64 * 1024
MAX_REASON_CHARS = 500
_REQUEST_KEYS = frozenset({"verb", "nonce", "ts_ns", "client", "reason"})
_MAX_COMMANDS_PER_CALL = 16


class CommandVerb(StrEnum):
    STATUS = "STATUS"  # read-only: trading state, equity, drawdown, open orders...
    HALT = "HALT"  # move to HALTED (one-way); the engine's kill policy decides about flattening
    CANCEL_ALL = "CANCEL_ALL"  # cancel every open order
    FLATTEN = "FLATTEN"  # cancel open orders and close every position


class ReplyCode(StrEnum):
    OK = "OK"
    MALFORMED = "MALFORMED"  # not JSON, not an object, missing / wrong-typed / unknown fields
    UNKNOWN_VERB = "UNKNOWN_VERB"
    UNAUTHENTICATED = "UNAUTHENTICATED"  # no authorized CURVE identity, or the claimed client name differs
    STALE = "STALE"  # timestamp further than max_age_s from the engine's clock
    REPLAY = "REPLAY"  # nonce not above the client's last accepted nonce
    REJECTED = "REJECTED"  # the engine understood and declined (set by the handler)
    HANDLER_ERROR = "HANDLER_ERROR"  # the handler raised or returned something unusable
    NO_REPLY = "NO_REPLY"  # client side only: the engine did not answer in time


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A validated, authenticated command as the engine's handler sees it.

    ``client_name`` is the authenticated identity (from the CURVE key), not merely what the client claimed.
    """

    verb: CommandVerb
    nonce: int
    ts_ns: int
    client_name: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReply:
    """The engine's answer. ``verb`` and ``nonce`` echo the request (the server fills them in)."""

    code: ReplyCode
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    verb: str | None = None
    nonce: int | None = None

    @property
    def ok(self) -> bool:
        return self.code is ReplyCode.OK

    @classmethod
    def accepted(cls, message: str = "", data: Mapping[str, Any] | None = None) -> CommandReply:
        return cls(code=ReplyCode.OK, message=message, data=MappingProxyType(dict(data or {})))

    @classmethod
    def refused(cls, code: ReplyCode, message: str) -> CommandReply:
        return cls(code=code, message=message)


def encode_command(command: Command) -> bytes:
    return json.dumps(
        {"verb": command.verb.value, "nonce": command.nonce, "ts_ns": command.ts_ns, "client": command.client_name,
         "reason": command.reason},
        separators=(",", ":"),
    ).encode()


def decode_command(payload: bytes) -> Command | CommandReply:
    """Parse a request; returns the ``Command`` or the refusal reply explaining what is wrong (never raises)."""
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return CommandReply.refused(ReplyCode.MALFORMED, f"request is not UTF-8 JSON ({exc})")
    except RecursionError:
        return CommandReply.refused(ReplyCode.MALFORMED, "request JSON is nested too deeply")
    if not isinstance(raw, dict):
        return CommandReply.refused(ReplyCode.MALFORMED, f"request must be a JSON object (got {type(raw).__name__})")
    problems = []
    unknown = sorted(set(raw) - _REQUEST_KEYS)
    if unknown:
        problems.append(f"unknown fields {unknown}; allowed: {sorted(_REQUEST_KEYS)}")
    for key in ("nonce", "ts_ns"):
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            problems.append(f"{key} must be a positive integer (got {value!r})")
    for key in ("verb", "client"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            problems.append(f"{key} must be a non-empty string (got {raw.get(key)!r})")
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        problems.append(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
    if problems:
        return CommandReply.refused(ReplyCode.MALFORMED, "; ".join(problems))
    if raw["verb"] not in CommandVerb.__members__:
        return CommandReply.refused(
            ReplyCode.UNKNOWN_VERB, f"unknown verb {raw['verb']!r}; allowed: {list(CommandVerb.__members__)}"
        )
    return Command(
        verb=CommandVerb(raw["verb"]), nonce=raw["nonce"], ts_ns=raw["ts_ns"], client_name=raw["client"],
        reason=reason,
    )


def encode_reply(reply: CommandReply) -> bytes:
    """Raises ``TypeError``/``ValueError`` if ``data`` is not JSON-serializable (NaN is allowed, as in Python)."""
    return json.dumps(
        {"ok": reply.ok, "code": reply.code.value, "message": reply.message, "verb": reply.verb,
         "nonce": reply.nonce, "data": dict(reply.data)},
        separators=(",", ":"),
    ).encode()


def decode_reply(payload: bytes) -> CommandReply:
    """Parse a reply; an unreadable one becomes a MALFORMED reply rather than an exception."""
    try:
        raw = json.loads(payload)
        code = ReplyCode(raw["code"])
        data = raw.get("data") or {}
        if not isinstance(data, dict):
            raise TypeError("data must be an object")
        return CommandReply(
            code=code, message=str(raw.get("message", "")), data=MappingProxyType(data), verb=raw.get("verb"),
            nonce=raw.get("nonce"),
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return CommandReply.refused(ReplyCode.MALFORMED, f"unreadable reply from the engine ({exc})")


class CommandServer:
    """The engine's end of the command channel: CURVE + ZAP authenticated ROUTER socket on loopback.

    Created and polled on the engine's dispatcher thread (see the module docstring). Keys are created on the first
    run (``ensure_keys``) and reused afterwards. ``handler`` must be quick. An exception in it is handed to
    ``on_error(error, command)`` (the engine's error policy, which may end the process as a crash); when that
    returns, or without one, the client gets a HANDLER_ERROR reply and the traceback is logged.
    """

    def __init__(
        self,
        endpoint: str,
        keys_dir: Path,
        handler: Callable[[Command], CommandReply],
        clock: Clock,
        *,
        authorized_clients: Sequence[str] = DEFAULT_CLIENTS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        on_error: Callable[[Exception, Command], None] | None = None,
    ) -> None:
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive (got {max_age_s})")
        self._keys_dir = Path(keys_dir)
        self._handler = handler
        self._on_error = on_error
        self._clock = clock
        self._max_age_ns = int(max_age_s * NS_PER_SECOND)
        self._last_nonce: dict[str, int] = {}
        self.refused_count = 0
        self.handled_count = 0
        self._zap_dead_logged = False
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._curve: CurveServer | None = None
        self._peers: PeerGuard | None = None
        try:  # the ZAP thread first: without a ZAP handler libzmq would accept any CURVE client
            self._curve = CurveServer(self._context, self._keys_dir, authorized_clients, clock, "command")
            self._socket = self._context.socket(zmq.ROUTER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            self._curve.secure(self._socket)
            self.endpoint: str = bind_private(self._socket, endpoint, "operational_risk.command_endpoint")
            self._peers = PeerGuard(self._socket, self.endpoint, clock) if is_tcp(self.endpoint) else None
        except BaseException:
            self.close()
            raise
        log.info("event=command_server_bound endpoint=%s keys_dir=%s authorized=%s", self.endpoint, self._keys_dir,
                 sorted(load_authorized_keys(self._keys_dir).values()))

    @property
    def auth_denied_count(self) -> int:
        """CURVE handshakes refused by ZAP because the client key is not authorized."""
        return self._curve.authorized.denied_count if self._curve is not None else 0

    def reload_authorized_keys(self) -> None:
        """Re-read ``authorized_clients/`` (after the operator revoked or added a key); dispatcher thread."""
        keys = self._curve.reload() if self._curve is not None else {}
        log.info("event=authorized_keys_reloaded clients=%s", sorted(keys.values()))

    def serve_once(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for a request, then answer every queued one (at most 16); returns how many.

        ``timeout_s=0`` never waits, for an engine loop that polls between events.
        """
        if self._socket is None:
            raise RuntimeError("CommandServer.serve_once called after close()")
        if not self._zap_dead_logged and (self._curve is None or not self._curve.is_alive()):
            self._zap_dead_logged = True  # once: the per-message identity check keeps refusing strangers
            log.error("event=zap_authenticator_dead action=refusing messages without an authorized identity")
        if self._peers is not None:
            self._peers.poll()
        if not self._socket.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
            return 0
        handled = 0
        while handled < _MAX_COMMANDS_PER_CALL:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            handled += 1
            self._answer(frames)
        return handled

    def close(self) -> None:
        """Stop the authenticator thread, close the socket and the context; idempotent."""
        if self._peers is not None:
            self._peers.close()
            self._peers = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._curve is not None:
            self._curve.stop()
            self._curve = None
        self._context.term()

    def __enter__(self) -> CommandServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, frames: list[zmq.Frame]) -> None:
        routing_id = frames[0].bytes
        if len(frames) != 3 or frames[1].bytes != b"":
            reply = CommandReply.refused(ReplyCode.MALFORMED, "expected one request frame from a REQ socket")
        else:
            reply = self._process(frames[2])
        if not reply.ok:
            self.refused_count += 1
        try:
            payload = encode_reply(reply)
        except (TypeError, ValueError) as exc:
            log.error("event=command_reply_unserializable verb=%s error=%s", reply.verb, exc)
            payload = encode_reply(dataclasses.replace(
                reply, code=ReplyCode.HANDLER_ERROR, message=f"reply data is not JSON ({exc})",
                data=MappingProxyType({})))
        try:
            self._socket.send_multipart([routing_id, b"", payload], flags=zmq.NOBLOCK)  # type: ignore[union-attr]
        except zmq.ZMQError as exc:  # client gone or its queue full: it will time out and retry
            log.warning("event=command_reply_not_sent verb=%s nonce=%s error=%s", reply.verb, reply.nonce, exc)

    def _process(self, frame: zmq.Frame) -> CommandReply:
        user_id = _user_id(frame)
        client = self._curve.authorized.name_for(user_id.encode()) if user_id and self._curve else None
        if client is None:
            return self._refuse(None, ReplyCode.UNAUTHENTICATED, "no authorized CURVE identity on the message",
                                client_key=user_id)
        parsed = decode_command(frame.bytes)
        if isinstance(parsed, CommandReply):
            return self._refuse(None, parsed.code, parsed.message, client=client)
        command = dataclasses.replace(parsed, client_name=client)
        if parsed.client_name != client:
            return self._refuse(command, ReplyCode.UNAUTHENTICATED,
                                f"claims client {parsed.client_name!r} but is authenticated as {client!r}")
        skew_s = (self._clock.now_ns() - command.ts_ns) / NS_PER_SECOND
        if abs(skew_s) * NS_PER_SECOND > self._max_age_ns:
            return self._refuse(command, ReplyCode.STALE, f"timestamp is {skew_s:+.3f} s from the engine's clock; "
                                f"allowed within ±{self._max_age_ns / NS_PER_SECOND} s; resend a fresh command")
        last_nonce = self._last_nonce.get(client, 0)
        if command.nonce <= last_nonce:
            return self._refuse(command, ReplyCode.REPLAY,
                                f"nonce {command.nonce} is not above the last accepted {last_nonce} for {client}")
        self._last_nonce[client] = command.nonce
        reply = self._call_handler(command)
        self.handled_count += 1
        level = logging.DEBUG if command.verb is CommandVerb.STATUS else logging.INFO  # STATUS is polled
        log.log(level, "event=command_handled client=%s verb=%s nonce=%d code=%s reason=%r", client, command.verb,
                command.nonce, reply.code, command.reason)
        return dataclasses.replace(reply, verb=command.verb.value, nonce=command.nonce)

    def _call_handler(self, command: Command) -> CommandReply:
        try:
            reply = self._handler(command)
        except Exception as exc:
            log.exception("event=command_handler_failed client=%s verb=%s nonce=%d", command.client_name,
                          command.verb, command.nonce)
            if self._on_error is not None:
                self._on_error(exc, command)  # the dispatcher's policy: may raise (a crash) past this reply
            return CommandReply.refused(ReplyCode.HANDLER_ERROR, f"engine failed to execute {command.verb}: {exc!r}")
        if not isinstance(reply, CommandReply):
            log.error("event=command_handler_bad_reply verb=%s got=%s", command.verb, type(reply).__name__)
            return CommandReply.refused(ReplyCode.HANDLER_ERROR, "engine handler returned no CommandReply")
        return reply

    def _refuse(self, command: Command | None, code: ReplyCode, message: str, **context: object) -> CommandReply:
        fields = " ".join(f"{k}={v}" for k, v in context.items())
        if command is not None:
            fields = f"client={command.client_name} verb={command.verb} nonce={command.nonce} {fields}"
        log.warning("event=command_refused code=%s %s reason=%r", code, fields.strip(), message)
        reply = CommandReply.refused(code, message)
        if command is not None:
            reply = dataclasses.replace(reply, verb=command.verb.value, nonce=command.nonce)
        return reply


class CommandClient:
    """An authorized client (risk monitor, operator CLI): REQ socket with CURVE and the lazy-pirate pattern.

    Keys come from ``keys_dir`` (``ConfigError`` if this client has none yet: start the engine once or call
    ``ensure_keys``). Nonces are ``max(previous + 1, clock ns)``, so they keep increasing across client restarts.
    """

    def __init__(self, endpoint: str, keys_dir: Path, client_name: str, clock: Clock) -> None:
        self.endpoint = endpoint
        self.client_name = client_name
        self._clock = clock
        self._public, self._secret = load_client_keypair(Path(keys_dir), client_name)
        self._server_public = load_server_public_key(Path(keys_dir))
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._last_nonce = 0
        self._lock = threading.Lock()

    def send(self, verb: CommandVerb | str, timeout_s: float, *, retries: int = 0, reason: str = "") -> CommandReply:
        """Send ``verb``; wait up to ``timeout_s`` per attempt, ``retries`` more attempts after a timeout.

        Returns the engine's reply, or a ``NO_REPLY`` reply if it never answered (the caller then falls back, e.g.
        the monitor cancels and flattens through its own broker connection). ``ValueError`` for an unknown verb.
        """
        if verb not in CommandVerb.__members__:
            raise ValueError(f"unknown verb {verb!r}; allowed: {list(CommandVerb.__members__)}")
        with self._lock:
            for attempt in range(1, retries + 2):
                command = Command(verb=CommandVerb(verb), nonce=self._next_nonce(), ts_ns=self._clock.now_ns(),
                                  client_name=self.client_name, reason=reason)
                reply = self._attempt(command, timeout_s)
                if reply is not None:
                    return reply
                log.warning("event=command_no_reply endpoint=%s verb=%s nonce=%d attempt=%d timeout_s=%s",
                            self.endpoint, command.verb, command.nonce, attempt, timeout_s)
                self._discard_socket()  # a REQ socket waiting for a reply cannot send again
        return CommandReply.refused(
            ReplyCode.NO_REPLY, f"no reply from {self.endpoint} to {verb} within {timeout_s} s x {retries + 1} attempts"
        )

    def close(self) -> None:
        with self._lock:
            self._discard_socket()
            self._context.term()

    def __enter__(self) -> CommandClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _attempt(self, command: Command, timeout_s: float) -> CommandReply | None:
        socket = self._socket or self._new_socket()
        try:
            socket.send(encode_command(command), flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        if not socket.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
            return None
        reply = decode_reply(socket.recv())
        if reply.nonce not in (None, command.nonce):  # cannot happen with REQ lockstep; be explicit anyway
            log.warning("event=command_reply_mismatch expected_nonce=%d got_nonce=%s", command.nonce, reply.nonce)
            return None
        return reply

    def _new_socket(self) -> zmq.Socket[bytes]:
        socket = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self._public
        socket.curve_serverkey = self._server_public
        socket.connect(self.endpoint)
        self._socket = socket
        return socket

    def _discard_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _next_nonce(self) -> int:
        self._last_nonce = max(self._last_nonce + 1, self._clock.now_ns())
        return self._last_nonce


def _user_id(frame: zmq.Frame) -> str | None:
    """The ZAP-authenticated identity (Z85 client key) of a received frame, or None."""
    try:
        user_id = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user_id or None
