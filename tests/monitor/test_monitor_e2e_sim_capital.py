"""The monitor's broker-side loss is the engine's loss: in sim mode ibsim's account starts with the engine's capital.

The monitor measures drawdown and daily loss in percent of the account's NetLiquidation; the engine in percent of
its own equity, which starts at ``portfolio.initial_capital``. ibsim used to start every account with 1,000,000 USD
while the engine started from 100,000, so a price shock that cost the engine 5.7 % showed as 0.57 % to the monitor
(ten times too weak a kill). Two real-process tests:

- ``run_system.sh`` (sim mode, stand-in engine) starts ibsim with ``--cash-usd`` = ``portfolio.initial_capital``:
  the monitor it starts reads exactly that NetLiquidation (an unusual capital, so no default can pass by chance);
- with ibsim's cash equal to the engine's capital (as run_system.sh now starts it), a -45 % price shock while the
  real engine (``main.py``) holds positions gives the same drawdown, within 10 %, in the engine's risk log and in
  the monitor's heartbeat. A full e2e rather than an in-process comparison: "the engine's number" is then the one
  the engine itself computes, from its own fills and marks, not a number the test derives.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from monitor_harness import System, wait_for
from test_run_system_script import cleaned_up, make_workdir, script_env, start

from testkit.waiting import eventually

SHOCK_PCT = -45.0


def test_run_system_starts_the_sim_account_with_the_engines_initial_capital(tmp_path: Path) -> None:
    capital = 250_000.0
    work = make_workdir(tmp_path)
    config_path = work / "test_config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["portfolio"]["initial_capital"] = capital
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    beat_path = work / "logs" / "risk_monitor_heartbeat.json"
    with cleaned_up(work) as seen:
        start(work, seen, env=script_env(standin=True))  # the stand-in engine trades nothing: NLV stays the cash

        def net_liquidation() -> float | None:
            try:
                return json.loads(beat_path.read_text())["broker"]["net_liquidation"]
            except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
                return None

        assert eventually(net_liquidation, 30, "the monitor reads the sim account's NetLiquidation") == capital


def large_positions(raw: dict[str, Any]) -> None:
    """Positions of ~5 % of equity each (so a -45 % shock costs several percent), an engine that does not throttle
    or halt itself at that loss, and a monitor that only watches (no kill clears the positions mid-comparison)."""
    raw["portfolio"]["sizing"].update(method="fixed_fraction", fixed_fraction_pct=5.0)
    raw["portfolio"]["risk"].update(
        max_position_weight_pct=10.0,
        drawdown_throttle_start_pct=50.0,
        reducing_drawdown_pct=60.0,
        halt_drawdown_pct=70.0,
    )
    raw["pre_trade"].update(price_collar_pct=100.0, max_order_notional_usd=1_000_000)
    raw["risk_monitor"].update(kill_drawdown_pct=90.0, max_daily_loss_pct=90.0)


def engine_capital() -> float:
    from testkit.crash_cycles import fast_trading_config  # the config EngineDir writes

    return float(fast_trading_config(1, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")["portfolio"]["initial_capital"])


def test_after_a_price_shock_the_monitor_sees_the_engines_drawdown(make_system) -> None:
    capital = engine_capital()
    system: System = make_system("--cash-usd", repr(capital), "--price-shock-signal", str(SHOCK_PCT))
    system.configure()
    system.ed.update_config(large_positions)
    system.start()
    system.monitor.wait_engine_alive()

    def exposed() -> bool:
        rows = system.ed.risk_rows()
        if not rows or not rows[-1]["gross_exposure"] or not rows[-1]["equity"]:
            return False
        return float(rows[-1]["gross_exposure"]) >= 0.10 * float(rows[-1]["equity"])

    wait_for(exposed, 90, "the engine holds at least 10 % of its equity", system.ed.proc)
    shocked_ns = time.time_ns()
    os.kill(system.ibsim_proc.pid, signal.SIGUSR1)
    beats: list[tuple[int, float]] = []  # (ts_ns, drawdown_pct) of every monitor beat seen after the shock

    def engine_row_after_shock() -> dict[str, str] | None:
        beat = system.monitor.beat_from_this_process()
        if beat and beat["ts_ns"] > shocked_ns and beat["broker"]["drawdown_pct"] is not None:
            beats.append((beat["ts_ns"], beat["broker"]["drawdown_pct"]))
        rows = [r for r in system.ed.risk_rows() if r["ts_ns"].isdigit() and int(r["ts_ns"]) > shocked_ns + 10**9]
        return rows[0] if rows and rows[0]["drawdown_pct"] and beats else None

    row = wait_for(engine_row_after_shock, 30, "an engine risk-log row 1 s after the shock", system.ed.proc)
    engine_dd = float(row["drawdown_pct"])
    beat_ts, monitor_dd = min(beats, key=lambda b: abs(b[0] - int(row["ts_ns"])))
    print(f"-45 % shock: engine drawdown {engine_dd:.2f} %, monitor {monitor_dd:.2f} % (beat {beat_ts}, row {row})")
    assert engine_dd >= 2.0, "too little exposure to compare"
    assert abs(monitor_dd - engine_dd) <= 0.10 * engine_dd, (engine_dd, monitor_dd)
