"""Close-auction orders, IB algos and partial fills (step 6) through the real client."""

from __future__ import annotations

from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.tag_value import TagValue

from ibsim import IbSim

SESSION_S = 6.5 * 3600


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


def test_moc_fills_at_the_close_and_loc_respects_its_limit(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    close = sim.market.close_price("AAPL", 0)
    client.placeOrder(1, stock("AAPL"), order("BUY", 10, "MOC"))
    client.placeOrder(2, stock("AAPL"), order("BUY", 10, "LOC", round(close * 1.5, 2)))
    client.placeOrder(3, stock("AAPL"), order("BUY", 10, "LOC", round(close * 0.5, 2)))
    eventually(lambda: all("PreSubmitted" in client.statuses(i) for i in (1, 2, 3)))
    assert not client.of("execDetails")
    sim.advance_market_s(SESSION_S)
    eventually(lambda: "Filled" in client.statuses(1) and "Filled" in client.statuses(2))
    eventually(lambda: "Cancelled" in client.statuses(3))
    assert {e[2].price for e in client.of("execDetails")} == {close}


def test_moc_after_the_cutoff_is_rejected(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    sim.advance_market_s(SESSION_S - 5 * 60)
    client.placeOrder(1, stock("AAPL"), order("SELL", 10, "MOC"))
    eventually(lambda: "Inactive" in client.statuses(1))
    assert client.errors(201)[0][0] == 1


def test_adaptive_fills_between_mid_and_touch(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    q = sim.market.quote("SPY")
    o = order("BUY", 100, "LMT", round(q.ask * 1.01, 2))
    o.algoStrategy = "Adaptive"
    o.algoParams = [TagValue("adaptivePriority", "Patient")]
    client.placeOrder(1, stock("SPY"), o)
    eventually(lambda: "Filled" in client.statuses(1))
    price = client.of("execDetails")[0][2].price
    now = sim.market.quote("SPY")
    assert min(q.mid, now.mid) - 1e-9 <= price <= max(q.ask, now.ask) + 1e-9
    echoed = client.of("openOrder")[0][2]
    assert echoed.algoStrategy == "Adaptive" and echoed.algoParams[0].value == "Patient"


def test_twap_executes_in_several_child_executions(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    o = order("BUY", 103)
    o.algoStrategy = "Twap"
    o.algoParams = [TagValue("strategyType", "Marketable"), TagValue("allowPastEndTime", "1")]
    client.placeOrder(1, stock("IWM"), o)
    eventually(lambda: len(client.of("execDetails")) == 1)
    for _ in range(5):
        sim.advance_market_s(sim.cfg.twap_window_s / sim.cfg.twap_slices)
    eventually(lambda: "Filled" in client.statuses(1))
    execs = [e[2] for e in client.of("execDetails")]
    assert len(execs) == sim.cfg.twap_slices
    assert sum(e.shares for e in execs) == 103 and execs[-1].cumQty == 103
    assert len({e.execId for e in execs}) == len(execs)
    commission = sum(r[0].commission for r in client.of("commissionReport"))
    assert commission == sim.book.orders[(1, 1)].commission_paid


def test_partial_fill_then_cancel_keeps_the_filled_part(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    sim.partial_fill_next_order(0.5)
    client.placeOrder(1, stock("GLD"), order("BUY", 100))
    eventually(lambda: client.of("commissionReport"))
    status = [s for s in client.of("orderStatus") if s[2] == 50][-1]
    assert status[1] == "Submitted" and status[3] == 50
    client.cancelOrder(1)
    eventually(lambda: "Cancelled" in client.statuses(1))
    final = client.of("orderStatus")[-1]
    assert (final[1], final[2], final[3]) == ("Cancelled", 50, 50)


def test_a_twap_sent_before_its_start_time_waits_for_it() -> None:
    """An engine decides on a close and sends a TWAP for the next session: its slices start at ``startTime``
    (the open), not when it was sent."""
    import pandas as pd

    from ibsim.book import SimOrder, Stock
    from ibsim.fills import twap_schedule

    def ny(text: str) -> int:
        return int(pd.Timestamp(text, tz="America/New_York").tz_convert("UTC").value)

    order = SimOrder(client_id=1, order_id=1, perm_id=1, stock=Stock("SPY", 1), action="BUY", quantity=100,
                     order_type="MKT", lmt_price=None, aux_price=None, tif="DAY", account="DU1", order_ref="r",
                     parent_id=0, algo_strategy="Twap",
                     algo_params=(("startTime", "20240311 09:30:00 US/Eastern"),
                                  ("endTime", "20240311 10:30:00 US/Eastern")))  # fmt: skip
    slices = twap_schedule(order, ny("2024-03-11 09:20"), ny("2024-03-11 16:00"), 4, 600.0)
    assert [due for due, _ in slices] == [ny("2024-03-11 09:30") + i * 15 * 60 * 10**9 for i in range(4)]
    assert sum(shares for _, shares in slices) == 100
    late = twap_schedule(order, ny("2024-03-11 09:45"), ny("2024-03-11 16:00"), 3, 600.0)  # sent after the start
    assert late[0][0] == ny("2024-03-11 09:45") and late[-1][0] < ny("2024-03-11 10:30")
