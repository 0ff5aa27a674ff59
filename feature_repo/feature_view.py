"""Feature views and the feature service the strategies' veto model reads.

TTLs (point-in-time retrieval returns a value only if its event timestamp is within the TTL before the entity
timestamp; the online store ignores TTL, so ``ml.feature_store.OnlineFeatures`` checks freshness itself):

- ``daily_bar_features``: 7 days. A value is one session's; the longest market closure in the data (after
  2001-09-11, six sessions lost) still leaves the previous session's value reachable, while a symbol that stopped
  trading (delisted, halted, data ended) is missing a week later rather than served forever.
- ``tca_cost_features``: 30 days. Trailing 20-session cost estimates, written by the nightly TCA ETL; a symbol not
  re-estimated for a month has no cost feature.
"""

from datetime import timedelta

from data_sources import daily_bar_source, tca_cost_source
from entity import symbol
from feast import FeatureService, FeatureView, Field
from feast.types import Float64, Int64

daily_bar_features = FeatureView(
    name="daily_bar_features",
    entities=[symbol],
    ttl=timedelta(days=7),
    schema=[
        Field(name="ret_1d", dtype=Float64, description="close[t] / close[t-1] - 1"),
        Field(name="ret_5d", dtype=Float64, description="close[t] / close[t-5] - 1"),
        Field(name="ret_20d", dtype=Float64, description="close[t] / close[t-20] - 1"),
        Field(name="vol_20d", dtype=Float64, description="sample sd (ddof 1) of the last 20 daily simple returns"),
        Field(name="rsi_14", dtype=Float64, description="TA-Lib RSI(close, 14)"),
        Field(name="atr_14_pct", dtype=Float64, description="TA-Lib ATR(14) / close, a fraction"),
        Field(name="volume_z_20", dtype=Float64, description="(volume - 20-session mean) / 20-session sample sd"),
    ],
    online=True,
    source=daily_bar_source,
    description="data.bar_features.bar_features; event_timestamp is the session's close (UTC)",
)

tca_cost_features = FeatureView(
    name="tca_cost_features",
    entities=[symbol],
    ttl=timedelta(days=30),
    schema=[
        Field(name="tca_shortfall_20d_bps_moc", dtype=Float64),
        Field(name="tca_shortfall_20d_bps_loc", dtype=Float64),
        Field(name="tca_shortfall_20d_bps_adaptive", dtype=Float64),
        Field(name="tca_shortfall_20d_bps_twap", dtype=Float64),
        Field(name="tca_shortfall_20d_bps_mkt", dtype=Float64),
        Field(name="tca_orders_20d", dtype=Int64),
    ],
    online=True,
    source=tca_cost_source,
    description="trailing 20-session implementation shortfall per order type/algo (bps) and order count",
)

daily_signals = FeatureService(
    name="daily_signals",
    features=[daily_bar_features, tca_cost_features],
    description="what the signal veto model reads: the daily bar features and the symbol's execution costs",
)
