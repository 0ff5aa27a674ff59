"""What TCA records about an order: one ``ExecutionRecord`` per execution, one ``UnfilledRecord`` per order end.

Why records carry copies of the order's context: each row must be enough to measure implementation shortfall
(Perold 1988) without joining the order journal, so the live engine, the backtester and a person reading
``results/tca_log.duckdb`` see the same numbers. ``UnfilledRecord`` repeats the order's decision context for the
same reason: an order that never filled has no execution row to borrow it from.

Units and conventions (every record):
- Timestamps are UTC epoch nanoseconds (``*_ts``), prices in the instrument's currency per share, quantities in
  whole shares (positive; the direction is ``side``), ``commission`` in currency (a cost is positive, a rebate
  negative).
- ``decision_price``/``decision_ts``: the price and time the strategy decided on (the order's ``reference_price``
  and ``ts_event_ns``). ``arrival_price``: the mid (else the last trade) when the order was sent, None when no
  quote was known. ``close_price``: that session's official close, None until known (``SessionClose`` fills it in
  when the staging file is loaded).
- ``adv_participation``: ``order_quantity`` over the 20-day average daily volume, as a fraction (0.02 = 2 %).
  ``vol_20d``: 20-day volatility of daily returns, annualised with √252, as a fraction (the optimizer's unit).
  ``spread_bps_at_arrival``: (ask − bid) / mid × 10,000 at send. ``minutes_to_close``: from send to the close.
- ``policy_id``/``propensity``: which algo-selection policy chose ``algo`` and with what probability (for
  off-policy evaluation of the AlgoWheel); None for a fixed choice.

Validation happens once, here: a bad value raises ValueError naming the field, the value and what is allowed, so
a wrong record is refused where it is made instead of poisoning the log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from core.events import Side


class Algo(StrEnum):
    """How the order was worked: the plain order types and the IB algos the AlgoWheel chooses between."""

    MKT = "MKT"
    LMT = "LMT"
    MOC = "MOC"
    LOC = "LOC"
    STP = "STP"  # a protective stop (its shortfall is measured from the stop price: the gap past it)
    ADAPTIVE = "ADAPTIVE"
    TWAP = "TWAP"


class Source(StrEnum):
    """Where the execution happened: the backtester's simulated venue, ibsim, an IB paper or a live account."""

    BACKTEST = "backtest"
    SIM = "sim"
    PAPER = "paper"
    LIVE = "live"


def _fail(name: str, value: object, allowed: str) -> None:
    raise ValueError(f"{name}: {allowed} (got {value!r})")


def _text(record: object, name: str, *, optional: bool = False) -> None:
    value = getattr(record, name)
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        _fail(name, value, "must be a non-empty string" + (" or None" if optional else ""))


def _integer(record: object, name: str, *, minimum: int, optional: bool = False) -> None:
    value = getattr(record, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"must be a whole number >= {minimum}" + (" or None" if optional else ""))


def _number(
    record: object, name: str, *, minimum: float | None = None, positive: bool = False, optional: bool = False
) -> None:
    """Check a finite float field (ints accepted and stored as float, so a JSON round trip compares equal)."""
    value = getattr(record, name)
    if optional and value is None:
        return
    bound = " > 0" if positive else f" >= {minimum}" if minimum is not None else ""
    rule = f"must be a finite number{bound}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(name, value, rule)
    if (positive and value <= 0) or (minimum is not None and value < minimum):
        _fail(name, value, rule)
    object.__setattr__(record, name, float(value))


_E = TypeVar("_E", bound=StrEnum)


def _enum(record: object, name: str, enum: type[_E]) -> None:
    value = getattr(record, name)
    try:
        object.__setattr__(record, name, enum(value))
    except ValueError:
        _fail(name, value, f"must be one of {[member.value for member in enum]}")


