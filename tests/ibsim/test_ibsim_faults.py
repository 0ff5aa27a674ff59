"""Fault injection (step 7): what a client sees when the gateway misbehaves."""

from __future__ import annotations

import time

from ibapi.contract import Contract
from ibapi.order import Order

from ibsim import IbSim


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def mkt(action: str, qty: float) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, "MKT"
    return o


def test_drop_all_connections_closes_every_client(sim: IbSim, connect, eventually) -> None:
    a, b = connect(1), connect(2)
    sim.drop_all_connections()
    eventually(lambda: a.of("connectionClosed") and b.of("connectionClosed"))
    eventually(lambda: not sim.gateway.sessions)
    assert connect(1).of("nextValidId")


def test_refuse_connections_then_accept_again(sim: IbSim, connect, eventually) -> None:
    sim.refuse_connections(0.5)
    refused = connect(1, wait_ready=False)
    # ibapi 9.81.1 never sets Connection.wrapper, so a refused TCP connect reports no 502: connect() just
    # returns disconnected.
    assert not refused.isConnected() and not refused.of("nextValidId")
    eventually(lambda: sim.accepting(), 3)
    assert connect(2).of("nextValidId")


def test_nightly_restart_drops_refuses_and_comes_back_with_the_book(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.placeOrder(1, stock("AAPL"), mkt("BUY", 10))
    eventually(lambda: client.of("commissionReport"))
    sim.nightly_restart(0.3)
    eventually(lambda: client.of("connectionClosed"))
    eventually(lambda: sim.accepting(), 3)
    again = connect(1)
    assert again.of("nextValidId")[0][0] == 2  # ids stay above what the client used
    again.reqPositions()
    eventually(lambda: again.of("positionEnd"))
    assert again.of("position")[0][2] == 10


def test_connectivity_and_farm_codes_and_silenced_data(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqMktData(1, stock("SPY"), "", False, False, [])
    eventually(lambda: client.of("tickPrice"))
    sim.connectivity_lost()
    eventually(lambda: client.errors(1100))
    count = len(client.of("tickPrice"))
    sim.advance_market_s(3600)
    time.sleep(0.1)  # negative check: nothing may arrive while silenced
    assert len(client.of("tickPrice")) == count and client.isConnected()
    sim.connectivity_restored(data_lost=False)
    eventually(lambda: client.errors(1102))
    sim.advance_market_s(3600)
    eventually(lambda: len(client.of("tickPrice")) > count)
    sim.connectivity_restored(data_lost=True)
    eventually(lambda: client.errors(1101))
    assert not sim.gateway.sessions[1].mkt_subs
    sim.farm_broken()
    sim.farm_ok()
    eventually(lambda: client.errors(2103) and len(client.errors(2104)) >= 2)


def test_withheld_acks_then_released(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    sim.withhold_order_acks(True)
    client.placeOrder(1, stock("AAPL"), mkt("BUY", 1))
    eventually(lambda: sim.faults.held_orders)
    time.sleep(0.1)  # negative check: no ack while withheld
    assert not client.of("orderStatus")
    sim.withhold_order_acks(False)
    eventually(lambda: "Filled" in client.statuses(1))


def test_reject_next_order_only_once(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    sim.reject_next_order("margin")
    client.placeOrder(1, stock("AAPL"), mkt("BUY", 1))
    client.placeOrder(2, stock("AAPL"), mkt("BUY", 1))
    eventually(lambda: "Inactive" in client.statuses(1) and "Filled" in client.statuses(2))
    assert client.errors(201)[0][0] == 1 and "margin" in client.errors(201)[0][2]


def test_duplicate_exec_details_same_exec_id(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    sim.duplicate_next_exec_details()
    client.placeOrder(1, stock("AAPL"), mkt("BUY", 1))
    eventually(lambda: client.of("commissionReport"))
    execs = client.of("execDetails")
    assert len(execs) == 2 and execs[0][2].execId == execs[1][2].execId
