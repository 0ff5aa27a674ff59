"""The backtester's ``SignalScorer``: veto probabilities at every decision timestamp, scored once per run.

A backtest decides at session closes, so every signal it can emit is keyed by (symbol, session close). The scorer
is built before the run from the run's own ``daily_signals`` features (``ml.panel_features``: one batched
point-in-time ``FeatureRepo.historical`` call on a per-run temporary Feast repository, see there why not the
configured one) and the promoted model: one ``predict_proba`` over every row with complete features. During the
run ``probability`` is a dictionary lookup, so the event loop never waits for a model or a feature store.

A (symbol, close) without complete features (warm-up sessions, a missing view) has no probability: ``None``,
which the veto treats by ``on_missing_features``, exactly as the live engine treats a stale online value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.events import SignalEvent
from data.panel import BarPanel
from ml.panel_features import TS_COLUMN, feature_matrix, panel_daily_signals
from ml.veto_model_store import predict_positive

log = logging.getLogger(__name__)


class HistoricalVetoScorer:
    """Probabilities keyed by (symbol, decision close in UTC ns); ``None`` where features were incomplete."""

    def __init__(self, probabilities: Mapping[tuple[str, int], float], rows_scored: int, rows_missing: int) -> None:
        self._p = dict(probabilities)
        self.rows_scored = rows_scored
        self.rows_missing = rows_missing

    @classmethod
    def from_features(
        cls, estimator: Any, features: Sequence[str], frame: pd.DataFrame, *, ts_range_ns: tuple[int, int] | None = None
    ) -> HistoricalVetoScorer:
        """Score every row of ``frame`` (``ml.panel_features`` output) with complete ``features`` at once.

        ``ts_range_ns`` (inclusive) limits scoring to the decisions a run can make (a walk-forward test window).
        """
        if ts_range_ns is not None:
            ts = frame[TS_COLUMN].to_numpy()
            frame = frame[(ts >= ts_range_ns[0]) & (ts <= ts_range_ns[1])]
        matrix = feature_matrix(frame, list(features)).to_numpy()
        complete = np.isfinite(matrix).all(axis=1)
        keys = list(zip(frame["symbol"].to_numpy()[complete], frame[TS_COLUMN].to_numpy()[complete], strict=True))
        scored = predict_positive(estimator, matrix[complete], list(features)) if complete.any() else np.zeros(0)
        probabilities = {(str(s), int(t)): float(p) for (s, t), p in zip(keys, scored, strict=True)}
        return cls(probabilities, int(complete.sum()), int((~complete).sum()))

    @classmethod
    def for_panel(
        cls, estimator: Any, card: Mapping[str, Any], panel: BarPanel, template_repo: str | Path
    ) -> HistoricalVetoScorer:
        """Features of ``panel`` through a per-run Feast repo copied from ``template_repo``, scored with the model."""
        frame = panel_daily_signals(panel, template_repo)
        scorer = cls.from_features(estimator, list(card["features"]), frame)
        log.info("event=veto_scorer_built model_id=%s rows_scored=%d rows_missing=%d", card.get("model_id"),
                 scorer.rows_scored, scorer.rows_missing)  # fmt: skip
        return scorer

    def probability(self, signal: SignalEvent) -> float | None:
        return self._p.get((signal.symbol, signal.ts_event_ns))
