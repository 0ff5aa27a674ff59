"""Client → ibsim messages we support, parsed into small dataclasses (layouts: docs/ib-protocol.md §3).

``parse_request`` never raises: an unknown message id gives ``Unsupported`` and a malformed message gives
``Malformed``, so the server can log it and carry on (a real gateway does not drop the connection for an
unknown request either). Parsers read only as far as ibsim needs; the tail of PLACE_ORDER is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ibsim.wire import FieldReader

log = logging.getLogger(__name__)


class MsgId:
    """Outgoing (client → server) message ids used by ibsim."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCT_DATA = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """The contract block as the client sends it; ibsim only trades SMART/USD stocks."""

    con_id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str


@dataclass(frozen=True, slots=True)
class StartApi:
    client_id: int
    optional_capabilities: str


@dataclass(frozen=True, slots=True)
class ReqId:
    """Any request that carries only a request id (cancels, simple queries)."""

    msg_id: int
    req_id: int


@dataclass(frozen=True, slots=True)
class NoArgs:
    """Requests without arguments (current time, open orders, positions, global cancel...)."""

    msg_id: int


@dataclass(frozen=True, slots=True)
class ReqContractDetails:
    req_id: int
    contract: ContractSpec


@dataclass(frozen=True, slots=True)
class ReqMktData:
    req_id: int
    contract: ContractSpec
    generic_ticks: str
    snapshot: bool


@dataclass(frozen=True, slots=True)
class ReqMarketDataType:
    data_type: int


@dataclass(frozen=True, slots=True)
class ReqRealTimeBars:
    req_id: int
    contract: ContractSpec
    bar_size_s: int
    what_to_show: str


@dataclass(frozen=True, slots=True)
class ReqHistoricalData:
    req_id: int
    contract: ContractSpec
    end_date_time: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


@dataclass(frozen=True, slots=True)
class ReqExecutions:
    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


@dataclass(frozen=True, slots=True)
class ReqAccountSummary:
    req_id: int
    group: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """The order fields ibsim acts on; quantities and prices as floats (clients may send ``100.0``)."""

    order_id: int
    contract: ContractSpec
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    algo_strategy: str
    algo_params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    what_if: bool = False


@dataclass(frozen=True, slots=True)
class Unsupported:
    msg_id: int


@dataclass(frozen=True, slots=True)
class Malformed:
    msg_id: int
    reason: str


Request = (
    StartApi
    | ReqId
    | NoArgs
    | ReqContractDetails
    | ReqMktData
    | ReqMarketDataType
    | ReqRealTimeBars
    | ReqHistoricalData
    | ReqExecutions
    | ReqAccountSummary
    | CancelOrder
    | PlaceOrder
    | Unsupported
    | Malformed
)


def _contract(r: FieldReader) -> ContractSpec:
    con_id = r.int()
    symbol = r.str()
    sec_type = r.str()
    r.skip(4)  # lastTradeDateOrContractMonth, strike, right, multiplier
    exchange = r.str()
    primary = r.str()
    currency = r.str()
    local_symbol = r.str()
    r.skip(1)  # tradingClass
    return ContractSpec(con_id, symbol.upper(), sec_type.upper(), exchange, primary, currency, local_symbol)


def _start_api(r: FieldReader) -> StartApi:
    r.skip()
    client_id = r.int()
    caps = r.str() if r.remaining() else ""
    return StartApi(client_id, caps)


def _req_id_only(msg_id: int) -> Callable[[FieldReader], ReqId]:
    def parse(r: FieldReader) -> ReqId:
        r.skip()
        return ReqId(msg_id, r.int())

    return parse


def _no_args(msg_id: int) -> Callable[[FieldReader], NoArgs]:
    return lambda r: NoArgs(msg_id)


def _contract_details(r: FieldReader) -> ReqContractDetails:
    r.skip()
    req_id = r.int()
    return ReqContractDetails(req_id, _contract(r))


def _mkt_data(r: FieldReader) -> ReqMktData:
    r.skip()
    req_id = r.int()
    contract = _contract(r)
    if contract.sec_type == "BAG":
        legs = r.int()
        r.skip(4 * legs)
    if r.bool():  # delta-neutral contract
        r.skip(3)
    generic = r.str()
    snapshot = r.bool()
    return ReqMktData(req_id, contract, generic, snapshot)


def _market_data_type(r: FieldReader) -> ReqMarketDataType:
    r.skip()
    return ReqMarketDataType(r.int(1))


def _real_time_bars(r: FieldReader) -> ReqRealTimeBars:
    r.skip()
    req_id = r.int()
    contract = _contract(r)
    bar_size = r.int(5)
    return ReqRealTimeBars(req_id, contract, bar_size, r.str())


def _historical(r: FieldReader) -> ReqHistoricalData:
    req_id = r.int()  # no version field
    contract = _contract(r)
    r.skip()  # includeExpired
    end = r.str()
    bar_size = r.str()
    duration = r.str()
    use_rth = r.bool()
    what = r.str()
    fmt = r.int(1)
    if contract.sec_type == "BAG":
        r.skip(4 * r.int())
    keep = r.bool() if r.remaining() else False
    return ReqHistoricalData(req_id, contract, end, bar_size, duration, use_rth, what, fmt, keep)


def _executions(r: FieldReader) -> ReqExecutions:
    r.skip()
    req_id = r.int()
    return ReqExecutions(req_id, r.int(), r.str(), r.str(), r.str(), r.str(), r.str(), r.str())


def _account_summary(r: FieldReader) -> ReqAccountSummary:
    r.skip()
    req_id = r.int()
    group = r.str()
    tags = tuple(t.strip() for t in r.str().split(",") if t.strip())
    return ReqAccountSummary(req_id, group, tags)


def _cancel_order(r: FieldReader) -> CancelOrder:
    r.skip()
    return CancelOrder(r.int())


def _place_order(r: FieldReader) -> PlaceOrder:
    """PLACE_ORDER has no version field; groups only present under a condition shift the cursor (§3.1)."""
    order_id = r.int()
    contract = _contract(r)
    r.skip(2)  # secIdType, secId
    action = r.str().upper()
    quantity = r.float()
    order_type = r.str().upper()
    lmt = r.float_or_none()
    aux = r.float_or_none()
    tif = r.str().upper()
    r.skip()  # ocaGroup
    account = r.str()
    r.skip(2)  # openClose, origin
    order_ref = r.str()
    transmit = r.bool()
    parent_id = r.int()
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.bool()
    r.skip()  # hidden
    _skip_to_algo(r, contract)
    algo, params = _algo(r)
    r.skip()  # algoId
    what_if = r.bool()
    return PlaceOrder(
        order_id=order_id,
        contract=contract,
        action=action,
        total_quantity=quantity,
        order_type=order_type,
        lmt_price=lmt,
        aux_price=aux,
        tif=tif or "DAY",
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        algo_strategy=algo,
        algo_params=params,
        what_if=what_if,
    )


def _skip_to_algo(r: FieldReader, contract: ContractSpec) -> None:
    """Skip the PLACE_ORDER fields between ``hidden`` and ``algoStrategy``: ibsim ignores them all, but several
    groups are present only under a condition read from the message, so they cannot be skipped as one count."""
    if contract.sec_type == "BAG":
        r.skip(8 * r.int())
        r.skip(r.int())
        r.skip(2 * r.int())
    r.skip(9)  # sharesAllocation .. modelCode
    r.skip(6)  # shortSaleSlot .. settlingFirm
    r.skip(7)  # allOrNone .. auctionStrategy
    r.skip(6)  # startingPrice .. overridePercentageConstraints
    r.skip(2)  # volatility, volatilityType
    if r.str() != "":  # deltaNeutralOrderType
        r.skip(1 + 8)
    else:
        r.skip(1)  # deltaNeutralAuxPrice
    r.skip(6)  # continuousUpdate .. scaleSubsLevelSize
    increment = r.float_or_none()
    if increment is not None and increment > 0:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.str() != "":  # hedgeType
        r.skip()
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.bool():  # deltaNeutralContract: conId, delta, price
        r.skip(3)


def _algo(r: FieldReader) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``algoStrategy`` and its tag/value params (counted, present only with a strategy): the IB algo ibsim runs."""
    algo = r.str()
    params: list[tuple[str, str]] = []
    if algo:
        for _ in range(r.int()):
            params.append((r.str(), r.str()))
    return algo, tuple(params)


