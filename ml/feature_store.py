"""The one adapter to the Feast feature store (``feature_repo/``): write, apply, materialize, retrieve.

Nothing else in the project imports ``feast`` (the definitions in ``feature_repo/`` aside; an import-linter
contract keeps it out of ``strategy``, ``portfolio``, ``core``, ``data`` and ``execution``). ``feast`` is imported
lazily, inside the calls that need it (``import feast`` alone takes seconds), so importing this module is cheap.

- ``FeatureRepo.write_offline(frame)``: the output of ``data.bar_features.bar_features`` as the offline Parquet
  file of ``daily_bar_features`` (atomic replace).
- ``FeatureRepo.ensure_applied()``: ``feast apply`` when the registry is missing or the definitions changed (a
  SHA-256 of the definition files, the repo's location and Feast's version is kept beside the registry);
  otherwise nothing, without importing ``feast``. It never changes the working directory (``feast apply`` does).
- ``FeatureRepo.materialize_latest()``: loads each symbol's latest offline value into the online store, also when
  the data is a historical folder that ends years ago (``materialize_incremental`` on a never-materialized view
  starts at now - ttl and would load nothing). It compares each symbol's latest offline event timestamp with
  the online one and materializes ``[oldest latest that is not online, newest latest]``, so a nightly run loads
  one session and a rerun loads nothing.
- ``FeatureRepo.historical(entity_df)``: point-in-time retrieval (backtests, training) at the entity timestamps.
- ``OnlineFeatures.get(symbols, last_completed_close_ns)``: the live engine's read. The online store ignores TTL
  (a two-year-old value comes back PRESENT), so freshness is checked here: a symbol whose bar features are older
  than the last completed session's close is ``None`` (logged ``event=feature_stale``), never traded on; a value
  of another view (execution costs) older than that view's TTL is NaN, as point-in-time retrieval would give.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import io
import logging
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.config_models import FeaturesConfig
from core.errors import DataError
from data.bar_features import BAR_FEATURE_NAMES, FEATURE_FRAME_COLUMNS
from utils.atomic_files import atomic_write_bytes

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents

log = logging.getLogger(__name__)

BAR_VIEW = "daily_bar_features"
TCA_VIEW = "tca_cost_features"
DAILY_SIGNALS = "daily_signals"
ENTITY = "symbol"
BAR_FEATURES_FILE = "daily_bar_features.parquet"
TCA_FEATURES_FILE = "tca_cost_features.parquet"
TCA_FEATURE_NAMES: tuple[str, ...] = (
    "tca_shortfall_20d_bps_moc",
    "tca_shortfall_20d_bps_loc",
    "tca_shortfall_20d_bps_adaptive",
    "tca_shortfall_20d_bps_twap",
    "tca_shortfall_20d_bps_mkt",
    "tca_orders_20d",
)
TCA_COLUMNS: tuple[str, ...] = ("symbol", "event_timestamp", "created_timestamp", *TCA_FEATURE_NAMES)

_UTC_NS = pa.timestamp("ns", tz="UTC")
BAR_SCHEMA = pa.schema(
    [("symbol", pa.string()), ("event_timestamp", _UTC_NS), ("created_timestamp", _UTC_NS)]
    + [(name, pa.float64()) for name in BAR_FEATURE_NAMES]
)
TCA_SCHEMA = pa.schema(
    [("symbol", pa.string()), ("event_timestamp", _UTC_NS), ("created_timestamp", _UTC_NS)]
    + [(name, pa.float64()) for name in TCA_FEATURE_NAMES[:-1]]
    + [("tca_orders_20d", pa.int64())]
)
_SOURCES = {BAR_VIEW: (BAR_FEATURES_FILE, BAR_SCHEMA), TCA_VIEW: (TCA_FEATURES_FILE, TCA_SCHEMA)}
_STAMP_FILE = ".applied.sha256"
_FINGERPRINT_VERSION = b"feature-repo-fingerprint-v1"
_ENTITY_ROW = "__entity_row"


class FeatureRepo:
    """The Feast repository at ``repo_path`` (a folder with ``feature_store.yaml``; its ``data/`` holds the state).

    One writer at a time (the nightly pipeline or ``run_system.sh``); readers may run beside it: every file this
    class writes is replaced atomically.
    """

    def __init__(self, repo_path: str | Path) -> None:
        self.repo_path = Path(repo_path).resolve()
        if not (self.repo_path / "feature_store.yaml").is_file():
            raise DataError(
                f"{self.repo_path} is not a Feast repository (no feature_store.yaml); set features.repo_path to the "
                f"folder that holds it (the checkout's feature_repo/)"
            )
        self.data_dir = self.repo_path / "data"
        self._store_cache: FeatureStore | None = None

    @classmethod
    def from_config(cls, config: FeaturesConfig) -> FeatureRepo:
        return cls(config.repo_path)

    def __repr__(self) -> str:
        return f"FeatureRepo({str(self.repo_path)!r})"

    # -------------------------------------------------------------------- write
    def source_path(self, view: str) -> Path:
        """The offline Parquet file of ``view`` (``daily_bar_features`` or ``tca_cost_features``)."""
        return self.data_dir / _SOURCES[view][0]

    def write_offline(self, features: pd.DataFrame) -> Path:
        """Replace the offline data of ``daily_bar_features`` with ``features`` (``bar_features`` output).

        Raises ``DataError`` when columns are missing, a timestamp is not tz-aware, or a (symbol, event_timestamp,
        created_timestamp) row is duplicated (point-in-time retrieval could not tell them apart).
        """
        missing = [c for c in FEATURE_FRAME_COLUMNS if c not in features.columns]
        if missing:
            raise DataError(f"feature frame lacks columns {missing}; write the output of data.bar_features")
        for column in ("event_timestamp", "created_timestamp"):
            if getattr(features[column].dtype, "tz", None) is None:
                raise DataError(f"feature frame column {column} must be tz-aware (UTC), got {features[column].dtype}")
        keys = ["symbol", "event_timestamp", "created_timestamp"]
        dupes = features.duplicated(keys)
        if dupes.any():
            first = features.loc[dupes, keys].iloc[0].tolist()
            raise DataError(f"feature frame has {int(dupes.sum())} duplicated rows (first: {first})")
        frame = features[list(FEATURE_FRAME_COLUMNS)].copy()
        frame["created_timestamp"] = frame["created_timestamp"].dt.floor("us")  # Feast keeps microseconds
        table = pa.Table.from_pandas(frame, schema=BAR_SCHEMA, preserve_index=False)
        path = self.source_path(BAR_VIEW)
        _write_parquet_atomic(table, path)
        log.info("event=features_written view=%s rows=%d symbols=%d path=%s", BAR_VIEW, len(features),
                 features["symbol"].nunique(), path)  # fmt: skip
        return path

    def ensure_sources(self) -> None:
        """Write an empty Parquet file (right schema) for every offline source that does not exist yet."""
        for view, (_, schema) in _SOURCES.items():
            path = self.source_path(view)
            if not path.exists():
                _write_parquet_atomic(schema.empty_table(), path)
                log.info("event=feature_source_created view=%s path=%s rows=0", view, path)

    # -------------------------------------------------------------------- apply
    def definitions_fingerprint(self) -> str:
        """SHA-256 of the definition files, the repo's absolute path (sources hold it) and Feast's version."""
        digest = hashlib.sha256(_FINGERPRINT_VERSION)
        digest.update(str(self.repo_path).encode() + b"\x1e" + importlib.metadata.version("feast").encode())
        for path in self.definition_paths():
            name = path.relative_to(self.repo_path).as_posix().encode()
            content = path.read_bytes()
            digest.update(len(name).to_bytes(4, "little") + name + len(content).to_bytes(8, "little") + content)
        return digest.hexdigest()

    def is_applied(self) -> bool:
        """True when the registry exists and was applied from the current definitions."""
        stamp = self.data_dir / _STAMP_FILE
        made = all((self.data_dir / name).is_file() for name in ("registry.db", "online_store.db", _STAMP_FILE))
        return made and stamp.read_text().strip() == self.definitions_fingerprint()

    def ensure_applied(self) -> bool:
        """``feast apply`` if the registry is missing or the definitions changed; True when it applied.

        Idempotent; when nothing changed it only hashes a few small files (no ``feast`` import). Objects removed
        from the definitions are removed from the registry, as ``feast apply`` does.
        """
        self.ensure_sources()
        if self.is_applied():
            log.debug("event=feature_repo_up_to_date repo=%s", self.repo_path)
            return False
        from feast.repo_operations import extract_objects_for_apply_delete

        fingerprint = self.definitions_fingerprint()
        store = self._store(fresh=True)
        contents = self._load_definitions()
        to_apply, to_delete, _, _ = extract_objects_for_apply_delete(store.project, store.registry, contents)
        with _feast_output_logged("apply"):
            store.apply(to_apply, objects_to_delete=to_delete, partial=False)
        atomic_write_bytes(self.data_dir / _STAMP_FILE, (fingerprint + "\n").encode())
        self._store_cache = None
        log.info("event=feature_repo_applied repo=%s objects=%d deleted=%d", self.repo_path, len(to_apply),
                 len(to_delete))  # fmt: skip
        return True

    # -------------------------------------------------------------- materialize
    def materialize_latest(self, views: Sequence[str] = (BAR_VIEW, TCA_VIEW)) -> dict[str, int]:
        """Bring every symbol's latest offline value of each view into the online store; returns symbols loaded.

        Applies first when needed. A view whose online values already match the offline latest is left alone.
        """
        self.ensure_applied()
        store = self._store()
        loaded: dict[str, int] = {}
        for view in views:
            latest = self.latest_event_times(view)
            if not latest:
                loaded[view] = 0
                continue
            online = _online_event_times(store, view, sorted(latest))
            # the online store keeps whole seconds
            behind = {s: ts for s, ts in latest.items() if online.get(s) != ts.floor("s")}
            if not behind:
                log.info("event=materialize_skipped view=%s reason=online_up_to_date symbols=%d", view, len(latest))
                loaded[view] = 0
                continue
            # The window ends after the newest latest value of *any* symbol, so a symbol that has rows inside the
            # window gets its own latest (not an older row) written again; symbols older than the window are
            # already online and untouched.
            start = min(behind.values()).to_pydatetime()
            end = (max(latest.values()) + pd.Timedelta(seconds=1)).to_pydatetime()
            with _feast_output_logged("materialize"):
                store.materialize(start_date=start, end_date=end, feature_views=[view])
            loaded[view] = len(behind)
            log.info("event=materialized view=%s symbols=%d start=%s end=%s", view, len(behind), start.isoformat(),
                     end.isoformat())  # fmt: skip
        return loaded

    def publish(self, features: pd.DataFrame) -> dict[str, int]:
        """The pipeline's one call: ``write_offline``, ``ensure_applied``, ``materialize_latest``."""
        self.write_offline(features)
        return self.materialize_latest()

    def write_online(self, features: pd.DataFrame) -> int:
        """Write rows of ``bar_features`` output straight into the online store of ``daily_bar_features``.

        The live engine's path for the session that just closed (``live.session_features``): it computes that
        session's features from its own daily bars and needs them online before it decides, without replacing the
        offline history (``write_offline`` replaces the whole file; the nightly pipeline owns it). Each row
        overwrites the symbol's online value whatever its timestamp. The repo must be applied (``online()`` does
        it). Returns the number of rows written; raises ``DataError`` on a frame that is not ``bar_features``
        output. A few ms for 8 rows (``bench/feature_veto_latency.py``).
        """
        missing = [c for c in FEATURE_FRAME_COLUMNS if c not in features.columns]
        if missing:
            raise DataError(f"feature frame lacks columns {missing}; write the output of data.bar_features")
        if features.empty:
            return 0
        if features[list(BAR_FEATURE_NAMES)].isna().all().all():  # Feast would skip it with a warning
            log.warning("event=features_online_skipped rows=%d reason=all_nan (the symbols' values stay as they were)",
                        len(features))  # fmt: skip
            return 0
        frame = features[list(FEATURE_FRAME_COLUMNS)].copy()
        frame["created_timestamp"] = frame["created_timestamp"].dt.floor("us")
        self._store().write_to_online_store(BAR_VIEW, frame)
        return len(frame)

    def latest_event_times(self, view: str) -> dict[str, pd.Timestamp]:
        """Each symbol's latest event timestamp in the offline data of ``view`` (UTC); empty when there is none."""
        path = self.source_path(view)
        if not path.is_file():
            return {}
        table = pq.read_table(path, columns=["symbol", "event_timestamp"])
        if table.num_rows == 0:
            return {}
        frame = table.to_pandas()
        latest = frame.groupby("symbol")["event_timestamp"].max()
        return {str(s): pd.Timestamp(ts).tz_convert("UTC") for s, ts in latest.items()}

    # ----------------------------------------------------------------- retrieve
    def historical(self, entity_df: pd.DataFrame, features: str | Sequence[str] = DAILY_SIGNALS) -> pd.DataFrame:
        """Point-in-time features for each row of ``entity_df`` (columns ``symbol`` and ``event_timestamp``).

        ``features`` is a feature service name (default ``daily_signals``) or refs ``"view:feature"``. For each row
        the value is the symbol's latest with ``event_timestamp <= the row's``, if within the view's TTL, else NaN;
        never a later one. Rows come back in ``entity_df``'s order with its index; extra columns pass through.
        """
        if "symbol" not in entity_df.columns or "event_timestamp" not in entity_df.columns:
            raise ValueError(f"entity_df needs columns symbol and event_timestamp (got {list(entity_df.columns)})")
        self.ensure_applied()
        store = self._store()
        entities = entity_df.copy()
        entities["event_timestamp"] = _as_utc(entities["event_timestamp"])
        entities[_ENTITY_ROW] = np.arange(len(entities))
        job = store.get_historical_features(entity_df=entities, features=self._feature_arg(store, features))
        result = job.to_df().sort_values(_ENTITY_ROW, kind="stable")
        result.index = entity_df.index
        return result.drop(columns=_ENTITY_ROW)

    def online(self, features: str | Sequence[str] = DAILY_SIGNALS) -> OnlineFeatures:
        """The live engine's reader of the online store (applies first when needed)."""
        self.ensure_applied()
        return OnlineFeatures(self._store(), features)

    # ------------------------------------------------------------------ helpers
    def _store(self, fresh: bool = False) -> FeatureStore:
        if self._store_cache is None or fresh:
            from feast import FeatureStore

            self._store_cache = FeatureStore(repo_path=str(self.repo_path))
        return self._store_cache

    @staticmethod
    def _feature_arg(store: FeatureStore, features: str | Sequence[str]) -> Any:
        if isinstance(features, str):
            return store.get_feature_service(features)
        return list(features)

    def definition_paths(self) -> list[Path]:
        """``feature_store.yaml``, ``.feastignore`` and every ``.py`` outside ``data/``: what apply depends on."""
        paths = [self.repo_path / name for name in ("feature_store.yaml", ".feastignore")]
        paths += sorted(
            p
            for p in self.repo_path.rglob("*.py")
            if not ({"data", "__pycache__"} & set(p.relative_to(self.repo_path).parts[:-1]))
        )
        return [p for p in paths if p.is_file()]

    def _load_definitions(self) -> RepoContents:
        """Import the repo's definition files (as ``feast apply`` would) and collect the Feast objects.

        The files import each other by module name (``from entity import symbol``), so the repo folder is put on
        ``sys.path`` for the duration and the modules are dropped afterwards: another repo applied later in the same
        process (a test's copy) must not get this one's modules, whose paths point here.
        """
        from feast.repo_operations import get_repo_files

        files = get_repo_files(self.repo_path)
        names = [".".join(f.relative_to(self.repo_path).with_suffix("").parts) for f in files]
        saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
        sys.path.insert(0, str(self.repo_path))
        importlib.invalidate_caches()
        try:
            modules = [importlib.import_module(n) for n in names]
        finally:
            sys.path.remove(str(self.repo_path))
            for n in names:
                sys.modules.pop(n, None)
            sys.modules.update(saved)
        return _collect_objects(modules)


