"""Where signal-veto models live: immutable model folders per strategy and one ``CURRENT`` pointer each.

Layout under a models root (``strategies.<name>.veto.models_dir``, default ``state/models``)::

    <root>/veto/<strategy>/<model_id>/model.joblib      a fitted scikit-learn classifier (predict_proba, classes [0, 1])
    <root>/veto/<strategy>/<model_id>/model_card.json   the audit record: features, label rule, data, CV, sha256...
    <root>/veto/<strategy>/CURRENT                       the promoted model_id, one line

Mirrors ``ml.algowheel_store``: a model folder is written once under a hidden name and renamed into place
(``model_id`` = UTC second + a hash of the artifact and card), promotion is one atomic replace of ``CURRENT``,
folders are 0700 and files 0600. The card carries the SHA-256 of ``model.joblib``; every read checks it before
unpickling, so a file that changed after it was written (disk, copy, an edit) is a ``StateCorruptError`` naming
it, never a silently different model. The hash detects corruption, not an attacker: whoever can write this
folder can write both files, and joblib files are pickles (they run code when loaded), so the folder must stay
private to the account that trades.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.clock import WallClock
from core.errors import StateCorruptError
from ml.model_pointer import CURRENT_FILE, canonical_json, check_model_id, read_pointer, write_pointer
from utils.atomic_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, atomic_write_bytes, fsync_dir, make_dir

log = logging.getLogger(__name__)

VETO_SUBDIR = "veto"
MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
STRATEGY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def strategy_dir(models_dir: Path | str, strategy: str) -> Path:
    """``<models_dir>/veto/<strategy>``: every model of one strategy and its ``CURRENT``."""
    if not STRATEGY_PATTERN.match(strategy):
        raise ValueError(f"strategy: must be a config strategy name like 'momentum' (got {strategy!r})")
    return Path(models_dir) / VETO_SUBDIR / strategy


def write_model(models_dir: Path | str, strategy: str, estimator: Any, card: Mapping[str, Any],
                *, now_ns: int | None = None) -> str:  # fmt: skip
    """Write a new model folder and return its ``model_id``; never overwrites.

    The card gains ``model_id``, ``strategy``, ``created_at``, ``sha256`` (of ``model.joblib``) and
    ``sklearn_version``; it must hold ``features`` (the estimator's input names, in order) and be JSON (no NaN:
    ValueError). ``now_ns`` (UTC epoch ns, default the wall clock) names the model. The same artifact and card in
    the same second is the same model (its id is returned, nothing written); another content under that id raises
    ``FileExistsError``. ValueError for an estimator without ``predict_proba`` or classes other than [0, 1].
    """
    import joblib  # ~0.1 s: only when a model is written or read, not whenever a backtest imports this module

    _check_estimator(estimator, card.get("features"), "estimator")
    now_ns = WallClock().now_ns() if now_ns is None else now_ns
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    artifact = buffer.getvalue()
    digest = hashlib.sha256(artifact).hexdigest()
    stamp = datetime.fromtimestamp(now_ns // 1_000_000_000, tz=UTC)
    model_id = f"{stamp:%Y%m%dT%H%M%SZ}-" + hashlib.sha256(artifact + canonical_json(dict(card))).hexdigest()[:12]
    full_card = {**card, "model_id": model_id, "strategy": strategy, "created_at": stamp.isoformat(),
                 "sha256": digest, "sklearn_version": _sklearn_version()}  # fmt: skip
    card_bytes = canonical_json(full_card)
    folder = strategy_dir(models_dir, strategy)
    for path in (Path(models_dir), folder.parent, folder):
        make_dir(path, PRIVATE_DIR_MODE)
    target = folder / model_id
    if target.exists():
        if (target / MODEL_FILE).is_file() and _sha256_file(target / MODEL_FILE) == digest:
            return model_id
        raise FileExistsError(f"{target}: a model with this id and other content exists; not overwritten")
    staging = folder / f".{model_id}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    make_dir(staging, PRIVATE_DIR_MODE)
    atomic_write_bytes(staging / MODEL_FILE, artifact, mode=PRIVATE_FILE_MODE)
    atomic_write_bytes(staging / CARD_FILE, card_bytes, mode=PRIVATE_FILE_MODE)
    os.rename(staging, target)
    fsync_dir(folder)
    log.info("event=veto_model_written strategy=%s model_id=%s path=%s sha256=%s", strategy, model_id, target, digest)
    return model_id


def promote(models_dir: Path | str, strategy: str, model_id: str) -> None:
    """Point the strategy's ``CURRENT`` at ``model_id`` (atomic replace). The model must load and match its
    sha256 first, so a promotion never leaves a pointer the engine cannot use: ValueError for a malformed id,
    FileNotFoundError for a missing model, ``StateCorruptError`` for a broken one."""
    check_model_id(model_id)
    folder = strategy_dir(models_dir, strategy)
    if not (folder / model_id).is_dir():
        raise FileNotFoundError(f"{folder / model_id}: no such model; write it with write_model first")
    read_model(models_dir, strategy, model_id)
    write_pointer(folder / CURRENT_FILE, model_id)
    log.warning("event=veto_model_promoted strategy=%s model_id=%s", strategy, model_id)


def current_model_id(models_dir: Path | str, strategy: str) -> str | None:
    """The promoted model's id, None when none was ever promoted; a malformed ``CURRENT`` raises
    ``StateCorruptError`` naming it."""
    return read_pointer(strategy_dir(models_dir, strategy) / CURRENT_FILE, "veto model",
                        f"retrain: python -m ml.ml_model_trainer --strategy {strategy}")


def read_current(models_dir: Path | str, strategy: str) -> tuple[Any, dict[str, Any]] | None:
    """(estimator, card) of the strategy's promoted model; None when nothing is promoted.

    ``StateCorruptError`` naming the file when ``CURRENT``, the card or the model is broken, or the model's
    sha256 differs from the card's: the caller decides (stop, promote another model), never a silent fallback.
    """
    model_id = current_model_id(models_dir, strategy)
    if model_id is None:
        return None
    folder = strategy_dir(models_dir, strategy)
    if not (folder / model_id).is_dir():
        raise StateCorruptError(f"{folder / CURRENT_FILE}: names model {model_id}, but {folder / model_id} is missing")
    return read_model(models_dir, strategy, model_id)


def read_model(models_dir: Path | str, strategy: str, model_id: str) -> tuple[Any, dict[str, Any]]:
    """(estimator, card) of one model folder, its artifact checked against the card's sha256 before loading."""
    folder = strategy_dir(models_dir, strategy) / model_id
    card = _read_card(folder / CARD_FILE)
    model_path = folder / MODEL_FILE
    try:
        artifact = model_path.read_bytes()
    except OSError as exc:
        raise StateCorruptError(f"{model_path}: unreadable veto model ({exc})") from exc
    actual = hashlib.sha256(artifact).hexdigest()
    if actual != card.get("sha256"):
        raise StateCorruptError(
            f"{model_path}: sha256 {actual} differs from {card.get('sha256')!r} in {folder / CARD_FILE}; the file "
            f"changed after it was written: restore it, promote another model or retrain"
        )
    import joblib

    try:
        estimator = joblib.load(io.BytesIO(artifact))
    except Exception as exc:  # unpickling can fail in many ways; all mean the file cannot be used
        raise StateCorruptError(f"{model_path}: cannot load the veto model ({type(exc).__name__}: {exc})") from exc
    try:
        _check_estimator(estimator, card.get("features"), str(model_path))
    except ValueError as exc:
        raise StateCorruptError(str(exc)) from exc
    if card.get("sklearn_version") != _sklearn_version():
        log.warning("event=veto_model_sklearn_version_differs path=%s trained=%s installed=%s", model_path,
                    card.get("sklearn_version"), _sklearn_version())  # fmt: skip
    return estimator, card


