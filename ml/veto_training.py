"""Fit and cross-validate the veto classifier on labelled signals, without letting the future in.

Two guards against leakage, because a veto model that scores well only by seeing the future would veto at
random live:

- **point in time** (``check_point_in_time``): every feature value must have been knowable when the signal was
  decided. A feature whose event timestamp can follow its row's label start (the decision close) is refused,
  with the feature, the number of rows and the first one named (``FeatureLeakError``). Features retrieved from
  Feast at the decision close pass by construction (its point-in-time join never returns a later value); the
  check is what stops anything else, e.g. a feature joined by hand from the next session.
- **purged, embargoed cross-validation** (``ml.purged_cv``): no training signal's label window overlaps its
  test fold, and the sessions after each test fold are embargoed. Shuffled k-fold (``purged=False``) is kept
  only to show what it would have claimed.

The model: a random forest (``n_estimators``, ``min_samples_leaf`` from the config, seeded, one core) wrapped in
``CalibratedClassifierCV`` (sigmoid or isotonic) whose calibration folds are purged and embargoed as well, so the
probabilities are calibrated on signals the forest did not train on. Scores per test fold: ROC AUC (None when the
fold holds one class), Brier score and log loss, all of the calibrated probability of class 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import KFold

from core.config_models import VetoTrainingConfig
from core.errors import DataError
from ml.panel_features import TS_COLUMN, feature_matrix
from ml.purged_cv import PurgedKFold

log = logging.getLogger(__name__)

EVENT_TIME_SUFFIX = "__event_ns"


class FeatureLeakError(DataError):
    """A feature's value may come from after the signal it describes was decided: training refuses it."""


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Labelled signals as the classifier sees them, in decision order.

    ``t0``/``t1``: decision and label-end session indices (what purging keeps apart); ``label_start_ns``: the
    decision close (UTC ns); ``feature_times_ns``: per feature, the latest event time each row's value can have.
    """

    features: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    label_start_ns: np.ndarray
    feature_times_ns: Mapping[str, np.ndarray] = field(repr=False)

    def subset(self, rows: np.ndarray) -> TrainingSet:
        times = {k: v[rows] for k, v in self.feature_times_ns.items()}
        return TrainingSet(self.features, self.x[rows], self.y[rows], self.t0[rows], self.t1[rows],
                           self.label_start_ns[rows], times)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FoldScore:
    fold: int
    n_train: int
    n_test: int
    n_purged: int  # signals neither in the test fold nor allowed to train (purge + embargo)
    auc: float | None
    brier: float
    log_loss: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_set(events: pd.DataFrame, features: pd.DataFrame, names: Sequence[str]) -> TrainingSet:
    """Join labelled signals to the features of their decision close (``ml.panel_features`` rows, keyed by symbol
    and ``ts_ns``).

    A signal without complete features is dropped (a model cannot be trained on a gap). A value's event time is
    the column ``<name>__event_ns`` when the frame has one (a feature joined from elsewhere, see
    ``with_extra_features``), else its retrieval time, the decision close: Feast's point-in-time join returns
    nothing later. Raises ``DataError`` for a feature the frame does not have.
    """
    keyed = features.set_index(["symbol", TS_COLUMN])
    matrix = feature_matrix(keyed, list(names))
    index = pd.MultiIndex.from_arrays([events["symbol"], events["decision_ns"]])
    x = matrix.reindex(index).to_numpy(dtype=float)
    complete = np.isfinite(x).all(axis=1)
    kept = events[complete]
    stamps = kept["decision_ns"].to_numpy(dtype=np.int64)
    times = {}
    for name in names:
        column = f"{name}{EVENT_TIME_SUFFIX}"
        if column in keyed.columns:  # an unknown event time counts as the latest possible: refused
            known = keyed[column].astype("Int64").reindex(index)
            times[name] = known.to_numpy(dtype=np.int64, na_value=np.iinfo(np.int64).max)[complete]
        else:
            times[name] = stamps.copy()
    return TrainingSet(tuple(names), x[complete], kept["label"].to_numpy(dtype=int), kept["t0"].to_numpy(dtype=int),
                       kept["t1"].to_numpy(dtype=int), stamps, times)  # fmt: skip


def with_extra_features(features: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """``features`` plus columns joined from ``extra`` on (symbol, ``ts_ns``): the decision close a value is for.

    ``extra`` holds ``symbol``, ``ts_ns``, ``event_timestamp`` (when its values became knowable, tz-aware) and the
    feature columns; each feature gets ``<name>__event_ns`` so ``check_point_in_time`` can judge it. This is how a
    feature from outside the feature store enters training, and where one computed from a later session is caught.
    """
    names = [c for c in extra.columns if c not in ("symbol", TS_COLUMN, "event_timestamp")]
    joined = extra[["symbol", TS_COLUMN, *names]].copy()
    event_ns = pd.DatetimeIndex(pd.to_datetime(extra["event_timestamp"], utc=True)).as_unit("ns").asi8
    for name in names:
        joined[f"{name}{EVENT_TIME_SUFFIX}"] = pd.array(event_ns, dtype="Int64")  # exact ns, missing stays missing
    return features.drop(columns=[n for n in names if n in features.columns]).merge(
        joined, on=["symbol", TS_COLUMN], how="left"
    )


def check_point_in_time(data: TrainingSet) -> None:
    """Refuse (``FeatureLeakError``) any feature whose event time follows its row's label start."""
    problems = []
    for name in data.features:
        late = np.flatnonzero(np.asarray(data.feature_times_ns[name]) > data.label_start_ns)
        if len(late):
            i = int(late[0])
            problems.append(f"{name}: {len(late)} of {len(data.y)} rows have a value from after the decision (first: "
                            f"event time {pd.Timestamp(int(data.feature_times_ns[name][i]), tz='UTC')} > label start "
                            f"{pd.Timestamp(int(data.label_start_ns[i]), tz='UTC')})")  # fmt: skip
    if problems:
        raise FeatureLeakError("refusing features that can follow the label's start (they peek at the outcome): "
                               + "; ".join(problems) + "; retrieve features at the decision close")  # fmt: skip


