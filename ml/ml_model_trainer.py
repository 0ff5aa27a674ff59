"""Train a strategy's signal-veto model, validate it, and promote it only through the mandate.

``python -m ml.ml_model_trainer --strategy momentum [--data synthetic|DIR] [--dry-run]`` runs, in order:

1. the data (``load_panel``, as ``run_backtest.py``) and the strategy's causal signals over it (configured params);
2. labels for every entry signal (``ml.veto_labels``: triple barrier on its ATR stop distance and a horizon, or a
   fixed horizon; ``strategies.<name>.veto.training``);
3. the ``daily_signals`` features at each decision close: one batched point-in-time ``FeatureRepo.historical``
   call on a per-run temporary Feast repo built from these bars (``ml.panel_features``); the point-in-time check
   refuses any feature whose event time can follow its label's start (``ml.veto_training``);
4. purged k-fold cross-validation with an embargo: AUC, Brier score and log loss of the calibrated probabilities
   per fold; then the model fitted on every signal (random forest, purged sigmoid/isotonic calibration);
5. the walk-forward A/B (``backtester.veto_walk_forward``): out-of-sample runs with and without the veto for each
   threshold tried, PBO and DSR over those thresholds; the ``veto:`` rules of ``validation_mandate.yaml`` judge it;
6. unless ``--dry-run``: the model (joblib) and its JSON card are written under
   ``<models_dir>/veto/<strategy>/<model_id>/`` (``ml.veto_model_store``), promoted or not (the audit trail), and
   ``CURRENT`` is moved to it only when every veto rule passed.

The card is the audit record: features, label rule, data fingerprint, config id, scikit-learn version, the
artifact's sha256, CV scores, thresholds tried, the A/B and every verdict. MLflow is not used (the card needs
nothing more). Exit codes: 0 it ran (promoted or not), 1 a data or state problem, 2 a bad config, mandate or
argument.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.mandate import RuleVerdict, check_veto_mandate, load_mandate
from backtester.veto_walk_forward import VetoWalkForward, veto_walk_forward
from core.config_loader import config_id
from core.config_models import AppConfig, VetoTrainingConfig
from core.errors import ConfigError, DataError
from data.calendar import TradingCalendar
from data.loading import LoadedData, load_panel
from ml import veto_model_store as store
from ml.cli_run import run_cli
from ml.panel_features import panel_daily_signals
from ml.veto_labels import LabelledEvents, label_rule, label_signals
from ml.veto_training import (
    TrainingSet,
    check_point_in_time,
    cross_validate,
    cv_summary,
    fit_veto_model,
    training_set,
    with_extra_features,
)
from strategy.base import BarArrays
from strategy.registry import STRATEGY_NAMES, build_strategy

log = logging.getLogger(__name__)

FEATURE_SOURCE = ("daily_signals at each decision close, point-in-time, from a per-run temporary Feast repository "
                  "copied from features.repo_path and filled from the training bars (ml.panel_features)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class VetoTrainingReport:
    strategy: str
    model_id: str | None  # None on a dry run (nothing written)
    card: dict[str, Any]  # as written (with model_id, sha256, sklearn_version); on a dry run without those three
    promoted: bool
    reason: str
    verdicts: list[RuleVerdict] = field(default_factory=list)
    models_dir: Path | None = None


def train_veto_model(
    config: AppConfig,
    strategy: str,
    *,
    data: str = "synthetic",
    models_root: Path | None = None,
    seed: int = 0,
    dry_run: bool = False,
    mandate_path: str | Path = "validation_mandate.yaml",
    extra_features: pd.DataFrame | None = None,
) -> VetoTrainingReport:
    """Train, validate and maybe promote ``strategy``'s veto model (see the module docstring for the steps).

    ``models_root``: default ``strategies.<strategy>.veto.models_dir``. ``extra_features``: features from outside
    the feature store (``ml.veto_training.with_extra_features``), judged by the same point-in-time check.
    Raises ``ConfigError`` (bad mandate), ``DataError`` (no data, too few labelled signals, a leaking feature:
    ``FeatureLeakError``) and ``StateCorruptError`` (a broken model folder).
    """
    veto_cfg = _veto_config(config, strategy)
    cfg = veto_cfg.training
    mandate = load_mandate(mandate_path)  # a bad mandate stops us before any work
    loaded = _load(config, data)
    panel = loaded.panel
    labelled = _labelled_signals(config, strategy, loaded, cfg)
    features = panel_daily_signals(panel, config.features.repo_path)
    if extra_features is not None:
        features = with_extra_features(features, extra_features)
    train = training_set(labelled.events, features, cfg.features)
    check_point_in_time(train)
    if len(train.y) < cfg.min_events:
        raise DataError(f"{strategy}: {len(train.y)} labelled signals with complete features (needs at least "
                        f"strategies.{strategy}.veto.training.min_events={cfg.min_events}); use more data")  # fmt: skip
    scores = cross_validate(train, cfg, seed)
    model = fit_veto_model(train, cfg, seed)
    wf = veto_walk_forward(config, strategy, panel, features, train, seed)
    verdicts = check_veto_mandate(mandate, wf.mandate_metrics())
    passed = all(v.passed for v in verdicts)
    card = _card(config, strategy, loaded, labelled, train, cv_summary(scores), wf, verdicts, seed, mandate_path)
    models_dir = Path(models_root) if models_root is not None else Path(veto_cfg.models_dir)
    if dry_run:
        return VetoTrainingReport(strategy, None, card, False, _reason(verdicts, dry_run=True), verdicts, models_dir)
    model_id = store.write_model(models_dir, strategy, model, card)
    if passed:
        store.promote(models_dir, strategy, model_id)
    card = store.read_model(models_dir, strategy, model_id)[1]
    return VetoTrainingReport(strategy, model_id, card, passed, _reason(verdicts, dry_run=False), verdicts, models_dir)


def _veto_config(config: AppConfig, strategy: str) -> Any:
    if strategy not in STRATEGY_NAMES:
        raise ConfigError("--strategy", [f"strategy: unknown (got {strategy!r}); choose one of {STRATEGY_NAMES}"])
    return getattr(config.strategies, strategy).veto


def _load(config: AppConfig, data: str) -> LoadedData:
    bt = config.backtest
    symbols = config.symbols if data == "synthetic" and config.symbols else None
    return load_panel(data, calendar=TradingCalendar(), symbols=symbols, start=bt.start, end=bt.end, seed=bt.seed,
                      synthetic=bt.synthetic, adjust=bt.adjust_prices)  # fmt: skip


def _labelled_signals(config: AppConfig, strategy: str, loaded: LoadedData, cfg: VetoTrainingConfig) -> LabelledEvents:
    """The strategy's signals over the whole panel (causal, as the backtester computes them), labelled."""
    panel = loaded.panel
    bars = BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)
    signals = build_strategy(strategy, config.strategies).compute_signals(bars)
    return label_signals(panel, signals.codes, signals.stop_distance, cfg, allow_short=config.portfolio.allow_short)


