"""Typed configuration: one frozen pydantic model per section of ``config.yaml``.

Units are in the names (``_pct`` is percent, 0-100; ``_bps`` basis points; ``_s`` seconds; ``_usd`` dollars).
Components receive only their own section. This module imports nothing of the project.

Strict on purpose (issue 12): YAML reads ``true`` as a bool, ``"15"`` as text and ``.inf``/``.nan`` as floats, and
pydantic's lax mode would turn them into 1, 15 and a limit that never trips. Every number field is therefore a
``Float`` or an ``Int`` (an int literal is still a valid float: ``initial_capital: 100000``), every switch a
``Bool``, and ``Section`` refuses non-finite floats everywhere.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


def _number_not_bool_or_text(value: Any) -> Any:
    """Refuse what lax mode would coerce to a number: a bool (``True`` is 1) or text (``"15"``, ``"inf"``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not true/false (got {value!r})")
    if isinstance(value, str | bytes):
        raise ValueError(f"must be a number, not text; write it without quotes (got {value!r})")
    return value


def _true_or_false(value: Any) -> Any:
    """Refuse what lax mode would coerce to a bool: ``1``, ``0``, ``"yes"``, ``"off"``..."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false (got {value!r})")
    return value


Float = Annotated[float, BeforeValidator(_number_not_bool_or_text)]  # finite: Section sets allow_inf_nan=False
Int = Annotated[int, BeforeValidator(_number_not_bool_or_text)]
Bool = Annotated[bool, BeforeValidator(_true_or_false)]
Pct = Annotated[Float, Field(ge=0.0, le=100.0)]
PositivePct = Annotated[Float, Field(gt=0.0, le=100.0)]
Port = Annotated[Int, Field(ge=1, le=65535)]
ClientId = Annotated[Int, Field(ge=0, le=2_147_483_647)]
Seed = Annotated[Int, Field(ge=0, description="random seed; numpy refuses negative seeds")]

CLIENT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"  # a file name under command_keys_dir (core/ipc_keys.py)
MONITOR_CLIENT_NAME = "risk_monitor"


def iso_date(value: str | None) -> str | None:
    """``value`` unchanged if it is a date ``YYYY-MM-DD`` (or None); raises ValueError naming it otherwise."""
    if value is None:
        return value
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"must be a date YYYY-MM-DD (got {value!r})") from exc
    return value


def tcp_address(value: str, what: str, example: str = "tcp://127.0.0.1:5557") -> tuple[str, int]:
    """(host, port) of ``SCHEME://HOST:PORT``; raises ValueError saying what is wrong (port 1-65535, no ``*``)."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise ValueError(f"must be {what} with a port 1-65535, e.g. {example} (got {value!r})")
    return parts.hostname, port


class Section(BaseModel):
    """Unknown keys are errors (typos), values are frozen, and no float may be inf or nan (a limit that never trips)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class IbConnectionConfig(Section):
    mode: Literal["sim", "tws"] = "sim"
    host: str = "127.0.0.1"
    port: Port = 4002
    main_client_id: ClientId = 1
    account: str = Field(default="", description="IB account id; empty means the first managed account")
    connect_timeout_s: Float = Field(default=10.0, gt=0)
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

    speed: Float = Field(default=60.0, gt=0, le=100_000, description="sim seconds per wall second")
    demo_speed: Float = Field(default=8000.0, gt=0, le=100_000,
                              description="speed with run_system.sh --duration: a session in seconds")  # fmt: skip
    seed: Seed = 7
    data: str = Field(default="synthetic", min_length=1,
                      description="'synthetic' or a bar store folder (etl/fetch_daily_bars.py writes one)")  # fmt: skip
    cost_profile: Literal["default", "realistic", "planted"] = Field(
        default="default", description="ibsim.cost_profiles: what MOC/LOC/Adaptive/TWAP cost in the simulation"
    )


class RiskMonitorConfig(Section):
    risk_monitor_client_id: ClientId = 2
    kill_drawdown_pct: PositivePct = 15.0
    max_daily_loss_pct: PositivePct = 5.0
    max_daily_fills: Int = Field(default=500, ge=1)
    max_daily_fill_notional_usd: Float = Field(default=5_000_000.0, gt=0)
    confirm_checks: Int = Field(default=3, ge=1, description="consecutive breaching checks before a kill")
    check_interval_s: Float = Field(default=0.5, gt=0)
    command_timeout_s: Float = Field(default=3.0, gt=0)
    fallback_action: Literal["flatten", "cancel_only"] = "flatten"
    max_broker_open_orders: Int = Field(
        default=100, ge=1, description="working orders of every client at the broker before a kill"
    )
    max_broker_submissions_per_window: Int = Field(
        default=100, ge=1, description="new orders of every client seen at the broker within the window"
    )
    broker_submission_window_s: Float = Field(default=10.0, gt=0)


class SizingConfig(Section):
    method: Literal["volatility", "fixed_shares", "fixed_fraction"] = "volatility"
    fixed_shares: Int = Field(default=100, ge=1)
    fixed_fraction_pct: PositivePct = 10.0
    min_quantity: Int = Field(default=1, ge=1)


class RiskConfig(Section):
    """Drawdowns are measured from peak equity, in percent."""

    max_positions: Int = Field(default=20, ge=1)
    max_gross_exposure_pct: Float = Field(default=100.0, gt=0, le=400.0)
    max_position_weight_pct: PositivePct = 20.0
    drawdown_throttle_start_pct: Pct = 5.0
    reducing_drawdown_pct: PositivePct = 10.0
    halt_drawdown_pct: PositivePct = 20.0
    min_size_scale: Float = Field(default=0.25, ge=0.0, le=1.0)
    rearm_after_flat_sessions: Int | None = Field(
        default=None, ge=1, description="REDUCING -> ACTIVE after this many flat sessions; null: operator decides"
    )
    flatten_on_halt: Bool = True
    on_limit: Literal["clip", "reject"] = Field(
        default="clip", description="an entry above a size limit (weight, gross, ADV share, notional, quantity) is "
                                    "cut to the limit (clip) or refused (reject); refused either way if nothing is left"
    )

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
    enabled: Bool = False
    target_annual_vol_pct: PositivePct = 15.0
    lookback_days: Int = Field(default=60, ge=5)
    max_leverage: Float = Field(default=1.0, gt=0, le=4.0)
    min_leverage: Float = Field(default=0.1, gt=0)


class PortfolioConfig(Section):
    initial_capital: Float = Field(default=100_000.0, gt=0)
    risk_per_trade_pct: PositivePct = 0.5
    account_type: Literal["cash", "margin"] = "cash"
    settlement_days: Int = Field(default=1, ge=0, le=5)
    allow_short: Bool = False
    max_trades_per_month: Int | None = Field(default=None, ge=1)
    sizing: SizingConfig = SizingConfig()
    risk: RiskConfig = RiskConfig()
    optimizer: OptimizerConfig = OptimizerConfig()


class OperationalRiskConfig(Section):
    heartbeat_interval_s: Float = Field(default=1.0, gt=0)
    missed_heartbeats: Int = Field(default=3, ge=1)
    heartbeat_flag_path: str = "logs/heartbeat.csv"
    order_rate_counter_path: str = "logs/order_submissions.csv"
    max_orders_per_window: Int = Field(default=50, ge=1)
    order_rate_window_s: Float = Field(default=60.0, gt=0)
    duplicate_order_alarm_count: Int = Field(default=3, ge=2)
    # local-only by default: Unix sockets in a 0700 folder (no other user can connect, read or publish); tcp://
    # for a monitor on another host, and then the heartbeat is CURVE like the command channel (core.ipc_endpoints)
    heartbeat_endpoint: str = "ipc://state/run/heartbeat.sock"
    command_endpoint: str = "ipc://state/run/command.sock"
    command_keys_dir: str = "state/keys"
    command_authorized_clients: tuple[str, ...] = ("risk_monitor", "operator", "dashboard")
    command_max_age_s: Float = Field(default=5.0, gt=0)
    risk_log_interval_s: Float = Field(default=5.0, gt=0)
    monitor_heartbeat_path: str = "logs/risk_monitor_heartbeat.json"
    on_monitor_stale: Literal["refuse_start", "reducing", "ignore"] = "reducing"

    @field_validator("heartbeat_endpoint", "command_endpoint")
    @classmethod
    def _zmq_endpoint(cls, value: str) -> str:
        """The engine binds both and the monitor connects to both, so a wildcard port (``:*``) cannot work."""
        if value.startswith("tcp://"):
            tcp_address(value, "tcp://HOST:PORT")
        elif not (value.startswith("ipc://") and len(value) > len("ipc://")):
            raise ValueError(
                f"must be a ZeroMQ endpoint tcp://HOST:PORT or ipc://PATH, e.g. tcp://127.0.0.1:5557 (got {value!r})"
            )
        return value

    @field_validator("command_endpoint")
    @classmethod
    def _command_apart_from_heartbeat(cls, command: str, info: ValidationInfo) -> str:
        """The engine binds both sockets: on one address the second bind fails, or worse, commands go to the PUB."""
        heartbeat = info.data.get("heartbeat_endpoint")  # absent when it failed its own check
        if heartbeat is not None and _same_bind_address(heartbeat, command):
            raise ValueError(
                f"must differ from operational_risk.heartbeat_endpoint, the engine binds both (got {command!r} "
                f"and heartbeat_endpoint {heartbeat!r}); use another port, e.g. tcp://127.0.0.1:5557"
            )
        return command

    @field_validator("command_authorized_clients")
    @classmethod
    def _monitor_can_always_command(cls, clients: tuple[str, ...]) -> tuple[str, ...]:
        """Without its key the monitor could watch a breach but not make the engine stop; names are file names."""
        bad = [name for name in clients if not re.match(CLIENT_NAME_PATTERN, name)]
        if bad:
            raise ValueError(
                f"client names must be lower-case letters, digits and _, starting with a letter, at most 32 "
                f"(pattern {CLIENT_NAME_PATTERN}) (got {list(clients)}; bad: {bad})"
            )
        dupes = sorted({name for name in clients if clients.count(name) > 1})
        if dupes:
            raise ValueError(f"client names must be unique (got {list(clients)}; duplicated: {dupes})")
        if MONITOR_CLIENT_NAME not in clients:
            raise ValueError(
                f"must include {MONITOR_CLIENT_NAME!r}: the risk monitor must always be able to command the engine "
                f"(got {list(clients)})"
            )
        return clients


def _same_bind_address(first: str, second: str) -> bool:
    """True when two endpoints cannot both be bound: one ipc path, or one tcp port on overlapping hosts."""
    if first.startswith("ipc://") or second.startswith("ipc://"):
        return first == second
    (host_a, port_a), (host_b, port_b) = tcp_address(first, "tcp"), tcp_address(second, "tcp")
    loopback, wildcard = {"127.0.0.1", "localhost", "::1"}, {"*", "0.0.0.0", "::"}
    same_host = host_a == host_b or {host_a, host_b} <= loopback or bool({host_a, host_b} & wildcard)
    return port_a == port_b and same_host


class SystemConfig(Section):
    kill_flag_path: str = "flags/KILL.flag"
    kill_now_flag_path: str = "flags/KILL_NOW.flag"
    log_dir: str = "logs"
    state_dir: str = "state"
    results_dir: str = "results"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DashboardConfig(Section):
    """The operator's web page (``dashboard/``): loopback only, a token in ``token_path`` created on first run."""

    enabled: Bool = Field(default=True, description="run_system.sh starts the dashboard with the engine and monitor")
    host: str = Field(default="127.0.0.1", description="loopback only: 127.0.0.1, localhost or ::1")
    port: Port = 8765
    token_path: str = Field(default="state/keys/dashboard.token", description="created 0600 on first run")
    client_name: str = Field(default="dashboard", pattern=CLIENT_NAME_PATTERN,
                             description="its key on the command channel (in command_authorized_clients)")  # fmt: skip
    refresh_s: Float = Field(default=0.25, gt=0, le=5, description="how often the page's files are re-read")
    status_interval_s: Float = Field(default=2.0, gt=0, description="how often the engine is asked for STATUS")
    command_timeout_s: Float = Field(default=3.0, gt=0, description="wait for the engine's answer to a command")

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        """The page can halt and flatten the account: it is never served beyond this host."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"must be a loopback address: 127.0.0.1, localhost or ::1 (got {host!r})")
        return host


class MomentumParams(Section):
    roc_period: Int = Field(default=60, ge=2)
    trend_sma_period: Int = Field(default=100, ge=2)
    entry_roc_pct: Float = 5.0
    exit_roc_pct: Float = 0.0
    atr_period: Int = Field(default=14, ge=2)
    atr_stop_multiple: Float = Field(default=2.0, gt=0)


class MeanReversionParams(Section):
    rsi_period: Int = Field(default=14, ge=2)
    oversold: Float = Field(default=30.0, ge=0, le=100)
    exit_rsi: Float = Field(default=55.0, ge=0, le=100)
    bb_period: Int = Field(default=20, ge=2)
    bb_stdev: Float = Field(default=2.0, gt=0)
    trend_sma_period: Int = Field(default=200, ge=2)
    atr_period: Int = Field(default=14, ge=2)
    atr_stop_multiple: Float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _exit_above_entry(self) -> MeanReversionParams:
        if self.exit_rsi <= self.oversold:
            raise ValueError(
                f"exit_rsi must be above oversold (got exit_rsi={self.exit_rsi}, oversold={self.oversold})"
            )
        return self


class SmaCrossoverParams(Section):
    fast_period: Int = Field(default=10, ge=1)
    slow_period: Int = Field(default=30, ge=2)
    atr_period: Int = Field(default=14, ge=2)
    atr_stop_multiple: Float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period must be below slow_period (got fast_period={self.fast_period}, "
                f"slow_period={self.slow_period})"
            )
        return self


OrderTypeName = Literal["MKT", "LMT", "MOC", "LOC", "WHEEL"]  # WHEEL: the AlgoWheel chooses (algo_wheel)


GridValue = int | float | bool | str


# In a grid an inf passes the type check and is then refused by its param's own rule, with the other values' problems.
_GridEntry = int | Annotated[float, AllowInfNan(True)] | bool | str


VETO_DEFAULT_FEATURES: tuple[str, ...] = (  # the daily bar features of ``daily_signals`` (data.bar_features)
    "ret_1d", "ret_5d", "ret_20d", "vol_20d", "rsi_14", "atr_14_pct", "volume_z_20",
)  # fmt: skip
Probability = Annotated[Float, Field(gt=0.0, lt=1.0)]


class VetoTrainingConfig(Section):
    """How ``ml.ml_model_trainer`` labels a strategy's signals, trains and validates its veto model.

    Labels: ``triple_barrier`` (1 when the price reaches ``profit_take_multiple`` x the signal's stop distance in
    the trade's favour before ``stop_multiple`` x it against, within ``horizon_bars`` sessions; at the horizon, the
    sign of the return) or ``fixed_horizon`` (the sign of the return after ``horizon_bars`` sessions).
    """

    label: Literal["triple_barrier", "fixed_horizon"] = "triple_barrier"
    horizon_bars: Int = Field(default=20, ge=1, le=252, description="sessions until the vertical barrier")
    profit_take_multiple: Float = Field(default=1.0, gt=0, description="upper barrier, in stop distances")
    stop_multiple: Float = Field(default=1.0, gt=0, description="lower barrier, in stop distances")
    features: tuple[str, ...] = Field(default=VETO_DEFAULT_FEATURES,
                                      description="daily_signals features the model reads, in order")  # fmt: skip
    cv_folds: Int = Field(default=5, ge=2, le=20, description="purged k-fold cross-validation folds")
    embargo_bars: Int = Field(default=5, ge=0, le=252, description="sessions embargoed after each test fold")
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    calibration_folds: Int = Field(default=3, ge=2, le=10, description="purged folds of the probability calibration")
    n_estimators: Int = Field(default=200, ge=10, le=5000, description="random forest trees")
    min_samples_leaf: Int = Field(default=20, ge=1, description="random forest leaf size (larger: smoother)")
    min_events: Int = Field(default=100, ge=10, description="labelled signals needed to train at all")
    thresholds_tried: tuple[Probability, ...] = Field(
        default=(0.40, 0.45, 0.50, 0.55, 0.60),
        description="veto thresholds walk-forward validated; DSR and PBO count them as trials")  # fmt: skip

    @field_validator("features", "thresholds_tried")
    @classmethod
    def _unique(cls, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if not values:
            raise ValueError("must not be empty (got [])")
        dupes = sorted({v for v in values if values.count(v) > 1}, key=str)
        if dupes:
            raise ValueError(f"must not repeat (got {list(values)}; repeated: {dupes})")
        return values


class VetoConfig(Section):
    """``strategies.<name>.veto``: the signal veto (``portfolio/veto.py``) in backtest and live.

    An entry signal whose model probability (that its trade works) is below ``threshold`` is not traded; exits
    are never vetoed. ``on_missing_features``: what a signal without fresh features gets, ``veto`` (no trade, the
    default) or ``allow``. The promoted model is read from ``<models_dir>/veto/<strategy>/CURRENT``.
    """

    enabled: Bool = False
    threshold: Probability = 0.5
    models_dir: str = Field(default="state/models", min_length=1, description="promoted models (veto/ inside)")
    on_missing_features: Literal["veto", "allow"] = "veto"
    training: VetoTrainingConfig = VetoTrainingConfig()


class StrategyConfigBase(Section):
    enabled: Bool = True
    order_type: OrderTypeName = "MKT"
    limit_offset_bps: Float = Field(default=10.0, ge=0, description="LMT/LOC limit distance from the last close")
    stop: Literal["atr", "none"] = Field(
        default="none",
        description="atr: each entry fill places a protective STP order at the fill price -/+ the strategy's stop "
        "distance (atr_stop_multiple x ATR), cancelled with the exit; none: the distance only sizes positions",
    )
    grid: dict[str, tuple[_GridEntry, ...]] = Field(
        default_factory=dict, description="research grid: param name -> values to try (grid search, walk-forward)"
    )
    veto: VetoConfig = VetoConfig()

    @field_validator("grid")
    @classmethod
    def _grid_values_suit_their_param(cls, grid: dict[str, tuple[GridValue, ...]]) -> dict[str, tuple[GridValue, ...]]:
        """Each value is checked by its param's own rule now, so ``"60"`` or ``true`` is refused at load time rather
        than turning into a combination that a sweep silently skips. Rules between params (fast < slow) are left
        to the sweep, which refuses only the combinations that break them."""
        params_field = cls.model_fields.get("params")
        params_model = getattr(params_field, "annotation", None)
        if not (isinstance(params_model, type) and issubclass(params_model, BaseModel)):
            return grid
        problems = []
        for name, values in grid.items():
            for value in values if name in params_model.model_fields else ():
                try:
                    params_model.model_validate({name: value})
                except ValidationError as exc:
                    own = [_rule_text(e) for e in exc.errors() if e["loc"][:1] == (name,)]
                    problems += [f"{name} (got {value!r}) {own[0]}"] if own else []
        if problems:
            raise ValueError("each value must suit its param: " + "; ".join(problems))
        return grid

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


def _rule_text(error: Any) -> str:
    """A pydantic error as "must ..." without its own "(got ...)" (the grid message names each value once)."""
    if error["type"] == "finite_number":
        return "must be a finite number"
    text = error["msg"].removeprefix("Value error, ")
    return re.sub(r" \(got .*\)$", "", text)


class MomentumConfig(StrategyConfigBase):
    params: MomentumParams = MomentumParams()


class MeanReversionConfig(StrategyConfigBase):
    params: MeanReversionParams = MeanReversionParams()


class SmaCrossoverConfig(StrategyConfigBase):
    enabled: Bool = False
    params: SmaCrossoverParams = SmaCrossoverParams()


class StrategiesConfig(Section):
    momentum: MomentumConfig = MomentumConfig()
    mean_reversion: MeanReversionConfig = MeanReversionConfig()
    sma_crossover: SmaCrossoverConfig = SmaCrossoverConfig()


def _not_before_start(end: str | None, info: ValidationInfo) -> str | None:
    """``end`` checked against ``start`` of the same section (already validated: fields run in order)."""
    start = info.data.get("start")
    if end is not None and start is not None and iso_date(end) and end < start:
        raise ValueError(f"must not be before start (got end {end!r}, start {start!r})")
    return end


class SyntheticDataConfig(Section):
    n_symbols: Int = Field(default=20, ge=1, le=5000)
    start: str = "2015-01-02"
    end: str = "2024-12-31"

    _dates = field_validator("start", "end")(iso_date)
    _ordered = field_validator("end")(_not_before_start)


MetricName = Literal["sharpe", "sortino", "calmar", "cagr", "total_return", "profit_factor"]


class WalkForwardConfig(Section):
    train_bars: Int = Field(default=504, ge=20, description="sessions in each in-sample (train) window")
    test_bars: Int = Field(default=126, ge=5, description="sessions in each out-of-sample (test) window")
    step_bars: Int = Field(default=126, ge=1, description="sessions the windows move forward each time")
    anchored: Bool = Field(default=False, description="true: every train window starts at the first session")
    warmup_bars: Int = Field(default=250, ge=0, description="history before a test window used only for indicators")


class MonteCarloConfig(Section):
    n_paths: Int = Field(default=10_000, ge=100, le=1_000_000)
    block_length_days: Float = Field(default=20.0, gt=1.0, description="mean block length, stationary bootstrap")
    seed: Seed = 7


class DistributedConfig(Section):
    scheduler: str | None = Field(default=None, description="tcp://HOST:PORT of a Dask scheduler; null: local")
    workers: Int | None = Field(default=None, ge=1, description="LocalCluster workers; null: one per core")
    retries: Int = Field(default=1, ge=0, le=5)

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is not None:
            tcp_address(value, "a Dask scheduler address SCHEME://HOST:PORT", "tcp://127.0.0.1:8786")
        return value


class BacktestConfig(Section):
    data: str = Field(default="synthetic", description="'synthetic' or a folder of per-symbol CSV files")
    adjust_prices: Bool = Field(default=False, description="back-adjust OHLC with Adj Close (splits, dividends)")
    start: str | None = None
    end: str | None = None
    seed: Seed = 42
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    moc_cutoff_minutes_before_close: Int = Field(default=10, ge=0, le=120)
    risk_free_rate_pct: Pct = 0.0
    optimize_metric: MetricName = "sharpe"
    halted_trials_eligible: Bool = Field(
        default=False, description="a grid/walk-forward trial that went HALTED may still be chosen as best"
    )
    walk_forward: WalkForwardConfig = WalkForwardConfig()
    monte_carlo: MonteCarloConfig = MonteCarloConfig()
    distributed: DistributedConfig = DistributedConfig()

    _dates = field_validator("start", "end")(iso_date)
    _ordered = field_validator("end")(_not_before_start)


class IbFixedConfig(Section):
    per_share_usd: Float = Field(default=0.005, ge=0)
    min_per_order_usd: Float = Field(default=1.0, ge=0)
    max_pct_of_value: Pct = 1.0


class Tier(Section):
    """The one float that may be ``.inf``: the last tier's bound reads "and above" (nan is still refused)."""

    up_to_shares_per_month: Float = Field(gt=0, allow_inf_nan=True,
                                          description="upper bound of the tier, shares traded this month")  # fmt: skip
    per_share_usd: Float = Field(ge=0)


class IbTieredConfig(Section):
    tiers: tuple[Tier, ...] = (
        Tier(up_to_shares_per_month=300_000, per_share_usd=0.0035),
        Tier(up_to_shares_per_month=3_000_000, per_share_usd=0.0020),
        Tier(up_to_shares_per_month=20_000_000, per_share_usd=0.0015),
        Tier(up_to_shares_per_month=100_000_000, per_share_usd=0.0010),
        Tier(up_to_shares_per_month=float("inf"), per_share_usd=0.0005),
    )
    min_per_order_usd: Float = Field(default=0.35, ge=0)
    max_pct_of_value: Pct = 1.0
    exchange_fee_per_share_usd: Float = Field(default=0.003, ge=0)
    clearing_fee_per_share_usd: Float = Field(default=0.0002, ge=0)
    finra_pass_through_pct_of_commission: Pct = 0.056
    sec_fee_rate_of_sale_value: Float = Field(default=0.0000278, ge=0)
    finra_taf_per_share_sold_usd: Float = Field(default=0.000166, ge=0)
    finra_taf_max_per_trade_usd: Float = Field(default=8.30, ge=0)

    @field_validator("tiers")
    @classmethod
    def _ascending(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        bounds = [t.up_to_shares_per_month for t in tiers]
        if not tiers or bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"tiers must be non-empty with strictly ascending up_to_shares_per_month (got {bounds})")
        return tiers


class SlippageConfig(Section):
    half_spread_bps: Float = Field(default=2.0, ge=0)
    impact_coefficient_bps: Float = Field(default=10.0, ge=0)
    impact_exponent: Float = Field(default=0.5, gt=0, le=2)
    max_participation_pct: PositivePct = 10.0


class CostsConfig(Section):
    commission_model: Literal["ib_fixed", "ib_tiered", "none"] = "ib_fixed"
    ib_fixed: IbFixedConfig = IbFixedConfig()
    ib_tiered: IbTieredConfig = IbTieredConfig()
    slippage: SlippageConfig = SlippageConfig()


class PreTradeConfig(Section):
    max_order_quantity: Int = Field(default=100_000, ge=1)
    max_order_notional_usd: Float = Field(default=250_000.0, gt=0)
    max_adv_participation_pct: PositivePct = 5.0
    adv_lookback_days: Int = Field(default=20, ge=1)
    price_collar_pct: PositivePct = 10.0
    allow_short_sales: Bool = False
    duplicate_window_s: Float = Field(default=5.0, ge=0)
    max_orders_per_second: Int = Field(default=20, ge=1)
    max_orders_per_minute: Int = Field(default=300, ge=1)


class WheelArm(StrEnum):
    """An execution style the wheel can choose; the order of this enum is the order of the posterior's rows."""

    MOC = "MOC"
    LOC = "LOC"
    ADAPTIVE_URGENT = "ADAPTIVE_URGENT"
    ADAPTIVE_NORMAL = "ADAPTIVE_NORMAL"
    ADAPTIVE_PATIENT = "ADAPTIVE_PATIENT"
    TWAP = "TWAP"


class AlgoWheelConfig(Section):
    """``algo_wheel``: the AlgoWheel's settings (units in the names); used by strategies with ``order_type: WHEEL``.

    ``models_dir``: where the promoted model lives (``ml.algowheel_store``); without one the wheel starts from
    its prior. ``seed``: the wheel's random draws (a backtest is deterministic for a seed).
    """

    policy_name: str = Field(default="algo_wheel", min_length=1, max_length=40)
    arms: tuple[WheelArm, ...] = Field(default=tuple(WheelArm), min_length=1, description="arms the wheel may choose")
    epsilon: Float = Field(default=0.05, gt=0.0, le=1.0, description="uniform exploration floor; > 0 for OPE")
    propensity_draws: Int = Field(default=128, ge=32, le=100_000, description="posterior draws per decision")
    noise_sd_bps: Float = Field(default=10.0, gt=0.0, description="shortfall noise sd around the model")
    prior_sd_bps: Float = Field(default=50.0, gt=0.0, description="prior sd of every coefficient")
    reward_clip_bps: Float = Field(default=500.0, gt=0.0)
    auction_cutoff_margin_minutes: Float = Field(
        default=1.0, ge=0.0, description="MOC/LOC: at least this long before the exchange's auction cut-off"
    )
    auction_on_half_days: Bool = True
    loc_offset_bps: Float = Field(
        default=10.0, ge=0.0, description="LOC limit away from the reference, capped by the price collar"
    )
    adaptive_min_minutes: Float = Field(default=1.0, ge=0.0, description="Adaptive: minutes of session left")
    twap_min_minutes: Float = Field(default=30.0, gt=0.0, description="TWAP: minutes of session left")
    twap_max_minutes: Float = Field(default=60.0, gt=0.0, description="longest TWAP window")
    twap_end_buffer_minutes: Float = Field(default=2.0, ge=0.0, description="TWAP ends this long before close")
    twap_time_zone: Literal["US/Eastern", "UTC"] = Field(
        default="US/Eastern", description="how TWAP start/end times are written for IB"
    )
    models_dir: str = Field(default="state/models", min_length=1, description="promoted models (algowheel/ inside)")
    seed: Int = Field(default=11, ge=0, description="the wheel's random draws")

    @model_validator(mode="after")
    def _consistent(self) -> AlgoWheelConfig:
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms must not repeat (got {[a.value for a in self.arms]})")
        if self.twap_max_minutes < self.twap_min_minutes:
            raise ValueError(
                f"twap_max_minutes must be >= twap_min_minutes (got {self.twap_max_minutes} < {self.twap_min_minutes})"
            )
        if self.twap_min_minutes <= self.twap_end_buffer_minutes:
            raise ValueError(
                f"twap_min_minutes must exceed twap_end_buffer_minutes (got {self.twap_min_minutes} "
                f"<= {self.twap_end_buffer_minutes})"
            )
        return self


class FeaturesConfig(Section):
    """The Feast feature repository (``ml/feature_store.py`` is its one adapter)."""

    repo_path: str = Field(default="feature_repo", min_length=1,
                           description="folder with feature_store.yaml; relative to the working directory")  # fmt: skip


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
    algo_wheel: AlgoWheelConfig = AlgoWheelConfig()
    features: FeaturesConfig = FeaturesConfig()
    dashboard: DashboardConfig = DashboardConfig()

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
