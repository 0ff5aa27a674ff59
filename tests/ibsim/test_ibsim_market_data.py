"""Streaming ticks, 5-second bars and daily history (step 5) through the real client."""

from __future__ import annotations

from ibapi.contract import Contract

from ibsim import IbSim


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def test_mkt_data_ticks_follow_the_replay_clock_and_stop_on_cancel(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqMktData(5, stock("AAPL"), "", False, False, [])
    eventually(lambda: {t[1] for t in client.of("tickPrice")} >= {1, 2, 4, 9})
    bid = next(t[2] for t in client.of("tickPrice") if t[1] == 1)
    ask = next(t[2] for t in client.of("tickPrice") if t[1] == 2)
    assert 0 < bid < ask
    assert any(t[1] == 8 for t in client.of("tickSize"))
    before = len(client.of("tickPrice"))
    sim.advance_market_s(3600)
    eventually(lambda: len(client.of("tickPrice")) > before)
    client.cancelMktData(5)
    eventually(lambda: not sim.gateway.sessions[1].mkt_subs)


def test_unknown_symbol_market_data_gives_200(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqMktData(6, stock("NOPE"), "", False, False, [])
    assert eventually(lambda: client.errors(200))[0][0] == 6


def test_snapshot_ends_with_snapshot_end(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqMktData(7, stock("SPY"), "", True, False, [])
    eventually(lambda: client.of("tickSnapshotEnd"))
    assert not sim.gateway.sessions[1].mkt_subs


def test_real_time_bars_every_five_sim_seconds(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqRealTimeBars(8, stock("MSFT"), 5, "TRADES", True, [])
    bars = eventually(lambda: len(client.of("realtimeBar")) >= 2 and client.of("realtimeBar"), 10)
    times = [b[1] for b in bars]
    assert all(t % 5 == 0 for t in times) and times == sorted(set(times))
    b = bars[0]
    assert b[3] >= max(b[2], b[5]) and b[4] <= min(b[2], b[5])


def test_historical_daily_bars_one_year(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqHistoricalData(9, stock("AAPL"), "", "1 Y", "1 day", "TRADES", 1, 1, False, [])
    eventually(lambda: client.of("historicalDataEnd"))
    bars = [b[1] for b in client.of("historicalData")]
    assert 240 <= len(bars) <= 252
    assert bars[-1].date < "20240102" and len(bars[-1].date) == 8
    frame = sim.market.frames["AAPL"]
    last_day = frame.loc[frame.index < "2024-01-02"].iloc[-1]
    assert bars[-1].close == last_day["close"] and bars[-1].volume == int(last_day["volume"])
    client.reqHistoricalData(10, stock("AAPL"), "", "1 Y", "1 min", "TRADES", 1, 1, False, [])
    eventually(lambda: client.errors(162))
