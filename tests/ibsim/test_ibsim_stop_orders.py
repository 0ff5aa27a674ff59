"""STP orders at ibsim (issue 15): a stop rests until the replayed market trades through it, then fills at the
touch; a jump past it fills after the jump (a gap); it is reported as open, cancelled and globally cancelled like
any order. Real ``ibapi`` client over loopback."""

from __future__ import annotations

from ibapi.contract import Contract
from ibapi.order import Order

from ibsim import IbSim


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def stop_order(action: str, qty: float, stop: float, ref: str = "") -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.auxPrice, o.tif, o.orderRef = action, qty, "STP", stop, "GTC", ref
    o.eTradeOnly = o.firmQuoteOnly = False
    return o


def test_a_sell_stop_rests_then_fills_at_the_touch_after_the_market_gaps_through_it(sim: IbSim, connect,
                                                                                   eventually) -> None:  # fmt: skip
    client = connect(1)
    last = sim.market.quote("AAPL").last
    stop = round(last * 0.95, 2)
    client.placeOrder(1, stock("AAPL"), stop_order("SELL", 10, stop, "entry-1.STP"))
    eventually(lambda: "Submitted" in client.statuses(1))
    sim.advance_market_s(1.0)
    assert "Filled" not in client.statuses(1) and sim.book.working_orders()  # 5 % above: it rests
    [(_order_id, _contract, open_order, _state)] = [a for a in client.of("openOrder") if a[0] == 1][:1]
    assert (open_order.orderType, open_order.auxPrice, open_order.tif, open_order.orderRef) == ("STP", stop, "GTC",
                                                                                            "entry-1.STP")  # fmt: skip
    sim.price_shock(-10.0)  # the market jumps 10 % down, through the stop
    eventually(lambda: "Filled" in client.statuses(1))
    execution = client.of("execDetails")[0][2]
    assert execution.side == "SLD" and execution.shares == 10
    assert execution.price == sim.market.quote("AAPL").bid < stop  # after the jump, not at the stop


def test_a_buy_stop_fills_once_the_market_trades_up_and_a_stop_can_be_cancelled(sim: IbSim, connect,
                                                                                eventually) -> None:  # fmt: skip
    client = connect(1)
    last = sim.market.quote("MSFT").last
    client.placeOrder(1, stock("MSFT"), stop_order("BUY", 5, round(last * 1.04, 2)))
    client.placeOrder(2, stock("MSFT"), stop_order("BUY", 5, round(last * 1.50, 2)))
    eventually(lambda: "Submitted" in client.statuses(1) and "Submitted" in client.statuses(2))
    sim.price_shock(5.0)
    eventually(lambda: "Filled" in client.statuses(1))
    assert "Filled" not in client.statuses(2)
    client.cancelOrder(2)
    eventually(lambda: "Cancelled" in client.statuses(2))
    assert not sim.book.working_orders()


def test_a_stop_without_a_stop_price_is_rejected(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    o = stop_order("SELL", 1, 0.0)
    client.placeOrder(1, stock("SPY"), o)
    [(_, _code, text, *_)] = eventually(lambda: client.errors(201))
    assert "STP order needs a positive auxPrice" in text