def make_model(cfg: VetoTrainingConfig, seed: int, calibration_splits: list[tuple[np.ndarray, np.ndarray]]) -> Any:
    forest = RandomForestClassifier(n_estimators=cfg.n_estimators, min_samples_leaf=cfg.min_samples_leaf,
                                    max_features="sqrt", n_jobs=1, random_state=seed)  # fmt: skip
    return CalibratedClassifierCV(forest, method=cfg.calibration, cv=calibration_splits)


def fit_veto_model(data: TrainingSet, cfg: VetoTrainingConfig, seed: int, *, purged: bool = True) -> Any:
    """The calibrated classifier fitted on ``data``, its calibration folds purged (or shuffled when not ``purged``).

    The point-in-time check is the caller's (``check_point_in_time``, run once by the trainer on every signal).
    """
    _need_both_classes(data.y, "training set")
    model = make_model(cfg, seed, _inner_splits(data, cfg, seed, purged))
    model.fit(data.x, data.y)
    return model


def cross_validate(data: TrainingSet, cfg: VetoTrainingConfig, seed: int, *, purged: bool = True) -> list[FoldScore]:
    """Scores of each test fold: purged and embargoed (the default), or shuffled k-fold to show its optimism."""
    outer = _splits(data.t0, data.t1, cfg.cv_folds, cfg.embargo_bars, seed, purged)
    scores = []
    for k, (train, test) in enumerate(outer):
        model = fit_veto_model(data.subset(train), cfg, seed, purged=purged)
        p = np.clip(model.predict_proba(data.x[test])[:, list(model.classes_).index(1)], 1e-6, 1 - 1e-6)
        y = data.y[test]
        auc = float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None
        scores.append(FoldScore(k, len(train), len(test), len(data.y) - len(train) - len(test), auc,
                                float(brier_score_loss(y, p)), float(log_loss(y, p, labels=[0, 1]))))  # fmt: skip
    log.info("event=veto_cv purged=%s folds=%d mean_auc=%s", purged, len(scores), cv_summary(scores)["mean_auc"])
    return scores


def cv_summary(scores: Sequence[FoldScore]) -> dict[str, Any]:
    """Per-fold scores and their means (AUC over the folds where it is defined)."""
    aucs = [s.auc for s in scores if s.auc is not None]
    return {
        "folds": [s.to_dict() for s in scores],
        "mean_auc": float(np.mean(aucs)) if aucs else None,
        "mean_brier": float(np.mean([s.brier for s in scores])) if scores else None,
        "mean_log_loss": float(np.mean([s.log_loss for s in scores])) if scores else None,
    }


def _splits(t0: np.ndarray, t1: np.ndarray, k: int, embargo: int, seed: int,
            purged: bool) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    if purged:
        return PurgedKFold(k, embargo).splits(t0, t1)
    return list(KFold(k, shuffle=True, random_state=seed).split(t0))


def _inner_splits(data: TrainingSet, cfg: VetoTrainingConfig, seed: int,
                  purged: bool) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    splits = _splits(data.t0, data.t1, cfg.calibration_folds, cfg.embargo_bars, seed, purged)
    for train, _ in splits:
        _need_both_classes(data.y[train], "a calibration fold's training part")
    return splits


def _need_both_classes(y: np.ndarray, what: str) -> None:
    if len(set(np.asarray(y).tolist())) < 2:
        raise DataError(f"{what} holds one class only ({len(y)} signals): the model cannot learn a veto from it; "
                        "use more data or another label rule")  # fmt: skip
