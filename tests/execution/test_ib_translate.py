"""IB <-> our types without a socket: contracts, orders (what placeOrder sends), statuses, executions, commissions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.commission_report import CommissionReport
from ibapi.common import UNSET_DOUBLE
from ibapi.execution import Execution
from ibapi.order import Order

from core.errors import DataError, InvariantViolation, OrderRejected
from core.events import OrderStatus, OrderType, Side, TimeInForce
from execution.ib_translate import (
    CommissionMatcher,
    MatchedFill,
    fill_from_execution,
    new_ib_order,
    order_status_from_ib,
    parse_ib_exec_time,
    to_ib_contract,
    to_ib_order,
)
from testkit.orders import make_order

NS = 1_000_000_000


def _utc_ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * NS


# --- contract and order ------------------------------------------------------------------------------------


def test_contract_is_a_smart_routed_us_stock() -> None:
    c = to_ib_contract("AAPL", primary_exchange="NASDAQ")
    assert (c.symbol, c.secType, c.exchange, c.currency, c.primaryExchange) == ("AAPL", "STK", "SMART", "USD", "NASDAQ")


def test_contract_refuses_empty_symbol_and_smart_primary_exchange() -> None:
    with pytest.raises(ValueError, match="symbol"):
        to_ib_contract(" ")
    with pytest.raises(ValueError, match="primary_exchange"):
        to_ib_contract("AAPL", primary_exchange="SMART")


@pytest.mark.parametrize("order_type", [t for t in OrderType if t is not OrderType.STP])  # STP: its own tests
@pytest.mark.parametrize("side", list(Side))
def test_order_fields_for_every_type_and_side(order_type: OrderType, side: Side) -> None:
    limit = 101.25 if order_type in (OrderType.LMT, OrderType.LOC) else None
    order = make_order(symbol="AAPL", side=side, quantity=30, order_type=order_type, limit_price=limit)
    ib = to_ib_order(order, 7, account="DU111111")
    assert ib.orderId == 7
    assert ib.action == side.value
    assert ib.totalQuantity == 30
    assert ib.orderType == {"MKT": "MKT", "LMT": "LMT", "MOC": "MOC", "LOC": "LOC"}[order_type.value]
    assert ib.lmtPrice == (limit if limit is not None else UNSET_DOUBLE)
    assert ib.tif == "DAY"
    assert ib.orderRef == order.client_order_id
    assert ib.account == "DU111111"
    assert ib.transmit is True
    assert ib.eTradeOnly is False and ib.firmQuoteOnly is False  # TWS rejects the 9.81 defaults (10268/10269)
    assert ib.algoStrategy == "" and ib.algoParams is None


def test_new_ib_order_is_a_fresh_default_order() -> None:
    """The copied defaults equal ``Order()``'s, attribute for attribute and in the same order; mutable ones are not
    shared between orders."""
    plain, a, b = Order(), new_ib_order(), new_ib_order()
    assert list(vars(a)) == list(vars(plain))
    for name, value in vars(plain).items():
        if name == "softDollarTier":
            assert vars(a.softDollarTier) == vars(value)
        else:
            assert getattr(a, name) == value and type(getattr(a, name)) is type(value), name
    assert a.softDollarTier is not b.softDollarTier and a.conditions is not b.conditions


def test_gtc_limit_order_keeps_its_tif() -> None:
    order = replace(make_order(order_type=OrderType.LMT, limit_price=5.0), time_in_force=TimeInForce.GTC)
    assert to_ib_order(order, 1).tif == "GTC"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"quantity": 0}, "positive share count"),
        ({"order_type": OrderType.LMT}, "needs a positive limit"),
        ({"order_type": OrderType.LOC, "limit_price": -1.0}, "needs a positive limit"),
        ({"order_type": OrderType.LMT, "limit_price": float("nan")}, "needs a positive limit"),
        ({"order_type": OrderType.MKT, "limit_price": 10.0}, "takes no limit"),
        ({"order_type": OrderType.MOC, "time_in_force": TimeInForce.GTC}, "must be DAY"),
        ({"client_order_id": "ordre-é"}, "printable ASCII"),
        ({"client_order_id": "tab\tin-id"}, "printable ASCII"),
        ({"client_order_id": "del\x7f"}, "printable ASCII"),
    ],
)
def test_orders_tws_would_refuse_are_rejected_before_sending(changes: dict, match: str) -> None:
    with pytest.raises(OrderRejected, match=match):
        to_ib_order(replace(make_order(), **changes), 1)


def test_order_bound_to_another_ib_id_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolation):
        to_ib_order(replace(make_order(), broker_order_id=3), 4)
    with pytest.raises(InvariantViolation):
        to_ib_order(make_order(), 0)
    assert to_ib_order(replace(make_order(), broker_order_id=4), 4).orderId == 4


@pytest.mark.parametrize("priority", ["Normal", "Urgent", "Patient"])
def test_adaptive_algo(priority: str) -> None:
    ib = to_ib_order(make_order(), 1, algo="Adaptive", algo_params={"adaptivePriority": priority})
    assert ib.algoStrategy == "Adaptive"
    assert [(t.tag, t.value) for t in ib.algoParams] == [("adaptivePriority", priority)]


def test_adaptive_defaults_to_normal_and_algo_name_is_case_insensitive() -> None:
    ib = to_ib_order(make_order(), 1, algo="adaptive")
    assert ib.algoStrategy == "Adaptive"
    assert [(t.tag, t.value) for t in ib.algoParams] == [("adaptivePriority", "Normal")]


def test_twap_algo_params_in_ib_order() -> None:
    params = {"allowPastEndTime": "true", "endTime": "15:30:00 US/Eastern", "startTime": "09:45:00 US/Eastern"}
    ib = to_ib_order(make_order(order_type=OrderType.LMT, limit_price=10.0), 1, algo="Twap", algo_params=params)
    assert ib.algoStrategy == "Twap"
    assert [(t.tag, t.value) for t in ib.algoParams] == [
        ("startTime", "09:45:00 US/Eastern"), ("endTime", "15:30:00 US/Eastern"), ("allowPastEndTime", "1"),
    ]


@pytest.mark.parametrize(
    ("order_type", "algo", "params", "match"),
    [
        (OrderType.MKT, "Vwap", None, "unknown IB algo"),
        (OrderType.MKT, "Adaptive", {"adaptivePriority": "Fast"}, "adaptivePriority must be"),
        (OrderType.MKT, "Adaptive", {"startTime": "09:30:00"}, "only adaptivePriority"),
        (OrderType.MKT, "Twap", {"urgency": "high"}, "Twap takes only"),
        (OrderType.MKT, "Twap", {"allowPastEndTime": "maybe"}, "allowPastEndTime"),
        (OrderType.MOC, "Adaptive", None, "closing auction"),
        (OrderType.MKT, None, {"adaptivePriority": "Urgent"}, "without an algo"),
    ],
)
def test_bad_algo_requests_are_rejected(order_type: OrderType, algo: str | None, params: dict | None,
                                        match: str) -> None:
    with pytest.raises(OrderRejected, match=match):
        to_ib_order(make_order(order_type=order_type), 1, algo=algo, algo_params=params)


# --- order status ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "filled", "remaining", "expected"),
    [
        ("PendingSubmit", 0, 100, OrderStatus.PENDING_SUBMIT),
        ("ApiPending", 0, 100, OrderStatus.PENDING_SUBMIT),
        ("PreSubmitted", 0, 100, OrderStatus.SUBMITTED),
        ("Submitted", 0, 100, OrderStatus.SUBMITTED),
        ("Submitted", 40, 60, OrderStatus.PARTIALLY_FILLED),
        ("PreSubmitted", 40.0, 60.0, OrderStatus.PARTIALLY_FILLED),
        ("PendingCancel", 0, 100, OrderStatus.SUBMITTED),
        ("PendingCancel", 40, 60, OrderStatus.PARTIALLY_FILLED),
        ("Cancelled", 0, 100, OrderStatus.CANCELLED),
        ("Cancelled", 40, 60, OrderStatus.CANCELLED),
        ("ApiCancelled", 0, 100, OrderStatus.CANCELLED),
        ("Inactive", 0, 100, OrderStatus.REJECTED),
        ("Inactive", 40, 60, OrderStatus.CANCELLED),
        ("Filled", 100, 0, OrderStatus.FILLED),
        ("Filled", 60, 40, OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_order_status_mapping(status: str, filled: float, remaining: float, expected: OrderStatus) -> None:
    assert order_status_from_ib(status, filled, remaining) is expected


def test_unknown_order_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown IB order status 'Sleeping'"):
        order_status_from_ib("Sleeping", 0, 1)


# --- executions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240102  09:31:05", _utc_ns(2024, 1, 2, 14, 31, 5)),  # ibsim / TWS: two spaces, login zone (NY, EST)
        ("20240702  09:31:05", _utc_ns(2024, 7, 2, 13, 31, 5)),  # same in summer (EDT)
        ("20240102 09:31:05", _utc_ns(2024, 1, 2, 14, 31, 5)),  # one space
        ("20240102  09:31:05 US/Eastern", _utc_ns(2024, 1, 2, 14, 31, 5)),
        ("20240702 09:31:05 America/New_York", _utc_ns(2024, 7, 2, 13, 31, 5)),
        ("20240702  09:31:05 EDT", _utc_ns(2024, 7, 2, 13, 31, 5)),
        ("20240102  09:31:05 EST", _utc_ns(2024, 1, 2, 14, 31, 5)),
        ("20240102  14:31:05 UTC", _utc_ns(2024, 1, 2, 14, 31, 5)),
        ("20240102-14:31:05", _utc_ns(2024, 1, 2, 14, 31, 5)),  # TWS UTC format
        ("20240102  08:31:05 America/Chicago", _utc_ns(2024, 1, 2, 14, 31, 5)),
    ],
)
def test_exec_time_formats(text: str, expected: int) -> None:
    assert parse_ib_exec_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2024-01-02 09:31:05", "20240132  09:31:05", "20240102  09:31", "20240102  09:31:05 Mars/Base"]
)
def test_bad_exec_times_are_data_errors(text: str) -> None:
    with pytest.raises(DataError):
        parse_ib_exec_time(text)


def _execution(exec_id: str = "0000e0d5.659a1b2c.01.01", side: str = "BOT", shares: float = 100.0,
               price: float = 185.5, time: str = "20240102  09:31:05", order_id: int = 1) -> Execution:
    e = Execution()
    e.execId, e.side, e.shares, e.price, e.time, e.orderId = exec_id, side, shares, price, time, order_id
    e.acctNumber, e.exchange, e.cumQty, e.avgPrice = "DU111111", "ISLAND", shares, price
    return e


def test_fill_from_execution_matches_the_protocol_example() -> None:
    fill = fill_from_execution(_execution(), to_ib_contract("AAPL"), "c1", "momo", 1.0, 123, OrderType.LMT)
    assert fill.exec_id == "0000e0d5.659a1b2c.01.01"
    assert (fill.symbol, fill.side, fill.quantity, fill.price, fill.commission) == ("AAPL", Side.BUY, 100, 185.5, 1.0)
    assert fill.ts_event_ns == _utc_ns(2024, 1, 2, 14, 31, 5)
    assert (fill.ts_init_ns, fill.broker_order_id, fill.client_order_id, fill.strategy_id) == (123, 1, "c1", "momo")
    assert fill.order_type is OrderType.LMT
    sold = fill_from_execution(_execution(side="SLD"), to_ib_contract("AAPL"), "c1", "m", 0.0, 0, OrderType.MKT)
    assert sold.side is Side.SELL


@pytest.mark.parametrize("execution", [_execution(side="SSHORT"), _execution(shares=10.5), _execution(shares=0)])
def test_impossible_executions_are_invariant_violations(execution: Execution) -> None:
    with pytest.raises(InvariantViolation):
        fill_from_execution(execution, to_ib_contract("AAPL"), "c1", "m", 0.0, 0, OrderType.MKT)


def test_unreadable_exec_time_keeps_the_fill_at_init_time() -> None:
    fill = fill_from_execution(_execution(time="garbage"), to_ib_contract("AAPL"), "c1", "m", 0.0, 77, OrderType.MKT)
    assert fill.ts_event_ns == 77 and fill.quantity == 100


# --- commission matcher ------------------------------------------------------------------------------------


def _report(exec_id: str, commission: float = 1.25) -> CommissionReport:
    r = CommissionReport()
    r.execId, r.commission, r.currency = exec_id, commission, "USD"
    return r


def _estimate(side: Side, quantity: int, price: float, ts_ns: int) -> float:
    return 0.005 * quantity


def _matcher(**kwargs: object) -> CommissionMatcher:
    return CommissionMatcher(_estimate, timeout_ns=10 * NS, **kwargs)


def _on_exec(m: CommissionMatcher, exec_id: str, now_ns: int = 0) -> MatchedFill | None:
    return m.on_execution(_execution(exec_id), to_ib_contract("AAPL"), "c1", "s1", OrderType.MKT, now_ns)


def test_execution_then_report_emits_once_with_real_commission() -> None:
    m = _matcher()
    assert _on_exec(m, "a.b.01.01") is None
    matched = m.on_commission_report(_report("a.b.01.01", 1.25), 5)
    assert matched is not None and matched.fill.commission == 1.25 and not matched.commission_estimated
    assert matched.fill.ts_init_ns == 5
    assert m.on_commission_report(_report("a.b.01.01"), 6) is None
    assert _on_exec(m, "a.b.01.01") is None
    assert m.expire(100 * NS) == []


def test_report_then_execution_emits_once() -> None:
    m = _matcher()
    assert m.on_commission_report(_report("x.y.01.01", 2.0), 0) is None
    assert m.on_commission_report(_report("x.y.01.01", 2.0), 0) is None
    matched = _on_exec(m, "x.y.01.01")
    assert matched is not None and matched.fill.commission == 2.0
    assert (m.pending_executions, m.pending_commissions) == (0, 0)


def test_missing_report_times_out_with_estimated_flagged_commission() -> None:
    m = _matcher()
    _on_exec(m, "t.o.01.01", now_ns=0)
    assert m.expire(10 * NS - 1) == []
    [matched] = m.expire(10 * NS)
    assert matched.commission_estimated and matched.fill.commission == pytest.approx(0.5)
    assert m.on_commission_report(_report("t.o.01.01"), 11 * NS) is None  # late report: not a second fill
    assert m.expire(100 * NS) == []


def test_unset_commission_is_estimated() -> None:
    m = _matcher()
    _on_exec(m, "u.n.01.01")
    matched = m.on_commission_report(_report("u.n.01.01", UNSET_DOUBLE), 1)
    assert matched is not None and matched.commission_estimated and matched.fill.commission == pytest.approx(0.5)


def test_orphan_reports_expire_and_already_processed_ids_are_dropped() -> None:
    m = _matcher(already_processed=["old.exec.01.01"])
    assert _on_exec(m, "old.exec.01.01") is None and m.pending_executions == 0
    m.on_commission_report(_report("orphan.1.01.01"), 0)
    assert m.expire(10 * NS) == [] and m.pending_commissions == 0


def test_repeated_report_keeps_the_first_and_does_not_extend_the_orphan_timeout() -> None:
    m = _matcher()
    m.on_commission_report(_report("r.p.01.01", 1.0), 0)
    m.on_commission_report(_report("r.p.01.01", 9.0), 9 * NS)
    assert m.expire(10 * NS) == [] and m.pending_commissions == 0


def test_exec_correction_is_flagged() -> None:
    m = _matcher()
    _on_exec(m, "0000e0d5.659a1b2c.01.01")
    m.on_commission_report(_report("0000e0d5.659a1b2c.01.01"), 0)
    _on_exec(m, "0000e0d5.659a1b2c.01.02")
    matched = m.on_commission_report(_report("0000e0d5.659a1b2c.01.02"), 0)
    assert matched is not None and matched.corrects_exec_id == "0000e0d5.659a1b2c.01.01"


_message = st.tuples(st.sampled_from(["exec", "report", "expire"]), st.integers(0, 4), st.integers(0, 3 * NS))


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, max_size=40))
def test_any_arrival_order_yields_exactly_one_fill_per_exec_id(messages: list[tuple[str, int, int]]) -> None:
    m = CommissionMatcher(_estimate, timeout_ns=5 * NS)
    now = 0
    execs_seen: set[int] = set()
    reports_at: dict[int, int] = {}
    emitted: list = []
    for kind, n, dt in messages:
        now += dt
        exec_id = f"e{n}.x.01.01"
        if kind == "exec":
            execs_seen.add(n)
            out = m.on_execution(_execution(exec_id), to_ib_contract("AAPL"), "c", "s", OrderType.MKT, now)
            emitted += [out] if out else []
        elif kind == "report":
            reports_at.setdefault(n, now)
            out = m.on_commission_report(_report(exec_id, 1.0 + n), now)
            emitted += [out] if out else []
        else:
            emitted += m.expire(now)
    emitted += m.expire(now + 5 * NS)
    ids = [mf.fill.exec_id for mf in emitted]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {f"e{n}.x.01.01" for n in execs_seen}
    for mf in emitted:
        if not mf.commission_estimated:
            assert mf.fill.commission == 1.0 + int(mf.fill.exec_id[1])
    # every execution is emitted, with IB's commission whenever the report came before the fill went out
    assert m.pending_executions == 0 and len(ids) == len(execs_seen)


@pytest.mark.parametrize("side", list(Side))
def test_a_protective_stop_is_an_ib_stp_order_with_its_stop_price_in_aux_price_and_gtc(side: Side) -> None:
    stop = replace(make_order(symbol="AAPL", side=side, quantity=12, order_type=OrderType.STP),
                   stop_price=95.37, time_in_force=TimeInForce.GTC, reduce_only=True)  # fmt: skip
    ib = to_ib_order(stop, 9, account="DU111111")
    assert (ib.orderType, ib.auxPrice, ib.tif, ib.action, ib.totalQuantity) == ("STP", 95.37, "GTC", side.value, 12)
    assert ib.lmtPrice == UNSET_DOUBLE  # a stop-market order: no limit
    assert ib.orderRef == stop.client_order_id and ib.transmit is True


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"order_type": OrderType.STP, "stop_price": None}, "STP needs a positive stop price"),
        ({"order_type": OrderType.STP, "stop_price": -1.0}, "STP needs a positive stop price"),
        ({"order_type": OrderType.STP, "stop_price": float("nan")}, "STP needs a positive stop price"),
        ({"order_type": OrderType.STP, "stop_price": 10.0, "limit_price": 9.0}, "STP takes no limit price"),
        ({"order_type": OrderType.MKT, "stop_price": 10.0}, "MKT takes no stop price"),
    ],
)
def test_stop_prices_only_on_stop_orders(changes: dict[str, object], match: str) -> None:
    with pytest.raises(OrderRejected, match=match):
        to_ib_order(replace(make_order(), **changes), 1)


def test_a_stop_takes_no_algo() -> None:
    stop = replace(make_order(order_type=OrderType.STP), stop_price=9.5)
    with pytest.raises(OrderRejected, match="STP order takes no algo"):
        to_ib_order(stop, 1, algo="Adaptive")
