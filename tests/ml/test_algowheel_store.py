"""The AlgoWheel model store: round trip, immutability, private permissions, and loud failure on a broken CURRENT."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from core.config_models import AlgoWheelConfig
from core.errors import StateCorruptError
from core.events import Side
from ml.algowheel_store import (
    CARD_FILE,
    CURRENT_FILE,
    STATE_FILE,
    current_model_id,
    load_current_wheel,
    models_dir,
    promote,
    read_current,
    write_model,
)
from portfolio.algo_wheel import AlgoWheel, SessionClock, WheelContext

CONFIG = AlgoWheelConfig()
NOW_NS = 1_717_243_200_000_000_000  # 2024-06-01 12:00:00 UTC
CONTEXT = WheelContext(side=Side.BUY, quantity_shares=1000.0, adv_shares=1e6, volatility_20d_pct=25.0,
                       spread_bps=5.0, reference_price=100.0, collar_pct=2.0)  # fmt: skip
SESSION = SessionClock(minutes_to_auction_cutoff=110.0, minutes_to_close=120.0, regular_hours=True, half_day=False)


def trained_wheel(cost_bps: float = 4.0) -> AlgoWheel:
    wheel = AlgoWheel(CONFIG, rng_seed=3)
    for i in range(20):
        wheel.update(wheel.decide(CONTEXT, NOW_NS + i, SESSION), cost_bps)
    return wheel


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_promote_read_round_trip(tmp_path: Path) -> None:
    wheel = trained_wheel()
    model_id = write_model(tmp_path, wheel.state(), {"kind": "test", "n": 20}, now_ns=NOW_NS)
    assert model_id.startswith("20240601T120000Z-") and len(model_id) == len("20240601T120000Z-") + 12
    assert read_current(tmp_path) is None and current_model_id(tmp_path) is None
    promote(tmp_path, model_id)
    state, card = read_current(tmp_path)
    assert state == wheel.state()
    assert card == {"kind": "test", "n": 20, "model_id": model_id, "created_at": "2024-06-01T12:00:00+00:00"}
    loaded = load_current_wheel(tmp_path, CONFIG)
    assert loaded is not None and loaded.state() == wheel.state()
    assert loaded.decide(CONTEXT, NOW_NS, SESSION) == wheel.decide(CONTEXT, NOW_NS, SESSION)  # same stream


def test_files_are_0600_and_folders_0700(tmp_path: Path) -> None:
    root = tmp_path / "models"
    model_id = write_model(root, trained_wheel().state(), {}, now_ns=NOW_NS)
    promote(root, model_id)
    folder = models_dir(root)
    assert mode(root) == mode(folder) == mode(folder / model_id) == 0o700
    assert mode(folder / model_id / STATE_FILE) == mode(folder / model_id / CARD_FILE) == 0o600
    assert mode(folder / CURRENT_FILE) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == sorted([CURRENT_FILE, model_id])  # no temp left behind


def test_models_are_never_overwritten(tmp_path: Path) -> None:
    first = write_model(tmp_path, trained_wheel(4.0).state(), {"kind": "test"}, now_ns=NOW_NS)
    same = write_model(tmp_path, trained_wheel(4.0).state(), {"kind": "test"}, now_ns=NOW_NS)
    other = write_model(tmp_path, trained_wheel(9.0).state(), {"kind": "test"}, now_ns=NOW_NS)
    assert same == first and other != first
    promote(tmp_path, other)
    assert read_current(tmp_path)[0] == trained_wheel(9.0).state()
    promote(tmp_path, first)  # promotion only moves the pointer; both models stay as written
    assert read_current(tmp_path)[0] == trained_wheel(4.0).state()


def test_promote_refuses_a_malformed_or_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_id"):
        promote(tmp_path, "../elsewhere")
    with pytest.raises(FileNotFoundError, match="no such model"):
        promote(tmp_path, "20240601T120000Z-0123456789ab")
    assert current_model_id(tmp_path) is None


@pytest.mark.parametrize("content", ["garbage\n", "../../etc\n", ""])
def test_current_that_is_not_a_model_id_raises(tmp_path: Path, content: str) -> None:
    models_dir(tmp_path).mkdir(parents=True)
    (models_dir(tmp_path) / CURRENT_FILE).write_text(content)
    with pytest.raises(StateCorruptError, match=CURRENT_FILE):
        read_current(tmp_path)
    with pytest.raises(StateCorruptError, match=CURRENT_FILE):
        load_current_wheel(tmp_path, CONFIG)


def test_current_naming_a_missing_model_raises_naming_the_file(tmp_path: Path) -> None:
    models_dir(tmp_path).mkdir(parents=True)
    (models_dir(tmp_path) / CURRENT_FILE).write_text("20240601T120000Z-0123456789ab\n")
    with pytest.raises(StateCorruptError, match=r"CURRENT: names model 20240601T120000Z-0123456789ab.*missing"):
        read_current(tmp_path)


def test_current_naming_an_unparsable_model_raises_naming_the_file(tmp_path: Path) -> None:
    model_id = write_model(tmp_path, trained_wheel().state(), {}, now_ns=NOW_NS)
    promote(tmp_path, model_id)
    state_path = models_dir(tmp_path) / model_id / STATE_FILE
    state_path.write_text('{"format": "algo_wheel/1", ')
    with pytest.raises(StateCorruptError, match=STATE_FILE):
        read_current(tmp_path)


def test_a_wrong_posterior_raises_naming_the_state_file(tmp_path: Path) -> None:
    state = trained_wheel().state()
    state["precision"] = np.zeros((2, 2)).tolist()
    model_id = write_model(tmp_path, state, {}, now_ns=NOW_NS)
    (models_dir(tmp_path) / CURRENT_FILE).write_text(model_id)  # promote() would read it fine: the JSON parses
    with pytest.raises(StateCorruptError, match=rf"{model_id}/{STATE_FILE}.*shapes"):
        load_current_wheel(tmp_path, CONFIG)