class OnlineFeatures:
    """Reads the online store for the live engine; every value's event timestamp is checked (see ``get``)."""

    def __init__(self, store: FeatureStore, features: str | Sequence[str] = DAILY_SIGNALS) -> None:
        self._store = store
        self._refs = _feature_refs(store, features)
        self._ttl_ns = {view: _ttl_ns(store, view) for view in {ref.view for ref in self._refs}}

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self._refs)

    def get(self, symbols: Sequence[str], last_completed_close_ns: int) -> dict[str, dict[str, float] | None]:
        """``symbol -> {feature: value}``, or ``None`` for a symbol whose bar features are stale or absent.

        ``last_completed_close_ns`` is the close (UTC ns) of the last session that has ended. A bar feature whose
        event timestamp is older is stale: the symbol maps to ``None`` (logged ``event=feature_stale``) and must
        not be traded on. A feature of another view older than that view's TTL before ``last_completed_close_ns``
        is NaN. Missing numbers are NaN.
        """
        if not symbols:
            return {}
        response = self._store.get_online_features(
            features=[ref.ref for ref in self._refs], entity_rows=[{ENTITY: s} for s in symbols]
        ).to_dict(include_event_timestamps=True)
        out: dict[str, dict[str, float] | None] = {}
        for i, symbol in enumerate(symbols):
            values: dict[str, float] = {}
            stale_ts: pd.Timestamp | None = None
            fresh = True
            for ref in self._refs:
                value, ts_ns = response[ref.name][i], _ts_ns(response[f"{ref.name}__ts"][i])
                if ref.view == BAR_VIEW and ts_ns < last_completed_close_ns:
                    fresh = False
                    stale_ts = pd.Timestamp(ts_ns, tz="UTC") if ts_ns > 0 else None
                    break
                too_old = ts_ns < last_completed_close_ns - self._ttl_ns[ref.view]
                values[ref.name] = math.nan if value is None or too_old else float(value)
            if fresh:
                out[symbol] = values
                continue
            out[symbol] = None
            log.warning(
                "event=feature_stale symbol=%s event_ts=%s required=%s action=no_trade",
                symbol,
                stale_ts.isoformat() if stale_ts is not None else "missing",
                pd.Timestamp(last_completed_close_ns, tz="UTC").isoformat(),
            )
        return out


