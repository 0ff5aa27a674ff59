"""Each step of the nightly pipeline as a plain function: synthetic data, CSV folders with bad bars, a bar store fed by
an in-process ibsim, real Feast repos under tmp_path, a real TCA log, model cards in the store layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_builders import END, START, SYMBOLS, TCA_LAST_SESSION, make_settings, new_repo, write_card, write_tca_log

from core.config_models import AppConfig
from core.errors import DataError
from data.bar_features import BAR_FEATURE_NAMES
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.synthetic import generate_market
from ml import drift
from ml.feature_store import TCA_VIEW, FeatureRepo
from prefect_flows import steps
from prefect_flows.settings import IB
from testkit.waiting import free_port

BAD_DAY = "2024-03-05"


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture(scope="module")
def frames(calendar: TradingCalendar) -> dict[str, pd.DataFrame]:
    return generate_market(list(SYMBOLS), START, END, 42, calendar)


def _csv_folder(root: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """One CSV per symbol; AAA's bar of ``BAD_DAY`` has its high below its low."""
    root.mkdir()
    for symbol, frame in frames.items():
        frame = frame.copy()
        if symbol == "AAA":
            frame.loc[BAD_DAY, "high"] = frame.loc[BAD_DAY, "low"] - 1.0
        frame.rename_axis("date").to_csv(root / f"{symbol}.csv")
    return root


def test_fetch_synthetic_gives_every_symbol_every_session(tmp_path: Path, calendar: TradingCalendar) -> None:
    report = steps.fetch_bars(make_settings(tmp_path), calendar)
    sessions = len(calendar.sessions(START, END))
    assert report.rows == {"AAA": sessions, "BBB": sessions}
    assert report.failed == ()
    assert "synthetic(seed=42" in report.source


def test_a_bad_bar_is_quarantined_and_never_featurized(
    tmp_path: Path, frames: dict[str, pd.DataFrame], calendar: TradingCalendar
) -> None:
    settings = make_settings(tmp_path, data=str(_csv_folder(tmp_path / "csv", frames)), symbols=())
    fetched = steps.fetch_bars(settings, calendar)
    validated = steps.validate_bars(settings, fetched, calendar)
    assert validated.quarantined == {"AAA": 1, "BBB": 0}
    assert validated.reasons == {"high_below_low": 1}
    assert pd.Timestamp(BAD_DAY) not in validated.bars["AAA"].index
    features = steps.compute_features(settings, validated, calendar).features
    aaa_days = features.loc[features["symbol"] == "AAA", "event_timestamp"].dt.tz_convert("America/New_York")
    assert pd.Timestamp(BAD_DAY).date() not in set(aaa_days.dt.date)
    assert len(aaa_days) == len(frames["AAA"]) - 1