_PARSERS: dict[int, Callable[[FieldReader], Request]] = {
    MsgId.START_API: _start_api,
    MsgId.REQ_MKT_DATA: _mkt_data,
    MsgId.CANCEL_MKT_DATA: _req_id_only(MsgId.CANCEL_MKT_DATA),
    MsgId.PLACE_ORDER: _place_order,
    MsgId.CANCEL_ORDER: _cancel_order,
    MsgId.REQ_OPEN_ORDERS: _no_args(MsgId.REQ_OPEN_ORDERS),
    MsgId.REQ_ALL_OPEN_ORDERS: _no_args(MsgId.REQ_ALL_OPEN_ORDERS),
    MsgId.REQ_AUTO_OPEN_ORDERS: _no_args(MsgId.REQ_AUTO_OPEN_ORDERS),
    MsgId.REQ_ACCT_DATA: _no_args(MsgId.REQ_ACCT_DATA),
    MsgId.REQ_EXECUTIONS: _executions,
    MsgId.REQ_IDS: _no_args(MsgId.REQ_IDS),
    MsgId.REQ_CONTRACT_DATA: _contract_details,
    MsgId.REQ_MANAGED_ACCTS: _no_args(MsgId.REQ_MANAGED_ACCTS),
    MsgId.REQ_HISTORICAL_DATA: _historical,
    MsgId.CANCEL_HISTORICAL_DATA: _req_id_only(MsgId.CANCEL_HISTORICAL_DATA),
    MsgId.REQ_CURRENT_TIME: _no_args(MsgId.REQ_CURRENT_TIME),
    MsgId.REQ_REAL_TIME_BARS: _real_time_bars,
    MsgId.CANCEL_REAL_TIME_BARS: _req_id_only(MsgId.CANCEL_REAL_TIME_BARS),
    MsgId.REQ_GLOBAL_CANCEL: _no_args(MsgId.REQ_GLOBAL_CANCEL),
    MsgId.REQ_MARKET_DATA_TYPE: _market_data_type,
    MsgId.REQ_POSITIONS: _no_args(MsgId.REQ_POSITIONS),
    MsgId.CANCEL_POSITIONS: _no_args(MsgId.CANCEL_POSITIONS),
    MsgId.REQ_ACCOUNT_SUMMARY: _account_summary,
    MsgId.CANCEL_ACCOUNT_SUMMARY: _req_id_only(MsgId.CANCEL_ACCOUNT_SUMMARY),
}


def parse_request(fields: list[str]) -> Request:
    """One client message (its text fields, id first) → a request object; never raises."""
    if not fields:
        return Malformed(-1, "empty message")
    try:
        msg_id = int(fields[0])
    except ValueError:
        return Malformed(-1, f"message id {fields[0]!r} is not an integer")
    parser = _PARSERS.get(msg_id)
    if parser is None:
        return Unsupported(msg_id)
    try:
        return parser(FieldReader(fields, 1))
    except (IndexError, ValueError) as exc:
        return Malformed(msg_id, f"{type(exc).__name__}: {exc} (fields={len(fields)})")