@dataclass(frozen=True, slots=True)
class _Ref:
    view: str
    name: str

    @property
    def ref(self) -> str:
        return f"{self.view}:{self.name}"


def _feature_refs(store: FeatureStore, features: str | Sequence[str]) -> list[_Ref]:
    if isinstance(features, str):
        service = store.get_feature_service(features)
        return [_Ref(p.name, f.name) for p in service.feature_view_projections for f in p.features]
    refs = []
    for ref in features:
        view, sep, name = ref.partition(":")
        if not sep:
            raise ValueError(f"feature ref must be 'view:feature' (got {ref!r})")
        refs.append(_Ref(view, name))
    return refs


def _ttl_ns(store: FeatureStore, view: str) -> int:
    ttl = store.get_feature_view(view).ttl
    return int(ttl.total_seconds() * 1e9) if ttl else 2**62


def _ts_ns(seconds: Any) -> int:
    """Epoch ns of an online event timestamp (Feast gives whole epoch seconds; 0 when the value is absent)."""
    return int(seconds or 0) * 1_000_000_000


def _online_event_times(store: FeatureStore, view: str, symbols: list[str]) -> dict[str, pd.Timestamp]:
    """Event timestamp of each symbol's online value of ``view`` (absent symbols are left out)."""
    first = store.get_feature_view(view).features[0].name
    response = store.get_online_features(
        features=[f"{view}:{first}"], entity_rows=[{ENTITY: s} for s in symbols]
    ).to_dict(include_event_timestamps=True)
    out = {}
    for symbol, ts in zip(symbols, response[f"{first}__ts"], strict=True):
        ts_ns = _ts_ns(ts)
        if ts_ns > 0:
            out[symbol] = pd.Timestamp(ts_ns, tz="UTC")
    return out


