"""What the IB reader thread puts on the engine's queue: one small immutable message per EWrapper callback.

``core/ib_wrapper.py`` owns the socket and the reader thread; its EWrapper callbacks do nothing but build one of
these and ``put`` it, so every decision about IB data happens on the dispatcher thread (``data/ib_handler.py``
for market data, ``execution/ib_executor.py`` for orders). ibapi objects (``Contract``, ``Order``,
``OrderState``, ``Execution``, ``CommissionReport``) travel as opaque values typed ``Any``: only the adapters and
``execution/ib_translate.py`` read them, so this module stays free of ``ibapi`` imports.
All timestamps are ``ts_init_ns`` = the clock when the callback arrived (UTC epoch ns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class IbMessage:
    ts_init_ns: int
    client_id: int  # which of our connections received it (engine and monitor use different ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class IbConnected(IbMessage):
    """The API is ready (nextValidId arrived after a (re)connect); adapters resubscribe and reconcile now."""

    next_valid_id: int
    accounts: tuple[str, ...]
    reconnect: bool  # False for the first connection of the process


@dataclass(frozen=True, slots=True, kw_only=True)
class IbDisconnected(IbMessage):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IbError(IbMessage):
    req_id: int  # order id for order errors, request id for data errors, -1 for system messages
    code: int
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IbOpenOrder(IbMessage):
    order_id: int
    contract: Any
    order: Any
    order_state: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class IbOpenOrderEnd(IbMessage):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class IbOrderStatus(IbMessage):
    order_id: int
    status: str
    filled: float
    remaining: float
    avg_fill_price: float
    perm_id: int
    last_fill_price: float
    why_held: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IbExecDetails(IbMessage):
    req_id: int  # -1 for live executions, the request id for reqExecutions answers
    contract: Any
    execution: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class IbExecDetailsEnd(IbMessage):
    req_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IbCommissionReport(IbMessage):
    report: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class IbPosition(IbMessage):
    account: str
    symbol: str
    contract: Any
    position: float
    avg_cost: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IbPositionEnd(IbMessage):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class IbAccountValue(IbMessage):
    req_id: int
    account: str
    tag: str
    value: str
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IbTick(IbMessage):
    """One price or size tick (tick types as IB numbers them: 1 bid, 2 ask, 4 last, 9 close, 0/3/5/8 sizes)."""

    req_id: int
    tick_type: int
    value: float
    is_size: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class IbBar(IbMessage):
    """A real-time (5 s) or historical bar; ``time`` is IB's text or epoch seconds as sent."""

    req_id: int
    time: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    historical: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class IbHistoricalEnd(IbMessage):
    req_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IbContractDetails(IbMessage):
    req_id: int
    details: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class IbContractDetailsEnd(IbMessage):
    req_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IbDataStale(IbMessage):
    """No tick or bar for ``silent_for_s`` while market data subscriptions exist (the watchdog's verdict).

    Put once per silent spell by ``core/ib_wrapper.py``'s supervisor thread; data arriving re-arms it. The data
    handler resubscribes; the engine may also stop trading on prices that are no longer live.
    """

    silent_for_s: float
    subscriptions: int


IB_MESSAGE_TYPES: tuple[type[IbMessage], ...] = (
    IbConnected, IbDisconnected, IbError, IbOpenOrder, IbOpenOrderEnd, IbOrderStatus, IbExecDetails,
    IbExecDetailsEnd, IbCommissionReport, IbPosition, IbPositionEnd, IbAccountValue, IbTick, IbBar,
    IbHistoricalEnd, IbContractDetails, IbContractDetailsEnd, IbDataStale,
)  # fmt: skip
"""Every message type the reader thread can put (kept next to the definitions, so a new one is listed here): a
dispatcher routes them all, since an unrouted type raises."""