def _card(
    config: AppConfig, strategy: str, loaded: LoadedData, labelled: LabelledEvents, train: TrainingSet,
    cv: dict[str, Any], wf: VetoWalkForward, verdicts: list[RuleVerdict], seed: int, mandate_path: str | Path,
) -> dict[str, Any]:  # fmt: skip
    """The model card (``ml.veto_model_store`` adds model_id, created_at, sha256 and sklearn_version)."""
    veto_cfg = getattr(config.strategies, strategy).veto
    cfg, panel = veto_cfg.training, loaded.panel
    overfitting = {k: v for k, v in wf.overfitting.items() if k != "pbo_logits"}
    return store.finite_or_none({
        "features": list(cfg.features),
        "label_rule": label_rule(cfg),
        "data_fingerprint": panel.fingerprint(),
        "data_source": loaded.description,
        "data_period": [str(panel.dates[0].date()), str(panel.dates[-1].date())],
        "feature_deciles": _deciles(train),
        "symbols": list(panel.symbols),
        "config_id": config_id(config),
        "strategy_params": getattr(config.strategies, strategy).params.model_dump(mode="json"),
        "feature_source": FEATURE_SOURCE,
        "training_set": {"signals": len(train.y), "positive_rate": float(np.mean(train.y)),
                         "sha256": _training_set_sha256(train),
                         "labelled_without_features": len(labelled.events) - len(train.y),
                         "dropped_unlabelled": labelled.dropped},
        "model": {"estimator": "CalibratedClassifierCV(RandomForestClassifier)", "calibration": cfg.calibration,
                  "calibration_folds": cfg.calibration_folds, "n_estimators": cfg.n_estimators,
                  "min_samples_leaf": cfg.min_samples_leaf, "seed": seed},
        "cv": {"method": "purged k-fold with embargo (ml.purged_cv)", "n_splits": cfg.cv_folds,
               "embargo_bars": cfg.embargo_bars, **cv},
        "threshold": veto_cfg.threshold,
        "threshold_tried": list(wf.thresholds),
        "walk_forward": {"config": config.backtest.walk_forward.model_dump(), "runs": wf.runs,
                         "windows": wf.windows, "overfitting": overfitting,
                         "mandate_metrics": wf.mandate_metrics()},
        "mandate": {"path": str(mandate_path), "verdicts": [v.to_dict() for v in verdicts],
                    "passed": all(v.passed for v in verdicts)},
        "mlflow": "not used: this card is the audit record",
    })


