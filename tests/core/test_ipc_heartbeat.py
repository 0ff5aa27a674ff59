"""Heartbeats over real ZeroMQ sockets on loopback: fields and order arrive, gaps are reported, the publisher
never blocks, and the CSV fallback is readable and never seen half-written."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from core.clock import WallClock
from core.events import TradingState
from core.ipc_heartbeat import (
    TOPIC,
    Heartbeat,
    HeartbeatPublisher,
    HeartbeatSubscriber,
    decode_heartbeat,
    encode_heartbeat,
    read_heartbeat_csv,
    write_heartbeat_csv,
)
from testkit.waiting import eventually

LOOPBACK_ANY_PORT = "tcp://127.0.0.1:*"


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def publisher(tmp_path: Path, clock: WallClock) -> Iterator[HeartbeatPublisher]:
    with HeartbeatPublisher(
        csv_path=tmp_path / "logs" / "heartbeat.csv", clock=clock, endpoint=LOOPBACK_ANY_PORT
    ) as pub:
        yield pub


def beat(pub: HeartbeatPublisher, equity: float = 100_000.0, **extra: Any) -> Heartbeat:
    return pub.beat(trading_state=TradingState.ACTIVE, equity=equity, drawdown_pct=1.25, extra=extra)


def connected_subscriber(pub: HeartbeatPublisher, clock: WallClock, **kwargs: Any) -> HeartbeatSubscriber:
    """A subscriber past the PUB/SUB slow-joiner window: it has received at least one beat."""
    sub = HeartbeatSubscriber(pub.endpoint, clock, **kwargs)
    eventually(lambda: beat(pub) and sub.poll(0.02))
    return sub


def test_beats_arrive_in_order_with_every_field(publisher: HeartbeatPublisher, clock: WallClock) -> None:
    assert publisher.endpoint.startswith("tcp://127.0.0.1:")
    with connected_subscriber(publisher, clock) as sub:
        first_seq = sub.last_seq
        assert first_seq is not None
        sent = [
            publisher.beat(trading_state=state, equity=100_000.0 + i, drawdown_pct=0.5 * i, extra={"fills": i})
            for i, state in enumerate([TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED])
        ]
        received: list[Heartbeat] = []

        def got_last() -> bool:
            hb = sub.poll(0.05)
            if hb is not None:
                received.append(hb)
            return sub.last_seq == sent[-1].seq

        eventually(got_last)
        assert received[-1] == sent[-1]
        assert sent[-1].pid == os.getpid()
        assert dict(sent[-1].extra) == {"fills": 2}
        assert sub.last_ts_ns == sent[-1].ts_ns
        assert sub.gaps == () and sub.missed_total == 0
        age_s = sub.heartbeat_age_s()
        assert age_s is not None and 0.0 <= age_s < 5.0


def test_sequence_starts_at_one_and_increases(publisher: HeartbeatPublisher) -> None:
    assert [beat(publisher).seq for _ in range(3)] == [1, 2, 3]


def test_sequence_gaps_restarts_duplicates_and_garbage_are_reported_not_raised(clock: WallClock) -> None:
    """A raw PUB socket stands in for the engine, so lost beats can be produced exactly."""
    context = zmq.Context()
    raw = context.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    port = raw.bind_to_random_port("tcp://127.0.0.1")

    def send(seq: int, pid: int = 100, ts_ns: int | None = None) -> None:
        hb = Heartbeat(
            seq=seq,
            ts_ns=ts_ns or clock.now_ns(),
            pid=pid,
            trading_state=TradingState.ACTIVE,
            equity=1.0,
            drawdown_pct=0.0,
        )
        raw.send_multipart([TOPIC, encode_heartbeat(hb)])

    try:
        with HeartbeatSubscriber(f"tcp://127.0.0.1:{port}", clock) as sub:
            eventually(lambda: send(1) or sub.poll(0.02))
            for seq in (2, 5, 5):  # 3 and 4 lost, then a duplicate of 5
                send(seq)
            raw.send_multipart([TOPIC, b"{not json"])
            raw.send_multipart([TOPIC, b'{"v": 1, "seq": "7"}'])
            send(1, pid=200)  # a restarted engine: new pid, seq from 1 again
            eventually(lambda: sub.poll(0.05) and sub.last is not None and sub.last.pid == 200)

            assert [(g.expected_seq, g.received_seq, g.missed) for g in sub.gaps] == [(3, 5, 2)]
            assert sub.missed_total == 2
            assert sub.malformed_count == 2
            assert sub.last_seq == 1
    finally:
        raw.close()
        context.term()


def test_received_plus_missed_accounts_for_every_beat_when_the_subscriber_lags(
    publisher: HeartbeatPublisher, clock: WallClock
) -> None:
    with connected_subscriber(publisher, clock, rcvhwm=10) as sub:
        start_seq, start_received = sub.last_seq, sub.received_count
        assert start_seq is not None
        for _ in range(2_000):  # published faster than read: high-water marks may drop some
            beat(publisher)
        last_sent = beat(publisher).seq

        def drained() -> bool:
            sub.poll(0.02)
            return sub.last_seq == last_sent

        eventually(drained)
        assert (sub.received_count - start_received) + sub.missed_total == last_sent - start_seq


def test_publisher_never_blocks_without_a_subscriber_or_with_a_stalled_one(clock: WallClock) -> None:
    with HeartbeatPublisher(csv_path=None, clock=clock, endpoint=LOOPBACK_ANY_PORT, sndhwm=10) as pub:
        started = time.monotonic()
        for _ in range(10_000):
            pub.beat(trading_state=TradingState.ACTIVE, equity=1.0, drawdown_pct=0.0)
        no_subscriber_s = time.monotonic() - started

        stalled = HeartbeatSubscriber(pub.endpoint, clock, rcvhwm=1)  # connects, then never reads again
        try:
            eventually(lambda: beat(pub) and stalled.poll(0.01))
            started = time.monotonic()
            for _ in range(10_000):
                pub.beat(trading_state=TradingState.ACTIVE, equity=1.0, drawdown_pct=0.0)
            stalled_s = time.monotonic() - started
        finally:
            stalled.close()
    assert no_subscriber_s < 5.0
    assert stalled_s < 5.0


def test_csv_fallback_holds_the_same_fields_as_the_published_beat(
    publisher: HeartbeatPublisher, tmp_path: Path
) -> None:
    sent = publisher.beat(
        trading_state=TradingState.REDUCING,
        equity=98_765.4321,
        drawdown_pct=12.5,
        extra={"open_orders": 3, "note": 'a,b "quoted"', "flag": True, "nothing": None},
    )
    from_csv = read_heartbeat_csv(tmp_path / "logs" / "heartbeat.csv")
    assert from_csv == sent
    assert decode_heartbeat(encode_heartbeat(sent)) == sent


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "seq,ts_ns,pid,trading_state,equity,drawdown_pct,extra_json\n",
        "seq,ts_ns,pid,trading_state,equity,drawdown_pct,extra_json\n3,17000,42,ACTI",
        "seq,ts_ns,pid,trading_state,equity,drawdown_pct,extra_json\n3,17000,42,PANIC,1.0,0.0,{}\n",
        "seq,ts_ns,pid,trading_state,equity,drawdown_pct,extra_json\n3,17000,42,ACTIVE,lots,0.0,{}\n",
        "\x00\xff garbage",
    ],
    ids=["missing", "empty", "header-only", "truncated-row", "bad-state", "bad-number", "garbage"],
)
def test_csv_reader_returns_none_for_missing_or_partial_files(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "heartbeat.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert read_heartbeat_csv(path) is None


def test_csv_reader_never_sees_a_half_written_file(publisher: HeartbeatPublisher, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "heartbeat.csv"
    beat(publisher)
    done = threading.Event()
    writer_errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for i in range(1_500):
                beat(publisher, equity=float(i), padding="x" * (i % 300))  # varying size: truncation would show
        except BaseException as exc:  # reported to the test thread
            writer_errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=hammer, name="heartbeat-writer")
    writer.start()
    reads, last_seq = 0, 0
    try:
        while not done.is_set() or reads == 0:
            raw = path.read_text(encoding="utf-8")
            assert raw.count("\n") == 2 and raw.endswith("\n"), f"half-written file seen: {raw!r}"
            hb = read_heartbeat_csv(path)
            assert hb is not None
            assert hb.seq >= last_seq
            last_seq, reads = hb.seq, reads + 1
    finally:
        writer.join(timeout=30)
    assert not writer_errors
    assert reads > 10
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_csv_write_failure_is_counted_and_the_beat_still_goes_out(tmp_path: Path, clock: WallClock) -> None:
    blocked = tmp_path / "heartbeat.csv"
    blocked.mkdir()  # os.replace onto a directory fails
    with HeartbeatPublisher(csv_path=blocked, clock=clock, endpoint=LOOPBACK_ANY_PORT) as pub:
        assert beat(pub).seq == 1
        assert beat(pub).seq == 2
        assert pub.csv_failure_count == 2


def test_write_heartbeat_csv_replaces_the_previous_beat(tmp_path: Path, clock: WallClock) -> None:
    path = tmp_path / "hb.csv"
    for seq in (1, 2):
        write_heartbeat_csv(
            path,
            Heartbeat(
                seq=seq, ts_ns=clock.now_ns(), pid=1, trading_state=TradingState.HALTED, equity=0.0, drawdown_pct=20.0
            ),
        )
    hb = read_heartbeat_csv(path)
    assert hb is not None and hb.seq == 2 and hb.trading_state is TradingState.HALTED


def test_extra_fields_may_not_shadow_standard_fields_or_hold_objects(publisher: HeartbeatPublisher) -> None:
    with pytest.raises(ValueError, match="standard names"):
        beat(publisher, seq=99)
    with pytest.raises(ValueError, match="bad keys"):
        beat(publisher, positions=[1, 2])
    assert json.loads(encode_heartbeat(beat(publisher)))["seq"] == 1  # refused beats consumed no sequence number
