"""The signal veto end to end in the live engine, built in this process (``build_engine``, the engine ``main.py``
runs) against an in-process ibsim, with real Feast (a temporary copy of ``feature_repo/``) and a veto model written
here in the promoted-model layout (``<models_dir>/veto/<strategy>/<id>/``, ``CURRENT``).

The model is a LogisticRegression whose coefficients are zero and whose intercept is -2: p = 0.119 for every signal.
With threshold 0.5 every entry is vetoed: nothing reaches ibsim, STATUS (over the command channel) and the risk log
count the vetoes and name the last ones. With threshold 0.05 every entry passes and the engine trades. Each close's
features are the engine's own (``live.session_features``); the repository was published with ibsim's history first,
as ``run_system.sh`` does. A strategy with the veto on and no promoted model stops the build with the trainer
command in the message.
"""

from __future__ import annotations

import csv
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from core.clock import WallClock
from core.config_loader import validate_config
from core.errors import ConfigError
from core.ib_wrapper import IbConnection
from core.ipc_commands import CommandClient
from data.bar_features import bar_features
from ibsim import IbSim, SimConfig, build_market
from live.engine import Engine
from live.ports import EngineFiles, EnginePorts
from live.wiring import build_engine
from ml.feature_store import FeatureRepo, copy_definitions
from testkit.crash_cycles import fast_trading_config
from testkit.waiting import free_port

REPO = Path(__file__).resolve().parents[2]
STRATEGY = "sma_crossover"
FEATURES = ["ret_1d", "vol_20d", "rsi_14"]
INTERCEPT = -2.0
P_EVERY_SIGNAL = 1.0 / (1.0 + math.exp(-INTERCEPT))  # 0.119


@pytest.fixture(scope="module")
def feature_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ibsim's history (``fast_sim``'s seed 3, before its first replayed session) published, as run_system.sh does."""
    path = copy_definitions(REPO / "feature_repo", tmp_path_factory.mktemp("veto_engine") / "feature_repo")
    market = build_market(SimConfig(seed=3))
    first = market.sessions[0]
    FeatureRepo(path).publish(bar_features({s: f.loc[f.index < first] for s, f in market.frames.items()}))
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_promoted_model(root, STRATEGY)
    return root


def write_promoted_model(models_dir: Path, strategy: str, features: list[str] = FEATURES) -> None:
    """A promoted model in the store's own layout (``ml.veto_model_store``), p = P_EVERY_SIGNAL for every signal."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, len(features)))
    estimator = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    estimator.coef_[:] = 0.0
    estimator.intercept_[:] = INTERCEPT
    from ml import veto_model_store

    card = {"strategy": strategy, "features": features, "threshold_tried": [0.5], "cv": {},
            "sklearn_version": sklearn.__version__, "label_rule": f"test: p={P_EVERY_SIGNAL:.3f} always",
            "data_fingerprint": "test", "config_id": "test"}  # fmt: skip
    model_id = veto_model_store.write_model(models_dir, strategy, estimator, card)  # the real store's layout
    veto_model_store.promote(models_dir, strategy, model_id)


def veto_config(ib_port: int, feature_repo: Path, models_dir: Path, threshold: float) -> Any:
    raw = fast_trading_config(ib_port, f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    raw["strategies"][STRATEGY]["veto"] = {"enabled": True, "threshold": threshold, "models_dir": str(models_dir)}
    raw["features"] = {"repo_path": str(feature_repo)}
    return validate_config(raw, "veto engine test")


def in_process(root: Path, config: Any, ib_port: int) -> Engine:
    """The engine ``main.py`` runs, every file under ``root``, connecting to the in-process ibsim's port."""
    files = EngineFiles.from_config(config)
    under_root = EngineFiles(**{name: root / path for name, path in asdict(files).items()})
    ib = config.ib_connection

    def connect(put: Callable[[object], None], clock: WallClock) -> IbConnection:
        return IbConnection(ib, ib.main_client_id, put, clock, port=ib_port)

    return build_engine(config, EnginePorts(under_root, WallClock(), connect))


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[Callable[[Engine], threading.Thread]]:
    threads: list[tuple[Engine, threading.Thread]] = []

    def start(engine: Engine) -> threading.Thread:
        thread = threading.Thread(target=lambda: engine.run(duration_s=120, install_signals=False), daemon=True)
        thread.start()
        threads.append((engine, thread))
        return thread

    yield start
    for engine, thread in threads:
        engine.request_stop("test done")
        thread.join(30)
        assert not thread.is_alive(), "the engine did not stop"


def eventually(cond: Callable[[], Any], timeout_s: float, what: str, thread: threading.Thread) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := cond()):
        if not thread.is_alive():
            pytest.fail(f"{what}: the engine stopped first")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)
    return value


