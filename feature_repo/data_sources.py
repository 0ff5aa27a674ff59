"""Offline sources: Parquet files under this repo's ``data/`` folder.

Paths are absolute, built from ``__file__``: Feast's DuckDB offline store resolves a relative ``FileSource`` path
against the current directory, not the repository. ``ml/feature_store.py`` writes the bar features file; the TCA ETL
(``etl/tca_feature_etl.py``) writes the cost file (the adapter writes an empty one with the same schema when it is
missing, so apply and retrieval work before the first ETL run). ``event_timestamp`` is when a value became
knowable (a session's close); ``created_timestamp`` only breaks ties between rows of one symbol and time.
"""

from pathlib import Path

from feast import FileSource

DATA_DIR = Path(__file__).resolve().parent / "data"
DAILY_BAR_FEATURES_PATH = DATA_DIR / "daily_bar_features.parquet"
TCA_COST_FEATURES_PATH = DATA_DIR / "tca_cost_features.parquet"

daily_bar_source = FileSource(
    name="daily_bar_source",
    path=str(DAILY_BAR_FEATURES_PATH),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="data.bar_features.bar_features output, one row per symbol and session",
)

tca_cost_source = FileSource(
    name="tca_cost_source",
    path=str(TCA_COST_FEATURES_PATH),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="per-symbol execution costs written by the TCA feature ETL",
)