def _deciles(train: TrainingSet) -> dict[str, list[float]]:
    """Each feature's 0, 10, ..., 100th percentile over the training signals: the reference a drift check needs."""
    levels = np.linspace(0.0, 100.0, 11)
    return {name: np.percentile(train.x[:, k], levels).tolist() for k, name in enumerate(train.features)}


def _training_set_sha256(train: TrainingSet) -> str:
    digest = hashlib.sha256(",".join(train.features).encode())
    for array in (train.x, train.y, train.t0, train.t1, train.label_start_ns):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _reason(verdicts: list[RuleVerdict], *, dry_run: bool) -> str:
    failed = [v for v in verdicts if not v.passed]
    verdict = ("every veto rule of the mandate passed" if not failed
               else "failed " + "; ".join(f"{v.rule} ({v.message})" for v in failed))  # fmt: skip
    if dry_run:
        return f"dry run, nothing written: {verdict}"
    return f"promoted: {verdict}" if not failed else f"not promoted (CURRENT unchanged): {verdict}"


def format_report(report: VetoTrainingReport) -> str:
    """What the CLI prints: CV per fold, the walk-forward A/B, the verdicts and where the model went."""
    card = report.card
    lines = [f"veto model for {report.strategy}: {card['training_set']['signals']} labelled signals, "
             f"features {', '.join(card['features'])}"]  # fmt: skip
    lines.append("purged CV (fold: AUC / Brier / log loss):")
    for fold in card["cv"]["folds"]:
        auc = "n/a" if fold["auc"] is None else f"{fold['auc']:.3f}"
        lines.append(f"  {fold['fold']}: {auc} / {fold['brier']:.4f} / {fold['log_loss']:.4f}  "
                     f"(train {fold['n_train']}, test {fold['n_test']}, purged {fold['n_purged']})")  # fmt: skip
    lines.append("walk-forward out of sample (Sharpe / max drawdown / round trips / vetoes):")
    for key, run in card["walk_forward"]["runs"].items():
        lines.append(f"  {key:>16}: {_num(run['sharpe'])} / {_num(run['max_drawdown'], pct=True)} / "
                     f"{run['n_trades']} / {run['vetoes']}")  # fmt: skip
    lines += [f"  {'PASS' if v.passed else 'FAIL'} {v.rule}: {v.message}" for v in report.verdicts]
    where = "" if report.model_id is None else f" -> {report.models_dir}/veto/{report.strategy}/{report.model_id}"
    lines.append(f"{report.reason}{where}")
    return "\n".join(lines)


def _num(value: float | None, *, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.2f}%" if pct else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 when it ran (promoted or not), 1 on a data or state problem, 2 on a bad config or argument."""
    from backtester.cli_common import setup_logging
    from core.config_loader import ArgumentParser, load_config, non_negative_int_arg

    parser = ArgumentParser(prog="python -m ml.ml_model_trainer", description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--strategy", required=True, choices=STRATEGY_NAMES)
    parser.add_argument("--config", default="config.yaml", help="operator settings file")
    parser.add_argument("--data", default=None, help="'synthetic' or a data folder/file (default: backtest.data)")
    parser.add_argument("--models", type=Path, default=None, help="models root (default: veto.models_dir)")
    parser.add_argument("--mandate", default="validation_mandate.yaml", help="promotion rules (its veto: section)")
    parser.add_argument("--seed", type=non_negative_int_arg, default=0, help="model seed")
    parser.add_argument("--dry-run", action="store_true", help="train and judge, write nothing")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override any config value (validated like the file); repeatable")  # fmt: skip
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    def work() -> VetoTrainingReport:
        config = load_config(args.config, args.overrides)
        return train_veto_model(config, args.strategy, data=args.data or config.backtest.data,
                                models_root=args.models, seed=args.seed, dry_run=args.dry_run,
                                mandate_path=args.mandate)  # fmt: skip

    return run_cli(parser.prog, work, format_report)


if __name__ == "__main__":
    sys.exit(main())
