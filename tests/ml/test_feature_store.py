"""The Feast adapter against real Feast: DuckDB offline store and SQLite online store in temporary copies of
``feature_repo/`` (tests never write into the checkout's ``feature_repo/data``).

Feast takes seconds to import, so one applied and materialized repo is shared by the module (``repo``); tests that
change a repo make their own copy (``scratch_repo``). The synthetic market spans the 2024 Thanksgiving half day;
symbol ``OLD`` stops trading six weeks before the others (a delisting, or data that ended).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import DataError
from data.bar_features import BAR_FEATURE_NAMES, bar_features
from data.calendar import TradingCalendar
from data.csv_loader import load_csv
from data.synthetic import generate_market
from ml.feature_store import (
    BAR_VIEW,
    TCA_COLUMNS,
    TCA_FEATURE_NAMES,
    TCA_SCHEMA,
    TCA_VIEW,
    FeatureRepo,
    copy_definitions,
)

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_FEATURE_REPO = REPO / "feature_repo"
SHARED_DATA_DIR = REPO.parent / "shared" / "data"
TRADING = ("AAA", "BBB", "CCC")
OLD_LAST_SESSION = "2024-11-15"
SECOND = pd.Timedelta(seconds=1)


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture(scope="module")
def features(calendar: TradingCalendar) -> pd.DataFrame:
    frames = generate_market([*TRADING, "OLD"], "2024-06-03", "2024-12-31", seed=11, calendar=calendar)
    frames["OLD"] = frames["OLD"].loc[:OLD_LAST_SESSION]
    return bar_features(frames, calendar)


@pytest.fixture(scope="module")
def last_close(features: pd.DataFrame) -> pd.Timestamp:
    return features["event_timestamp"].max()


@pytest.fixture(scope="module")
def tca(last_close: pd.Timestamp) -> pd.DataFrame:
    """AAA re-estimated at the last close; BBB last estimated 40 days before it (past the view's 30-day TTL)."""
    rows = [
        ("AAA", last_close, 1.5, 2.5, 3.5, 4.5, 5.5, 12),
        ("BBB", last_close - pd.Timedelta(days=40), 9, 9, 9, 9, 9, 3),
    ]
    frame = pd.DataFrame([(s, ts, ts, *values) for s, ts, *values in rows], columns=list(TCA_COLUMNS))
    return frame


def _write_tca(repo: FeatureRepo, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, schema=TCA_SCHEMA, preserve_index=False), repo.source_path(TCA_VIEW))


