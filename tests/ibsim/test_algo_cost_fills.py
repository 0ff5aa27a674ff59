"""The cost profiles in ibsim's fills, through the real ``ibapi`` client: auction impact, LOC non-fills, Adaptive
priorities and TWAP slicing under ``cost_profile="planted"``, and the default profile's exact close."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.tag_value import TagValue

from core.config_models import WheelArm
from ibsim import IbSim, SimConfig
from ibsim.cost_profiles import PLANTED, CostContext, close_auction_impact_bps, expected_shortfall_bps

SESSION_S = 6.5 * 3600


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(speed=60.0, tick_interval_s=0.02, cost_profile="planted")


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


def adaptive(action: str, qty: float, priority: str) -> Order:
    o = order(action, qty)
    o.algoStrategy = "Adaptive"
    o.algoParams = [TagValue("adaptivePriority", priority)]
    return o


def shares_of_volume(sim: IbSim, symbol: str, participation: float) -> int:
    return round(float(sim.market.bar(symbol, 0)["volume"]) * participation)


def fill_prices(client, order_id: int) -> list[float]:
    return [e[2].price for e in client.of("execDetails") if e[2].orderId == order_id]


def test_a_large_moc_fills_worse_than_the_close_by_the_profiles_impact(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    qty = shares_of_volume(sim, "GLD", 0.05)
    close = sim.market.close_price("GLD", 0)
    impact_bps = close_auction_impact_bps(PLANTED, WheelArm.MOC, qty / float(sim.market.bar("GLD", 0)["volume"]))
    assert impact_bps > 15.0  # 12 × 5 ** 0.3: a big order moves the auction noticeably
    client.placeOrder(1, stock("GLD"), order("BUY", qty, "MOC"))
    client.placeOrder(2, stock("GLD"), order("SELL", qty, "MOC"))
    eventually(lambda: all("PreSubmitted" in client.statuses(i) for i in (1, 2)))
    sim.advance_market_s(SESSION_S)
    eventually(lambda: "Filled" in client.statuses(1) and "Filled" in client.statuses(2))
    assert fill_prices(client, 1) == [pytest.approx(close * (1 + impact_bps / 1e4), abs=1e-4)]
    assert fill_prices(client, 2) == [pytest.approx(close * (1 - impact_bps / 1e4), abs=1e-4)]
    assert fill_prices(client, 1)[0] > close > fill_prices(client, 2)[0]


def test_the_default_profile_fills_a_large_moc_exactly_at_the_close(connect_to, eventually) -> None:
    """What the live/backtest parity tests rely on: without a profile, size does not move the close."""
    with IbSim(SimConfig(speed=60.0, tick_interval_s=0.02)) as sim:
        client = connect_to(sim.port, 1)
        client.placeOrder(1, stock("GLD"), order("BUY", shares_of_volume(sim, "GLD", 0.05), "MOC"))
        eventually(lambda: "PreSubmitted" in client.statuses(1))
        sim.advance_market_s(SESSION_S)
        eventually(lambda: "Filled" in client.statuses(1))
        assert fill_prices(client, 1) == [sim.market.close_price("GLD", 0)]
        client.stop()


def test_a_loc_that_cannot_fill_is_cancelled_at_the_close(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    qty = shares_of_volume(sim, "GLD", 0.05)
    assert PLANTED.loc.non_fill_probability(qty / float(sim.market.bar("GLD", 0)["volume"])) == 1.0
    close = sim.market.close_price("GLD", 0)
    client.placeOrder(1, stock("GLD"), order("BUY", qty, "LOC", round(close * 1.5, 2)))  # the limit is no obstacle
    eventually(lambda: "PreSubmitted" in client.statuses(1))
    sim.advance_market_s(SESSION_S)
    eventually(lambda: "Cancelled" in client.statuses(1))
    assert not fill_prices(client, 1)
    reasons = [e[2] for e in client.errors(202) if e[0] == 1]
    assert reasons and "LOC not filled in the closing auction" in reasons[0] and "planted" in reasons[0], reasons


def _vol_20d_pct(sim: IbSim, symbol: str) -> float:
    closes = sim.market.daily_bars(symbol, 0, 21)["close"].to_numpy(dtype=float)
    return float(np.std(np.diff(np.log(closes)), ddof=1) * np.sqrt(252.0) * 100.0)


def test_adaptive_patient_and_urgent_differ_in_the_profiles_direction(connect_to, eventually) -> None:
    """Wide spread: Patient's spread capture outweighs its longer drift exposure, so its buys are cheaper."""
    cfg = SimConfig(speed=0.001, tick_interval_s=0.02, spread_bps=60.0, cost_profile="planted")  # a still clock
    with IbSim(cfg) as sim:
        client = connect_to(sim.port, 1)
        q = sim.market.quote("QQQ")
        ctx = CostContext(
            participation=100 / float(sim.market.bar("QQQ", 0)["volume"]),
            volatility_20d_pct=_vol_20d_pct(sim, "QQQ"),
            spread_bps=(q.ask - q.bid) / q.mid * 1e4,
            minutes_to_close=390.0,
        )
        expected_gap_bps = expected_shortfall_bps(WheelArm.ADAPTIVE_URGENT, ctx, PLANTED) - expected_shortfall_bps(
            WheelArm.ADAPTIVE_PATIENT, ctx, PLANTED
        )
        assert expected_gap_bps > 5.0  # the direction under test, by a margin the few orders below resolve
        ids = {"Patient": range(1, 11), "Urgent": range(11, 21)}
        for priority, order_ids in ids.items():
            for order_id in order_ids:
                client.placeOrder(order_id, stock("QQQ"), adaptive("BUY", 100, priority))
        eventually(lambda: all("Filled" in client.statuses(i) for i in range(1, 21)))
        mean = {p: float(np.mean([fill_prices(client, i)[0] for i in order_ids])) for p, order_ids in ids.items()}
        gap_bps = (mean["Urgent"] - mean["Patient"]) / q.mid * 1e4
        assert gap_bps == pytest.approx(expected_gap_bps, abs=3.5)  # ~3 sd of 10 orders' capture draws
        client.stop()


