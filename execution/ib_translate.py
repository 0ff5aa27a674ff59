"""Pure translation between our events and ``ibapi`` objects: no socket, no threads, no state but the matcher's.

Separating the wire from the meaning (ib_insync's wrapper/decoder split) lets every mapping be tested without
a connection: ``ib_executor`` calls these functions from its EWrapper callbacks and only ``put``s the results.

- ``to_ib_contract`` / ``to_ib_order``: OrderEvent -> what ``placeOrder`` sends. ``orderRef`` carries our
  ``client_order_id`` so that after a restart the open orders and executions at the broker can be matched
  to our journal.
- ``order_status_from_ib``: IB's status strings -> ``OrderStatus``.
- ``fill_from_execution`` and ``CommissionMatcher``: execDetails + commissionReport -> exactly one FillEvent
  per execId.

Units: quantities are whole shares (positive; the direction is in ``side``), prices USD per share,
timestamps UTC epoch nanoseconds.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibapi.commission_report import CommissionReport
from ibapi.contract import Contract
from ibapi.execution import Execution, ExecutionFilter
from ibapi.order import Order
from ibapi.softdollartier import SoftDollarTier
from ibapi.tag_value import TagValue

from core.errors import DataError, InvariantViolation, OrderRejected
from core.events import FillEvent, OrderEvent, OrderStatus, OrderType, Side, TimeInForce

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
_NS_PER_SECOND = 1_000_000_000
_UNSET_THRESHOLD = 1e300  # IB writes "not available" as 1.7976931348623157E308 (UNSET_DOUBLE)


_PRINTABLE_ASCII = frozenset(map(chr, range(ord(" "), ord("~") + 1)))


def _check_ascii(what: str, value: str) -> None:
    """The 9.81 client refuses non-printable-ASCII text locally (error 579) and sends nothing: refuse it first."""
    if not _PRINTABLE_ASCII.issuperset(value):
        raise OrderRejected(f"{what} must be printable ASCII for the TWS API (got {value!r})")


_ORDER_DEFAULTS = dict(vars(Order()))
_FRESH_PER_ORDER = {"softDollarTier": lambda: SoftDollarTier("", "", ""), "conditions": list}
_COPYABLE = all(isinstance(v, int | float | str | None)
                for k, v in _ORDER_DEFAULTS.items() if k not in _FRESH_PER_ORDER)  # fmt: skip


def new_ib_order() -> Order:
    """``Order()``: its defaults copied in one dict update (its ``__init__`` assigns 130 attributes one by one, a
    tenth of the executor's time per order), the mutable ones made fresh; plain ``Order()`` if ibapi changes them."""
    if not _COPYABLE:
        return Order()
    ib = Order.__new__(Order)
    ib.__dict__.update(_ORDER_DEFAULTS)
    for name, make in _FRESH_PER_ORDER.items():
        setattr(ib, name, make())
    return ib


def execution_filter_for(client_id: int) -> ExecutionFilter:
    """reqExecutions' filter for one client id's executions (IB order ids are per client id)."""
    exec_filter = ExecutionFilter()
    exec_filter.clientId = client_id
    return exec_filter


def to_ib_contract(
    symbol: str, exchange: str = "SMART", currency: str = "USD", primary_exchange: str = ""
) -> Contract:
    """A US stock contract. ``primary_exchange`` (e.g. "NASDAQ") disambiguates tickers listed on several venues.

    The symbol is passed through unchanged: IB spells share classes with a space ("BRK B"), so the caller's
    symbol map must already use IB's spelling.
    """
    if not symbol or not symbol.strip():
        raise ValueError(f"symbol must be a non-empty ticker (got {symbol!r})")
    if primary_exchange.upper() == "SMART":
        raise ValueError("primary_exchange must be a real listing exchange such as NASDAQ or NYSE, never SMART")
    contract = Contract()
    contract.symbol = symbol
    contract.secType = "STK"
    contract.exchange = exchange
    contract.currency = currency
    contract.primaryExchange = primary_exchange
    return contract


class IbAlgo(StrEnum):
    """IB algos we route to; the values are IB's ``algoStrategy`` strings."""

    ADAPTIVE = "Adaptive"
    TWAP = "Twap"


ADAPTIVE_PRIORITIES = ("Normal", "Urgent", "Patient")
_TWAP_KEYS = ("strategyType", "startTime", "endTime", "allowPastEndTime")
_BOOL_TEXT = {"0": "0", "1": "1", "false": "0", "true": "1"}


def _algo_params(algo: IbAlgo, params: Mapping[str, str]) -> list[TagValue]:
    """Validated algo parameters in IB's order; unknown keys are refused rather than silently dropped by TWS."""
    if algo is IbAlgo.ADAPTIVE:
        unknown = set(params) - {"adaptivePriority"}
        if unknown:
            raise OrderRejected(f"Adaptive takes only adaptivePriority (got {sorted(unknown)})")
        priority = params.get("adaptivePriority", "Normal")
        if priority not in ADAPTIVE_PRIORITIES:
            raise OrderRejected(f"adaptivePriority must be one of {ADAPTIVE_PRIORITIES} (got {priority!r})")
        return [TagValue("adaptivePriority", priority)]
    unknown = set(params) - set(_TWAP_KEYS)
    if unknown:
        raise OrderRejected(f"Twap takes only {list(_TWAP_KEYS)} (got {sorted(unknown)})")
    tags = []
    for key in _TWAP_KEYS:
        if key not in params:
            continue
        value = str(params[key])
        if key == "allowPastEndTime":
            if value.lower() not in _BOOL_TEXT:
                raise OrderRejected(f"allowPastEndTime must be 0/1/true/false (got {value!r})")
            value = _BOOL_TEXT[value.lower()]
        _check_ascii(f"Twap {key}", value)
        tags.append(TagValue(key, value))
    return tags


def _parse_algo(algo: str) -> IbAlgo:
    for candidate in IbAlgo:
        if algo.lower() == candidate.value.lower():
            return candidate
    raise OrderRejected(f"unknown IB algo {algo!r}; allowed: {[a.value for a in IbAlgo]} or None")


def _positive(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


def _check_prices(order: OrderEvent, needs_limit: bool) -> None:
    """A limit exactly where the type has one (LMT/LOC), a stop price exactly on a STP order."""
    coid, kind = order.client_order_id, order.order_type
    if needs_limit and not _positive(order.limit_price):
        raise OrderRejected(f"order {coid}: {kind} needs a positive limit price (got {order.limit_price})")
    if not needs_limit and order.limit_price is not None:
        raise OrderRejected(f"order {coid}: {kind} takes no limit price (got {order.limit_price})")
    if kind is OrderType.STP and not _positive(order.stop_price):
        raise OrderRejected(f"order {coid}: STP needs a positive stop price (got {order.stop_price})")
    if kind is not OrderType.STP and order.stop_price is not None:
        raise OrderRejected(f"order {coid}: {kind} takes no stop price (got {order.stop_price})")


def to_ib_order(
    order: OrderEvent,
    ib_order_id: int,
    account: str = "",
    algo: str | None = None,
    algo_params: Mapping[str, str] | None = None,
) -> Order:
    """The ``ibapi`` Order for ``order``; raises ``OrderRejected`` for anything TWS would refuse or misread.

    Fields set on purpose:
    - ``orderRef`` = our ``client_order_id``: the only field of ours that TWS echoes in open orders and
      executions, so a restarted engine can tell its orders (and fills) from anyone else's.
    - ``transmit`` = True: the order goes to the venue, not parked in TWS.
    - ``eTradeOnly`` / ``firmQuoteOnly`` = False: ibapi 9.81 defaults them to True (sent as ``1``,
      ib-protocol.md 3.1) and TWS 983+ rejects such orders (errors 10268/10269).
    - MOC/LOC must be DAY orders and take no algo; LMT/LOC need a positive limit price, MKT/MOC must not have one.
    - STP (a protective stop): ``orderType`` "STP", ``auxPrice`` = the stop price (IB's trigger field for a stop),
      no limit, no algo, the order's own tif (GTC for our stops, so they survive the session).
    ``reduce_only`` has no IB stock equivalent; the risk manager enforces it before this point.
    """
    coid = order.client_order_id
    if order.quantity <= 0:
        raise OrderRejected(f"order {coid}: quantity must be a positive share count (got {order.quantity})")
    if ib_order_id <= 0:
        raise InvariantViolation(f"order {coid}: IB order ids are positive (got {ib_order_id})")
    if order.broker_order_id is not None and order.broker_order_id != ib_order_id:
        raise InvariantViolation(
            f"order {coid}: already bound to IB order id {order.broker_order_id}, asked to send as {ib_order_id}"
        )
    needs_limit = order.order_type in (OrderType.LMT, OrderType.LOC)
    _check_prices(order, needs_limit)
    at_close = order.order_type in (OrderType.MOC, OrderType.LOC)
    if at_close and order.time_in_force is not TimeInForce.DAY:
        raise OrderRejected(f"order {coid}: {order.order_type} must be DAY (got {order.time_in_force})")
    _check_ascii("client_order_id", coid)
    _check_ascii("account", account)

    ib = new_ib_order()
    ib.orderId = ib_order_id
    ib.action = order.side.value
    ib.totalQuantity = order.quantity
    ib.orderType = order.order_type.value
    if needs_limit:
        ib.lmtPrice = order.limit_price
    if order.order_type is OrderType.STP:
        ib.auxPrice = order.stop_price
    ib.tif = order.time_in_force.value
    ib.orderRef = coid
    ib.account = account
    ib.transmit = True
    ib.eTradeOnly = False
    ib.firmQuoteOnly = False
    _set_algo(ib, order, algo, algo_params)
    return ib


def _set_algo(ib: Order, order: OrderEvent, algo: str | None, algo_params: Mapping[str, str] | None) -> None:
    """``algoStrategy``/``algoParams`` on ``ib``; closing-auction orders and stops take none."""
    coid = order.client_order_id
    if algo is not None:
        if order.order_type is OrderType.STP:
            raise OrderRejected(f"order {coid}: a protective STP order takes no algo (got {algo})")
        if order.order_type in (OrderType.MOC, OrderType.LOC):
            raise OrderRejected(f"order {coid}: {order.order_type} runs in the closing auction and takes no algo")
        chosen = _parse_algo(algo)
        ib.algoStrategy = chosen.value
        ib.algoParams = _algo_params(chosen, algo_params or {})
    elif algo_params:
        raise OrderRejected(f"order {coid}: algo_params given without an algo ({dict(algo_params)})")


_ACTIVE = frozenset({"Submitted", "PreSubmitted", "PendingCancel"})
_PENDING = frozenset({"PendingSubmit", "ApiPending"})
_CANCELLED = frozenset({"Cancelled", "ApiCancelled"})


def order_status_from_ib(status: str, filled: float, remaining: float) -> OrderStatus:
    """Our status for an ORDER_STATUS callback (IB repeats these, so the result must be applied idempotently).

    - ``PendingSubmit``, ``ApiPending``: sent, not yet accepted by IB -> PENDING_SUBMIT.
    - ``PreSubmitted`` (accepted, held by IB until it can route, e.g. before the open or a simulated order
      type), ``Submitted`` (working at the venue) and ``PendingCancel`` (cancel requested, **not** confirmed:
      fills can still arrive) -> SUBMITTED, or PARTIALLY_FILLED when 0 < filled and remaining > 0.
    - ``Cancelled``, ``ApiCancelled`` -> CANCELLED; a partial fill stays counted (``filled`` is not undone).
    - ``Inactive``: IB accepted the message but the order cannot work (rejected by IB's checks, invalid, not
      allowed); an error message with the reason comes with it -> REJECTED, or CANCELLED when some shares
      already filled (the remainder will not work, the fills stand).
    - ``Filled`` -> FILLED when remaining == 0. A ``Filled`` with shares remaining is inconsistent and is
      reported as PARTIALLY_FILLED (and logged) so that nothing is closed early.

    Quantities move only on execDetails; the fill states here are for display and reconciliation.
    Raises ValueError for a status string IB does not document.
    """
    partially = filled > 0 and remaining > 0
    if status in _PENDING:
        return OrderStatus.PENDING_SUBMIT
    if status in _ACTIVE:
        return OrderStatus.PARTIALLY_FILLED if partially else OrderStatus.SUBMITTED
    if status in _CANCELLED:
        return OrderStatus.CANCELLED
    if status == "Inactive":
        return OrderStatus.CANCELLED if filled > 0 else OrderStatus.REJECTED
    if status == "Filled":
        if remaining > 0:
            log.warning("event=ib_status_inconsistent status=Filled filled=%s remaining=%s", filled, remaining)
            return OrderStatus.PARTIALLY_FILLED
        return OrderStatus.FILLED
    known = sorted(_PENDING | _ACTIVE | _CANCELLED | {"Inactive", "Filled"})
    raise ValueError(f"unknown IB order status {status!r}; known: {known}")


_TZ_ALIASES = {"EST": NEW_YORK, "EDT": NEW_YORK, "ET": NEW_YORK, "UTC": UTC, "GMT": UTC, "Z": UTC}
_EXEC_TIME = re.compile(r"^(\d{8})( {1,2}|-)(\d{2}:\d{2}:\d{2})(?: +(\S+))?$")


def parse_ib_exec_time(text: str, default_tz: ZoneInfo = NEW_YORK) -> int:
    """UTC epoch ns of an IB execution time.

    Accepted: ``yyyymmdd  hh:mm:ss`` (two spaces: ibsim and TWS), the one-space variant, either followed by a
    time zone (``US/Eastern``, ``America/New_York``, ``EST``/``EDT`` meaning New York, ``UTC``/``GMT``), and
    ``yyyymmdd-hh:mm:ss`` (TWS's UTC format). Without a zone the time is in TWS's login time zone, which the
    caller passes as ``default_tz`` (New York for our deployments and for ibsim). Raises ``DataError``.
    """
    match = _EXEC_TIME.match(text.strip())
    if match is None:
        raise DataError(f"execution time {text!r} is not 'yyyymmdd  hh:mm:ss [zone]' or 'yyyymmdd-hh:mm:ss'")
    day, separator, clock, zone_name = match.groups()
    if zone_name is not None:
        zone = _TZ_ALIASES.get(zone_name)
        if zone is None:
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise DataError(f"execution time {text!r}: unknown time zone {zone_name!r}") from exc
    else:
        zone = UTC if separator == "-" else default_tz
    try:
        local = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError as exc:
        raise DataError(f"execution time {text!r} is not a valid date and time: {exc}") from exc
    return int(local.timestamp()) * _NS_PER_SECOND


_SIDES = {"BOT": Side.BUY, "SLD": Side.SELL}


def fill_from_execution(
    execution: Execution,
    contract: Contract,
    client_order_id: str,
    strategy_id: str,
    commission: float,
    ts_init_ns: int,
    order_type: OrderType,
    exec_tz: ZoneInfo = NEW_YORK,
) -> FillEvent:
    """One FillEvent from an execDetails callback.

    We only send whole-share orders, so a fractional or non-positive execution, or a side other than BOT/SLD,
    means our books and the broker's disagree: ``InvariantViolation``. An unreadable execution time does not
    lose the fill (the shares moved either way): it is logged as an error and ``ts_init_ns`` is used instead.
    """
    side = _SIDES.get(execution.side)
    if side is None:
        raise InvariantViolation(f"execution {execution.execId}: side must be BOT or SLD (got {execution.side!r})")
    shares = float(execution.shares)
    if not (shares > 0 and shares.is_integer()):
        raise InvariantViolation(
            f"execution {execution.execId}: expected a positive whole number of shares (got {execution.shares})"
        )
    try:
        ts_event_ns = parse_ib_exec_time(execution.time, exec_tz)
    except DataError as exc:
        log.error("event=exec_time_unparsed exec_id=%s time=%r error=%s", execution.execId, execution.time, exc)
        ts_event_ns = ts_init_ns
    return FillEvent(
        ts_event_ns=ts_event_ns,
        ts_init_ns=ts_init_ns,
        client_order_id=client_order_id,
        broker_order_id=execution.orderId or None,
        exec_id=execution.execId,
        strategy_id=strategy_id,
        symbol=contract.symbol,
        side=side,
        quantity=int(shares),
        price=float(execution.price),
        commission=commission,
        order_type=order_type,
    )


@dataclass(frozen=True, slots=True)
class MatchedFill:
    """A fill ready for the queue. ``commission_estimated`` is True when IB's report never came (or said n/a).

    ``corrects_exec_id`` is set when IB sent a correction: the same execId up to its last dot-separated part
    (``8hex.8hex.2hex.NN``) as an execution already emitted. The caller must not count both as fills.
    """

    fill: FillEvent
    commission_estimated: bool
    corrects_exec_id: str | None = None


@dataclass(frozen=True, slots=True)
class _PendingExecution:
    execution: Execution
    contract: Contract
    client_order_id: str
    strategy_id: str
    order_type: OrderType
    arrived_ns: int


def _correction_base(exec_id: str) -> str | None:
    parts = exec_id.split(".")
    return ".".join(parts[:-1]) if len(parts) >= 4 else None


class CommissionMatcher:
    """Joins execDetails and commissionReport by execId, in either arrival order, into exactly one fill each.

    A fill is emitted when both halves are known; duplicates of either half (TWS repeats, reqExecutions on
    reconnect) are ignored, and so are exec ids in ``already_processed`` (from the journal after a restart).
    If the report does not come within ``timeout_ns`` of the execution, ``expire`` emits the fill with
    ``estimate_commission(side, quantity, price, ts_event_ns)`` (e.g. ``CommissionModel.commission``) and the
    ``commission_estimated`` flag; a report arriving after that is logged, not emitted again. Reports whose
    execution never arrives are dropped by ``expire`` with a warning.

    Owned by the dispatcher thread (not thread-safe). Remembers every emitted exec id for the life of the
    process: a few thousand strings a day.
    """

    def __init__(
        self,
        estimate_commission: Callable[[Side, int, float, int], float],
        timeout_ns: int,
        already_processed: Iterable[str] = (),
        exec_tz: ZoneInfo = NEW_YORK,
    ) -> None:
        if timeout_ns <= 0:
            raise ValueError(f"timeout_ns must be positive (got {timeout_ns})")
        self._estimate = estimate_commission
        self._timeout_ns = timeout_ns
        self._exec_tz = exec_tz
        self._executions: dict[str, _PendingExecution] = {}
        self._commissions: dict[str, tuple[float, int]] = {}  # exec_id -> (commission, arrived_ns)
        self._emitted: set[str] = set(already_processed)
        self._emitted_by_base: dict[str, str] = {}
        for exec_id in self._emitted:
            base = _correction_base(exec_id)
            if base is not None:
                self._emitted_by_base[base] = exec_id

    @property
    def pending_executions(self) -> int:
        return len(self._executions)

    @property
    def pending_commissions(self) -> int:
        return len(self._commissions)

    def on_execution(
        self,
        execution: Execution,
        contract: Contract,
        client_order_id: str,
        strategy_id: str,
        order_type: OrderType,
        now_ns: int,
    ) -> MatchedFill | None:
        """Record an execDetails; returns the fill if its commission report is already here."""
        exec_id = execution.execId
        if exec_id in self._emitted or exec_id in self._executions:
            log.debug("event=duplicate_execution exec_id=%s", exec_id)
            return None
        pending = _PendingExecution(execution, contract, client_order_id, strategy_id, order_type, now_ns)
        report = self._commissions.pop(exec_id, None)
        if report is None:
            self._executions[exec_id] = pending
            return None
        return self._emit(pending, report[0], now_ns)

    def on_commission_report(self, report: CommissionReport, now_ns: int) -> MatchedFill | None:
        """Record a commissionReport; returns the fill if its execution is already here."""
        exec_id = report.execId
        if exec_id in self._emitted:
            log.warning(
                "event=late_commission exec_id=%s commission=%s (fill already emitted, estimated)",
                exec_id, report.commission,
            )
            return None
        if exec_id in self._commissions:
            return None
        pending = self._executions.pop(exec_id, None)
        if pending is None:
            self._commissions[exec_id] = (float(report.commission), now_ns)
            return None
        return self._emit(pending, float(report.commission), now_ns)

    def pending_client_order_ids(self) -> set[str]:
        """Orders with an execution here that still waits for its commission report."""
        return {pending.client_order_id for pending in self._executions.values()}

    def expire(self, now_ns: int) -> list[MatchedFill]:
        """Emit, with estimated commission, every execution older than the timeout; drop stale orphan reports."""
        due = [e for e, p in self._executions.items() if now_ns - p.arrived_ns >= self._timeout_ns]
        fills = [self._emit(self._executions.pop(exec_id), None, now_ns) for exec_id in due]
        for exec_id in [e for e, (_, t) in self._commissions.items() if now_ns - t >= self._timeout_ns]:
            del self._commissions[exec_id]
            log.warning("event=orphan_commission_dropped exec_id=%s", exec_id)
        return fills

    def _emit(self, pending: _PendingExecution, commission: float | None, now_ns: int) -> MatchedFill:
        execution = pending.execution
        estimated = commission is None or not math.isfinite(commission) or commission >= _UNSET_THRESHOLD
        fill = fill_from_execution(
            execution, pending.contract, pending.client_order_id, pending.strategy_id, 0.0, now_ns,
            pending.order_type, self._exec_tz,
        )
        if estimated:
            commission = self._estimate(fill.side, fill.quantity, fill.price, fill.ts_event_ns)
            log.warning("event=commission_estimated exec_id=%s commission=%s", fill.exec_id, commission)
        fill = replace(fill, commission=commission)
        self._emitted.add(fill.exec_id)
        corrects = None
        base = _correction_base(fill.exec_id)
        if base is not None:
            corrects = self._emitted_by_base.get(base)
            self._emitted_by_base[base] = fill.exec_id
            if corrects is not None:
                log.warning("event=exec_correction exec_id=%s corrects=%s", fill.exec_id, corrects)
        return MatchedFill(fill, estimated, corrects)
