"""The nightly pipeline's steps as plain functions (no Prefect here: the flow only wraps them, and tests call them).

Order: ``fetch_bars`` -> ``validate_bars`` -> ``compute_features`` -> ``publish_features`` -> ``run_tca_etl`` ->
``check_drift`` -> ``retrain_veto``. Each takes the run's ``PipelineSettings`` and what the steps before it
returned, logs one ``event=pipeline_step`` line and returns a small frozen report; bulky values a later step needs
(bar frames, feature frames) ride along in fields left out of ``repr``. A step raises on failure; the runner
(``prefect_flows.pipeline``) names the step.

- ``fetch_bars``: data ``ib`` asks IB (``etl.fetch_daily_bars``; the whole history for a symbol the bar store does not
  have yet, the last month otherwise). In ``ib_connection.mode: sim`` it uses the ibsim that ``run_system.sh``
  started when one answers on the port, else starts one in this process for the fetch. ``synthetic`` is the
  seeded synthetic market of ``backtest.synthetic``; a folder is a bar store or per-symbol CSV files.
- ``validate_bars``: the bad-bar guard (``data.bar_guard``). A bad bar is quarantined with its reason and logged
  (``event=bar_quarantined``), never featurized. IB bars are merged into the bar store (``settings.store_dir``,
  quarantine file beside them) and the features see its whole history.
- ``compute_features`` (``data.bar_features``) and ``publish_features`` (``FeatureRepo.publish``: offline Parquet,
  apply when the definitions changed, each symbol's latest value into the online store).
- ``run_tca_etl``: ``etl.tca_feature_etl.run`` into the repo's cost file, then those values online. No TCA log yet
  (a new install) is a skip, not a failure.
- ``check_drift``: ``ml.drift`` for each strategy of ``settings.strategies``; ``retrain_veto``: for those that need
  it, ``ml.ml_model_trainer.train_veto_model`` (imported when needed), which promotes only through the validation
  mandate. Without that module the step reports "trainer not available".
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.clock import WallClock
from core.errors import DataError
from data.bar_features import bar_features
from data.bar_guard import GuardResult, empty_bar_frame, guard_frame
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from ml import drift
from prefect_flows.settings import IB, SYNTHETIC, PipelineSettings

log = logging.getLogger(__name__)

RawBars = pd.DataFrame | GuardResult  # a loader's frame, or a loader's own guard result (CSV parse errors)
TRAINER_NOT_AVAILABLE = "trainer not available"


@dataclass(frozen=True, slots=True)
class FetchReport:
    source: str
    rows: Mapping[str, int]  # rows received per symbol (before the guard)
    failed: tuple[str, ...] = ()  # symbols the source gave nothing for
    bars: Mapping[str, RawBars] = field(default_factory=dict, repr=False, compare=False)

    def summary(self) -> str:
        failed = f", no bars for {list(self.failed)}" if self.failed else ""
        return f"{sum(self.rows.values())} bars of {len(self.rows)} symbols from {self.source}{failed}"


@dataclass(frozen=True, slots=True)
class ValidateReport:
    accepted: Mapping[str, int]
    quarantined: Mapping[str, int]
    reasons: Mapping[str, int]  # BadBarReason value -> bars
    store: str | None = None
    bars: Mapping[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def summary(self) -> str:
        where = f", bar store {self.store}" if self.store else ""
        return (f"{sum(self.accepted.values())} bars accepted, {sum(self.quarantined.values())} quarantined "
                f"{dict(self.reasons)}{where}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeaturesReport:
    rows: int
    symbols: int
    first_close: pd.Timestamp | None
    last_close: pd.Timestamp | None
    features: pd.DataFrame = field(repr=False, compare=False, default_factory=pd.DataFrame)

    def summary(self) -> str:
        return f"{self.rows} feature rows of {self.symbols} symbols, closes {self.first_close} .. {self.last_close}"


@dataclass(frozen=True, slots=True)
class PublishReport:
    repo: str
    rows: int
    materialized: Mapping[str, int]  # view -> symbols loaded online

    def summary(self) -> str:
        return f"{self.rows} rows offline, online {dict(self.materialized)} in {self.repo}"


@dataclass(frozen=True, slots=True)
class TcaReport:
    status: str  # "written" or "skipped: ..."
    rows: int = 0
    symbols: int = 0
    materialized: int = 0
    features: pd.DataFrame = field(repr=False, compare=False, default_factory=pd.DataFrame)

    def summary(self) -> str:
        if self.status != "written":
            return self.status
        return f"{self.rows} cost rows of {self.symbols} symbols, {self.materialized} symbols online"


@dataclass(frozen=True, slots=True)
class DriftReport:
    results: tuple[drift.DriftResult, ...]
    threshold: float

    @property
    def to_retrain(self) -> tuple[str, ...]:
        return tuple(r.strategy for r in self.results if r.retrain)

    def summary(self) -> str:
        if not self.results:
            return "no strategy has the veto enabled (strategies.<name>.veto.enabled): nothing to check"
        return "; ".join(r.summary() for r in self.results)


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    strategy: str
    model_id: str | None
    promoted: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RetrainReport:
    status: str  # "nothing to retrain", "trained", "trainer not available"
    outcomes: tuple[TrainingOutcome, ...] = ()
    wanted: tuple[str, ...] = ()

    def summary(self) -> str:
        if not self.outcomes:
            return self.status + (f" (wanted for {list(self.wanted)})" if self.wanted else "")
        parts = [f"{o.strategy} {o.model_id}: {'promoted' if o.promoted else 'not promoted'} ({o.reason})"
                 for o in self.outcomes]  # fmt: skip
        return "; ".join(parts)


def _done(step: str, report: Any) -> None:
    log.info("event=pipeline_step step=%s %s", step, report.summary())


# ------------------------------------------------------------------------------------------------------------ fetch
def fetch_bars(settings: PipelineSettings, calendar: TradingCalendar | None = None) -> FetchReport:
    """Daily bars of ``settings.symbols`` from ``settings.data``, not yet guarded."""
    calendar = calendar or TradingCalendar()
    if settings.data == IB:
        report = _fetch_ib(settings, calendar)
    elif settings.data == SYNTHETIC:
        report = _fetch_synthetic(settings, calendar)
    else:
        report = _fetch_folder(settings, calendar)
    if not any(report.rows.values()):
        raise DataError(f"no bars for any symbol from {report.source}; failed: {list(report.failed)}")
    _done("fetch_bars", report)
    return report


def _between(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    return frame.loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]


def _fetch_synthetic(settings: PipelineSettings, calendar: TradingCalendar) -> FetchReport:
    from data.synthetic import generate_market

    synthetic = settings.config.backtest.synthetic
    universe = list(settings.symbols) or synthetic.n_symbols
    start, end = settings.start or synthetic.start, settings.end or synthetic.end
    frames = generate_market(universe, start, end, settings.config.backtest.seed, calendar)
    source = f"synthetic(seed={settings.config.backtest.seed}, {start}..{end})"
    return FetchReport(source=source, rows={s: len(f) for s, f in frames.items()}, bars=frames)


def _fetch_folder(settings: PipelineSettings, calendar: TradingCalendar) -> FetchReport:
    from data.csv_loader import load_csv_folder

    folder = Path(settings.data)
    if (folder / "bars").is_dir():
        store = BarStore(folder, calendar)
        names = list(settings.symbols) or store.symbols()
        failed = tuple(s for s in names if not store.has(s))
        raw: dict[str, RawBars] = {s: _between(store.read(s), settings.start, settings.end)
                                   for s in names if store.has(s)}  # fmt: skip
        source = f"bar_store({folder})"
    else:
        symbols = list(settings.symbols) or None
        loaded = load_csv_folder(folder, symbols=symbols, adjust=settings.config.backtest.adjust_prices,
                                 calendar=calendar)  # fmt: skip
        raw = {s: GuardResult(_between(r.clean, settings.start, settings.end), r.quarantined, s)
               for s, r in loaded.items()}  # fmt: skip
        failed, source = (), f"csv({folder})"
    rows = {s: len(r.clean) + len(r.quarantined) if isinstance(r, GuardResult) else len(r) for s, r in raw.items()}
    return FetchReport(source=source, rows={**rows, **dict.fromkeys(failed, 0)}, failed=failed, bars=raw)


def _fetch_ib(settings: PipelineSettings, calendar: TradingCalendar) -> FetchReport:
    from etl.fetch_daily_bars import fetch_daily_bars

    store = BarStore(settings.store_dir, calendar)
    new = [s for s in settings.symbols if not store.has(s)]
    known = [s for s in settings.symbols if store.has(s)]
    with tempfile.TemporaryDirectory(prefix="nightly-bars-") as tmp, _ib_port(settings) as port:
        staging = BarStore(tmp, calendar)  # fetch_daily_bars writes (and guards) here; validate_bars re-guards
        for symbols, duration in ((new, settings.history_duration), (known, settings.update_duration)):
            if symbols:
                fetch_daily_bars(settings.config.ib_connection, symbols, duration, store=staging, port=port)
        raw: dict[str, RawBars] = {
            s: GuardResult(staging.read(s) if staging.has(s) else empty_bar_frame(), staging.read_quarantine(s), s)
            for s in settings.symbols
        }
    rows = {s: len(r.clean) + len(r.quarantined) for s, r in raw.items()}
    failed = tuple(s for s, n in rows.items() if n == 0)
    ib = settings.config.ib_connection
    source = f"ib({ib.mode} {ib.host}:{port})"
    return FetchReport(source=source, rows=rows, failed=failed, bars={s: r for s, r in raw.items() if rows[s]})


@contextlib.contextmanager
def _ib_port(settings: PipelineSettings) -> Iterator[int]:
    """The gateway's port; in sim mode with nothing answering there, an in-process ibsim's for the duration."""
    ib = settings.config.ib_connection
    port = settings.ib_port or ib.port
    if ib.mode != "sim" or _answers(ib.host, port):
        yield port
        return
    from ibsim import IbSim, SimConfig

    sim_cfg = settings.config.ibsim
    sim = IbSim(SimConfig(port=0, symbols=tuple(settings.symbols), data=sim_cfg.data, seed=sim_cfg.seed,
                          speed=sim_cfg.speed, cost_profile=sim_cfg.cost_profile))  # fmt: skip
    own_port = sim.start()
    log.info("event=ibsim_started reason=nothing_on_port port=%d own_port=%d", port, own_port)
    try:
        yield own_port
    finally:
        sim.stop()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------------- validate
def validate_bars(
    settings: PipelineSettings, fetched: FetchReport, calendar: TradingCalendar | None = None
) -> ValidateReport:
    """Guard every symbol's bars; only clean bars go on. IB bars are merged into the bar store first."""
    calendar = calendar or TradingCalendar()
    store = BarStore(settings.store_dir, calendar) if settings.data == IB else None
    accepted, quarantined, reasons, clean = {}, {}, Counter[str](), {}
    for symbol, raw in fetched.bars.items():
        result = store.write(symbol, raw) if store is not None else _guarded(symbol, raw, calendar)
        accepted[symbol], quarantined[symbol] = len(result.clean), len(result.quarantined)
        reasons.update(result.quarantined["reason"].astype(str))
        if len(result.clean):
            clean[symbol] = result.clean
        log.info("event=bars_validated symbol=%s accepted=%d quarantined=%d", symbol, accepted[symbol],
                 quarantined[symbol])  # fmt: skip
    if store is not None:  # the features see the store's whole history, also of a symbol that failed tonight
        clean = {s: store.read(s) for s in settings.symbols if store.has(s)}
    if not clean:
        raise DataError(f"no clean bars left after the bad-bar guard ({dict(reasons)} quarantined)")
    report = ValidateReport(accepted=accepted, quarantined=quarantined, reasons=dict(reasons),
                            store=None if store is None else str(store.root), bars=clean)  # fmt: skip
    _done("validate_bars", report)
    return report


