"""What the live engine is handed from outside: its files, its clock and its broker connection.

``build_engine(config, ports)`` wires the engine around these; ``EnginePorts.from_config`` gives what ``main.py``
uses (the config's paths, the wall clock, an ``IbConnection`` to the configured gateway). A test hands in its own:
every file under a temp folder, an in-process ibsim's port, or a connection it built itself, so the engine, the
broker sync and the order client can be built and driven in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.clock import WallClock
from core.config_models import AppConfig
from core.ib_wrapper import IbConnection

SNAPSHOT_NAME = "portfolio_snapshot.json"
JOURNAL_NAME = "order_journal.jsonl"
DAILY_EQUITY_NAME = "daily_equity.csv"
RISK_LOG_NAME = "risk_log.csv"
TCA_DB = Path("results/tca_log.duckdb")

ConnectionFactory = Callable[[Callable[[object], None], WallClock], IbConnection]
"""(put onto the engine's queue, the engine's clock) -> a connection, not started."""


@dataclass(frozen=True, slots=True)
class EngineFiles:
    """Every file and folder the engine reads or writes (state private to the user, logs, flags, keys)."""

    state_dir: Path
    log_dir: Path
    journal: Path
    snapshot: Path
    daily_equity: Path
    order_log: Path
    risk_log: Path
    heartbeat_csv: Path
    command_keys_dir: Path
    monitor_heartbeat: Path
    kill_flag: Path
    kill_now_flag: Path
    tca_db: Path = TCA_DB  # loaded from the journal at the engine's stop (tca.from_journal), never held open

    @classmethod
    def from_config(cls, config: AppConfig) -> EngineFiles:
        system, ops = config.system, config.operational_risk
        state_dir, log_dir = Path(system.state_dir), Path(system.log_dir)
        return cls(
            state_dir=state_dir, log_dir=log_dir, journal=state_dir / JOURNAL_NAME, snapshot=state_dir / SNAPSHOT_NAME,
            daily_equity=state_dir / DAILY_EQUITY_NAME, order_log=Path(ops.order_rate_counter_path),
            risk_log=log_dir / RISK_LOG_NAME, heartbeat_csv=Path(ops.heartbeat_flag_path),
            command_keys_dir=Path(ops.command_keys_dir), monitor_heartbeat=Path(ops.monitor_heartbeat_path),
            kill_flag=Path(system.kill_flag_path), kill_now_flag=Path(system.kill_now_flag_path),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnginePorts:
    files: EngineFiles
    clock: WallClock
    connect: ConnectionFactory

    @classmethod
    def from_config(cls, config: AppConfig, *, port: int | None = None) -> EnginePorts:
        """The config's files, the wall clock, and a connection to ``ib_connection`` (``port`` overrides its port,
        as ``main.py --port`` does)."""
        ib = config.ib_connection

        def connect(put: Callable[[object], None], clock: WallClock) -> IbConnection:
            return IbConnection(ib, ib.main_client_id, put, clock, port=port)

        return cls(EngineFiles.from_config(config), WallClock(), connect)