def _canonical_params(record: object, name: str) -> None:
    """Store ``algo_params`` (or ``wheel_decision``) as its JSON round trip: what DuckDB and the staging file keep
    is what we compare."""
    value = getattr(record, name)
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        _fail(name, value, "must be a mapping with string keys")
    try:
        text = json.dumps(dict(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: must be JSON (finite numbers, strings, lists, mappings) ({exc})") from exc
    object.__setattr__(record, name, json.loads(text))


def _order_context(record: ExecutionRecord | UnfilledRecord) -> None:
    for name in ("client_order_id", "strategy_id", "symbol", "run_id"):
        _text(record, name)
    _enum(record, "side", Side)
    _enum(record, "algo", Algo)
    _enum(record, "source", Source)
    _integer(record, "order_quantity", minimum=1)
    _integer(record, "decision_ts", minimum=0)
    _number(record, "decision_price", positive=True)
    _number(record, "adv_participation", minimum=0.0, optional=True)
    _number(record, "minutes_to_close", minimum=0.0, optional=True)
    if record.wheel_decision is not None:
        _canonical_params(record, "wheel_decision")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecord:
    """One execution (``exec_id`` unique per execution) with the context of its order; see the module doc.

    Unhashable (``algo_params`` is a dict); compare with ``==``.
    """

    exec_id: str
    client_order_id: str
    ib_order_id: int | None = None
    perm_id: int | None = None
    strategy_id: str
    symbol: str
    side: Side
    order_quantity: int
    quantity: int
    price: float
    commission: float
    algo: Algo
    algo_params: dict[str, Any] = field(default_factory=dict)
    decision_ts: int
    decision_price: float
    arrival_ts: int | None = None
    arrival_price: float | None = None
    fill_ts: int
    close_price: float | None = None
    spread_bps_at_arrival: float | None = None
    adv_participation: float | None = None
    vol_20d: float | None = None
    minutes_to_close: float | None = None
    policy_id: str | None = None
    propensity: float | None = None
    source: Source
    run_id: str
    wheel_decision: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _text(self, "exec_id")
        _order_context(self)
        _integer(self, "ib_order_id", minimum=0, optional=True)
        _integer(self, "perm_id", minimum=0, optional=True)
        _integer(self, "quantity", minimum=1)
        if self.quantity > self.order_quantity:
            _fail("quantity", self.quantity, f"must not exceed order_quantity {self.order_quantity}")
        _number(self, "price", positive=True)
        _number(self, "commission")
        _canonical_params(self, "algo_params")
        _integer(self, "arrival_ts", minimum=0, optional=True)
        _number(self, "arrival_price", positive=True, optional=True)
        _integer(self, "fill_ts", minimum=0)
        _number(self, "close_price", positive=True, optional=True)
        _number(self, "spread_bps_at_arrival", minimum=0.0, optional=True)
        _number(self, "vol_20d", minimum=0.0, optional=True)
        _text(self, "policy_id", optional=True)
        _number(self, "propensity", positive=True, optional=True)
        if self.propensity is not None and self.propensity > 1.0:
            _fail("propensity", self.propensity, "must be a probability in (0, 1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class UnfilledRecord:
    """The shares of an order that will never fill (cancelled, expired, rejected), written once when it ends.

    ``end_price``: the mid (else last) when the order ended, the benchmark of Perold's opportunity cost.
    ``reason`` is for people (``cancelled``, ``expired``...). ``adv_participation``/``minutes_to_close`` let an
    order with no execution at all still fall into its size and time buckets.
    """

    client_order_id: str
    unfilled_quantity: int
    end_ts: int
    end_price: float
    symbol: str
    side: Side
    strategy_id: str
    order_quantity: int
    decision_ts: int
    decision_price: float
    algo: Algo
    source: Source
    run_id: str
    reason: str = ""
    adv_participation: float | None = None
    minutes_to_close: float | None = None
    wheel_decision: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _order_context(self)
        _integer(self, "unfilled_quantity", minimum=1)
        if self.unfilled_quantity > self.order_quantity:
            _fail("unfilled_quantity", self.unfilled_quantity, f"must not exceed order_quantity {self.order_quantity}")
        _integer(self, "end_ts", minimum=0)
        _number(self, "end_price", positive=True)
        if not isinstance(self.reason, str):
            _fail("reason", self.reason, "must be a string")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClose:
    """The official close of ``symbol`` for the session of ``session_date`` (New York date).

    Why a record of its own: the close is known only after the executions were staged, and the engine must not
    open DuckDB to update them; loading this record sets ``close_price`` on that session's executions of
    ``source`` whose close is still unknown. ``run_id`` None (live, paper: the official close is the same for
    every run, and an engine restarted mid-session has a new run id) applies it to every run; a run id limits it
    to that run (ibsim replays, whose markets differ from run to run).
    """

    symbol: str
    session_date: date
    close_price: float
    source: Source
    run_id: str | None = None

    def __post_init__(self) -> None:
        _text(self, "symbol")
        _text(self, "run_id", optional=True)
        _enum(self, "source", Source)
        if isinstance(self.session_date, str):
            try:
                object.__setattr__(self, "session_date", date.fromisoformat(self.session_date))
            except ValueError:
                _fail("session_date", self.session_date, "must be a date (YYYY-MM-DD)")
        if not isinstance(self.session_date, date):
            _fail("session_date", self.session_date, "must be a date (YYYY-MM-DD)")
        _number(self, "close_price", positive=True)


TcaRecord = ExecutionRecord | UnfilledRecord | SessionClose

RECORD_KINDS: dict[str, type[TcaRecord]] = {
    "execution": ExecutionRecord,
    "unfilled": UnfilledRecord,
    "close": SessionClose,
}
_KIND_OF: dict[type[TcaRecord], str] = {cls: kind for kind, cls in RECORD_KINDS.items()}


def kind_of(record: TcaRecord) -> str:
    """The record's kind as the staging file and the loader name it (``execution``, ``unfilled``, ``close``)."""
    return _KIND_OF[type(record)]


def to_json_dict(record: TcaRecord) -> dict[str, Any]:
    """The record as plain JSON values (enums as their values, dates as ISO text)."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, date):
            value = value.isoformat()
        out[f.name] = value
    return out


def from_json_dict(kind: str, data: Mapping[str, Any]) -> TcaRecord:
    """Rebuild a record of ``kind`` from ``to_json_dict`` output; ValueError for an unknown kind or field."""
    cls = RECORD_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"kind: must be one of {sorted(RECORD_KINDS)} (got {kind!r})")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{kind} record: unknown fields {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:  # a missing required field
        raise ValueError(f"{kind} record: {exc}") from exc
