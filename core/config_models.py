"""Typed configuration: one frozen pydantic model per section of ``config.yaml``.

Units are in the names (``_pct`` is percent, 0-100; ``_bps`` basis points; ``_s`` seconds; ``_usd`` dollars).
Components receive only their own section. This module imports nothing of the project.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Pct = Annotated[float, Field(ge=0.0, le=100.0)]
PositivePct = Annotated[float, Field(gt=0.0, le=100.0)]
Port = Annotated[int, Field(ge=1, le=65535)]
ClientId = Annotated[int, Field(ge=0, le=2_147_483_647)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IbConnectionConfig(Section):
    mode: Literal["sim", "tws"] = "sim"
    host: str = "127.0.0.1"
    port: Port = 4002
    main_client_id: ClientId = 1
    account: str = Field(default="", description="IB account id; empty means the first managed account")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    intraday_marks: Literal["bars", "ticks"] = Field(
        default="bars", description="what marks the book between closes: 5-s real-time bars, or 5-s bars built "
        "from last-trade ticks (for an account without real-time bar permissions)")  # fmt: skip

    @model_validator(mode="after")
    def _ticks_need_the_wall_clock(self) -> IbConnectionConfig:
        if self.mode == "sim" and self.intraday_marks == "ticks":
            raise ValueError(
                "intraday_marks 'ticks' needs mode 'tws' (got mode 'sim'): bars built from ticks are stamped with "
                "their arrival time, and ibsim's clock runs ahead of the wall clock, so no session close would ever "
                "be seen and no decision made; use intraday_marks: bars with the simulated gateway"
            )
        return self


class IbSimConfig(Section):
    """The simulated gateway ``run_system.sh`` starts when ``ib_connection.mode`` is ``sim``."""

    speed: float = Field(default=60.0, gt=0, le=100_000, description="sim seconds per wall second")
    demo_speed: float = Field(default=8000.0, gt=0, le=100_000,
                              description="speed with run_system.sh --duration: a session in seconds")  # fmt: skip
    seed: int = Field(default=7, ge=0)
    data: str = Field(default="synthetic", min_length=1,
                      description="'synthetic' or a bar store folder (etl/fetch_daily_bars.py writes one)")  # fmt: skip


class RiskMonitorConfig(Section):
    risk_monitor_client_id: ClientId = 2
    kill_drawdown_pct: PositivePct = 15.0
    max_daily_loss_pct: PositivePct = 5.0
    max_daily_fills: int = Field(default=500, ge=1)
    max_daily_fill_notional_usd: float = Field(default=5_000_000.0, gt=0)
    confirm_checks: int = Field(default=3, ge=1, description="consecutive breaching checks before a kill")
    check_interval_s: float = Field(default=0.5, gt=0)
    command_timeout_s: float = Field(default=3.0, gt=0)
    fallback_action: Literal["flatten", "cancel_only"] = "flatten"


class SizingConfig(Section):
    method: Literal["volatility", "fixed_shares", "fixed_fraction"] = "volatility"
    fixed_shares: int = Field(default=100, ge=1)
    fixed_fraction_pct: PositivePct = 10.0
    min_quantity: int = Field(default=1, ge=1)


class RiskConfig(Section):
    """Drawdowns are measured from peak equity, in percent."""

    max_positions: int = Field(default=20, ge=1)
    max_gross_exposure_pct: float = Field(default=100.0, gt=0, le=400.0)
    max_position_weight_pct: PositivePct = 20.0
    drawdown_throttle_start_pct: Pct = 5.0
    reducing_drawdown_pct: PositivePct = 10.0
    halt_drawdown_pct: PositivePct = 20.0
    min_size_scale: float = Field(default=0.25, ge=0.0, le=1.0)
    rearm_after_flat_sessions: int | None = Field(
        default=None, ge=1, description="REDUCING -> ACTIVE after this many flat sessions; null: operator decides"
    )
    flatten_on_halt: bool = True

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> RiskConfig:
        if not self.drawdown_throttle_start_pct <= self.reducing_drawdown_pct <= self.halt_drawdown_pct:
            raise ValueError(
                "drawdown thresholds must satisfy drawdown_throttle_start_pct <= reducing_drawdown_pct <= "
                f"halt_drawdown_pct (got {self.drawdown_throttle_start_pct}, {self.reducing_drawdown_pct}, "
                f"{self.halt_drawdown_pct})"
            )
        return self


class OptimizerConfig(Section):
    enabled: bool = False
    target_annual_vol_pct: PositivePct = 15.0
    lookback_days: int = Field(default=60, ge=5)
    max_leverage: float = Field(default=1.0, gt=0, le=4.0)
    min_leverage: float = Field(default=0.1, gt=0)


class PortfolioConfig(Section):
    initial_capital: float = Field(default=100_000.0, gt=0)
    risk_per_trade_pct: PositivePct = 0.5
    account_type: Literal["cash", "margin"] = "cash"
    settlement_days: int = Field(default=1, ge=0, le=5)
    allow_short: bool = False
    max_trades_per_month: int | None = Field(default=None, ge=1)
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    optimizer: OptimizerConfig = OptimizerConfig()


class OperationalRiskConfig(Section):
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    missed_heartbeats: int = Field(default=3, ge=1)
    heartbeat_flag_path: str = "logs/heartbeat.csv"
    order_rate_counter_path: str = "logs/order_submissions.csv"
    max_orders_per_window: int = Field(default=50, ge=1)
    order_rate_window_s: float = Field(default=60.0, gt=0)
    duplicate_order_alarm_count: int = Field(default=3, ge=2)
    heartbeat_endpoint: str = "tcp://127.0.0.1:5556"
    command_endpoint: str = "tcp://127.0.0.1:5557"
    command_keys_dir: str = "state/keys"
    command_authorized_clients: tuple[str, ...] = ("risk_monitor", "operator")
    command_max_age_s: float = Field(default=5.0, gt=0)
    risk_log_interval_s: float = Field(default=5.0, gt=0)
    monitor_heartbeat_path: str = "logs/risk_monitor_heartbeat.json"
    on_monitor_stale: Literal["refuse_start", "reducing", "ignore"] = "reducing"

    @field_validator("heartbeat_endpoint", "command_endpoint")
    @classmethod
    def _zmq_endpoint(cls, value: str) -> str:
        if not value.startswith(("tcp://", "ipc://")):
            raise ValueError(f"must be a ZeroMQ endpoint starting with tcp:// or ipc:// (got {value!r})")
        return value


class SystemConfig(Section):
    kill_flag_path: str = "flags/KILL.flag"
    kill_now_flag_path: str = "flags/KILL_NOW.flag"
    log_dir: str = "logs"
    state_dir: str = "state"
    results_dir: str = "results"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MomentumParams(Section):
    roc_period: int = Field(default=60, ge=2)
    trend_sma_period: int = Field(default=100, ge=2)
    entry_roc_pct: float = 5.0
    exit_roc_pct: float = 0.0
    atr_period: int = Field(default=14, ge=2)
    atr_stop_multiple: float = Field(default=2.0, gt=0)


class MeanReversionParams(Section):
    rsi_period: int = Field(default=14, ge=2)
    oversold: float = Field(default=30.0, ge=0, le=100)
    exit_rsi: float = Field(default=55.0, ge=0, le=100)
    bb_period: int = Field(default=20, ge=2)
    bb_stdev: float = Field(default=2.0, gt=0)
    trend_sma_period: int = Field(default=200, ge=2)
    atr_period: int = Field(default=14, ge=2)
    atr_stop_multiple: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _exit_above_entry(self) -> MeanReversionParams:
        if self.exit_rsi <= self.oversold:
            raise ValueError(
                f"exit_rsi must be above oversold (got exit_rsi={self.exit_rsi}, oversold={self.oversold})"
            )
        return self


class SmaCrossoverParams(Section):
    fast_period: int = Field(default=10, ge=1)
    slow_period: int = Field(default=30, ge=2)
    atr_period: int = Field(default=14, ge=2)
    atr_stop_multiple: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period must be below slow_period (got fast_period={self.fast_period}, "
                f"slow_period={self.slow_period})"
            )
        return self


OrderTypeName = Literal["MKT", "LMT", "MOC", "LOC"]


GridValue = int | float | bool | str


class StrategyConfigBase(Section):
    enabled: bool = True
    order_type: OrderTypeName = "MKT"
    limit_offset_bps: float = Field(default=10.0, ge=0, description="LMT/LOC limit distance from the last close")
    grid: dict[str, tuple[GridValue, ...]] = Field(
        default_factory=dict, description="research grid: param name -> values to try (grid search, walk-forward)"
    )

    @model_validator(mode="after")
    def _grid_names_params(self) -> StrategyConfigBase:
        params_model = type(getattr(self, "params", None))
        known = set(getattr(params_model, "model_fields", {}))
        unknown = sorted(set(self.grid) - known)
        if unknown:
            raise ValueError(f"grid names unknown params {unknown}; params are {sorted(known)}")
        empty = sorted(name for name, values in self.grid.items() if not values)
        if empty:
            raise ValueError(f"grid values must be non-empty lists (empty: {empty})")
        return self


class MomentumConfig(StrategyConfigBase):
    params: MomentumParams = MomentumParams()


class MeanReversionConfig(StrategyConfigBase):
    params: MeanReversionParams = MeanReversionParams()


class SmaCrossoverConfig(StrategyConfigBase):
    enabled: bool = False
    params: SmaCrossoverParams = SmaCrossoverParams()


class StrategiesConfig(Section):
    momentum: MomentumConfig = MomentumConfig()
    mean_reversion: MeanReversionConfig = MeanReversionConfig()
    sma_crossover: SmaCrossoverConfig = SmaCrossoverConfig()


class SyntheticDataConfig(Section):
    n_symbols: int = Field(default=20, ge=1, le=5000)
    start: str = "2015-01-02"
    end: str = "2024-12-31"


MetricName = Literal["sharpe", "sortino", "calmar", "cagr", "total_return", "profit_factor"]


class WalkForwardConfig(Section):
    train_bars: int = Field(default=504, ge=20, description="sessions in each in-sample (train) window")
    test_bars: int = Field(default=126, ge=5, description="sessions in each out-of-sample (test) window")
    step_bars: int = Field(default=126, ge=1, description="sessions the windows move forward each time")
    anchored: bool = Field(default=False, description="true: every train window starts at the first session")
    warmup_bars: int = Field(default=250, ge=0, description="history before a test window used only for indicators")


class MonteCarloConfig(Section):
    n_paths: int = Field(default=10_000, ge=100, le=1_000_000)
    block_length_days: float = Field(default=20.0, gt=1.0, description="mean block length, stationary bootstrap")
    seed: int = 7


class DistributedConfig(Section):
    scheduler: str | None = Field(default=None, description="tcp://HOST:PORT of a Dask scheduler; null: local")
    workers: int | None = Field(default=None, ge=1, description="LocalCluster workers; null: one per core")
    retries: int = Field(default=1, ge=0, le=5)


class BacktestConfig(Section):
    data: str = Field(default="synthetic", description="'synthetic' or a folder of per-symbol CSV files")
    adjust_prices: bool = Field(default=False, description="back-adjust OHLC with Adj Close (splits, dividends)")
    start: str | None = None
    end: str | None = None
    seed: int = 42
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    moc_cutoff_minutes_before_close: int = Field(default=10, ge=0, le=120)
    risk_free_rate_pct: Pct = 0.0
    optimize_metric: MetricName = "sharpe"
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    monte_carlo: MonteCarloConfig = MonteCarloConfig()
    distributed: DistributedConfig = DistributedConfig()

    @field_validator("start", "end")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from datetime import date

        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"must be a date YYYY-MM-DD (got {value!r})") from exc
        return value


class IbFixedConfig(Section):
    per_share_usd: float = Field(default=0.005, ge=0)
    min_per_order_usd: float = Field(default=1.0, ge=0)
    max_pct_of_value: Pct = 1.0


class Tier(Section):
    up_to_shares_per_month: float = Field(gt=0, description="upper bound of the tier, shares traded this month")
    per_share_usd: float = Field(ge=0)


class IbTieredConfig(Section):
    tiers: tuple[Tier, ...] = (
        Tier(up_to_shares_per_month=300_000, per_share_usd=0.0035),
        Tier(up_to_shares_per_month=3_000_000, per_share_usd=0.0020),
        Tier(up_to_shares_per_month=20_000_000, per_share_usd=0.0015),
        Tier(up_to_shares_per_month=100_000_000, per_share_usd=0.0010),
        Tier(up_to_shares_per_month=float("inf"), per_share_usd=0.0005),
    )
    min_per_order_usd: float = Field(default=0.35, ge=0)
    max_pct_of_value: Pct = 1.0
    exchange_fee_per_share_usd: float = Field(default=0.003, ge=0)
    clearing_fee_per_share_usd: float = Field(default=0.0002, ge=0)
    finra_pass_through_pct_of_commission: Pct = 0.056
    sec_fee_rate_of_sale_value: float = Field(default=0.0000278, ge=0)
    finra_taf_per_share_sold_usd: float = Field(default=0.000166, ge=0)
    finra_taf_max_per_trade_usd: float = Field(default=8.30, ge=0)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        bounds = [t.up_to_shares_per_month for t in tiers]
        if not tiers or bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"tiers must be non-empty with strictly ascending up_to_shares_per_month (got {bounds})")
        return tiers


class SlippageConfig(Section):
    half_spread_bps: float = Field(default=2.0, ge=0)
    impact_coefficient_bps: float = Field(default=10.0, ge=0)
    impact_exponent: float = Field(default=0.5, gt=0, le=2)
    max_participation_pct: PositivePct = 10.0


class CostsConfig(Section):
    commission_model: Literal["ib_fixed", "ib_tiered", "none"] = "ib_fixed"
    ib_fixed: IbFixedConfig = IbFixedConfig()
    ib_tiered: IbTieredConfig = IbTieredConfig()
    slippage: SlippageConfig = SlippageConfig()


class PreTradeConfig(Section):
    max_order_quantity: int = Field(default=100_000, ge=1)
    max_order_notional_usd: float = Field(default=250_000.0, gt=0)
    max_adv_participation_pct: PositivePct = 5.0
    adv_lookback_days: int = Field(default=20, ge=1)
    price_collar_pct: PositivePct = 10.0
    allow_short_sales: bool = False
    duplicate_window_s: float = Field(default=5.0, ge=0)
    max_orders_per_second: int = Field(default=20, ge=1)
    max_orders_per_minute: int = Field(default=300, ge=1)


class AppConfig(Section):
    ib_connection: IbConnectionConfig = IbConnectionConfig()
    ibsim: IbSimConfig = IbSimConfig()
    risk_monitor: RiskMonitorConfig = RiskMonitorConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    symbols: tuple[str, ...] = ()
    operational_risk: OperationalRiskConfig = OperationalRiskConfig()
    system: SystemConfig = SystemConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    backtest: BacktestConfig = BacktestConfig()
    costs: CostsConfig = CostsConfig()
    pre_trade: PreTradeConfig = PreTradeConfig()

    @field_validator("symbols")
    @classmethod
    def _symbols_upper_unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in symbols if not s or s != s.strip().upper() or " " in s]
        if bad:
            raise ValueError(f"symbols must be upper-case tickers without spaces (got {bad})")
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols must be unique (duplicated: {dupes})")
        return symbols
