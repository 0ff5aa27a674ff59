"""``live.monitor_watch``: reading the risk monitor's heartbeat file and the three ``on_monitor_stale`` policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.clock import NS_PER_SECOND
from live.monitor_watch import MonitorBeat, MonitorWatch, parse_beat, read_beat, stale_after_s

NOW = 1_700_000_000 * NS_PER_SECOND


def beat_bytes(age_s: float, **extra: object) -> bytes:
    return json.dumps({"ts_ns": NOW - int(age_s * NS_PER_SECOND), "pid": 4242, **extra}).encode()


def test_stale_after_is_missed_beats_times_interval() -> None:
    assert stale_after_s(0.5, 3) == 1.5


def test_fresh_beat_reports_age_and_pid() -> None:
    beat = parse_beat(beat_bytes(1.0, seq=7), NOW, 3.0)
    assert beat == MonitorBeat(stale=False, age_s=pytest.approx(1.0), pid=4242, reason="ok")


def test_beat_older_than_the_limit_is_stale() -> None:
    beat = parse_beat(beat_bytes(3.5), NOW, 3.0)
    assert beat.stale and beat.reason == "too_old" and beat.age_s == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "missing"),
        (b"", "unparsable"),
        (b'{"ts_ns": 1, "pid"', "unparsable"),
        (b"\xff\xfe", "unparsable"),
        (b"[1, 2]", "unparsable"),
        (b'{"pid": 1}', "no_ts_ns"),
        (b'{"ts_ns": "123", "pid": 1}', "no_ts_ns"),
        (b'{"ts_ns": 1.5e18, "pid": 1}', "no_ts_ns"),
        (b'{"ts_ns": true, "pid": 1}', "no_ts_ns"),
    ],
)
def test_missing_or_unparsable_is_stale(raw: bytes | None, reason: str) -> None:
    beat = parse_beat(raw, NOW, 3.0)
    assert beat.stale and beat.reason == reason and beat.age_s is None


def test_read_beat_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "mon.json"
    assert read_beat(path, NOW, 3.0).reason == "missing"
    path.write_bytes(beat_bytes(0.1))
    assert not read_beat(path, NOW, 3.0).stale
    assert read_beat(tmp_path, NOW, 3.0).reason == "unreadable"  # a directory: OSError, stale, no raise


def fresh() -> MonitorBeat:
    return parse_beat(beat_bytes(0.0), NOW, 3.0)


def stale() -> MonitorBeat:
    return parse_beat(None, NOW, 3.0)


def test_refuse_start_blocks_until_the_first_fresh_beat_then_stays_open() -> None:
    watch = MonitorWatch("mon.json", "refuse_start", 3.0)
    assert not watch.trading_allowed
    assert not watch.observe(stale())  # still blocked: no change
    assert not watch.trading_allowed and not watch.reduce_only
    assert watch.observe(fresh())  # unblocked: a change
    assert watch.trading_allowed
    assert not watch.observe(stale())  # a monitor dying later is only logged under refuse_start
    assert watch.trading_allowed and not watch.reduce_only


def test_reducing_follows_the_beat_both_ways() -> None:
    watch = MonitorWatch("mon.json", "reducing", 3.0)
    assert watch.trading_allowed
    assert watch.observe(stale()) and watch.reduce_only
    assert not watch.observe(stale())
    assert watch.observe(fresh()) and not watch.reduce_only
    assert watch.observe(stale()) and watch.reduce_only


def test_ignore_never_changes_anything(caplog: pytest.LogCaptureFixture) -> None:
    watch = MonitorWatch("mon.json", "ignore", 3.0)
    with caplog.at_level("INFO", logger="live.monitor_watch"):
        changes = [watch.observe(b) for b in (stale(), fresh(), stale())]
    assert changes == [False, False, False]
    assert watch.trading_allowed and not watch.reduce_only
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split()[0] for m in logged] == [
        "event=monitor_heartbeat_stale",
        "event=monitor_heartbeat_fresh",
        "event=monitor_heartbeat_stale",
    ]  # one line per transition, not per poll


def test_poll_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mon.json"
    watch = MonitorWatch(path, "refuse_start", 3.0)
    assert not watch.poll(NOW) and not watch.trading_allowed
    path.write_bytes(beat_bytes(0.2))
    assert watch.poll(NOW) and watch.trading_allowed
    assert watch.last is not None and watch.last.pid == 4242
