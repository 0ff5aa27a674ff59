"""The ``daily_signals`` features of a run's own bars, through real Feast point-in-time retrieval.

Backtests and the veto trainer need features that match the very bars they run on. The configured repository
(``features.repo_path``) holds whatever the nightly pipeline last published (another data set, another seed, or
live data up to yesterday), so using it would score a synthetic backtest with real-market features or the other
way round, and writing the run's features into it would overwrite the operator's store. So each run gets a
**per-run temporary Feast repository**: the configured repo's definitions copied (``copy_definitions``) into a
scratch folder, the run's ``data.bar_features`` written offline, applied, and read back with one batched
``FeatureRepo.historical`` call at every (symbol, session close) of the panel. That is the same code path and the
same point-in-time rule the live features go through, at ~2 s for 20 symbols x 10 years once ``feast`` is
imported (~4 s, once per process). The execution-cost view of ``daily_signals`` is empty in such a repo (NaN): a
model that reads those features gets no scores in a backtest.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from core.errors import DataError
from data.bar_features import bar_features
from data.panel import BarPanel
from ml.feature_store import DAILY_SIGNALS, FeatureRepo, copy_definitions

log = logging.getLogger(__name__)

TS_COLUMN = "ts_ns"  # the session close as UTC epoch ns, the key a SignalEvent's ts_event_ns matches


def panel_daily_signals(panel: BarPanel, template_repo: str | Path, work_dir: str | Path | None = None) -> pd.DataFrame:
    """``daily_signals`` at every (symbol, session close) where ``panel`` has a bar, via a per-run Feast repo.

    Columns: ``symbol``, ``event_timestamp`` (UTC), ``ts_ns`` and every feature of the service. ``work_dir`` holds
    the temporary repo (a fresh temporary folder, removed afterwards, when None). Raises ``DataError`` when
    ``template_repo`` is not a Feast repository.
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="veto-features-") as scratch:
            return panel_daily_signals(panel, template_repo, scratch)
    frame = bar_features(panel)
    if frame.empty:
        raise DataError("the panel has no valid bar: no features to retrieve")
    repo = FeatureRepo(copy_definitions(template_repo, Path(work_dir) / "feature_repo"))
    repo.write_offline(frame)
    entities = frame[["symbol", "event_timestamp"]].reset_index(drop=True)
    result = repo.historical(entities, DAILY_SIGNALS)
    result[TS_COLUMN] = pd.DatetimeIndex(result["event_timestamp"]).as_unit("ns").asi8
    log.info("event=panel_features_retrieved rows=%d symbols=%d repo=%s", len(result), len(panel.symbols),
             repo.repo_path)  # fmt: skip
    return result.reset_index(drop=True)


def feature_matrix(features: pd.DataFrame, names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The named feature columns, refusing a name the retrieval did not return (not in ``daily_signals``)."""
    unknown = [n for n in names if n not in features.columns]
    if unknown:
        known = [c for c in features.columns if c not in ("symbol", "event_timestamp", TS_COLUMN)]
        raise DataError(f"features {unknown} are not in the {DAILY_SIGNALS} feature service; it has {known}")
    return features[list(names)].astype(float)
