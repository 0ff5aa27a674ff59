"""Engine heartbeat: ZeroMQ PUB for the risk monitor, plus a CSV file it can fall back to.

The engine proves it is alive by publishing one ``Heartbeat`` per beat (normally every
``operational_risk.heartbeat_interval_s``, scheduled by the engine through its clock). The monitor counts a beat
as missed when none arrives; a gap in ``seq`` means beats were lost on the way (dropped by a high-water mark or
missed while reconnecting) rather than not sent.

Wire format: two frames, topic ``b"hb"`` then UTF-8 JSON ``{"v": 1, "seq", "ts_ns", "pid", "trading_state",
"equity", "drawdown_pct", "extra": {...}}``. JSON, not msgpack: one small message a second does not need speed,
and the standard library keeps the monitor free of extra dependencies. The CSV file holds a header and one row
with the same fields (``extra`` as a JSON column) and is replaced atomically (temp file + ``os.replace``), so a
reader sees the previous beat or the new one, never half of one. The file is a log: exactly 0640 (the owner writes,
the group reads), whatever the umask.

Threading: a ``HeartbeatPublisher`` belongs to the engine's dispatcher thread (beats fire from clock timers there);
a ``HeartbeatSubscriber`` belongs to one monitor thread. ZeroMQ sockets are not thread-safe; neither class locks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import zmq

from core.clock import NS_PER_SECOND, Clock
from core.events import TradingState
from core.ipc_curve import CurveServer, secure_client
from core.ipc_endpoints import bind_private, is_tcp
from utils.atomic_files import LOG_FILE_MODE, tighten_mode

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_ENDPOINT = "tcp://127.0.0.1:5556"
TOPIC = b"hb"
WIRE_VERSION = 1
LAST_BEAT_LINGER_MS = 200  # at close: time for queued beats to reach a subscriber (none connected: no wait)
CSV_COLUMNS = ("seq", "ts_ns", "pid", "trading_state", "equity", "drawdown_pct", "extra_json")
_MAX_DRAIN_PER_POLL = 10_000

JsonScalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class HeartbeatCurve:
    """CURVE for a heartbeat on TCP: the engine's keys and the clients allowed to subscribe (``core.ipc_curve``)."""

    keys_dir: Path
    authorized_clients: tuple[str, ...]


def curve_for(endpoint: str, keys_dir: Path, authorized_clients: Sequence[str]) -> HeartbeatCurve | None:
    """CURVE settings when ``endpoint`` is TCP (reachable by anyone who can open a socket), None for ``ipc://``
    (a Unix socket in a 0700 folder: only this user reaches it)."""
    return HeartbeatCurve(Path(keys_dir), tuple(authorized_clients)) if is_tcp(endpoint) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """One beat. ``seq`` starts at 1 in each engine process; ``ts_ns`` is the engine's clock (UTC epoch ns)."""

    seq: int
    ts_ns: int
    pid: int
    trading_state: TradingState
    equity: float
    drawdown_pct: float
    extra: Mapping[str, JsonScalar] = field(default_factory=lambda: MappingProxyType({}))

    def age_s(self, now_ns: int) -> float:
        """Seconds since the engine stamped this beat (engine and monitor share the host's clock)."""
        return (now_ns - self.ts_ns) / NS_PER_SECOND


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceGap:
    """Beats lost between two received ones: ``missed`` = ``received_seq - expected_seq``."""

    expected_seq: int
    received_seq: int
    received_ts_ns: int

    @property
    def missed(self) -> int:
        return self.received_seq - self.expected_seq


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    """The JSON payload frame of a beat."""
    return json.dumps(_to_dict(heartbeat), separators=(",", ":")).encode()


def decode_heartbeat(payload: bytes) -> Heartbeat:
    """Parse a payload frame; raises ``ValueError`` saying what is wrong."""
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"heartbeat is not JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"heartbeat must be a JSON object (got {type(raw).__name__})")
    if raw.get("v") != WIRE_VERSION:
        raise ValueError(f"heartbeat version must be {WIRE_VERSION} (got {raw.get('v')!r})")
    return _from_dict(raw)


def write_heartbeat_csv(path: Path, heartbeat: Heartbeat) -> None:
    """Replace ``path`` atomically with a header and this beat; raises ``OSError`` on failure.

    No fsync: the file is a liveness signal, worthless after a crash, and readers need atomicity, not durability.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    row = _to_dict(heartbeat)
    writer.writerow(
        [row["seq"], row["ts_ns"], row["pid"], row["trading_state"], repr(float(row["equity"])),
         repr(float(row["drawdown_pct"])), json.dumps(row["extra"], separators=(",", ":"))]
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, LOG_FILE_MODE)
    with open(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, LOG_FILE_MODE)  # exactly 0640 (a log, group-readable), whatever the umask
        out.write(buffer.getvalue())
    os.replace(tmp, path)


def read_heartbeat_csv(path: Path) -> Heartbeat | None:
    """The beat in the CSV fallback file, or None if it is missing, empty, partial or unreadable (never raises)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.debug("event=heartbeat_csv_unreadable path=%s error=%s", path, exc)
        return None
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or tuple(rows[-1]) != CSV_COLUMNS or None in rows[-1].values():
            raise ValueError(f"expected a header {CSV_COLUMNS} and one complete row")
        row: dict[str, Any] = dict(rows[-1])
        row["extra"] = json.loads(row.pop("extra_json"))
        for key in ("seq", "ts_ns", "pid"):
            row[key] = int(row[key])
        for key in ("equity", "drawdown_pct"):
            row[key] = float(row[key])
        return _from_dict(row)
    except (ValueError, csv.Error) as exc:
        log.warning("event=heartbeat_csv_invalid path=%s error=%s", path, exc)
        return None