def _guarded(symbol: str, raw: RawBars, calendar: TradingCalendar) -> GuardResult:
    """``guard_frame`` of a frame; a loader's result is re-guarded and keeps the rows the loader rejected."""
    if isinstance(raw, pd.DataFrame):
        return guard_frame(raw, symbol, calendar)
    again = guard_frame(raw.clean, symbol, calendar)
    parts = [q for q in (raw.quarantined, again.quarantined) if len(q)]
    return GuardResult(clean=again.clean, quarantined=pd.concat(parts) if parts else again.quarantined, symbol=symbol)


# --------------------------------------------------------------------------------------------------------- features
def compute_features(
    settings: PipelineSettings, validated: ValidateReport, calendar: TradingCalendar | None = None
) -> FeaturesReport:
    """``data.bar_features`` of the clean bars; ``created_timestamp`` is ``settings.created_ns`` or now."""
    created_ns = settings.created_ns if settings.created_ns is not None else WallClock().now_ns()
    features = bar_features(validated.bars, calendar or TradingCalendar(), created_ns=created_ns)
    stamps = features["event_timestamp"]
    report = FeaturesReport(rows=len(features), symbols=features["symbol"].nunique(),
                            first_close=stamps.min() if len(features) else None,
                            last_close=stamps.max() if len(features) else None, features=features)  # fmt: skip
    _done("compute_features", report)
    return report


