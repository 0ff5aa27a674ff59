"""A backtest with the veto enabled on the synthetic market: it trades with the veto and shows the A/B (the same
run without it) in summary.json, the report's "Veto" section and the console. Real Feast (a per-run repo copied
from the checkout's feature_repo/, whose data/ is never written); the model is a small stand-in in layout B."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sklearn.linear_model import LogisticRegression

from backtester.job import SUMMARY_KEYS, JobRequest, run_backtest_job
from backtester.summary_table import print_summary
from core.config_models import AppConfig
from core.errors import ConfigError
from data.bar_features import BAR_FEATURE_NAMES, bar_features
from data.calendar import TradingCalendar
from data.synthetic import generate_panel
from ml import veto_model_store as store

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
START, END = "2019-01-02", "2021-12-31"


def config_for(models_dir: Path, *, enabled: bool) -> AppConfig:
    raw = AppConfig().model_dump()
    raw["symbols"] = list(SYMBOLS)
    raw["features"]["repo_path"] = str(REPO / "feature_repo")
    raw["strategies"]["momentum"]["params"].update(roc_period=20, trend_sma_period=50)
    raw["strategies"]["momentum"]["veto"].update(enabled=enabled, threshold=0.5, models_dir=str(models_dir))
    return AppConfig.model_validate(raw)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A promoted stand-in model: calm markets are good (p falls as vol_20d rises), so it vetoes some entries."""
    panel = generate_panel(list(SYMBOLS), "2015-01-02", "2018-12-31", 9, TradingCalendar())
    rows = bar_features(panel).dropna()
    x = rows[list(BAR_FEATURE_NAMES)].to_numpy()
    y = (rows["vol_20d"] < rows["vol_20d"].median()).to_numpy(dtype=int)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    root = tmp_path_factory.mktemp("models")
    card = {"features": list(BAR_FEATURE_NAMES), "data_period": ["2015-01-02", "2018-12-31"], "threshold_tried": [0.5]}
    store.promote(root, "momentum", store.write_model(root, "momentum", model, card))
    return root


def request() -> JobRequest:
    return JobRequest(strategy="momentum", data="synthetic", symbols=SYMBOLS, start=START, end=END, seed=42,
                      overrides=())  # fmt: skip


@pytest.fixture(scope="module")
def with_veto(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_backtest_job(config_for(models_dir, enabled=True), request(), tmp_path_factory.mktemp("with"))


@pytest.fixture(scope="module")
def without_veto(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_backtest_job(config_for(models_dir, enabled=False), request(), tmp_path_factory.mktemp("without"))


def test_the_backtest_trades_with_the_veto_and_the_summary_shows_the_ab(with_veto, without_veto) -> None:
    summary = with_veto.summary
    ab = summary["veto"]
    print("\nveto A/B:", json.dumps({k: ab[k] for k in ("counts", "with_veto", "without_veto")}, default=str))
    assert ab["enabled"] and ab["threshold"] == 0.5 and ab["in_sample"] is False
    assert ab["with_veto"]["vetoes"] == with_veto.result.ignored_signals["veto"] > 0
    assert ab["counts"]["vetoed"] + ab["counts"].get("vetoed_missing", 0) == ab["with_veto"]["vetoes"]
    assert ab["counts"]["passed"] > 0
    assert ab["with_veto"]["n_trades"] == summary["n_trades"] < ab["without_veto"]["n_trades"]
    assert ab["difference"]["n_trades"] == ab["with_veto"]["n_trades"] - ab["without_veto"]["n_trades"]
    # the B side is the very same run without the veto
    assert ab["without_veto"]["n_trades"] == without_veto.summary["n_trades"]
    assert ab["without_veto"]["final_equity"] == pytest.approx(without_veto.summary["final_equity"])
    assert ab["without_veto"]["sharpe"] == pytest.approx(without_veto.summary["sharpe"])
    assert ab["without_veto"]["max_drawdown"] == pytest.approx(without_veto.summary["max_drawdown"])
    assert without_veto.summary["veto"] == {"enabled": False} and "veto" in SUMMARY_KEYS
    written = json.loads((with_veto.out_dir / "summary.json").read_text())
    assert written["veto"]["with_veto"]["n_trades"] == ab["with_veto"]["n_trades"]


def test_the_report_and_the_console_show_the_ab(with_veto, without_veto) -> None:
    page = (with_veto.out_dir / "report.html").read_text()
    assert "<h2>Veto</h2>" in page and 'id="veto-ab"' in page and "Without veto" in page
    assert 'id="veto-ab"' not in (without_veto.out_dir / "report.html").read_text()
    console = Console(record=True, width=120)
    print_summary(with_veto.summary, console)
    text = console.export_text()
    vetoes = str(with_veto.summary["veto"]["with_veto"]["vetoes"])
    assert "veto A/B" in text and "Vetoed entries" in text and vetoes in text


def test_an_enabled_veto_without_a_promoted_model_stops_the_backtest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"python -m ml\.ml_model_trainer --strategy momentum"):
        run_backtest_job(config_for(tmp_path / "empty", enabled=True), request(), tmp_path / "out")


def test_the_scorer_scores_every_session_with_features_once(with_veto) -> None:
    ab = with_veto.summary["veto"]
    n_bars = len(SYMBOLS) * len(np.unique(with_veto.result.equity.index))
    assert ab["rows_scored"] + ab["rows_missing_features"] == n_bars
    assert 0 < ab["rows_missing_features"] < 30 * len(SYMBOLS)  # the warm-up of the 20-session features only
