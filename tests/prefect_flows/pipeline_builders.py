"""Builders for the nightly pipeline's tests (``conftest.py`` puts this folder on ``sys.path``): a small synthetic
universe, Feast repos copied under tmp_path (never the checkout's ``feature_repo/data``), a TCA log, veto model
cards in the store layout (JSON only: drift reads no estimator) and a stand-in for part 2's trainer."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.config_models import AppConfig
from ml.feature_store import FeatureRepo, copy_definitions
from prefect_flows.settings import SYNTHETIC, PipelineSettings
from tca.logger import write_records
from tca.records import ExecutionRecord

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config.yaml"
CHECKOUT_FEATURE_REPO = REPO / "feature_repo"
SYMBOLS = ("AAA", "BBB")
START, END = "2023-01-03", "2024-06-28"
TCA_LAST_SESSION = "2024-06-28"
CREATED_NS = int(pd.Timestamp("2024-07-01T12:00:00Z").value)


def new_repo(root: Path) -> FeatureRepo:
    return FeatureRepo(copy_definitions(CHECKOUT_FEATURE_REPO, root / "feature_repo"))


def make_settings(tmp_path: Path, repo: FeatureRepo | None = None, **changes: Any) -> PipelineSettings:
    values: dict[str, Any] = {
        "config": AppConfig(symbols=SYMBOLS),
        "data": SYNTHETIC,
        "symbols": SYMBOLS,
        "repo_path": repo.repo_path if repo is not None else tmp_path / "no_repo",
        "store_dir": tmp_path / "bar_store",
        "tca_db": tmp_path / "tca_log.duckdb",
        "start": START,
        "end": END,
        "created_ns": CREATED_NS,
    }
    values.update(changes)
    return PipelineSettings(**values)


def ny_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="America/New_York").value)


def write_tca_log(path: Path, fills: list[tuple[str, str, float]]) -> None:
    """One filled MOC BUY of 100 per (symbol, New York fill time, cost bps), decided at 10.0."""
    records = []
    for i, (symbol, ts, bps) in enumerate(fills):
        records.append(ExecutionRecord(
            exec_id=f"E{i}", client_order_id=f"O{i}", strategy_id="momentum", symbol=symbol, side="BUY",
            order_quantity=100, quantity=100, price=10.0 * (1 + bps / 1e4), commission=0.0, algo="MOC",
            decision_ts=ny_ns(ts) - 60_000_000_000, decision_price=10.0, arrival_price=10.0, fill_ts=ny_ns(ts),
            source="backtest", run_id="bt-1"))  # fmt: skip
    write_records(records, path)


def write_card(models_dir: Path, strategy: str, model_id: str, features: list[str], window: dict | None) -> Path:
    """A promoted model card (layout B: ``veto/<strategy>/<model_id>/model_card.json`` and ``CURRENT``)."""
    folder = models_dir / "veto" / strategy
    (folder / model_id).mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {"model_id": model_id, "strategy": strategy, "features": features}
    if window is not None:
        card["training_window"] = window
    path = folder / model_id / "model_card.json"
    path.write_text(json.dumps(card))
    (folder / "CURRENT").write_text(model_id + "\n")
    return path


@dataclass
class StandInTrainer:
    """Records its calls; promotes a card with a training window ``window`` (so the next drift check reads it).

    The card's features are fast-moving ones (a session's return, its volume z-score): their distribution over a
    quarter matches the year's; slow ones (20-session volatility, ATR) wander with the volatility regime.
    """

    window: dict[str, str]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, config: AppConfig, strategy: str, **kwargs: Any) -> Any:
        self.calls.append({"config": config, "strategy": strategy, **kwargs})
        model_id = f"m{len(self.calls)}"
        write_card(Path(kwargs["models_root"]), strategy, model_id, ["ret_1d", "volume_z_20"], self.window)
        return types.SimpleNamespace(model_id=model_id, card={}, promoted=not kwargs["dry_run"], reason="mandate ok")
