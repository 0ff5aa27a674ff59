"""Settings of one ibsim instance and the fault switches tests flip at run time."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config_models import CostsConfig
from ibsim.cost_profiles import get_profile
from ibsim.requests import PlaceOrder

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "IWM", "TLT", "GLD", "XLF")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Everything an ``IbSim`` needs; the defaults give a synthetic market starting 2024-01-02.

    ``data`` is ``"synthetic"`` or a bar store folder (``data.bar_store.BarStore`` root). ``speed`` is sim
    seconds per wall second. ``port=0`` picks a free port (``IbSim.start`` returns it). ``price_shock`` =
    (seconds of wall time after start, percent move) schedules one ``Market.add_price_shock`` (risk tests).
    ``master_client_id`` is TWS's "Master API client ID": that client also receives execDetails and commission
    reports of every other client's orders, and its reqExecutions sees them; ``None`` (TWS's default) means
    every client sees only its own executions. ``cost_profile`` names the ``ibsim.cost_profiles`` profile of the
    MOC/LOC/Adaptive/TWAP fills: ``default`` (ibsim's fills as they always were: MOC/LOC exactly at the close),
    ``realistic`` or ``planted`` (a known cheapest arm per context region, for AlgoWheel tests); an unknown name
    raises ValueError naming the allowed ones. A profile's ``twap.slices``, when set, replaces ``twap_slices``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    account: str = "DU111111"
    cash_usd: float = 1_000_000.0
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    data: str = "synthetic"
    history_start: str = "2023-01-03"
    start_session: str = "2024-01-02"
    end_session: str = "2024-12-31"
    seed: int = 7
    speed: float = 60.0
    tick_interval_s: float = 0.05
    spread_bps: float = 2.0
    moc_cutoff_minutes: int = 10
    twap_slices: int = 5
    twap_window_s: float = 600.0
    costs: CostsConfig = field(default_factory=CostsConfig)
    price_shock: tuple[float, float] | None = None
    master_client_id: int | None = None
    cost_profile: str = "default"

    def __post_init__(self) -> None:
        get_profile(self.cost_profile)  # raises ValueError naming the allowed profiles


@dataclass(slots=True)
class Faults:
    """Fault switches, read and written under the server lock (see ``IbSim`` for the public API)."""

    withhold_acks: bool = False
    held_orders: list[tuple[int, PlaceOrder]] = field(default_factory=list)  # (client_id, request)
    reject_next_reason: str | None = None
    partial_next_fraction: float | None = None
    duplicate_next_exec: bool = False
    market_data_silenced: bool = False
