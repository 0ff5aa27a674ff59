"""Feature drift of the promoted signal-veto model: PSI of each feature, recent sessions against the training window.

The nightly pipeline asks one question per strategy: has the data the model now scores moved away from the data it
was trained on? The model card (``<models_dir>/veto/<strategy>/<CURRENT>/model_card.json``, layout B of the veto
model store) names the features (``"features"``) and the sessions it was trained on (``"training_window"``:
``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}``, New York session dates, both included; a 2-item list or ISO
timestamps are read too). Only the card is read here (JSON, no estimator, no ``joblib``).

- the *expected* sample of a feature is its values (every symbol pooled) on the training window's sessions;
- the *actual* sample is its values on the last ``recent_sessions`` sessions after the window's end. Sessions inside
  the window are the model's own data, not drift: a model trained yesterday has nothing to drift from, and with
  fewer than ``min_recent_sessions`` sessions since its window the check says so instead of guessing;
- PSI (population stability index) = sum over bins of ``(a - e) * ln(a / e)``, the bins being the deciles of the
  expected sample (open-ended at both ends, repeated edges merged, shares floored at ``PSI_FLOOR``). Rule of thumb:
  below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a large one (``DEFAULT_PSI_THRESHOLD``).

A strategy is retrained when any feature's PSI reaches the threshold, or when it has no promoted model at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, StateCorruptError

log = logging.getLogger(__name__)

DEFAULT_PSI_THRESHOLD = 0.25
DEFAULT_RECENT_SESSIONS = 60
DEFAULT_MIN_RECENT_SESSIONS = 20
DEFAULT_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin would make ln(a / e) infinite
# Fewer finite values than this in either window and the feature is not judged: two samples of n values from one
# distribution give a PSI of about (bins - 1) * (1/n + 1/m) by chance alone, 0.05 at n = 200 and 10 bins.
MIN_SAMPLE = 200
SESSION_TZ = "America/New_York"

NO_MODEL = "no model: train"
DRIFT = "drift: retrain"
NO_DRIFT = "no drift"
TOO_RECENT = "too few sessions since the training window: not checked"
NOT_IN_DATA = "training window not in the data: not checked"
NO_WINDOW = "model card has no training_window: not checked"
NO_FEATURES = "none of the card's features could be judged: not checked"


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, bins: int = DEFAULT_BINS
) -> float:
    """Population stability index of ``actual`` against ``expected`` (non-finite values dropped).

    Raises ValueError when either sample has no finite value or ``bins < 2``.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2 (got {bins})")
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e, a = e[np.isfinite(e)], a[np.isfinite(a)]
    if not len(e) or not len(a):
        raise ValueError(f"PSI needs finite values in both samples (got {len(e)} expected, {len(a)} actual)")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    # bin i holds values <= edges[i] (and > edges[i-1]); the last bin everything above the last edge
    e_share = np.bincount(np.searchsorted(edges, e, side="left"), minlength=len(edges) + 1) / len(e)
    a_share = np.bincount(np.searchsorted(edges, a, side="left"), minlength=len(edges) + 1) / len(a)
    e_share, a_share = np.maximum(e_share, PSI_FLOOR), np.maximum(a_share, PSI_FLOOR)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One strategy's answer. ``psi`` holds the judged features; ``drifted`` those at or above ``threshold``;
    ``unchecked`` the card's features that were missing from the data or had too few values."""

    strategy: str
    status: str
    retrain: bool
    model_id: str | None = None
    threshold: float = DEFAULT_PSI_THRESHOLD
    psi: Mapping[str, float] = field(default_factory=dict)
    drifted: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    recent_sessions: int = 0

    def summary(self) -> str:
        worst = max(self.psi.items(), key=lambda kv: kv[1]) if self.psi else None
        worst_text = f" max_psi={worst[1]:.3f} ({worst[0]})" if worst else ""
        drifted = f" drifted={list(self.drifted)}" if self.drifted else ""
        return f"{self.strategy}: {self.status}{worst_text}{drifted}"


def current_card(models_dir: Path | str, strategy: str) -> dict[str, Any] | None:
    """The promoted model's card of ``strategy`` (layout B), or None when nothing was ever promoted.

    Raises ``StateCorruptError`` naming the file when ``CURRENT`` names no model or a card is not a JSON object.
    """
    folder = Path(models_dir) / "veto" / strategy
    current = folder / "CURRENT"
    if not current.is_file():
        return None
    model_id = current.read_text(encoding="utf-8").strip()
    card_path = folder / model_id / "model_card.json"
    if not model_id or not card_path.is_file():
        raise StateCorruptError(f"{current}: names model {model_id!r}, but {card_path} does not exist; re-promote "
                                f"a model or remove CURRENT")  # fmt: skip
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorruptError(f"{card_path}: unreadable model card ({exc})") from exc
    if not isinstance(card, dict):
        raise StateCorruptError(f"{card_path}: a model card must be a JSON object (got {type(card).__name__})")
    return card


