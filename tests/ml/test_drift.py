"""Feature drift: PSI against hand-made distributions, the windows taken from a model card, and the card lookup in
the veto store layout (``veto/<strategy>/CURRENT`` -> ``<model_id>/model_card.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, StateCorruptError
from data.calendar import TradingCalendar
from ml import drift

WINDOW = {"start": "2022-01-03", "end": "2022-12-30"}


def test_psi_of_a_shifted_distribution_is_above_the_threshold() -> None:
    rng = np.random.default_rng(0)
    training = rng.normal(0.0, 1.0, 5000)
    assert drift.psi(training, rng.normal(1.0, 1.0, 1000)) > drift.DEFAULT_PSI_THRESHOLD
    assert drift.psi(training, rng.normal(0.0, 2.0, 1000)) > drift.DEFAULT_PSI_THRESHOLD


def test_psi_of_the_same_distribution_is_below_the_threshold() -> None:
    rng = np.random.default_rng(1)
    training = rng.normal(0.0, 1.0, 5000)
    assert drift.psi(training, rng.normal(0.0, 1.0, 1000)) < 0.05
    assert drift.psi(training, training) == pytest.approx(0.0, abs=1e-12)


def test_psi_by_hand_on_two_bins() -> None:
    """Constant-heavy data: the deciles collapse to one edge (0), so two bins: <= 0 and > 0."""
    expected = [0.0] * 80 + [1.0] * 20
    actual = [0.0] * 50 + [1.0] * 50 + [np.nan] * 7  # NaN dropped
    by_hand = (0.5 - 0.8) * np.log(0.5 / 0.8) + (0.5 - 0.2) * np.log(0.5 / 0.2)
    assert drift.psi(expected, actual) == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="finite values"):
        drift.psi(expected, [np.nan])


def _history(shift: float, sessions_after: int = 80) -> pd.DataFrame:
    """Four symbols' ``ret_1d`` (normal), on 2022's sessions and ``sessions_after`` later ones, shifted by ``shift``
    there; ``vol_20d`` all NaN."""
    calendar = TradingCalendar()
    training = calendar.sessions(WINDOW["start"], WINDOW["end"])
    later = calendar.sessions("2023-01-03", "2024-12-31")[:sessions_after]
    sessions = training.append(later)
    rng = np.random.default_rng(7)
    closes = pd.to_datetime(calendar.session_close_ns(sessions), utc=True)
    parts = []
    for k in range(4):
        values = rng.normal(0.0, 0.01, len(sessions)) + np.where(sessions > pd.Timestamp(WINDOW["end"]), shift, 0.0)
        parts.append(pd.DataFrame({"symbol": f"S{k}", "event_timestamp": closes, "ret_1d": values, "vol_20d": np.nan}))
    return pd.concat(parts, ignore_index=True)


def _card(window: object = WINDOW) -> dict:
    card = {"model_id": "v1", "features": ["ret_1d", "vol_20d", "tca_orders_20d"]}
    if window is not None:
        card["training_window"] = window
    return card


def test_feature_drift_compares_the_sessions_after_the_training_window() -> None:
    steady = drift.feature_drift(_history(0.0), _card(), "momentum")
    assert (steady.status, steady.retrain, steady.recent_sessions) == (drift.NO_DRIFT, False, 60)
    assert set(steady.psi) == {"ret_1d"} and steady.unchecked == ("vol_20d", "tca_orders_20d")
    moved = drift.feature_drift(_history(0.02), _card(), "momentum", threshold=0.25)
    assert (moved.status, moved.retrain, moved.drifted) == (drift.DRIFT, True, ("ret_1d",))
    lenient = drift.feature_drift(_history(0.02), _card(), "momentum", threshold=moved.psi["ret_1d"] + 1)
    assert lenient.status == drift.NO_DRIFT


def test_feature_drift_says_when_it_cannot_judge() -> None:
    assert drift.feature_drift(_history(0.02, sessions_after=10), _card(), "m").status == drift.TOO_RECENT
    assert drift.feature_drift(_history(0.02), _card({"start": "2019-01-02", "end": "2019-12-31"}), "m").status == (
        drift.NOT_IN_DATA
    )
    assert drift.feature_drift(_history(0.02), _card(None), "m").status == drift.NO_WINDOW
    no_features = {**_card(), "features": ["vol_20d"]}
    assert drift.feature_drift(_history(0.02), no_features, "m").status == drift.NO_FEATURES
    with pytest.raises(DataError, match="training_window"):
        drift.feature_drift(_history(0.0), _card({"start": "2022-12-30", "end": "2022-01-03"}), "m")


def test_training_window_forms() -> None:
    day = pd.Timestamp("2022-01-03")
    assert drift.training_window({"training_window": ["2022-01-03", "2022-12-30"]})[0] == day
    utc_close = {"start": "2022-01-03T21:00:00+00:00", "end": "2022-12-31T02:00:00+00:00"}  # 21:00 NY on the 30th
    assert drift.training_window({"training_window": utc_close}) == (day, pd.Timestamp("2022-12-30"))


def test_current_card_follows_current(tmp_path: Path) -> None:
    folder = tmp_path / "veto" / "momentum"
    assert drift.current_card(tmp_path, "momentum") is None
    assert drift.check_strategy(tmp_path, "momentum", _history(0.0)).status == drift.NO_MODEL
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("v1\n")
    with pytest.raises(StateCorruptError, match="does not exist"):
        drift.current_card(tmp_path, "momentum")
    (folder / "v1").mkdir()
    (folder / "v1" / "model_card.json").write_text("{not json")
    with pytest.raises(StateCorruptError, match="unreadable model card"):
        drift.current_card(tmp_path, "momentum")
    (folder / "v1" / "model_card.json").write_text(json.dumps(_card()))
    assert drift.current_card(tmp_path, "momentum")["model_id"] == "v1"
    assert drift.check_strategy(tmp_path, "momentum", _history(0.02)).retrain