def test_validate_raises_when_no_clean_bar_is_left(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> None:
    bad = {s: f.assign(close=-1.0) for s, f in frames.items()}
    fetched = steps.FetchReport(source="test", rows={s: len(f) for s, f in bad.items()}, bars=bad)
    with pytest.raises(DataError, match="no clean bars"):
        steps.validate_bars(make_settings(tmp_path), fetched)


def test_ib_bars_come_from_an_own_ibsim_and_accumulate_in_the_bar_store(tmp_path: Path) -> None:
    """Sim mode with nothing on the port: the step starts ibsim itself; the bar store keeps the guarded history."""
    settings = make_settings(tmp_path, data=IB, symbols=("AAPL", "MSFT"), ib_port=free_port(),
                             config=AppConfig(symbols=("AAPL", "MSFT")))  # fmt: skip
    fetched = steps.fetch_bars(settings)
    assert fetched.failed == () and min(fetched.rows.values()) > 200  # ibsim's history: 2023 on
    validated = steps.validate_bars(settings, fetched)
    store = BarStore(settings.store_dir)
    assert store.symbols() == ["AAPL", "MSFT"]
    pd.testing.assert_frame_equal(validated.bars["AAPL"], store.read("AAPL"))
    again = steps.fetch_bars(settings)  # the store has both now: only the last month is asked for
    assert again.rows == {"AAPL": 21, "MSFT": 21}  # ibsim counts a month as 21 sessions


def test_publish_puts_the_last_close_online(tmp_path: Path, calendar: TradingCalendar) -> None:
    repo = new_repo(tmp_path)
    settings = make_settings(tmp_path, repo)
    validated = steps.validate_bars(settings, steps.fetch_bars(settings, calendar), calendar)
    computed = steps.compute_features(settings, validated, calendar)
    published = steps.publish_features(settings, computed)
    assert published.materialized["daily_bar_features"] == 2
    last = computed.features[computed.features["event_timestamp"] == computed.last_close].set_index("symbol")
    online = FeatureRepo(repo.repo_path).online().get(list(SYMBOLS), int(computed.last_close.value))
    for symbol in SYMBOLS:
        assert online[symbol] is not None
        for name in BAR_FEATURE_NAMES:
            assert online[symbol][name] == pytest.approx(last.loc[symbol, name], rel=1e-12, nan_ok=True)


def test_tca_etl_is_skipped_without_a_log_and_loads_costs_online_with_one(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    settings = make_settings(tmp_path, repo)
    assert steps.run_tca_etl(settings).status.startswith("skipped: no TCA log")
    write_tca_log(settings.tca_db, [("AAA", "2024-06-26 15:59", 4.0), ("AAA", f"{TCA_LAST_SESSION} 15:59", 6.0),
                                    ("BBB", f"{TCA_LAST_SESSION} 15:59", 2.0)])  # fmt: skip
    report = steps.run_tca_etl(settings)
    assert (report.status, report.symbols, report.materialized) == ("written", 2, 2)
    written = pd.read_parquet(repo.source_path(TCA_VIEW))
    last = written[written["session_date"] == pd.Timestamp(TCA_LAST_SESSION).date()].set_index("symbol")
    assert last.loc["AAA", "tca_shortfall_20d_bps_moc"] == pytest.approx(5.0)
    assert last.loc["AAA", "tca_orders_20d"] == 2


def _history(sessions: pd.DatetimeIndex, calendar: TradingCalendar, shift_after: str | None) -> pd.DataFrame:
    """Eight symbols' ``ret_1d`` drawn from one normal distribution, shifted by 2 sd after ``shift_after``."""
    rng = np.random.default_rng(3)
    closes = pd.to_datetime(calendar.session_close_ns(sessions), utc=True)
    parts = []
    for k in range(8):
        part = pd.DataFrame({"symbol": f"S{k}", "event_timestamp": closes, "ret_1d": rng.normal(0, 0.01, len(closes))})
        if shift_after is not None:
            part.loc[sessions > pd.Timestamp(shift_after), "ret_1d"] += 0.02
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_check_drift_per_strategy(tmp_path: Path, calendar: TradingCalendar) -> None:
    sessions = calendar.sessions("2023-01-03", "2023-12-29")
    window = {"start": "2023-01-03", "end": "2023-09-29"}
    models = {"momentum": tmp_path / "m", "mean_reversion": tmp_path / "r", "sma_crossover": tmp_path / "s"}
    write_card(models["momentum"], "momentum", "a1", ["ret_1d"], window)
    write_card(models["mean_reversion"], "mean_reversion", "b1", ["ret_1d", "rsi_14"], window)
    settings = make_settings(tmp_path, strategies=tuple(models), models_dirs=models)
    steady = steps.FeaturesReport(rows=0, symbols=1, first_close=None, last_close=None,
                                  features=_history(sessions, calendar, None))  # fmt: skip
    shifted = steps.FeaturesReport(rows=0, symbols=1, first_close=None, last_close=None,
                                   features=_history(sessions, calendar, window["end"]))  # fmt: skip
    calm = {r.strategy: r for r in steps.check_drift(settings, steady).results}
    assert calm["momentum"].status == drift.NO_DRIFT and not calm["momentum"].retrain
    assert calm["mean_reversion"].unchecked == ("rsi_14",)
    assert calm["sma_crossover"].status == drift.NO_MODEL and calm["sma_crossover"].retrain
    moved = steps.check_drift(settings, shifted)
    assert moved.to_retrain == ("momentum", "mean_reversion", "sma_crossover")
    assert moved.results[0].drifted == ("ret_1d",) and moved.results[0].psi["ret_1d"] > 1.0


def _drift_wanting(*strategies: str) -> steps.DriftReport:
    results = tuple(drift.DriftResult(strategy=s, status=drift.NO_MODEL, retrain=True) for s in strategies)
    return steps.DriftReport(results=results, threshold=drift.DEFAULT_PSI_THRESHOLD)


def test_retrain_reports_trainer_not_available_when_the_module_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ml.ml_model_trainer", None)  # import raises ImportError
    settings = make_settings(tmp_path, strategies=("momentum",), models_dirs={"momentum": tmp_path / "models"})
    report = steps.retrain_veto(settings, _drift_wanting("momentum"))
    assert (report.status, report.wanted, report.outcomes) == (steps.TRAINER_NOT_AVAILABLE, ("momentum",), ())


def test_retrain_calls_the_trainer_for_each_drifted_strategy(tmp_path: Path, stand_in_trainer) -> None:
    trainer = stand_in_trainer({"start": START, "end": END})
    models = tmp_path / "models"
    settings = make_settings(tmp_path, strategies=("momentum", "mean_reversion"),
                             models_dirs={"momentum": models, "mean_reversion": models}, dry_run=True)  # fmt: skip
    assert steps.retrain_veto(settings, _drift_wanting()).status == "nothing to retrain"
    report = steps.retrain_veto(settings, _drift_wanting("mean_reversion"))
    assert [c["strategy"] for c in trainer.calls] == ["mean_reversion"]
    call = trainer.calls[0]
    assert (call["data"], call["models_root"], call["dry_run"], call["seed"]) == ("synthetic", models, True, 42)
    assert call["config"] is settings.config
    assert report.outcomes == (steps.TrainingOutcome("mean_reversion", "m1", promoted=False, reason="mandate ok"),)
    assert drift.current_card(models, "mean_reversion")["model_id"] == "m1"