def _adaptive_fill_prices(connect_to, eventually, seed: int) -> list[float]:
    cfg = SimConfig(speed=0.001, tick_interval_s=0.02, spread_bps=30.0, seed=seed, cost_profile="planted")
    with IbSim(cfg) as sim:
        client = connect_to(sim.port, 1)
        for order_id, priority in enumerate(("Patient", "Urgent", "Normal", "Patient"), start=1):
            client.placeOrder(order_id, stock("XLF"), adaptive("SELL" if order_id % 2 else "BUY", 100, priority))
        eventually(lambda: all("Filled" in client.statuses(i) for i in range(1, 5)))
        prices = [fill_prices(client, i)[0] for i in range(1, 5)]
        client.stop()
    return prices


def test_the_same_seed_fills_the_same(connect_to, eventually) -> None:
    first = _adaptive_fill_prices(connect_to, eventually, seed=7)
    assert _adaptive_fill_prices(connect_to, eventually, seed=7) == first
    assert _adaptive_fill_prices(connect_to, eventually, seed=8) != first


def test_twap_slices_as_the_profile_says(sim: IbSim, connect, eventually: Callable[..., object]) -> None:
    client = connect(1)
    o = order("BUY", 1000)
    o.algoStrategy = "Twap"
    o.algoParams = [TagValue("strategyType", "Marketable"), TagValue("allowPastEndTime", "1")]
    client.placeOrder(1, stock("IWM"), o)
    eventually(lambda: len(client.of("execDetails")) == 1)
    assert PLANTED.twap.slices == 20 != sim.cfg.twap_slices
    for _ in range(PLANTED.twap.slices):
        sim.advance_market_s(sim.cfg.twap_window_s / PLANTED.twap.slices)
    eventually(lambda: "Filled" in client.statuses(1))
    execs = [e[2] for e in client.of("execDetails")]
    assert len(execs) == PLANTED.twap.slices and sum(e.shares for e in execs) == 1000
