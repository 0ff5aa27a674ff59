"""Leakage: a planted feature that peeks one session ahead looks near-perfect under shuffled k-fold and drops to
chance under the purged, embargoed cross-validation the trainer uses; and the trainer's point-in-time check refuses
it outright because its event timestamp follows the label's start.

The planted feature is the symbol's cumulative traded volume *through the next session*: it carries tomorrow's
volume (so its event time is the next close) and, being a running total, it names the session. A model trained on
shuffled folds finds each test signal's neighbours in time among its training rows and reads the test label off
their overlapping 20-session labels; purging those neighbours leaves it nothing to read. Every signal here is a
LONG at every session of one synthetic symbol, labelled by the fixed 20-session horizon rule, scored by the
trainer's own model (calibrated random forest) and CV code. The numbers are printed (``-s``) for the record.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.config_models import VetoTrainingConfig
from data.bar_features import BAR_FEATURE_NAMES, bar_features
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_panel
from ml.panel_features import TS_COLUMN
from ml.veto_labels import label_signals
from ml.veto_training import (
    FeatureLeakError,
    TrainingSet,
    check_point_in_time,
    cross_validate,
    cv_summary,
    training_set,
    with_extra_features,
)

CFG = VetoTrainingConfig(label="fixed_horizon", horizon_bars=20, embargo_bars=20, n_estimators=50, calibration_folds=2,
                         min_samples_leaf=5, features=("planted",))  # fmt: skip


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return generate_panel(["AAA"], "2014-01-02", "2021-12-31", 3, TradingCalendar())


@pytest.fixture(scope="module")
def features(panel: BarPanel) -> pd.DataFrame:
    """The bar features (what Feast would serve, point in time) of every session."""
    frame = bar_features(panel)
    frame[TS_COLUMN] = pd.DatetimeIndex(frame["event_timestamp"]).as_unit("ns").asi8
    return frame


@pytest.fixture(scope="module")
def planted(panel: BarPanel) -> pd.DataFrame:
    """For the decision at close t: cumulative volume through session t+1, knowable only at close t+1."""
    volume_through_next = np.cumsum(panel.volume[:, 0])[1:]
    return pd.DataFrame({
        "symbol": "AAA",
        TS_COLUMN: panel.ts_event_ns[:-1],
        "event_timestamp": pd.to_datetime(panel.ts_event_ns[1:], utc=True),
        "planted": volume_through_next,
    })  # fmt: skip


@pytest.fixture(scope="module")
def events(panel: BarPanel) -> pd.DataFrame:
    codes = np.ones(panel.close.shape, dtype=np.int8)  # a LONG signal at every session
    return label_signals(panel, codes, np.full(panel.close.shape, np.nan), CFG, allow_short=False).events


def _with_planted(features: pd.DataFrame, planted: pd.DataFrame, events: pd.DataFrame, names) -> TrainingSet:
    return training_set(events, with_extra_features(features, planted), names)


def test_planted_feature_is_near_perfect_with_plain_kfold_and_chance_when_purged(
    features: pd.DataFrame, planted: pd.DataFrame, events: pd.DataFrame
) -> None:
    data = _with_planted(features, planted, events, ["planted"])
    assert len(data.y) > 1900 and 0.3 < data.y.mean() < 0.7
    plain = cv_summary(cross_validate(data, CFG, seed=0, purged=False))["mean_auc"]
    purged = cv_summary(cross_validate(data, CFG, seed=0, purged=True))["mean_auc"]
    print(f"\nplanted one-session-ahead feature: AUC shuffled k-fold {plain:.3f}, purged+embargo {purged:.3f}")
    assert plain > 0.9
    assert abs(purged - 0.5) < 0.1


def test_the_honest_features_alone_are_also_flattered_by_shuffled_kfold(
    features: pd.DataFrame, events: pd.DataFrame
) -> None:
    """Trailing-window features are smooth in time, so shuffled folds leak through them too (less dramatically)."""
    cfg = CFG.model_copy(update={"features": BAR_FEATURE_NAMES})
    data = training_set(events, features, BAR_FEATURE_NAMES)
    plain = cv_summary(cross_validate(data, cfg, seed=0, purged=False))["mean_auc"]
    purged = cv_summary(cross_validate(data, cfg, seed=0, purged=True))["mean_auc"]
    print(f"\nbar features only: AUC shuffled k-fold {plain:.3f}, purged+embargo {purged:.3f}")
    assert plain > purged + 0.1


def test_a_feature_whose_event_time_follows_the_label_start_is_refused(
    features: pd.DataFrame, planted: pd.DataFrame, events: pd.DataFrame
) -> None:
    data = _with_planted(features, planted, events, ["ret_1d", "planted"])
    refused = r"planted: \d+ of \d+ rows have a value from after the decision"
    with pytest.raises(FeatureLeakError, match=refused) as info:
        check_point_in_time(data)
    assert "ret_1d" not in str(info.value)  # served point-in-time at the decision close: accepted
    check_point_in_time(training_set(events, features, ["ret_1d"]))  # no planted feature: nothing refused


def test_a_feature_known_at_the_decision_close_is_accepted_and_one_without_a_time_is_refused(
    features: pd.DataFrame, planted: pd.DataFrame, events: pd.DataFrame, panel: BarPanel
) -> None:
    same_close = planted.assign(event_timestamp=pd.to_datetime(planted[TS_COLUMN], utc=True))
    check_point_in_time(_with_planted(features, same_close, events, ["planted"]))
    one_late = same_close.copy()
    one_late.loc[100, "event_timestamp"] += pd.Timedelta(microseconds=1)
    with pytest.raises(FeatureLeakError, match="planted: 1 of"):
        check_point_in_time(_with_planted(features, one_late, events, ["planted"]))
