"""``ml.veto_scorer.OnlineVetoScorer`` against real Feast (a temporary copy of ``feature_repo/``, SQLite online store):
a fresh value is scored by the model, a stale one is None, a NaN feature the model needs is None, the universe is
read once per close, and a broken read or model is None rather than an exception in the decision path.

Feast takes seconds to import, so one published repo is shared by the module. ``NEW`` listed 10 sessions before the
last close: its features are fresh, but ``ret_20d`` is still NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from core.events import SignalDirection, SignalEvent
from data.bar_features import bar_features
from data.calendar import TradingCalendar
from data.synthetic import generate_market
from ml.feature_store import FeatureRepo, OnlineFeatures, copy_definitions
from ml.veto_scorer import MultiStrategyScorer, OnlineVetoScorer

REPO = Path(__file__).resolve().parents[2]
FEATURES = ["ret_1d", "ret_20d", "vol_20d", "rsi_14"]
TRADING = ("AAA", "BBB", "CCC")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureRepo, pd.DataFrame]:
    calendar = TradingCalendar()
    frames = generate_market([*TRADING, "NEW"], "2024-01-02", "2024-06-28", seed=5, calendar=calendar)
    frames["NEW"] = frames["NEW"].tail(10)
    features = bar_features(frames, calendar)
    repo = FeatureRepo(copy_definitions(REPO / "feature_repo", tmp_path_factory.mktemp("veto") / "feature_repo"))
    repo.publish(features)
    return repo, features


@pytest.fixture(scope="module")
def online(published: tuple[FeatureRepo, pd.DataFrame]) -> OnlineFeatures:
    return published[0].online()


@pytest.fixture(scope="module")
def last_close_ns(published: tuple[FeatureRepo, pd.DataFrame]) -> int:
    return int(published[1]["event_timestamp"].max().value)


@pytest.fixture(scope="module")
def model() -> tuple[LogisticRegression, dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] + 0.1 * x[:, 3] + rng.normal(size=200) > 0).astype(int)
    estimator = LogisticRegression().fit(x, y)
    return estimator, {"model_id": "m1", "strategy": "momentum", "features": FEATURES}


def signal(symbol: str, strategy_id: str = "momentum") -> SignalEvent:
    return SignalEvent(ts_event_ns=0, ts_init_ns=0, strategy_id=strategy_id, symbol=symbol,
                       direction=SignalDirection.LONG, reference_price=100.0)  # fmt: skip


class CountingReader:
    """The online reader with its calls counted (a wrapper of the public API, not a mock)."""

    def __init__(self, online: OnlineFeatures) -> None:
        self._online = online
        self.calls: list[tuple[tuple[str, ...], int]] = []

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._online.feature_names

    def get(self, symbols: Sequence[str], last_completed_close_ns: int) -> dict[str, dict[str, float] | None]:
        self.calls.append((tuple(symbols), last_completed_close_ns))
        return self._online.get(symbols, last_completed_close_ns)


def test_a_fresh_value_is_scored_by_the_promoted_model(published, online, last_close_ns, model) -> None:
    estimator, card = model
    scorer = OnlineVetoScorer(estimator, card, online, lambda: last_close_ns)
    features = published[1]
    row = features[(features["symbol"] == "AAA") & (features["event_timestamp"] == features["event_timestamp"].max())]
    expected = estimator.predict_proba(row[FEATURES].to_numpy())[0, 1]
    assert scorer.probability(signal("AAA")) == pytest.approx(expected, rel=1e-12)


def test_a_value_older_than_the_last_completed_close_is_none(online, last_close_ns, model) -> None:
    next_close = last_close_ns + 24 * 3600 * 10**9  # the next session closed; nothing was written for it
    scorer = OnlineVetoScorer(*model, online, lambda: next_close)
    assert scorer.probability(signal("AAA")) is None
    assert scorer.probability(signal("ZZZ")) is None  # never published at all


def test_a_nan_feature_the_model_needs_is_none(online, last_close_ns, model) -> None:
    values = online.get(["NEW"], last_close_ns)["NEW"]
    assert values is not None and math.isnan(values["ret_20d"]) and math.isfinite(values["ret_1d"])  # fresh, NaN
    scorer = OnlineVetoScorer(*model, online, lambda: last_close_ns)
    assert scorer.probability(signal("NEW")) is None
    assert scorer.probability(signal("AAA")) is not None


def test_a_model_that_raises_gives_none_not_an_exception(online, last_close_ns, model) -> None:
    estimator, card = model  # a card listing one feature for a model fitted on four: predict_proba raises
    scorer = OnlineVetoScorer(estimator, {**card, "features": ["ret_1d"]}, online, lambda: last_close_ns)
    assert scorer.probability(signal("AAA")) is None


def test_the_universe_is_read_and_scored_once_per_close(online, last_close_ns, model) -> None:
    reader = CountingReader(online)
    close = [last_close_ns]
    scorer = OnlineVetoScorer(*model, reader, lambda: close[0], universe=TRADING)
    first = [scorer.probability(signal(s)) for s in TRADING]
    assert all(p is not None and 0 < p < 1 for p in first)
    assert reader.calls == [(TRADING, last_close_ns)]
    assert scorer.probability(signal("NEW")) is None  # outside the universe: read on its own
    assert len(reader.calls) == 2
    close[0] += 1  # the next close: read again (and, nothing newer being there, stale)
    assert scorer.probability(signal("AAA")) is None and len(reader.calls) == 3


def test_an_unreadable_store_gives_none_not_an_exception(online, last_close_ns, model) -> None:
    class Broken(CountingReader):
        def get(self, symbols: Sequence[str], last_completed_close_ns: int) -> dict[str, dict[str, float] | None]:
            raise OSError("database is locked")

    scorer = OnlineVetoScorer(*model, Broken(online), lambda: last_close_ns, universe=TRADING)
    assert scorer.probability(signal("AAA")) is None


def test_a_card_naming_a_feature_the_store_does_not_serve_is_refused(online, model) -> None:
    estimator, card = model
    with pytest.raises(ValueError, match=r"needs features \['sentiment'\]"):
        OnlineVetoScorer(estimator, {**card, "features": ["ret_1d", "sentiment"]}, online, lambda: 0)
    with pytest.raises(ValueError, match="lists no features"):
        OnlineVetoScorer(estimator, {**card, "features": []}, online, lambda: 0)


def test_each_strategy_is_scored_by_its_own_model(online, last_close_ns, model) -> None:
    estimator, card = model
    scorer = MultiStrategyScorer({"momentum": OnlineVetoScorer(estimator, card, online, lambda: last_close_ns)})
    assert scorer.probability(signal("AAA")) is not None
    assert scorer.probability(signal("AAA", strategy_id="mean_reversion")) is None