def publish_features(settings: PipelineSettings, computed: FeaturesReport) -> PublishReport:
    """``FeatureRepo.publish``: offline Parquet, apply if the definitions changed, latest values online."""
    from ml.feature_store import FeatureRepo

    repo = FeatureRepo(settings.repo_path)
    materialized = repo.publish(computed.features)
    report = PublishReport(repo=str(repo.repo_path), rows=computed.rows, materialized=materialized)
    _done("publish_features", report)
    return report


def run_tca_etl(settings: PipelineSettings) -> TcaReport:
    """Execution-cost features from the TCA log into the repo's cost file, then online; skipped without a log."""
    from etl.tca_feature_etl import run
    from ml.feature_store import TCA_VIEW, FeatureRepo

    if not settings.tca_db.is_file():
        report = TcaReport(status=f"skipped: no TCA log at {settings.tca_db} yet")
    else:
        repo = FeatureRepo(settings.repo_path)
        features = run(settings.tca_db, repo.source_path(TCA_VIEW))
        loaded = repo.materialize_latest(views=(TCA_VIEW,))
        report = TcaReport(status="written", rows=len(features), symbols=features["symbol"].nunique(),
                           materialized=loaded.get(TCA_VIEW, 0), features=features)  # fmt: skip
    _done("tca_etl", report)
    return report


