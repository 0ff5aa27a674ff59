"""The veto model store: layout, private modes, never overwriting, and every broken file a StateCorruptError that
names it (a changed artifact is caught by its sha256 before it is unpickled)."""

from __future__ import annotations

import hashlib
import json
import math
import stat
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from core.errors import StateCorruptError
from ml import veto_model_store as store
from ml.model_pointer import MODEL_ID_PATTERN

FEATURES = ["ret_1d", "vol_20d"]
NOW_NS = 1_714_564_800_000_000_000  # 2024-05-01 12:00:00 UTC


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def card() -> dict:
    return {"features": FEATURES, "label_rule": {"kind": "fixed_horizon", "horizon_bars": 5}, "cv": {"folds": []},
            "threshold_tried": [0.5], "data_fingerprint": "abc", "config_id": "def"}  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip_layout_and_private_modes(tmp_path: Path, model: LogisticRegression) -> None:
    model_id = store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS)
    assert MODEL_ID_PATTERN.match(model_id) and model_id.startswith("20240501T120000Z-")
    assert store.read_current(tmp_path, "momentum") is None  # written is not promoted
    store.promote(tmp_path, "momentum", model_id)
    folder = tmp_path / "veto" / "momentum" / model_id
    for path in (tmp_path / "veto", tmp_path / "veto" / "momentum", folder):
        assert mode(path) == 0o700, path
    for path in (folder / "model.joblib", folder / "model_card.json", tmp_path / "veto" / "momentum" / "CURRENT"):
        assert mode(path) == 0o600, path
    estimator, loaded_card = store.read_current(tmp_path, "momentum")
    assert loaded_card["model_id"] == model_id and loaded_card["strategy"] == "momentum"
    assert loaded_card["sha256"] == hashlib.sha256((folder / "model.joblib").read_bytes()).hexdigest()
    assert loaded_card["sklearn_version"] and loaded_card["features"] == FEATURES
    x = np.array([[0.5, 0.1], [-0.5, 0.1]])
    np.testing.assert_allclose(estimator.predict_proba(x), model.predict_proba(x))


def test_never_overwrites_and_the_same_content_is_the_same_model(tmp_path: Path, model: LogisticRegression) -> None:
    first = store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS)
    assert store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS) == first
    folder = tmp_path / "veto" / "momentum" / first
    (folder / "model.joblib").write_bytes(b"other")
    with pytest.raises(FileExistsError, match="not overwritten"):
        store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS)
    assert (folder / "model.joblib").read_bytes() == b"other"


def test_a_changed_artifact_is_caught_by_its_sha256(tmp_path: Path, model: LogisticRegression) -> None:
    model_id = store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS)
    store.promote(tmp_path, "momentum", model_id)
    artifact = tmp_path / "veto" / "momentum" / model_id / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[-20] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(StateCorruptError, match=r"model\.joblib: sha256 [0-9a-f]{64} differs"):
        store.read_current(tmp_path, "momentum")
    with pytest.raises(StateCorruptError, match="sha256"):
        store.promote(tmp_path, "momentum", model_id)  # a broken model is never promoted


@pytest.mark.parametrize("damage", ["current_garbage", "current_names_missing", "card_unreadable", "card_no_features"])
def test_every_broken_file_names_itself(tmp_path: Path, model: LogisticRegression, damage: str) -> None:
    model_id = store.write_model(tmp_path, "momentum", model, card(), now_ns=NOW_NS)
    store.promote(tmp_path, "momentum", model_id)
    base = tmp_path / "veto" / "momentum"
    card_path = base / model_id / "model_card.json"
    if damage == "current_garbage":
        (base / "CURRENT").write_text("../../etc\n")
        expected = "CURRENT: does not hold a model id"
    elif damage == "current_names_missing":
        (base / "CURRENT").write_text("20240101T000000Z-000000000000\n")
        expected = "CURRENT: names model 20240101T000000Z-000000000000, but .* is missing"
    elif damage == "card_unreadable":
        card_path.write_text("{not json")
        expected = "model_card.json: unreadable veto model card"
    else:
        card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "features": []}))
        expected = "model.joblib: the card's 'features' must be a non-empty list"
    with pytest.raises(StateCorruptError, match=expected):
        store.read_current(tmp_path, "momentum")


def test_probabilities_use_the_card_order_and_give_none_for_a_missing_or_nan_feature(model: LogisticRegression) -> None:
    rows = {
        "a": {"vol_20d": 0.1, "ret_1d": 0.5, "extra": 9.0},
        "b": {"ret_1d": 0.5},
        "c": {"ret_1d": math.nan, "vol_20d": 0.1},
        "d": {"ret_1d": -0.5, "vol_20d": 0.1},
    }
    out = store.probabilities(model, {"features": FEATURES}, rows)
    assert list(out) == ["a", "b", "c", "d"] and out["b"] is None and out["c"] is None
    expected = model.predict_proba(np.array([[0.5, 0.1], [-0.5, 0.1]]))[:, 1]
    assert out["a"] == pytest.approx(expected[0]) and out["d"] == pytest.approx(expected[1])
    assert store.probabilities(model, {"features": FEATURES}, {}) == {}


def test_refuses_a_model_that_is_not_a_veto_classifier(tmp_path: Path, model: LogisticRegression) -> None:
    three_class = LogisticRegression().fit(np.arange(6.0).reshape(3, 2), [0, 1, 2])
    with pytest.raises(ValueError, match=r"classes must be \[0, 1\]"):
        store.write_model(tmp_path, "momentum", three_class, card())
    with pytest.raises(ValueError, match="takes 2 features, the card names 1"):
        store.write_model(tmp_path, "momentum", model, {**card(), "features": ["ret_1d"]})
    with pytest.raises(ValueError, match="strategy: must be a config strategy name"):
        store.write_model(tmp_path, "../x", model, card())
    with pytest.raises(ValueError, match="must look like"):
        store.promote(tmp_path, "momentum", "latest")
    with pytest.raises(FileNotFoundError, match="no such model"):
        store.promote(tmp_path, "momentum", "20240101T000000Z-000000000000")
