"""Veto model artifacts: ``<models_dir>/veto/<strategy>/<model_id>/{model.joblib,model_card.json}`` and ``CURRENT``.

Stand-in for part 2's module (issue 14, contract section B), written only so part 3's live wiring runs; part 2's
version replaces it at merge. Dirs 0700, files 0600; ``read_current`` checks the card's sha256 of model.joblib.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from core.errors import StateCorruptError
from utils.atomic_files import atomic_write_bytes


def _strategy_dir(models_dir: Path | str, strategy: str) -> Path:
    return Path(models_dir) / "veto" / strategy


def read_current(models_dir: Path | str, strategy: str) -> tuple[Any, dict] | None:
    """(estimator, card) of the promoted model, None when none is promoted; StateCorruptError naming a broken file."""
    current = _strategy_dir(models_dir, strategy) / "CURRENT"
    if not current.exists():
        return None
    model_id = current.read_text().strip()
    folder = current.parent / model_id
    model_path, card_path = folder / "model.joblib", folder / "model_card.json"
    try:
        card = json.loads(card_path.read_text())
        blob = model_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise StateCorruptError(f"{folder}: promoted veto model unreadable ({exc}); retrain or fix CURRENT") from exc
    if hashlib.sha256(blob).hexdigest() != card.get("sha256"):
        raise StateCorruptError(f"{model_path}: sha256 differs from {card_path}; the model file was changed")
    try:
        estimator = joblib.load(model_path)
    except Exception as exc:
        raise StateCorruptError(f"{model_path}: cannot be loaded ({exc})") from exc
    return estimator, card


def write_model(models_dir: Path | str, strategy: str, estimator: Any, card: Mapping[str, Any]) -> str:
    """Store a new model (never overwrites); returns its model_id."""
    folder_root = _strategy_dir(models_dir, strategy)
    folder_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    model_id = str(card.get("model_id") or f"veto-{len(list(folder_root.iterdir())) + 1:04d}")
    folder = folder_root / model_id
    folder.mkdir(mode=0o700)
    model_path = folder / "model.joblib"
    joblib.dump(estimator, model_path)
    os.chmod(model_path, 0o600)
    full = {**card, "model_id": model_id, "strategy": strategy,
            "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()}  # fmt: skip
    atomic_write_bytes(folder / "model_card.json", json.dumps(full, indent=2, sort_keys=True).encode(), mode=0o600)
    return model_id


def promote(models_dir: Path | str, strategy: str, model_id: str) -> None:
    atomic_write_bytes(_strategy_dir(models_dir, strategy) / "CURRENT", (model_id + "\n").encode(), mode=0o600)


def probabilities(estimator: Any, card: Mapping[str, Any], rows: Mapping[str, Mapping[str, float]]
                  ) -> dict[str, float | None]:  # fmt: skip
    """key -> P(class 1) for each row; None for a row with a missing or NaN feature (``card["features"]`` order)."""
    names = list(card["features"])
    out: dict[str, float | None] = {}
    usable: list[str] = []
    matrix: list[list[float]] = []
    for key, row in rows.items():
        values = [row.get(name, math.nan) for name in names]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            out[key] = None
            continue
        usable.append(key)
        matrix.append([float(v) for v in values])
    if usable:
        proba = estimator.predict_proba(np.asarray(matrix, dtype=np.float64))[:, 1]
        out.update({key: float(p) for key, p in zip(usable, proba, strict=True)})
    return out
