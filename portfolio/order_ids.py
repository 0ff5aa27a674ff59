"""Deterministic, idempotent client order ids.

The id is derived from the decision (strategy, symbol, decision time, side) plus a per-decision sequence, so
replaying the same decision after a restart yields the same id and the broker/journal can refuse the duplicate.
"""

from __future__ import annotations

from collections import Counter

from core.events import Side


class OrderIdFactory:
    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._seen: Counter[str] = Counter()

    def next_id(self, strategy_id: str, symbol: str, ts_event_ns: int, side: Side) -> str:
        base = f"{self._prefix}{strategy_id}.{symbol}.{ts_event_ns}.{side.value}"
        self._seen[base] += 1
        return f"{base}.{self._seen[base]}"