# ------------------------------------------------------------------------------------------------- drift, retrain
def check_drift(settings: PipelineSettings, computed: FeaturesReport, tca: TcaReport | None = None) -> DriftReport:
    """``ml.drift.check_strategy`` for each strategy, on the bar features joined with the cost features."""
    history = computed.features
    if tca is not None and len(tca.features):
        costs = tca.features.drop(columns=["session_date", "created_timestamp"], errors="ignore")
        history = history.merge(costs, on=["symbol", "event_timestamp"], how="left")
    results = []
    for strategy in settings.strategies:
        results.append(drift.check_strategy(settings.models_dirs[strategy], strategy, history,
                                            threshold=settings.drift_threshold,
                                            recent_sessions=settings.recent_sessions,
                                            min_recent_sessions=settings.min_recent_sessions))  # fmt: skip
    report = DriftReport(results=tuple(results), threshold=settings.drift_threshold)
    _done("check_drift", report)
    return report


def retrain_veto(settings: PipelineSettings, drifted: DriftReport) -> RetrainReport:
    """Train (and, through the mandate, maybe promote) a new veto model for each strategy that needs one."""
    wanted = drifted.to_retrain
    if not wanted:
        report = RetrainReport(status="nothing to retrain")
        _done("retrain_veto", report)
        return report
    try:
        from ml.ml_model_trainer import train_veto_model
    except ImportError as exc:
        log.warning("event=veto_trainer_missing strategies=%s error=%r", list(wanted), str(exc))
        report = RetrainReport(status=TRAINER_NOT_AVAILABLE, wanted=wanted)
        _done("retrain_veto", report)
        return report
    outcomes = []
    for strategy in wanted:
        trained = train_veto_model(settings.config, strategy, data=settings.trainer_data,
                                   models_root=settings.models_dirs[strategy], seed=settings.config.backtest.seed,
                                   dry_run=settings.dry_run)  # fmt: skip
        outcomes.append(TrainingOutcome(strategy=strategy, model_id=trained.model_id, promoted=bool(trained.promoted),
                                        reason=str(trained.reason)))  # fmt: skip
    report = RetrainReport(status="trained", outcomes=tuple(outcomes), wanted=wanted)
    _done("retrain_veto", report)
    return report
