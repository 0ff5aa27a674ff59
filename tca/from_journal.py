"""TCA rows derived from the live engine's order journal: the journal *is* the durable staging file.

Why: a TCA row must exist for every execution, none lost and none twice, also across a SIGKILL and a reconnect.
The order journal already guarantees exactly that for fills (fsynced before the fill is applied, one record per
exec id, replayed and checked at start-up), and its intent records carry the decision context (the order's
reference price and time) and what the executor knew when it sent the order (arrival quote, algo, run id). So
the engine never writes a second copy: this module turns the journal into ``ExecutionRecord``s (one per fill) and
``UnfilledRecord``s (an order that ended with shares left, when its end price is known), and the DuckDB loader,
idempotent on ``exec_id``, ingests them at the engine's stop and in the nightly job.

``python -m tca.from_journal --journal state/order_journal.jsonl --db results/tca_log.duckdb --source sim``
loads by hand (exit 0; 2 on bad arguments; 1 when the journal is corrupt or the database is busy).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError
from core.events import Side
from execution.order_journal import replay_journal
from tca.logger import DEFAULT_DB_PATH, LoadReport, TcaDatabaseBusy, write_records
from tca.records import Algo, ExecutionRecord, Source, TcaRecord, UnfilledRecord

TERMINAL_KINDS = frozenset({"cancelled", "rejected", "expired"})


@dataclass(slots=True)
class _Order:
    intent: dict[str, Any]
    fills: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None


def records_from_journal(journal: Path | str, source: Source | str) -> list[TcaRecord]:
    """Every execution of the journal as an ``ExecutionRecord`` and every order that ended with shares left (and a
    known end price) as an ``UnfilledRecord``. The journal is replayed first: a corrupt one raises StateCorruptError.
    """
    path = Path(journal)
    if not path.exists():
        return []
    replay_journal(path)  # the same checks as at the engine's start-up (CRC, sequence, transitions)
    records: list[TcaRecord] = []
    for order in _orders(path):
        records.extend(_executions(order, Source(source)))
        unfilled = _unfilled(order, Source(source))
        if unfilled is not None:
            records.append(unfilled)
    return records


def load_journal(journal: Path | str, db_path: Path | str = DEFAULT_DB_PATH, source: Source | str = Source.SIM,
                 ) -> LoadReport:  # fmt: skip
    """Derive the journal's TCA rows and write them into the TCA log; a second load changes nothing."""
    return write_records(records_from_journal(journal, source), db_path)


def _orders(path: Path) -> Iterator[_Order]:
    orders: dict[str, _Order] = {}
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # a torn last line (replay reported it): the state before it
            record = json.loads(raw)
            coid, kind = record["client_order_id"], record["kind"]
            if kind == "intent":
                orders[coid] = _Order(record)
            elif kind == "fill":
                orders[coid].fills.append(record)
            elif kind in TERMINAL_KINDS:
                orders[coid].end = record
    yield from orders.values()


def _common(order: _Order, source: Source) -> dict[str, Any]:
    intent, event = order.intent, order.intent["order"]
    return {
        "client_order_id": intent["client_order_id"], "strategy_id": event["strategy_id"], "symbol": event["symbol"],
        "side": Side(event["side"]), "order_quantity": int(event["quantity"]), "decision_ts": int(event["ts_event_ns"]),
        "decision_price": float(event["reference_price"]), "algo": _algo(intent, event), "source": source,
        "run_id": str(intent.get("run_id") or ""), **_wheel_context(intent),
    }  # fmt: skip


def _wheel_context(intent: dict[str, Any]) -> dict[str, Any]:
    """What a WHEEL order's decision knew (size/ADV, time to the close) and the decision itself; empty otherwise."""
    decision = intent.get("wheel_decision")
    if not decision:
        return {}
    facts = decision.get("context") or {}
    return {"wheel_decision": dict(decision), "adv_participation": facts.get("adv_participation"),
            "minutes_to_close": facts.get("minutes_to_close")}  # fmt: skip


def _policy(intent: dict[str, Any]) -> dict[str, Any]:
    """The execution rows' policy fields (the unfilled rows have no such columns)."""
    decision = intent.get("wheel_decision") or {}
    return {"policy_id": intent.get("policy_id"), "propensity": intent.get("propensity"),
            "vol_20d": (decision.get("context") or {}).get("vol_20d")}  # fmt: skip


def _algo(intent: dict[str, Any], event: dict[str, Any]) -> Algo:
    name = str(intent.get("algo") or event["order_type"]).upper()
    return Algo(name) if name in Algo.__members__ else Algo(event["order_type"])


def _executions(order: _Order, source: Source) -> list[ExecutionRecord]:
    intent, common = order.intent, _common(order, source)
    return [ExecutionRecord(
        exec_id=fill["exec_id"], ib_order_id=intent.get("ib_order_id"), quantity=int(fill["quantity"]),
        price=float(fill["price"]), commission=float(fill.get("commission") or 0.0),
        algo_params=dict(intent.get("algo_params") or {}), arrival_ts=intent.get("arrival_ts"),
        arrival_price=intent.get("arrival_price"), fill_ts=int(fill.get("ts_ns") or intent.get("arrival_ts") or 0),
        spread_bps_at_arrival=intent.get("spread_bps"), **_policy(intent), **common,
    ) for fill in order.fills]  # fmt: skip


def _unfilled(order: _Order, source: Source) -> UnfilledRecord | None:
    end = order.end
    if end is None or end.get("end_price") is None:
        return None  # still working, or ended without a known price: no opportunity cost can be measured
    filled = sum(int(fill["quantity"]) for fill in order.fills)
    common = _common(order, source)
    remaining = common["order_quantity"] - filled
    if remaining <= 0:
        return None
    return UnfilledRecord(unfilled_quantity=remaining, end_ts=int(end.get("ts_ns") or 0),
                          end_price=float(end["end_price"]), reason=str(end.get("reason") or end["kind"]),
                          **common)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tca.from_journal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", type=Path, default=Path("state/order_journal.jsonl"))
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--source", choices=[s.value for s in Source if s is not Source.BACKTEST], default="sim")
    args = parser.parse_args(argv)
    try:
        report = load_journal(args.journal, args.db, args.source)
    except (StateCorruptError, TcaDatabaseBusy) as exc:
        print(f"tca.from_journal: {exc}", file=sys.stderr)
        return 1
    print(f"inserted {report.inserted}, already there {report.duplicates}, conflicts {len(report.conflicts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