def training_window(card: Mapping[str, Any]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The card's training window as New York session dates (naive midnight), or None when the card has none.

    Raises ``DataError`` for a window that is not two dates with start <= end.
    """
    raw = card.get("training_window")
    if raw is None:
        return None
    bounds = (raw.get("start"), raw.get("end")) if isinstance(raw, Mapping) else raw
    try:
        start, end = (_session_date(value) for value in bounds)
    except (TypeError, ValueError) as exc:
        raise DataError(f"model card training_window must be {{'start': 'YYYY-MM-DD', 'end': 'YYYY-MM-DD'}} "
                        f"(got {raw!r}: {exc})") from exc  # fmt: skip
    if end < start:
        raise DataError(f"model card training_window ends before it starts (got {raw!r})")
    return start, end


def _session_date(value: Any) -> pd.Timestamp:
    if value is None:
        raise ValueError("a bound is missing")
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(SESSION_TZ).tz_localize(None)
    return ts.normalize()


def feature_drift(
    history: pd.DataFrame,
    card: Mapping[str, Any],
    strategy: str,
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    recent_sessions: int = DEFAULT_RECENT_SESSIONS,
    min_recent_sessions: int = DEFAULT_MIN_RECENT_SESSIONS,
) -> DriftResult:
    """Judge one promoted model against ``history`` (columns ``event_timestamp``, tz-aware UTC, and features)."""
    common = {"strategy": strategy, "model_id": card.get("model_id"), "threshold": threshold}
    window = training_window(card)
    if window is None:
        return DriftResult(status=NO_WINDOW, retrain=False, **common)
    dates = pd.DatetimeIndex(history["event_timestamp"]).tz_convert(SESSION_TZ).tz_localize(None).normalize()
    in_window = (dates >= window[0]) & (dates <= window[1])
    if not in_window.any():
        return DriftResult(status=NOT_IN_DATA, retrain=False, **common)
    later = np.unique(dates[dates > window[1]])
    if len(later) < min_recent_sessions:
        return DriftResult(status=TOO_RECENT, retrain=False, recent_sessions=len(later), **common)
    recent = np.isin(dates, later[-recent_sessions:])
    scores: dict[str, float] = {}
    unchecked: list[str] = []
    for name in card.get("features", []):
        if name not in history.columns:
            unchecked.append(name)
            continue
        values = history[name].to_numpy(dtype=np.float64)
        expected, actual = values[in_window], values[recent]
        if np.isfinite(expected).sum() < MIN_SAMPLE or np.isfinite(actual).sum() < MIN_SAMPLE:
            unchecked.append(name)
            continue
        scores[name] = psi(expected, actual)
    common.update(psi=scores, unchecked=tuple(unchecked), recent_sessions=int(min(len(later), recent_sessions)))
    if not scores:
        return DriftResult(status=NO_FEATURES, retrain=False, **common)
    drifted = tuple(name for name, value in scores.items() if value >= threshold)
    return DriftResult(status=DRIFT if drifted else NO_DRIFT, retrain=bool(drifted), drifted=drifted, **common)


def check_strategy(
    models_dir: Path | str,
    strategy: str,
    history: pd.DataFrame,
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    recent_sessions: int = DEFAULT_RECENT_SESSIONS,
    min_recent_sessions: int = DEFAULT_MIN_RECENT_SESSIONS,
) -> DriftResult:
    """``feature_drift`` of the strategy's promoted model; ``NO_MODEL`` (retrain) when none was promoted."""
    card = current_card(models_dir, strategy)
    if card is None:
        result = DriftResult(strategy=strategy, status=NO_MODEL, retrain=True, threshold=threshold)
    else:
        result = feature_drift(history, card, strategy, threshold=threshold, recent_sessions=recent_sessions,
                               min_recent_sessions=min_recent_sessions)  # fmt: skip
    log.info("event=feature_drift strategy=%s model_id=%s status=%r retrain=%s psi=%s", strategy, result.model_id,
             result.status, result.retrain, {k: round(v, 4) for k, v in result.psi.items()})  # fmt: skip
    return result
