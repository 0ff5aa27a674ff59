"""Contract details (step 2), order lifecycle (step 3) and account queries (step 4) with the real client."""

from __future__ import annotations

import pytest
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order

from core.config_models import CostsConfig
from ibsim import IbSim


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def order(action: str, qty: float, order_type: str = "MKT", lmt: float | None = None) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, order_type
    if lmt is not None:
        o.lmtPrice = lmt
    return o


def test_contract_details_for_known_symbol_and_stable_con_id(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqContractDetails(11, stock("AAPL"))
    eventually(lambda: client.of("contractDetailsEnd"))
    (req_id, details) = client.of("contractDetails")[0]
    assert req_id == 11
    assert details.contract.symbol == "AAPL" and details.contract.exchange == "SMART"
    assert details.contract.currency == "USD" and details.minTick == 0.01
    client.reqContractDetails(12, stock("AAPL"))
    eventually(lambda: len(client.of("contractDetails")) == 2)
    assert client.of("contractDetails")[1][1].contract.conId == details.contract.conId > 0


def test_contract_details_unknown_symbol_gives_200(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqContractDetails(13, stock("NOPE"))
    assert eventually(lambda: client.errors(200))[0][0] == 13
    assert not client.of("contractDetailsEnd")


def test_market_order_fills_in_tws_order_with_commission(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.placeOrder(1, stock("AAPL"), order("BUY", 100))
    eventually(lambda: client.of("commissionReport"))
    assert client.statuses(1)[0] == "Submitted" and client.statuses(1)[-1] == "Filled"
    seq = [n for n in client.names() if n in ("openOrder", "orderStatus", "execDetails", "commissionReport")]
    assert seq == ["openOrder", "orderStatus", "execDetails", "openOrder", "orderStatus", "commissionReport"]
    final = next(a for a in client.of("orderStatus") if a[1] == "Filled")
    filled, remaining, avg = final[2], final[3], final[4]
    (_, _, execution) = client.of("execDetails")[0]
    assert (filled, remaining) == (100, 0) and avg == execution.price > 0
    assert execution.side == "BOT" and execution.shares == 100
    (report,) = client.of("commissionReport")[0]
    assert report.execId == execution.execId
    expected = max(CostsConfig().ib_fixed.per_share_usd * 100, CostsConfig().ib_fixed.min_per_order_usd)
    assert report.commission == pytest.approx(expected)


def test_limit_orders_marketable_fills_and_passive_rests_then_cancel(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    ask = sim.market.quote("MSFT").ask
    client.placeOrder(1, stock("MSFT"), order("BUY", 10, "LMT", round(ask * 1.05, 2)))
    client.placeOrder(2, stock("MSFT"), order("BUY", 10, "LMT", round(ask * 0.5, 2)))
    eventually(lambda: "Filled" in client.statuses(1) and "Submitted" in client.statuses(2))
    fill_price = client.of("execDetails")[0][2].price
    assert fill_price <= ask * 1.05
    client.cancelOrder(2)
    eventually(lambda: "Cancelled" in client.statuses(2))
    assert client.errors(202)[0][0] == 2
    client.cancelOrder(2)
    client.cancelOrder(99)
    eventually(lambda: client.errors(10148) and client.errors(10147))


def test_exec_ids_are_unique(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    for oid in (1, 2, 3):
        client.placeOrder(oid, stock("SPY"), order("BUY" if oid != 2 else "SELL", 5))
    eventually(lambda: len(client.of("commissionReport")) == 3)
    ids = [e[2].execId for e in client.of("execDetails")]
    assert len(set(ids)) == 3


def test_global_cancel_cancels_working_orders_of_all_clients(sim: IbSim, connect, eventually) -> None:
    a, b = connect(1), connect(2)
    low = round(sim.market.quote("QQQ").bid * 0.5, 2)
    a.placeOrder(1, stock("QQQ"), order("BUY", 1, "LMT", low))
    b.placeOrder(1, stock("QQQ"), order("BUY", 1, "LMT", low))
    eventually(lambda: "Submitted" in a.statuses(1) and "Submitted" in b.statuses(1))
    a.reqGlobalCancel()
    eventually(lambda: "Cancelled" in a.statuses(1) and "Cancelled" in b.statuses(1))
    assert not sim.book.working_orders()


def test_unknown_symbol_and_invalid_orders_are_rejected_inactive(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.placeOrder(1, stock("NOPE"), order("BUY", 1))
    client.placeOrder(2, stock("AAPL"), order("BUY", 0))
    client.placeOrder(3, stock("AAPL"), order("BUY", 1, "LMT"))  # LMT without a price
    eventually(lambda: all("Inactive" in client.statuses(i) for i in (1, 2, 3)))
    assert client.errors(200)[0][0] == 1
    assert sorted(e[0] for e in client.errors(201)) == [2, 3]
    assert not client.of("execDetails")
    client.placeOrder(2, stock("AAPL"), order("BUY", 1))  # reusing a used id
    eventually(lambda: client.errors(103))


def test_positions_summary_open_orders_and_executions_agree_with_book(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.placeOrder(1, stock("AAPL"), order("BUY", 100))
    client.placeOrder(2, stock("AAPL"), order("SELL", 40))
    low = round(sim.market.quote("TLT").bid * 0.5, 2)
    client.placeOrder(3, stock("TLT"), order("BUY", 7, "LMT", low))
    eventually(lambda: len(client.of("commissionReport")) == 2 and "Submitted" in client.statuses(3))

    client.reqPositions()
    eventually(lambda: client.of("positionEnd"))
    positions = {p[1].symbol: (p[2], p[3]) for p in client.of("position")}
    assert positions["AAPL"][0] == 60

    tags = "NetLiquidation,TotalCashValue,SettledCash,BuyingPower,GrossPositionValue"
    client.reqAccountSummary(5, "All", tags)
    eventually(lambda: client.of("accountSummaryEnd"))
    values = {a[2]: float(a[3]) for a in client.of("accountSummary")}
    assert set(values) == set(tags.split(","))
    commissions = sum(r[0].commission for r in client.of("commissionReport"))
    trades = sum((-1 if e[2].side == "BOT" else 1) * e[2].shares * e[2].price for e in client.of("execDetails"))
    assert values["TotalCashValue"] == pytest.approx(1_000_000 + trades - commissions, abs=0.01)
    assert values["NetLiquidation"] == pytest.approx(values["TotalCashValue"] + values["GrossPositionValue"], abs=0.02)

    client.reqOpenOrders()
    eventually(lambda: client.of("openOrderEnd"))
    assert [o[0] for o in client.of("openOrder") if o[3].status == "Submitted"][-1] == 3

    f = ExecutionFilter()
    client.reqExecutions(77, f)
    eventually(lambda: client.of("execDetailsEnd"))
    replayed = [e for e in client.of("execDetails") if e[0] == 77]
    assert len(replayed) == 2
    later = ExecutionFilter()
    later.time = "20991231 00:00:00"
    client.reqExecutions(78, later)
    eventually(lambda: [a for a in client.of("execDetailsEnd") if a[0] == 78])
    assert not [e for e in client.of("execDetails") if e[0] == 78]