def _new_repo(root: Path) -> FeatureRepo:
    return FeatureRepo(copy_definitions(CHECKOUT_FEATURE_REPO, root / "feature_repo"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, features: pd.DataFrame, tca: pd.DataFrame) -> FeatureRepo:
    repo = _new_repo(tmp_path_factory.mktemp("shared"))
    repo.write_offline(features)
    _write_tca(repo, tca)
    assert repo.ensure_applied() is True
    loaded = repo.materialize_latest()
    assert loaded == {BAR_VIEW: 4, TCA_VIEW: 2}
    return repo


@pytest.fixture
def scratch_repo(tmp_path: Path, features: pd.DataFrame) -> FeatureRepo:
    repo = _new_repo(tmp_path)
    repo.write_offline(features)
    return repo


def _rows(features: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return features[features["symbol"] == symbol].reset_index(drop=True)


def _assert_same(actual: dict[str, float] | pd.Series, expected: dict[str, float] | pd.Series, names) -> None:
    for name in names:
        a, e = float(actual[name]), float(expected[name])
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, rel=1e-12), (name, a, e)


# ------------------------------------------------------------------------------------------- point in time
def test_one_second_before_a_close_gives_the_previous_session_and_at_the_close_the_new_one(
    repo: FeatureRepo, features: pd.DataFrame
) -> None:
    entity_rows = []
    for symbol in TRADING:
        rows = _rows(features, symbol).iloc[25:]  # every feature defined, the half day 2024-11-29 included
        for i in range(1, len(rows)):
            close = rows["event_timestamp"].iloc[i]
            entity_rows += [(symbol, close - SECOND, rows.index[i - 1]), (symbol, close, rows.index[i])]
    entities = pd.DataFrame(entity_rows, columns=["symbol", "event_timestamp", "expected_row"])
    result = repo.historical(entities)
    assert len(result) == len(entities)
    assert (result["symbol"].to_numpy() == entities["symbol"].to_numpy()).all()
    for symbol in TRADING:
        mine = result[result["symbol"] == symbol]
        expected = _rows(features, symbol).loc[mine["expected_row"], list(BAR_FEATURE_NAMES)]
        np.testing.assert_allclose(mine[list(BAR_FEATURE_NAMES)].to_numpy(), expected.to_numpy(), rtol=1e-12)
    half_day = pd.Timestamp("2024-11-29 18:00", tz="UTC")  # 13:00 New York
    at_half_day = result[(result["symbol"] == "AAA") & (result["event_timestamp"] == half_day)]
    aaa = _rows(features, "AAA").set_index("event_timestamp")
    assert float(at_half_day["ret_1d"].iloc[0]) == pytest.approx(aaa.loc[half_day, "ret_1d"])


def test_before_the_history_past_the_ttl_and_for_an_unknown_symbol_the_features_are_missing(
    repo: FeatureRepo, features: pd.DataFrame
) -> None:
    old = _rows(features, "OLD")
    first, old_last = old["event_timestamp"].iloc[0], old["event_timestamp"].iloc[-1]
    entities = pd.DataFrame(
        [
            ("OLD", first - SECOND),  # before the first value
            ("OLD", old_last + pd.Timedelta(days=7) - pd.Timedelta(hours=1)),  # inside the 7-day TTL
            ("OLD", old_last + pd.Timedelta(days=7) + pd.Timedelta(hours=1)),  # past it
            ("ZZZ", old_last),  # never seen
        ],
        columns=["symbol", "event_timestamp"],
    )
    result = repo.historical(entities)
    assert len(result) == 4  # the DuckDB offline store keeps rows without a feature (the dask one drops them)
    assert result.iloc[0][list(BAR_FEATURE_NAMES)].isna().all()
    _assert_same(result.iloc[1], old.iloc[-1], BAR_FEATURE_NAMES)
    assert result.iloc[2][list(BAR_FEATURE_NAMES)].isna().all()
    assert result.iloc[3][list(BAR_FEATURE_NAMES)].isna().all()


def test_historical_keeps_the_entity_order_index_and_extra_columns(repo: FeatureRepo, last_close: pd.Timestamp) -> None:
    entities = pd.DataFrame(
        {"symbol": ["CCC", "AAA", "BBB"], "event_timestamp": [last_close] * 3, "label": [1, 0, 1]}, index=[7, 3, 5]
    )
    result = repo.historical(entities, features=[f"{BAR_VIEW}:ret_1d"])
    assert result.index.tolist() == [7, 3, 5]
    assert result["symbol"].tolist() == ["CCC", "AAA", "BBB"] and result["label"].tolist() == [1, 0, 1]
    assert "vol_20d" not in result.columns and result["ret_1d"].notna().all()
    with pytest.raises(ValueError, match="tz-aware"):
        repo.historical(pd.DataFrame({"symbol": ["AAA"], "event_timestamp": [pd.Timestamp("2024-12-31 21:00")]}))


# ------------------------------------------------------------------------------------------ online = offline
def test_online_equals_offline_for_every_symbol_at_the_last_close(
    repo: FeatureRepo, features: pd.DataFrame, last_close: pd.Timestamp
) -> None:
    online = repo.online().get(list(TRADING), int(last_close.value))
    offline = repo.historical(pd.DataFrame({"symbol": list(TRADING), "event_timestamp": [last_close] * 3}))
    names = (*BAR_FEATURE_NAMES, *TCA_FEATURE_NAMES)
    for i, symbol in enumerate(TRADING):
        values = online[symbol]
        assert values is not None and set(values) == set(names)
        _assert_same(values, offline.iloc[i], names)
        _assert_same(values, _rows(features, symbol).iloc[-1], BAR_FEATURE_NAMES)
    assert online["AAA"]["tca_orders_20d"] == 12.0 and online["AAA"]["tca_shortfall_20d_bps_moc"] == 1.5
    assert all(math.isnan(online[s][n]) for s in ("BBB", "CCC") for n in TCA_FEATURE_NAMES)  # BBB: past the TTL


# ---------------------------------------------------------------------------------------------- staleness
def test_online_value_older_than_the_last_completed_close_is_none(
    repo: FeatureRepo, calendar: TradingCalendar, last_close: pd.Timestamp
) -> None:
    online = repo.online([f"{BAR_VIEW}:ret_1d", f"{BAR_VIEW}:rsi_14"])
    symbols = [*TRADING, "OLD", "ZZZ"]
    now = online.get(symbols, int(last_close.value))
    assert all(now[s] is not None for s in TRADING)
    assert set(now["AAA"]) == {"ret_1d", "rsi_14"}
    assert now["OLD"] is None  # its last value (2024-11-15) comes back PRESENT from SQLite: the adapter refuses it
    assert now["ZZZ"] is None  # never materialized
    next_close = int(calendar.session_close_ns(pd.DatetimeIndex([calendar.next_session("2024-12-31")]))[0])
    assert all(v is None for v in online.get(symbols, next_close).values())  # a session later: everything stale
    earlier_close = int(calendar.session_close_ns(pd.DatetimeIndex(["2024-12-30"]))[0])
    assert online.get(["AAA"], earlier_close)["AAA"] is not None  # a newer value than required is fine
    assert online.get([], int(last_close.value)) == {}


def test_online_get_is_fast(repo: FeatureRepo, last_close: pd.Timestamp) -> None:
    online = repo.online([f"{BAR_VIEW}:ret_1d", f"{BAR_VIEW}:vol_20d", f"{BAR_VIEW}:rsi_14"])
    symbols = [*TRADING, "OLD", "ZZZ", "AAA", "BBB", "CCC"]  # 8 rows
    online.get(symbols, int(last_close.value))
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        online.get(symbols, int(last_close.value))
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 0.05  # measured ~1 ms; generous for a loaded CI machine


# ----------------------------------------------------------------------------------------- apply, materialize
def test_ensure_applied_is_idempotent_and_cheap_when_nothing_changed(repo: FeatureRepo) -> None:
    registry = repo.data_dir / "registry.db"
    before = registry.stat().st_mtime_ns
    start = time.perf_counter()
    assert repo.ensure_applied() is False
    assert time.perf_counter() - start < 0.5
    assert registry.stat().st_mtime_ns == before and repo.is_applied()


def test_a_changed_definition_is_applied_again(scratch_repo: FeatureRepo) -> None:
    assert scratch_repo.ensure_applied() is True
    assert scratch_repo.ensure_applied() is False
    view_file = scratch_repo.repo_path / "feature_view.py"
    view_file.write_text(view_file.read_text().replace("ttl=timedelta(days=7)", "ttl=timedelta(days=9)"))
    assert scratch_repo.is_applied() is False
    assert scratch_repo.ensure_applied() is True
    from feast import FeatureStore

    ttl = FeatureStore(repo_path=str(scratch_repo.repo_path)).get_feature_view(BAR_VIEW).ttl
    assert ttl == pd.Timedelta(days=9)
    assert scratch_repo.ensure_applied() is False


def test_materialize_loads_only_what_is_behind(scratch_repo: FeatureRepo, features: pd.DataFrame) -> None:
    assert scratch_repo.materialize_latest() == {BAR_VIEW: 4, TCA_VIEW: 0}  # TCA file absent: an empty one is written
    assert pq.read_schema(scratch_repo.source_path(TCA_VIEW)).names == list(TCA_COLUMNS)
    assert scratch_repo.materialize_latest() == {BAR_VIEW: 0, TCA_VIEW: 0}
    # One more session for AAA only (2025-01-02): only AAA is behind; the others keep their values.
    aaa = _rows(features, "AAA").iloc[-1:].copy()
    aaa["event_timestamp"] = aaa["created_timestamp"] = pd.Timestamp("2025-01-02 21:00", tz="UTC")
    aaa["ret_1d"] = 0.123
    scratch_repo.write_offline(pd.concat([features, aaa], ignore_index=True))
    assert scratch_repo.materialize_latest() == {BAR_VIEW: 1, TCA_VIEW: 0}
    required = int(pd.Timestamp("2024-12-31 21:00", tz="UTC").value)
    got = scratch_repo.online([f"{BAR_VIEW}:ret_1d"]).get(list(TRADING), required)
    assert got["AAA"] == {"ret_1d": 0.123}
    _assert_same(got["BBB"], _rows(features, "BBB").iloc[-1], ["ret_1d"])
    # A new symbol whose history ended in September: the window starts there, and still ends after everyone's
    # latest, so the up-to-date symbols are not overwritten with their September values.
    new = _rows(features, "CCC").iloc[:80].assign(symbol="NEW")
    scratch_repo.write_offline(pd.concat([features, aaa, new], ignore_index=True))
    assert scratch_repo.materialize_latest() == {BAR_VIEW: 1, TCA_VIEW: 0}
    got = scratch_repo.online([f"{BAR_VIEW}:ret_1d"]).get(
        ["AAA", "BBB", "NEW"], int(new["event_timestamp"].max().value)
    )
    assert got["AAA"] == {"ret_1d": 0.123}
    _assert_same(got["BBB"], _rows(features, "BBB").iloc[-1], ["ret_1d"])
    _assert_same(got["NEW"], new.iloc[-1], ["ret_1d"])


def test_write_offline_refuses_what_retrieval_could_not_use(scratch_repo: FeatureRepo, features: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="lacks columns"):
        scratch_repo.write_offline(features.drop(columns=["rsi_14"]))
    naive = features.assign(event_timestamp=features["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(DataError, match="tz-aware"):
        scratch_repo.write_offline(naive)
    with pytest.raises(DataError, match="duplicated"):
        scratch_repo.write_offline(pd.concat([features, features.iloc[:1]]))


@pytest.mark.shared_data
def test_real_history_that_ended_years_ago_still_loads_each_symbols_latest_value(
    tmp_path: Path, calendar: TradingCalendar
) -> None:
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA_DIR} is absent (it sits beside the repository checkout)")
    # YHOO ends on 2005-12-30, ORCL nine years later: materialize_incremental would start at now - ttl and load
    # neither; a window ending at ORCL's last close would hand YHOO nothing either unless it starts at YHOO's.
    frames = {
        "YHOO": load_csv(SHARED_DATA_DIR / "yhoo-2003-2005.txt", calendar=calendar).clean,
        "ORCL": load_csv(SHARED_DATA_DIR / "orcl-2014.txt", calendar=calendar).clean,
    }
    real = bar_features(frames, calendar)
    repo = _new_repo(tmp_path)
    repo.write_offline(real)
    assert repo.materialize_latest()[BAR_VIEW] == 2
    online = repo.online()
    for symbol, last_day in (("YHOO", "2005-12-30"), ("ORCL", "2014-12-31")):
        close = pd.Timestamp(calendar.session_close_ns(pd.DatetimeIndex([last_day]))[0], tz="UTC")
        values = online.get([symbol], int(close.value))[symbol]
        expected = _rows(real, symbol).iloc[-1]
        assert expected["event_timestamp"] == close and values is not None
        _assert_same(values, expected, BAR_FEATURE_NAMES)
        offline = repo.historical(pd.DataFrame({"symbol": [symbol], "event_timestamp": [close]}))
        _assert_same(values, offline.iloc[0], (*BAR_FEATURE_NAMES, *TCA_FEATURE_NAMES))
        assert not np.isnan([values[n] for n in BAR_FEATURE_NAMES]).any()


# ------------------------------------------------------------------------------------------------- the repo
def test_the_checkout_repo_is_laid_out_as_designed() -> None:
    text = (CHECKOUT_FEATURE_REPO / "feature_store.yaml").read_text()
    for needle in ("provider: local", "type: duckdb", "type: sqlite", "path: data/registry.db",
                   "path: data/online_store.db", "entity_key_serialization_version: 3"):  # fmt: skip
        assert needle in text, needle
    for name in ("entity.py", "data_sources.py", "feature_view.py", ".feastignore"):
        assert (CHECKOUT_FEATURE_REPO / name).is_file(), name
    assert "data/" in (CHECKOUT_FEATURE_REPO / ".feastignore").read_text()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "feature_repo/data/registry.db"], cwd=REPO, check=False
    ).returncode
    assert ignored == 0, "feature_repo/data/ must be git-ignored"


def test_importing_the_adapter_does_not_import_feast() -> None:
    code = "import sys, ml.feature_store; sys.exit(1 if 'feast' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def test_refresh_features_script_publishes_and_a_rerun_loads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("refresh_features", REPO / "scripts" / "refresh_features.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    repo = _new_repo(tmp_path)
    argv = ["--config", str(REPO / "config.yaml"), "--repo", str(repo.repo_path), "--data", "synthetic",
            "--symbols", "AAA,BBB", "--start", "2024-01-02", "--end", "2024-03-28"]  # fmt: skip
    assert script.main(argv) == 0
    assert "daily_bar_features 2 symbols loaded" in capsys.readouterr().out
    assert script.main(argv) == 0
    assert "daily_bar_features 0 symbols loaded" in capsys.readouterr().out
    assert script.main([*argv[:2], "--repo", str(tmp_path / "nowhere")]) == 1
