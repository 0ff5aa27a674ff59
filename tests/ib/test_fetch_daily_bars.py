"""etl.fetch_daily_bars against ibsim: the store gets every session, failing symbols are reported, CLI exits."""

from __future__ import annotations

from pathlib import Path

from core.config_models import IbConnectionConfig
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from etl.fetch_daily_bars import fetch_daily_bars, main
from ibsim import IbSim


def _expected_sessions(sim: IbSim, symbol: str, days: int) -> int:
    idx, _ = sim.market.position()
    return len(sim.market.daily_bars(symbol, idx, days))


def test_fetch_writes_expected_sessions_and_reports_failures(sim: IbSim, tmp_path: Path) -> None:
    store = BarStore(tmp_path, TradingCalendar())
    cfg = IbConnectionConfig(port=sim.port, connect_timeout_s=5.0)
    counts = fetch_daily_bars(cfg, ["AAPL", "NOPE", "MSFT"], "1 Y", store=store, client_id=11, timeout_s=5.0)
    assert counts["NOPE"] == 0  # error 200 reported, the others continue
    for symbol in ("AAPL", "MSFT"):
        expected = _expected_sessions(sim, symbol, 252)
        assert expected >= 240 and counts[symbol] == expected == len(store.read(symbol))
    frame = sim.market.frames["AAPL"]
    stored = store.read("AAPL")
    assert stored["close"].iloc[-1] == frame.loc[stored.index[-1], "close"]


def test_cli_fetches_into_the_store(sim: IbSim, tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"ib_connection:\n  port: {sim.port}\n  connect_timeout_s: 5\nsymbols: [SPY]\n")
    assert main(["--config", str(config), "--store", str(tmp_path / "store"), "--duration", "1 M"]) == 0
    assert capsys.readouterr().out.strip().endswith("store")
    assert len(BarStore(tmp_path / "store").read("SPY")) == _expected_sessions(sim, "SPY", 21)


def test_cli_exits_2_on_config_errors(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("ib_connection:\n  prot: 4002\n")
    assert main(["--config", str(config), "--store", str(tmp_path / "store")]) == 2
    assert "prot" in capsys.readouterr().err
