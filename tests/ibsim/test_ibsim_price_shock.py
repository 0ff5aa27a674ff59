"""The price-shock fault: every price ibsim hands out moves by one factor from a wall-clock instant on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ibapi.contract import Contract
from ibapi.order import Order

from core.clock import NS_PER_SECOND
from ibsim import IbSim, Market, SimConfig, build_market
from ibsim.__main__ import parse_price_shock

REPO = Path(__file__).resolve().parents[2]


class HandClock:
    """A wall clock the test moves by hand (``Market`` only reads ``now_ns``)."""

    def __init__(self, now_ns: int) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def frames() -> Market:
    return build_market(SimConfig(speed=60.0))


def hand_market(base: Market, clock: HandClock) -> Market:
    return Market(base.frames, base.calendar, "2024-01-02", 60.0, 7, 2.0, wall_clock=clock)  # type: ignore[arg-type]


def prices_at(market: Market, idx: int, ts_ns: int) -> dict[str, float]:
    """Every price the gateway reads, at one fixed sim instant (the shock depends on wall time only)."""
    quote = market.quote_at("SPY", idx, ts_ns)
    return {
        "price": market.price_at("SPY", idx, ts_ns),
        "last": quote.last,
        "open": quote.open,
        "high": quote.high,
        "prev_close": market.prev_close("SPY", idx),
        "close": market.close_price("SPY", idx),
        "history_close": float(market.daily_bars("SPY", idx, 3)["close"].iloc[-1]),
    }


def test_shock_scales_every_price_from_its_instant_on_and_compounds(frames: Market) -> None:
    clock = HandClock(1_000 * NS_PER_SECOND)
    market = hand_market(frames, clock)
    market.add_price_shock_after_start(5.0, -40.0)
    idx = 3
    ts_ns = market.session_bounds_ns(idx)[0] + 3_600 * NS_PER_SECOND  # an hour into the fourth session
    clock.now += 5 * NS_PER_SECOND - 1
    before = prices_at(market, idx, ts_ns)
    assert market.price_factor() == 1.0
    clock.now += 1  # exactly 5 s after start: in force
    after = prices_at(market, idx, ts_ns)
    assert market.price_factor() == pytest.approx(0.6)
    assert after == {key: pytest.approx(round(value * 0.6, 2), abs=0.011) for key, value in before.items()}
    quote = market.quote_at("SPY", idx, ts_ns)
    assert quote.bid <= quote.last < quote.ask

    market.add_price_shock(50.0)  # compounds: 0.6 x 1.5
    assert market.price_factor() == pytest.approx(0.9)


def test_without_a_shock_in_force_the_replay_is_unchanged(frames: Market) -> None:
    clock = HandClock(1_000 * NS_PER_SECOND)
    plain, scheduled = hand_market(frames, clock), hand_market(frames, clock)
    scheduled.add_price_shock_after_start(3_600.0, -40.0)  # an hour from now: not yet in force
    clock.now += 10 * NS_PER_SECOND
    idx, ts_ns = plain.position()
    assert prices_at(plain, idx, ts_ns) == prices_at(scheduled, idx, ts_ns)
    assert plain.quote_at("QQQ", idx, ts_ns) == scheduled.quote_at("QQQ", idx, ts_ns)


def test_shock_must_keep_prices_positive_and_the_cli_form_is_checked(frames: Market) -> None:
    market = hand_market(frames, HandClock(0))
    with pytest.raises(ValueError, match="pct > -100"):
        market.add_price_shock(-100.0)
    assert parse_price_shock("2.5:-30") == (2.5, -30.0)
    for bad in ("5", "x:-3", "-1:-3", "5:-100"):
        with pytest.raises(ValueError):
            parse_price_shock(bad)
    result = subprocess.run(
        [sys.executable, "-m", "ibsim", "--price-shock", "soon"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "SECONDS:PCT" in result.stderr


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def market_buy(qty: int) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = "BUY", qty, "MKT"
    return o


def account(client, req_id: int, eventually) -> dict[str, float]:
    """NetLiquidation and GrossPositionValue from one account-summary request."""
    client.reqAccountSummary(req_id, "All", "NetLiquidation,GrossPositionValue")
    eventually(lambda: [a for a in client.of("accountSummaryEnd") if a[0] == req_id], 5)
    client.cancelAccountSummary(req_id)
    return {a[2]: float(a[3]) for a in client.of("accountSummary") if a[0] == req_id}


def test_shock_moves_the_net_liquidation_a_client_sees(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.placeOrder(1, stock("SPY"), market_buy(1_000))
    eventually(lambda: client.of("commissionReport"))
    before = account(client, 7, eventually)
    sim.price_shock(-50.0)
    after = account(client, 8, eventually)
    assert after["GrossPositionValue"] == pytest.approx(0.5 * before["GrossPositionValue"], rel=0.002)
    assert after["NetLiquidation"] == pytest.approx(
        before["NetLiquidation"] - 0.5 * before["GrossPositionValue"], rel=0.001
    )


def test_cli_signal_form_applies_the_shock_on_sigusr1(tmp_path: Path, connect_to, eventually) -> None:
    log_path = tmp_path / "ibsim.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ibsim",
                "--port",
                "0",
                "--speed",
                "60",
                "--cash-usd",
                "50000",
                "--price-shock-signal",
                "-40",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        port = int(
            eventually(lambda: re.search(r"event=listening host=\S+ port=(\d+)", log_path.read_text()), 30).group(1)
        )
        client = connect_to(port, 1)
        client.placeOrder(1, stock("SPY"), market_buy(100))
        eventually(lambda: client.of("commissionReport"))
        before = account(client, 7, eventually)
        assert before["NetLiquidation"] == pytest.approx(50_000, rel=0.01)  # --cash-usd
        os.kill(proc.pid, signal.SIGUSR1)
        after = eventually(
            lambda: (
                (a := account(client, len(client.of("accountSummaryEnd")) + 10, eventually))
                and a["GrossPositionValue"] < 0.7 * before["GrossPositionValue"]
                and a
            ),
            10,
        )
        assert after["GrossPositionValue"] == pytest.approx(0.6 * before["GrossPositionValue"], rel=0.01)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
