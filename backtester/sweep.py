"""Research trials as pure functions, so a sweep's result does not depend on where it ran.

A trial is (data reference, strategy, params, window, seed) -> metrics and daily returns. ``run_trial`` is the
task the serial runner calls in-process and the Dask runner ships to workers: everything it needs travels in
small frozen values (the config as a plain dict, a ``DataRef`` that says how to obtain the bars); the bars
themselves reach each worker process once (the Dask runner scatters them; ``DataRef.load`` is cached per process).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtester.engine import build_backtest
from backtester.performance import compute_metrics, round_trips_from_fills
from core.config_models import AppConfig, GridValue
from data.calendar import TradingCalendar
from data.loading import LoadedData, load_panel
from data.panel import BarPanel
from strategy.registry import build_strategy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DataRef:
    """How any process obtains the bars of a sweep; small, hashable and pure (same ref -> same panel)."""

    spec: str
    symbols: tuple[str, ...] | None
    start: str | None
    end: str | None
    seed: int
    adjust: bool = False
    synthetic_n_symbols: int = 20
    synthetic_start: str = "2015-01-02"
    synthetic_end: str = "2024-12-31"

    @classmethod
    def from_config(
        cls, config: AppConfig, data: str, symbols: Sequence[str] | None, start: str | None, end: str | None, seed: int
    ) -> DataRef:
        syn = config.backtest.synthetic
        return cls(
            spec=data,
            symbols=tuple(symbols) if symbols else None,
            start=start,
            end=end,
            seed=seed,
            adjust=config.backtest.adjust_prices,
            synthetic_n_symbols=syn.n_symbols,
            synthetic_start=syn.start,
            synthetic_end=syn.end,
        )

    def load(self) -> LoadedData:
        """The bars, built once per process: a worker handed them by the runner (``remember_loaded``) reuses
        those; otherwise they are loaded here and kept for the next trial."""
        loaded = _LOADED.get(self)
        if loaded is None:
            loaded = remember_loaded(self, _load(self))
        return loaded


_LOADED: dict[DataRef, LoadedData] = {}
_LOADED_KEPT = 4  # data sets kept per process (a walk-forward uses one; a recalibration a few)


def remember_loaded(ref: DataRef, loaded: LoadedData) -> LoadedData:
    """Keep ``loaded`` as this process's bars for ``ref`` (the Dask runner scatters the panel once and each worker
    stores it here, so no worker reads or generates the data itself); the oldest data set is dropped beyond
    ``_LOADED_KEPT``. The arrays are made read-only again (unpickling drops the flag)."""
    for name in ("ts_event_ns", "open", "high", "low", "close", "volume"):
        getattr(loaded.panel, name).setflags(write=False)
    _LOADED.pop(ref, None)
    _LOADED[ref] = loaded
    while len(_LOADED) > _LOADED_KEPT:
        _LOADED.pop(next(iter(_LOADED)))
    return loaded


def _load(ref: DataRef) -> LoadedData:
    from core.config_models import SyntheticDataConfig

    synthetic = SyntheticDataConfig(n_symbols=ref.synthetic_n_symbols, start=ref.synthetic_start, end=ref.synthetic_end)
    return load_panel(
        ref.spec,
        calendar=TradingCalendar(),
        symbols=ref.symbols,
        start=ref.start,
        end=ref.end,
        seed=ref.seed,
        synthetic=synthetic,
        adjust=ref.adjust,
    )


Params = tuple[tuple[str, GridValue], ...]


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """One backtest of a sweep: rows [row_start, row_end) of the panel; trading starts at ``trade_from_row``
    (relative to row_start; earlier rows only warm up indicators)."""

    trial_id: int
    strategy: str
    params: Params
    row_start: int = 0
    row_end: int | None = None
    trade_from_row: int = 0

    @property
    def params_dict(self) -> dict[str, GridValue]:
        return dict(self.params)


@dataclass(frozen=True, slots=True)
class TrialResult:
    trial_id: int
    params: dict[str, GridValue]
    metrics: dict[str, float]
    dates: np.ndarray = field(repr=False)  # datetime64[ns] of the traded segment's sessions
    equity: np.ndarray = field(repr=False)  # equity at each of those closes
    n_trades: int = 0
    error: str | None = None
    attempts: int = 1
    halted_on: str | None = None  # ISO date the trial's trading state went HALTED (None: it never did)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, trial: TrialSpec, error: str) -> TrialResult:
        """The result of a trial that did not complete: kept and reported, never dropped."""
        return cls(
            trial_id=trial.trial_id,
            params=trial.params_dict,
            metrics={},
            dates=np.zeros(0, dtype="datetime64[ns]"),
            equity=np.zeros(0),
            error=error,
        )

    @property
    def returns(self) -> np.ndarray:
        """Daily simple returns of the traded segment (length len(equity) - 1)."""
        if len(self.equity) < 2:
            return np.zeros(0)
        return np.diff(self.equity) / self.equity[:-1]


def expand_grid(grid: Mapping[str, Sequence[GridValue]]) -> list[dict[str, GridValue]]:
    """Every combination, in a stable order (names sorted, values as given)."""
    names = sorted(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def with_params(config: AppConfig, strategy: str, params: Mapping[str, GridValue]) -> AppConfig:
    """A copy of ``config`` whose strategy params are replaced; validated like the file (raises ValueError)."""
    raw = config.model_dump(mode="python")
    raw["strategies"][strategy]["params"].update(params)
    return AppConfig.model_validate(raw)


def valid_combinations(
    config: AppConfig, strategy: str, combos: Sequence[Mapping[str, GridValue]]
) -> tuple[list[dict[str, GridValue]], list[str]]:
    """Split grid combinations into runnable ones and one line per combination the params rules refuse."""
    good, refused = [], []
    for combo in combos:
        try:
            with_params(config, strategy, combo)
        except ValueError as exc:
            refused.append(f"{combo}: {str(exc).splitlines()[-1].strip()}")
        else:
            good.append(dict(combo))
    return good, refused


def config_payload(config: AppConfig) -> str:
    """The config as JSON text: small, picklable, and identical wherever it is rebuilt."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)