class HeartbeatPublisher:
    """PUB socket + CSV file; ``beat()`` never blocks the engine.

    A slow or absent subscriber cannot stall the caller: the socket has a small send high-water mark, sends are
    non-blocking (PUB drops beyond the mark) and linger is 0. A failed CSV write is logged and counted, not raised:
    the ZeroMQ beat still went out, and the monitor treats a stale file as a missed beat anyway.
    """

    def __init__(
        self,
        *,
        csv_path: Path | None,
        clock: Clock,
        endpoint: str = DEFAULT_HEARTBEAT_ENDPOINT,
        sndhwm: int = 100,
        curve: HeartbeatCurve | None = None,
    ) -> None:
        self._clock = clock
        self._csv_path = Path(csv_path) if csv_path is not None else None
        if self._csv_path is not None:
            self._csv_path.parent.mkdir(parents=True, exist_ok=True)
            if self._csv_path.is_file():  # the last run's beat, readable as it was until the first beat replaces it
                tighten_mode(self._csv_path, LOG_FILE_MODE)
        self._pid = os.getpid()
        self._seq = 0
        self.dropped_count = 0
        self.csv_failure_count = 0
        self._context = zmq.Context()
        self._curve: CurveServer | None = None
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.SNDTIMEO, 0)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            if curve is not None:  # before bind: the ZAP thread must be up
                self._curve = CurveServer(self._context, curve.keys_dir, curve.authorized_clients, clock, "heartbeat")
                self._curve.secure(self._socket)
            self.endpoint: str = bind_private(self._socket, endpoint, "operational_risk.heartbeat_endpoint")
        except BaseException:
            self.close()
            raise
        log.info("event=heartbeat_publisher_bound endpoint=%s curve=%s csv_path=%s", self.endpoint,
                 curve is not None, self._csv_path)  # fmt: skip

    @property
    def last_seq(self) -> int:
        return self._seq

    def beat(
        self,
        *,
        trading_state: TradingState,
        equity: float,
        drawdown_pct: float,
        extra: Mapping[str, JsonScalar] | None = None,
    ) -> Heartbeat:
        """Publish the next beat and rewrite the CSV file; returns the beat sent.

        ``extra`` keys must not shadow a standard field; values are JSON scalars (``ValueError`` otherwise).
        """
        extra = dict(extra or {})
        _check_extra(extra)
        self._seq += 1
        heartbeat = Heartbeat(
            seq=self._seq,
            ts_ns=self._clock.now_ns(),
            pid=self._pid,
            trading_state=TradingState(trading_state),
            equity=float(equity),
            drawdown_pct=float(drawdown_pct),
            extra=MappingProxyType(extra),
        )
        try:
            self._socket.send_multipart([TOPIC, encode_heartbeat(heartbeat)], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped_count += 1
        if self._csv_path is not None:
            try:
                write_heartbeat_csv(self._csv_path, heartbeat)
            except OSError as exc:
                self.csv_failure_count += 1
                if self.csv_failure_count == 1 or self.csv_failure_count % 100 == 0:
                    log.error("event=heartbeat_csv_write_failed path=%s failures=%d error=%s",
                              self._csv_path, self.csv_failure_count, exc)
        return heartbeat

    def close(self) -> None:
        """Close the socket and its context; idempotent."""
        self._socket.close(linger=LAST_BEAT_LINGER_MS)  # the last beat (stopping: why) must still leave
        if self._curve is not None:
            self._curve.stop()
            self._curve = None
        self._context.term()

    def __enter__(self) -> HeartbeatPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HeartbeatSubscriber:
    """SUB socket for the monitor: ``poll()`` returns the newest beat and keeps sequence and age bookkeeping.

    A restarted engine (new pid, or ``seq`` starting again with a later timestamp) resets the sequence tracking
    rather than counting as a gap. Malformed messages are logged, counted and dropped.
    """

    def __init__(self, endpoint: str, clock: Clock, *, rcvhwm: int = 1000, max_gaps_kept: int = 100,
                 curve_client: tuple[Path, str] | None = None) -> None:  # fmt: skip
        self._clock = clock
        self.endpoint = endpoint
        self.last: Heartbeat | None = None
        self.received_count = 0
        self.missed_total = 0
        self.malformed_count = 0
        self._gaps: deque[SequenceGap] = deque(maxlen=max_gaps_kept)
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, TOPIC)
        if curve_client is not None:  # only the engine (its secret key) can complete the handshake: no fake beats
            secure_client(self._socket, *curve_client)
        self._socket.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    @property
    def last_seq(self) -> int | None:
        return self.last.seq if self.last else None

    @property
    def last_ts_ns(self) -> int | None:
        return self.last.ts_ns if self.last else None

    @property
    def gaps(self) -> tuple[SequenceGap, ...]:
        """The most recent gaps, oldest first (bounded)."""
        return tuple(self._gaps)

    def heartbeat_age_s(self) -> float | None:
        """Seconds since the newest beat was stamped, or None before the first one."""
        return self.last.age_s(self._clock.now_ns()) if self.last else None

    def poll(self, timeout_s: float) -> Heartbeat | None:
        """Wait up to ``timeout_s`` for beats, drain every queued one, return the newest new beat (or None)."""
        if not self._poller.poll(max(0, int(timeout_s * 1000))):
            return None
        newest: Heartbeat | None = None
        for _ in range(_MAX_DRAIN_PER_POLL):
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            heartbeat = self._accept(frames)
            if heartbeat is not None:
                newest = heartbeat
        return newest

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> HeartbeatSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self, frames: list[bytes]) -> Heartbeat | None:
        if len(frames) != 2 or frames[0] != TOPIC:
            self.malformed_count += 1
            log.warning("event=heartbeat_malformed reason=expected [topic, payload] frames=%d", len(frames))
            return None
        try:
            heartbeat = decode_heartbeat(frames[1])
        except ValueError as exc:
            self.malformed_count += 1
            log.warning("event=heartbeat_malformed reason=%s", exc)
            return None
        last = self.last
        if last is not None:
            restarted = heartbeat.pid != last.pid or (heartbeat.seq <= last.seq and heartbeat.ts_ns > last.ts_ns)
            if restarted:
                log.warning("event=engine_restarted old_pid=%d new_pid=%d old_seq=%d new_seq=%d",
                            last.pid, heartbeat.pid, last.seq, heartbeat.seq)
            elif heartbeat.seq <= last.seq:
                log.warning("event=heartbeat_duplicate seq=%d last_seq=%d", heartbeat.seq, last.seq)
                return None
            elif heartbeat.seq > last.seq + 1:
                gap = SequenceGap(expected_seq=last.seq + 1, received_seq=heartbeat.seq, received_ts_ns=heartbeat.ts_ns)
                self._gaps.append(gap)
                self.missed_total += gap.missed
                log.warning("event=heartbeat_gap expected_seq=%d received_seq=%d missed=%d missed_total=%d",
                            gap.expected_seq, gap.received_seq, gap.missed, self.missed_total)
        self.last = heartbeat
        self.received_count += 1
        return heartbeat