def _collect_objects(modules: Iterable[Any]) -> RepoContents:
    from feast import Entity, FeatureService, FeatureView
    from feast.batch_feature_view import BatchFeatureView
    from feast.data_source import DataSource
    from feast.repo_contents import RepoContents
    from feast.stream_feature_view import StreamFeatureView

    found: dict[str, list[Any]] = {"data_sources": [], "entities": [], "feature_views": [], "feature_services": []}

    def add(kind: str, obj: Any) -> None:
        if not any(obj is seen for seen in found[kind]):
            found[kind].append(obj)

    for module in modules:
        for attr in dir(module):
            obj = getattr(module, attr)
            if isinstance(obj, DataSource):
                add("data_sources", obj)
            elif isinstance(obj, Entity):
                add("entities", obj)
            elif isinstance(obj, FeatureView) and not isinstance(obj, StreamFeatureView | BatchFeatureView):
                add("feature_views", obj)
                if obj.batch_source is not None:
                    add("data_sources", obj.batch_source)
            elif isinstance(obj, FeatureService):
                add("feature_services", obj)
    return RepoContents(projects=[], on_demand_feature_views=[], stream_feature_views=[], label_views=[],
                        permissions=[], **found)  # fmt: skip


@contextlib.contextmanager
def _feast_output_logged(what: str) -> Iterator[None]:
    """Feast prints progress to stdout (colours included); library code must not, so it goes to the debug log."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    text = buffer.getvalue().strip()
    if text:
        log.debug("event=feast_output step=%s text=%r", what, text)


def _as_utc(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values)
    if ts.dt.tz is None:
        raise ValueError("entity_df event_timestamp must be tz-aware (UTC); a naive time is ambiguous")
    return ts.dt.tz_convert("UTC")


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def copy_definitions(source: str | Path, destination: str | Path) -> Path:
    """Copy a repo's definition files (not its ``data/``) into ``destination``; for tests and scratch research.

    The copy's sources point into its own ``data/`` (paths come from ``__file__``), so it shares no state.
    """
    src = FeatureRepo(source)
    dst = Path(destination).resolve()
    for path in src.definition_paths():
        target = dst / path.relative_to(src.repo_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (dst / "data").mkdir(exist_ok=True)
    return dst