def last_risk_row(engine: Engine) -> dict[str, str] | None:
    path = engine.files.risk_log
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    return rows[-1] if rows else None


def engine_orders_at(sim: IbSim) -> list[Any]:
    with sim.lock:
        return [o for o in sim.book.orders.values() if o.client_id == 1]


def status(engine: Engine, config: Any) -> dict[str, Any]:
    client = CommandClient(config.operational_risk.command_endpoint, engine.files.command_keys_dir, "operator",
                           WallClock())  # fmt: skip
    try:
        reply = client.send("STATUS", 5.0)
    finally:
        client.close()
    assert reply.ok, reply.message
    return dict(reply.data)


def test_every_entry_vetoed_sends_no_order_and_status_and_the_risk_log_report_it(
    tmp_path: Path, fast_sim: IbSim, feature_repo: Path, models_dir: Path, running: Callable[..., threading.Thread]
) -> None:
    config = veto_config(fast_sim.port, feature_repo, models_dir, threshold=0.5)
    engine = in_process(tmp_path, config, fast_sim.port)
    thread = running(engine)
    row = eventually(lambda: (r := last_risk_row(engine)) and int(r["vetoed"]) >= 2 and r, 60,
                     "two entries vetoed in the risk log", thread)  # fmt: skip
    session, strategy, symbol, reason = row["last_veto"].split(" ", 3)  # "<session> <strategy> <symbol> <reason>"
    assert session.startswith("2024-") and strategy == STRATEGY and symbol in config.symbols
    assert reason == f"p={P_EVERY_SIGNAL:.2f} < threshold 0.50"
    assert int(row["vetoed_missing"]) == 0 and int(row["veto_passed"]) == 0  # every entry had fresh features
    reply = status(engine, config)
    assert reply["vetoes"]["vetoed"] >= 2 and reply["ignored_signals"]["veto"] >= 2
    last = reply["last_vetoes"][-1]
    assert last["strategy_id"] == STRATEGY and last["symbol"] in config.symbols and last["direction"] == "LONG"
    assert last["p"] == pytest.approx(P_EVERY_SIGNAL, abs=1e-4) and "threshold 0.50" in last["reason"]
    assert reply["session_features"]["sessions_written"] >= 1 and reply["session_features"]["write_failures"] == 0
    assert engine_orders_at(fast_sim) == []  # no order ever reached ibsim
    assert not engine.files.journal.exists() or "intent" not in engine.files.journal.read_text()


def test_a_threshold_every_signal_passes_trades(
    tmp_path: Path, fast_sim: IbSim, feature_repo: Path, models_dir: Path, running: Callable[..., threading.Thread]
) -> None:
    config = veto_config(fast_sim.port, feature_repo, models_dir, threshold=0.05)
    engine = in_process(tmp_path, config, fast_sim.port)
    thread = running(engine)
    eventually(lambda: engine_orders_at(fast_sim), 60, "an order at ibsim", thread)
    row = eventually(lambda: (r := last_risk_row(engine)) and int(r["veto_passed"]) >= 1 and r, 10,
                     "a passed entry in the risk log", thread)  # fmt: skip
    assert int(row["vetoed"]) == 0 and int(row["vetoed_missing"]) == 0 and row["last_veto"] == ""


def test_a_veto_without_a_promoted_model_stops_the_build_naming_the_trainer(tmp_path: Path, feature_repo: Path) -> None:
    config = veto_config(1, feature_repo, tmp_path / "no_models", threshold=0.5)
    with pytest.raises(ConfigError, match=rf"python -m ml.ml_model_trainer --strategy {STRATEGY}") as raised:
        in_process(tmp_path, config, 1)
    assert f"strategies.{STRATEGY}.veto.enabled" in str(raised.value)
    write_promoted_model(tmp_path / "other_models", STRATEGY, features=["ret_1d", "sentiment_1d"])
    config = veto_config(1, feature_repo, tmp_path / "other_models", threshold=0.5)
    with pytest.raises(ConfigError, match=r"features \['sentiment_1d'\] are not served"):
        in_process(tmp_path, config, 1)  # the first build left the state lock free
