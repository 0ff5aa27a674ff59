"""Portfolio snapshot file: atomic replacement, round trip, and every kind of corruption named with the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import StateCorruptError
from core.events import Side
from portfolio.ledger import Ledger
from portfolio.snapshot import SNAPSHOT_KEYS, checksum, read_snapshot, temp_path_for, write_snapshot
from testkit.fills import make_fill

TS_NS = 1_709_668_800_000_000_000  # 2024-03-05T20:00:00Z


def body(cash: float = 100_000.0) -> dict[str, Any]:
    ledger = Ledger(cash, ("AAA", "BBB"))
    ledger.apply_fill(make_fill("AAA", Side.BUY, 100, 10.0, ts_event_ns=TS_NS, exec_id="e1"), settles_at_ns=TS_NS)
    ledger.apply_fill(make_fill("AAA", Side.SELL, 40, 11.0, ts_event_ns=TS_NS, exec_id="e2"), settles_at_ns=TS_NS + 1)
    return {
        "ts_ns": TS_NS,
        "ledger": ledger.snapshot(),
        "peak_equity": cash,
        "high_water_mark": cash,
        "trading_state": "REDUCING",
        "halt_reason": None,
        "monthly_trades": 3,
        "fills_today": {"session_date": "2024-03-05", "count": 2},
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "portfolio_snapshot.json"


def rewrite(path: Path, edit: Any) -> None:
    """Change the stored envelope in place (and keep its checksum valid unless the edit breaks it)."""
    envelope = json.loads(path.read_text(encoding="ascii"))
    edit(envelope)
    path.write_text(json.dumps(envelope), encoding="ascii")


def test_absent_file_reads_as_none(path: Path) -> None:
    assert read_snapshot(path) is None


def test_round_trip_is_exact(path: Path) -> None:
    snapshot = body()
    write_snapshot(path, snapshot)
    restored = read_snapshot(path)
    assert restored == snapshot
    ledger = Ledger.from_snapshot(restored["ledger"])
    assert ledger.snapshot() == snapshot["ledger"]
    assert not temp_path_for(path).exists()


def test_rewrite_replaces_the_previous_snapshot(path: Path) -> None:
    write_snapshot(path, body(100_000.0))
    write_snapshot(path, body(50_000.0))
    assert read_snapshot(path)["peak_equity"] == 50_000.0


@pytest.mark.parametrize(
    ("corrupt", "what"),
    [
        (lambda p: p.write_bytes(b'{"format": "portfolio_snapshot", "vers'), "not a JSON snapshot"),
        (lambda p: p.write_bytes(b"\xff\xfe binary"), "not a JSON snapshot"),
        (lambda p: p.write_text("[1, 2]", encoding="ascii"), "expected a JSON object"),
        (lambda p: rewrite(p, lambda e: e.update(version=99)), "format/version"),
        (lambda p: rewrite(p, lambda e: e.update(format="order_journal")), "format/version"),
        (lambda p: rewrite(p, lambda e: e.pop("snapshot")), "no 'snapshot' object"),
        (lambda p: rewrite(p, lambda e: e["snapshot"].update(peak_equity=1.0)), "checksum mismatch"),
        (lambda p: rewrite(p, lambda e: e.pop("checksum")), "checksum mismatch"),
    ],
    ids=["torn", "binary", "not-object", "version", "format", "no-body", "edited", "no-checksum"],
)
def test_corruption_raises_naming_the_file(path: Path, corrupt: Any, what: str) -> None:
    write_snapshot(path, body())
    corrupt(path)
    with pytest.raises(StateCorruptError, match=what) as raised:
        read_snapshot(path)
    assert str(path) in str(raised.value)


def _resealed(edit: Any) -> Any:
    """An edit that keeps the checksum consistent: what a buggy writer (not a torn disk) would leave."""

    def apply(envelope: dict[str, Any]) -> None:
        edit(envelope["snapshot"])
        envelope["checksum"] = checksum(envelope["snapshot"])

    return apply


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda b: b.pop("monthly_trades"), "missing keys \\['monthly_trades'\\]"),
        (lambda b: b.update(trading_state="PAUSED"), "trading_state"),
        (lambda b: b.update(ts_ns="yesterday"), "ts_ns"),
        (lambda b: b.update(peak_equity="lots"), "peak_equity"),
        (lambda b: b.update(fills_today=3), "fills_today"),
        (lambda b: b["ledger"].update(version=7), "ledger snapshot version"),
        (lambda b: b["ledger"].pop("cash"), "ledger snapshot is malformed"),
    ],
    ids=["missing-key", "state", "ts", "peak", "fills-today", "ledger-version", "ledger-key"],
)
def test_schema_problems_raise_naming_the_file(path: Path, edit: Any, what: str) -> None:
    write_snapshot(path, body())
    rewrite(path, _resealed(edit))
    with pytest.raises(StateCorruptError, match=what) as raised:
        read_snapshot(path)
    assert str(path) in str(raised.value)


def test_corrupt_file_is_never_replaced_by_reading(path: Path) -> None:
    write_snapshot(path, body())
    path.write_bytes(b"garbage")
    for _ in range(2):
        with pytest.raises(StateCorruptError):
            read_snapshot(path)
    assert path.read_bytes() == b"garbage"


def test_leftover_temp_from_a_crash_is_ignored_then_overwritten(path: Path) -> None:
    write_snapshot(path, body(100_000.0))
    temp = temp_path_for(path)
    temp.write_bytes(b'{"format": "portfolio_snapshot", "snapsh')  # crash after a partial write, before replace
    assert read_snapshot(path) == body(100_000.0)  # the real file is intact and the temp never read

    write_snapshot(path, body(75_000.0))
    assert not temp.exists()
    assert read_snapshot(path)["peak_equity"] == 75_000.0


def test_failed_write_leaves_the_previous_snapshot_intact(path: Path) -> None:
    write_snapshot(path, body(100_000.0))
    before = path.read_bytes()
    temp_path_for(path).mkdir()  # the temp file cannot be created: the write fails before any replace
    with pytest.raises(OSError):
        write_snapshot(path, body(2_000.0))
    assert path.read_bytes() == before
    assert read_snapshot(path) == body(100_000.0)


def test_unwritable_snapshot_is_refused_before_touching_the_disk(path: Path) -> None:
    write_snapshot(path, body())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not strict JSON"):
        write_snapshot(path, {**body(), "peak_equity": float("nan")})
    with pytest.raises(ValueError, match="missing keys"):
        write_snapshot(path, {k: v for k, v in body().items() if k != "ledger"})
    assert path.read_bytes() == before
    assert not temp_path_for(path).exists()
    assert set(SNAPSHOT_KEYS) == set(body())