def probabilities(
    estimator: Any, card: Mapping[str, Any], rows: Mapping[str, Mapping[str, float]]
) -> dict[str, float | None]:
    """key -> probability of class 1 (the trade works), None for a row missing a feature or holding a NaN.

    ``rows``: key -> {feature name: value}; the columns are taken in ``card["features"]`` order. Every complete
    row is scored in one ``predict_proba`` call.
    """
    features = list(card["features"])
    keys = list(rows)
    matrix = np.full((len(keys), len(features)), np.nan)
    for i, key in enumerate(keys):
        row = rows[key]
        for k, name in enumerate(features):
            value = row.get(name)
            if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                matrix[i, k] = float(value)
    complete = np.isfinite(matrix).all(axis=1)
    out: dict[str, float | None] = dict.fromkeys(keys)
    if complete.any():
        scored = predict_positive(estimator, matrix[complete], features)
        for key, p in zip((k for k, ok in zip(keys, complete, strict=True) if ok), scored, strict=True):
            out[key] = float(p)
    return out


def predict_positive(estimator: Any, matrix: np.ndarray, features: list[str]) -> np.ndarray:
    """Probability of class 1 for each row of ``matrix`` (columns in ``features`` order)."""
    data: Any = matrix
    if hasattr(estimator, "feature_names_in_"):  # fitted on a frame: give it one, with the names it knows
        import pandas as pd

        data = pd.DataFrame(matrix, columns=features)
    column = [int(c) for c in estimator.classes_].index(1)
    return np.asarray(estimator.predict_proba(data))[:, column]


def _check_estimator(estimator: Any, features: Any, where: str) -> None:
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ValueError(f"{where}: a veto model needs predict_proba (got {type(estimator).__name__})")
    classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(estimator, "classes_", [])]
    if classes != [0, 1]:
        raise ValueError(f"{where}: a veto model's classes must be [0, 1], 1 = the trade worked (got {classes})")
    if not (isinstance(features, list | tuple) and features and all(isinstance(f, str) for f in features)):
        raise ValueError(f"{where}: the card's 'features' must be a non-empty list of feature names (got {features!r})")
    expected = getattr(estimator, "n_features_in_", len(features))
    if expected != len(features):
        raise ValueError(f"{where}: the estimator takes {expected} features, the card names {len(features)}")


def _read_card(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorruptError(f"{path}: unreadable veto model card ({exc})") from exc
    if not isinstance(value, dict):
        raise StateCorruptError(f"{path}: expected a JSON object (got {type(value).__name__})")
    return value


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively: what a JSON card holds."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
