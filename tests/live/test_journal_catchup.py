"""``live.journal_catchup.journal_fills_missing_from``: fills journaled after the last snapshot are found by exec id.

Why it matters: after a SIGKILL the snapshot can lag the journal; the engine applies these fills at start-up so its
ledger matches the broker's positions (otherwise the start-up reconciliation halts trading).
"""

from __future__ import annotations

from pathlib import Path

from core.events import OrderEvent, OrderType, Side
from execution.order_journal import OrderJournal
from execution.order_state import OrderEventKind
from live.journal_catchup import journal_fills_missing_from


def order(coid: str, symbol: str) -> OrderEvent:
    return OrderEvent(ts_event_ns=1, ts_init_ns=1, client_order_id=coid, strategy_id="sma_crossover", symbol=symbol,
                      side=Side.BUY, quantity=5, order_type=OrderType.LMT, limit_price=10.0,
                      reference_price=10.0)  # fmt: skip


def test_only_fills_the_ledger_lacks_in_journal_order(tmp_path: Path) -> None:
    path = tmp_path / "order_journal.jsonl"
    with OrderJournal(path, now_ns=lambda: 123) as journal:
        journal.record_intent(order("a", "SPY"), 1)
        journal.record_event("a", OrderEventKind.ACK)
        journal.record_event("a", OrderEventKind.FILL, exec_id="e1", quantity=2, price=10.0, commission=1.0)
        journal.record_event("a", OrderEventKind.FILL, exec_id="e2", quantity=3, price=10.5, commission=0.5)
        journal.record_intent(order("b", "QQQ"), 2)
        journal.record_event("b", OrderEventKind.FILL, exec_id="e3", quantity=5, price=20.0, commission=1.0)
        state = journal.state
    path.write_bytes(path.read_bytes() + b'{"kind": "fill", "torn')  # a torn tail is skipped, not raised

    fills = journal_fills_missing_from(path, state, {"e1"})
    assert [(f.exec_id, f.client_order_id, f.symbol, f.side, f.quantity, f.price, f.commission) for f in fills] == [
        ("e2", "a", "SPY", Side.BUY, 3, 10.5, 0.5),
        ("e3", "b", "QQQ", Side.BUY, 5, 20.0, 1.0),
    ]
    assert fills[0].broker_order_id == 1 and fills[0].order_type is OrderType.LMT and fills[0].ts_event_ns == 123
    assert journal_fills_missing_from(path, state, {"e1", "e2", "e3"}) == []
    assert journal_fills_missing_from(tmp_path / "absent.jsonl", state, set()) == []