@functools.lru_cache(maxsize=8)
def _config_from_payload(payload: str) -> AppConfig:
    return AppConfig.model_validate(json.loads(payload))


def run_trial(payload: str, data: DataRef, trial: TrialSpec) -> TrialResult:
    """Run one trial; never raises (a failure comes back as ``error`` so the runner can retry and report it)."""
    try:
        return _run_trial(payload, data, trial)
    except Exception as exc:
        log.warning("event=trial_failed trial_id=%d params=%s error=%r", trial.trial_id, trial.params_dict, exc)
        return TrialResult.failure(trial, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")


@functools.lru_cache(maxsize=256)
def _trial_config(payload: str, strategy: str, params: Params) -> AppConfig:
    """The config of a trial's params, validated once per process: a walk-forward runs each of its grid's
    combinations once per window (16 windows by default), and validating the whole config costs ~1 ms."""
    base = _config_from_payload(payload)
    return with_params(base, strategy, dict(params)) if params else base


def _run_trial(payload: str, data: DataRef, trial: TrialSpec) -> TrialResult:
    config = _trial_config(payload, trial.strategy, trial.params)
    panel = window(data.load().panel, trial.row_start, trial.row_end)
    strategy = build_strategy(trial.strategy, config.strategies)
    result = build_backtest(config, panel, [strategy], TradingCalendar(), trade_from_index=trial.trade_from_row).run()
    equity = result.equity.iloc[trial.trade_from_row :]
    fills = result.fills
    if trial.trade_from_row and len(equity):
        fills = fills[fills["date"] >= equity.index[0]]
    trades = round_trips_from_fills(fills, sessions=result.equity.index)
    start_equity = float(equity.iloc[0]) if len(equity) else config.portfolio.initial_capital
    metrics = compute_metrics(
        equity,
        trades,
        fills,
        start_equity,
        gross_exposure=result.gross_exposure.iloc[trial.trade_from_row :],
        risk_free_rate_pct=config.backtest.risk_free_rate_pct,
    )
    return TrialResult(
        trial_id=trial.trial_id,
        params=trial.params_dict,
        metrics={k: float(v) for k, v in metrics.items()},
        dates=equity.index.to_numpy(dtype="datetime64[ns]"),
        equity=equity.to_numpy(dtype=np.float64),
        n_trades=len(trades),
        halted_on=first_halt(result.state_history),
    )


def first_halt(state_history: Sequence[str]) -> str | None:
    """The New York date of the first move to HALTED in a run's ``state_history`` (``ts_ns:FROM->TO``), or None."""
    for change in state_history_iso(state_history):
        if change["to"] == "HALTED":
            return change["date"]
    return None


def state_history_iso(state_history: Sequence[str]) -> list[dict[str, str]]:
    """``ts_ns:FROM->TO`` records as ``{"date": ISO date (New York), "from": ..., "to": ...}`` for people."""
    changes = []
    for record in state_history:
        ts_text, _, move = record.partition(":")
        before, _, after = move.partition("->")
        day = pd.Timestamp(int(ts_text), unit="ns", tz="UTC").tz_convert("America/New_York").date()
        changes.append({"date": day.isoformat(), "from": before, "to": after})
    return changes


def window(panel: BarPanel, row_start: int, row_end: int | None) -> BarPanel:
    """Rows [row_start, row_end) of a panel, as a panel (views, no copies)."""
    if row_start == 0 and (row_end is None or row_end >= len(panel.dates)):
        return panel
    end = len(panel.dates) if row_end is None else row_end
    return panel.select(panel.dates[row_start], panel.dates[end - 1])


def results_frame(results: Sequence[TrialResult], metric_keys: Sequence[str]) -> pd.DataFrame:
    """One row per trial: id, params (one column each), status and the metrics."""
    rows: list[dict[str, Any]] = []
    for r in sorted(results, key=lambda r: r.trial_id):
        row: dict[str, Any] = {"trial_id": r.trial_id, **{f"param_{k}": v for k, v in r.params.items()}}
        row["status"] = "ok" if r.ok else "failed"
        row["halted_on"] = r.halted_on
        row["attempts"] = r.attempts
        row.update({k: r.metrics.get(k, np.nan) for k in metric_keys})
        rows.append(row)
    return pd.DataFrame(rows)