def _to_dict(heartbeat: Heartbeat) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "seq": heartbeat.seq,
        "ts_ns": heartbeat.ts_ns,
        "pid": heartbeat.pid,
        "trading_state": heartbeat.trading_state.value,
        "equity": heartbeat.equity,
        "drawdown_pct": heartbeat.drawdown_pct,
        "extra": dict(heartbeat.extra),
    }


def _from_dict(raw: Mapping[str, Any]) -> Heartbeat:
    problems = [f"{key} must be an integer (got {raw.get(key)!r})" for key in ("seq", "ts_ns", "pid")
                if not _is_int(raw.get(key))]
    problems += [f"{key} must be a number (got {raw.get(key)!r})" for key in ("equity", "drawdown_pct")
                 if not (_is_int(raw.get(key)) or isinstance(raw.get(key), float))]
    state = raw.get("trading_state")
    if state not in TradingState.__members__:
        problems.append(f"trading_state must be one of {list(TradingState.__members__)} (got {state!r})")
    extra = raw.get("extra", {})
    if not isinstance(extra, dict):
        problems.append(f"extra must be an object (got {type(extra).__name__})")
    if problems:
        raise ValueError("; ".join(problems))
    if raw["seq"] < 1:
        raise ValueError(f"seq must be >= 1 (got {raw['seq']})")
    return Heartbeat(
        seq=raw["seq"],
        ts_ns=raw["ts_ns"],
        pid=raw["pid"],
        trading_state=TradingState(state),
        equity=float(raw["equity"]),
        drawdown_pct=float(raw["drawdown_pct"]),
        extra=MappingProxyType(dict(extra)),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_extra(extra: Mapping[str, object]) -> None:
    clashes = sorted(set(extra) & {"v", *CSV_COLUMNS, "extra"})
    if clashes:
        raise ValueError(f"extra heartbeat fields must not reuse standard names (got {clashes})")
    bad = sorted(str(k) for k, v in extra.items()
                 if not isinstance(k, str) or (v is not None and not isinstance(v, str | int | float | bool)))
    if bad:
        raise ValueError(f"extra heartbeat fields must map str -> str/int/float/bool/None (bad keys: {bad})")
