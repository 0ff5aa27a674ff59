"""The crash-safe order journal: write-ahead intents, idempotency, replay, torn tails and corrupt lines."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvariantViolation, StateCorruptError
from core.events import OrderEvent, OrderStatus, OrderType, Side
from execution.order_journal import JournalState, OrderJournal, replay_journal
from testkit.orders import make_order


def _snapshot(state: JournalState) -> dict[str, tuple]:
    return {
        coid: (m.status, m.order.broker_order_id, m.filled_quantity, frozenset(m.exec_ids), m.avg_fill_price, m.order)
        for coid, m in state.orders.items()
    }


def _order(coid: str, quantity: int = 100, **changes: object) -> OrderEvent:
    return replace(make_order(quantity=quantity), client_order_id=coid, **changes)


def test_intent_is_on_disk_when_record_intent_returns(tmp_path: Path) -> None:
    path = tmp_path / "state" / "order_journal.jsonl"
    journal = OrderJournal(path, now_ns=lambda: 42)
    order = _order("c1", order_type=OrderType.LMT, limit_price=9.5, reason="entry")
    journal.record_intent(order, 7)
    state = replay_journal(path)  # an independent reader of the file
    managed = state.orders["c1"]
    assert managed.status is OrderStatus.PENDING_SUBMIT
    assert managed.order == replace(order, broker_order_id=7)
    assert state.max_ib_order_id == 7
    record = json.loads(path.read_text().splitlines()[0])
    assert (record["kind"], record["seq"], record["ib_order_id"], record["ts_ns"]) == ("intent", 1, 7, 42)


def test_second_intent_for_the_same_order_is_refused_even_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("c1"), 1)
        before = path.read_bytes()
        with pytest.raises(InvariantViolation, match="second intent"):
            journal.record_intent(_order("c1"), 2)
        assert path.read_bytes() == before
    with OrderJournal(path) as reopened, pytest.raises(InvariantViolation, match="second intent"):
        reopened.record_intent(_order("c1"), 2)


def test_ib_order_ids_must_increase(tmp_path: Path) -> None:
    with OrderJournal(tmp_path / "j.jsonl") as journal:
        journal.record_intent(_order("c1"), 5)
        with pytest.raises(InvariantViolation, match="103"):
            journal.record_intent(_order("c2"), 5)
        with pytest.raises(InvariantViolation):
            journal.record_intent(_order("c2"), 4)
        journal.record_intent(_order("c2"), 6)


def test_lifecycle_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a", 100), 1)
        journal.record_intent(_order("b", 50, side=Side.SELL), 2)
        journal.record_intent(_order("c", 10), 3)
        journal.record_event("a", "ack", status="Submitted")
        assert journal.record_event("a", "fill", exec_id="e1", quantity=40, price=10.0, commission=0.2)
        assert not journal.record_event("a", "fill", exec_id="e1", quantity=40, price=10.0)  # repeat: not written
        journal.record_event("a", "cancel_requested", reason="eod")
        journal.record_event("a", "cancelled", reason="eod")
        journal.record_event("a", "cancelled", reason="repeat from TWS")
        journal.record_event("b", "rejected", reason="margin", code=201)
        journal.record_event("c", "fill", exec_id="e2", quantity=10, price=3.0)
        assert not journal.record_event("c", "fill", exec_id="e2", quantity=10, price=3.0)  # repeat after FILLED
        live = _snapshot(journal.state)
    state = replay_journal(path)
    assert _snapshot(state) == live
    assert state.orders["a"].status is OrderStatus.CANCELLED and state.orders["a"].filled_quantity == 40
    assert state.orders["b"].status is OrderStatus.REJECTED
    assert state.orders["c"].status is OrderStatus.FILLED
    assert state.exec_ids() == {"e1", "e2"} and state.working() == [] and state.last_seq == 10
    assert len(path.read_text().splitlines()) == 10


def test_events_the_state_machine_refuses_are_not_written(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a", 10), 1)
        journal.record_event("a", "cancelled")
        before = path.read_bytes()
        with pytest.raises(InvariantViolation):
            journal.record_event("a", "fill", exec_id="late", quantity=5, price=1.0)
        with pytest.raises(InvariantViolation):
            journal.record_event("a", "rejected")
        with pytest.raises(InvariantViolation, match="no intent"):
            journal.record_event("zz", "ack")
        with pytest.raises(ValueError, match="exec_id"):
            journal.record_event("a", "fill", quantity=5, price=1.0)
        with pytest.raises(ValueError, match="whole number"):
            journal.record_event("a", "fill", exec_id="x", quantity=5.5, price=1.0)
        with pytest.raises(ValueError, match="reserved"):
            journal.record_event("a", "ack", seq=99)
        with pytest.raises(ValueError):
            journal.record_event("a", "teleported")
        assert path.read_bytes() == before
        assert journal.state.orders["a"].exec_ids == set()


def test_torn_tail_is_reported_then_set_aside_on_open(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a"), 1)
        expected = _snapshot(journal.state)
    good_size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b'{"kind":"ack","client_order_id":"a","se')
    state = replay_journal(path)
    assert _snapshot(state) == expected
    assert state.torn_tail is not None and (state.torn_tail.line_number, state.torn_tail.offset) == (2, good_size)
    with OrderJournal(path) as journal:
        assert journal.recovered_torn_tail == state.torn_tail
        assert path.stat().st_size == good_size
        assert (tmp_path / "j.jsonl.torn").read_bytes().startswith(b'{"kind":"ack"')
        journal.record_event("a", "ack")
    final = replay_journal(path)
    assert final.torn_tail is None and final.orders["a"].status is OrderStatus.SUBMITTED


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a"), 1)
        journal.record_event("a", "ack")
        journal.record_event("a", "cancelled")
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"not json"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateCorruptError, match=r"j\.jsonl:2: not a JSON record"):
        replay_journal(path)
    with pytest.raises(StateCorruptError):
        OrderJournal(path)  # the engine refuses to start on it


def test_changed_value_fails_the_crc(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a", 100), 1)
        journal.record_event("a", "fill", exec_id="e1", quantity=40, price=10.0)
    path.write_text(path.read_text().replace('"quantity":40', '"quantity":90'))
    with pytest.raises(StateCorruptError, match=r":2: crc"):
        replay_journal(path)


def test_missing_line_is_a_seq_gap(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(_order("a"), 1)
        journal.record_intent(_order("b"), 2)
        journal.record_intent(_order("c"), 3)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    with pytest.raises(StateCorruptError, match=r":2: seq 3, expected 2"):
        replay_journal(path)


def test_missing_file_is_an_empty_journal(tmp_path: Path) -> None:
    state = replay_journal(tmp_path / "nothing.jsonl")
    assert state.orders == {} and state.last_seq == 0 and state.torn_tail is None


# --- properties --------------------------------------------------------------------------------------------

_COIDS = ["a", "b", "c"]
_op = st.one_of(
    st.tuples(st.just("intent"), st.sampled_from(_COIDS), st.integers(1, 50)),
    st.tuples(st.sampled_from(["ack", "cancel_requested", "cancelled", "rejected", "expired"]),
              st.sampled_from(_COIDS)),
    st.tuples(st.just("fill"), st.sampled_from(_COIDS), st.integers(0, 5), st.integers(1, 30),
              st.floats(1, 500, allow_nan=False)),
)


def _run(journal: OrderJournal, path: Path, ops: list[tuple]) -> list[tuple[int, dict]]:
    """Apply ops; returns (file size, snapshot) after every successful write, starting with the empty file."""
    history = [(0, {})]
    next_ib_id = 1
    for op in ops:
        before = path.read_bytes()
        try:
            if op[0] == "intent":
                journal.record_intent(_order(op[1], op[2]), next_ib_id)
                next_ib_id += 1
            elif op[0] == "fill":
                journal.record_event(op[1], "fill", exec_id=f"{op[1]}-{op[2]}", quantity=op[3], price=op[4])
            else:
                journal.record_event(op[1], op[0], reason="x, y")
        except InvariantViolation:
            assert path.read_bytes() == before  # refused: nothing written
            continue
        size = path.stat().st_size
        if size != history[-1][0]:
            history.append((size, _snapshot(journal.state)))
    return history


@settings(max_examples=100, deadline=None)
@given(st.lists(_op, max_size=30))
def test_replay_reproduces_the_live_state(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.jsonl"
        with OrderJournal(path) as journal:
            _run(journal, path, ops)
            assert _snapshot(replay_journal(path)) == _snapshot(journal.state)
            live_seq = journal.state.last_seq
        with OrderJournal(path) as reopened:
            assert _snapshot(reopened.state) == _snapshot(replay_journal(path))
            assert reopened.state.last_seq == live_seq


@settings(max_examples=60, deadline=None)
@given(st.lists(_op, min_size=1, max_size=20), st.data())
def test_truncation_at_any_byte_gives_a_previous_state(ops: list[tuple], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.jsonl"
        with OrderJournal(path) as journal:
            history = _run(journal, path, ops)
        content = path.read_bytes()
        cut = data.draw(st.integers(0, len(content)), label="cut")
        cut_path = Path(d) / "cut.jsonl"
        cut_path.write_bytes(content[:cut])
        state = replay_journal(cut_path)
        size, expected = max((h for h in history if h[0] <= cut), key=lambda h: h[0])
        assert _snapshot(state) == expected
        assert (state.torn_tail is not None) == (cut != size)


@settings(max_examples=150, deadline=None)
@given(st.lists(_op, min_size=1, max_size=15), st.data())
def test_any_single_byte_change_is_an_error_or_a_torn_tail(ops: list[tuple], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.jsonl"
        with OrderJournal(path) as journal:
            history = _run(journal, path, ops)
        content = bytearray(path.read_bytes())
        if not content:
            return
        position = data.draw(st.integers(0, len(content) - 1), label="position")
        value = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]), label="value")
        content[position] = value
        path.write_bytes(bytes(content))
        if position == len(content) - 1:  # the last newline itself: the last record becomes a torn tail
            state = replay_journal(path)
            assert state.torn_tail is not None and _snapshot(state) == history[-2][1]
        else:
            with pytest.raises(StateCorruptError, match=r"j\.jsonl:\d+"):
                replay_journal(path)


def test_stop_fields_are_journaled_where_set_and_a_plain_order_is_journaled_as_before(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    entry = _order("entry-1", protective_stop_distance=2.5)
    stop = _order("entry-1.STP.abc", side=Side.SELL, order_type=OrderType.STP, stop_price=97.5, reduce_only=True)
    plain = _order("plain-1")
    with OrderJournal(path) as journal:
        for ib_id, order in enumerate((entry, stop, plain), start=1):
            journal.record_intent(order, ib_id)
    state = replay_journal(path)
    assert state.orders["entry-1"].order.protective_stop_distance == 2.5
    assert (state.orders["entry-1.STP.abc"].order.order_type, state.orders["entry-1.STP.abc"].order.stop_price) == (
        OrderType.STP, 97.5)  # fmt: skip
    plain_body = json.loads(path.read_text().splitlines()[2])["order"]
    assert "stop_price" not in plain_body and "protective_stop_distance" not in plain_body
