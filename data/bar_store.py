"""The bar store: one Parquet file of clean daily bars per symbol, plus a quarantine file per symbol.

Layout under ``root``::

    bars/<SYMBOL>.parquet        clean bars (date, open, high, low, close, volume), ascending, unique dates
    quarantine/<SYMBOL>.parquet  rejected rows with their reason, appended and de-duplicated

Everything written goes through the bad-bar guard first, so a reader of ``bars/`` never sees a bad bar.
Files are replaced atomically (temp file in the same folder, fsync, ``os.replace``): a crash mid-write leaves
the previous version intact, never a half-written file. One writer per symbol at a time (no locking).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS, GuardResult, guard_frame
from data.calendar import TradingCalendar
from data.csv_loader import load_csv_folder

log = logging.getLogger(__name__)

_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._^=-]*$")
_FINGERPRINT_VERSION = b"barstore-fingerprint-v1"

_BAR_SCHEMA = pa.schema([("date", pa.timestamp("ns")), *((c, pa.float64()) for c in BAR_COLUMNS)])
_QUARANTINE_SCHEMA = pa.schema([*_BAR_SCHEMA, ("reason", pa.string())])


class BarStore:
    """Parquet bar store rooted at ``root`` (created on first write).

    ``calendar``, if given, is passed to the guard so bars on non-sessions are quarantined on write.
    """

    def __init__(self, root: str | Path, calendar: TradingCalendar | None = None) -> None:
        self.root = Path(root)
        self.calendar = calendar
        self.bars_dir = self.root / "bars"
        self.quarantine_dir = self.root / "quarantine"

    # -------------------------------------------------------------------- write
    def write(self, symbol: str, data: GuardResult | pd.DataFrame) -> GuardResult:
        """Guard ``data``, merge its clean bars into the stored ones (new rows win on equal dates), persist.

        A ``GuardResult`` (e.g. from ``load_csv``) is re-guarded (cheap, and a hand-built one may be wrong) and
        its quarantined rows are kept. Returns what this call accepted and quarantined.
        """
        _check_symbol(symbol)
        if isinstance(data, GuardResult):
            rechecked = guard_frame(data.clean, symbol, self.calendar)
            parts = [q for q in (data.quarantined, rechecked.quarantined) if len(q)]
            quarantined = pd.concat(parts) if len(parts) > 1 else (parts[0] if parts else rechecked.quarantined)
            result = GuardResult(clean=rechecked.clean, quarantined=quarantined, symbol=symbol)
        else:
            result = guard_frame(data, symbol, self.calendar)
        if len(result.clean):
            merged = result.clean
            if self.has(symbol):
                stored = self.read(symbol)
                merged = pd.concat([stored[~stored.index.isin(merged.index)], merged]).sort_index()
            self._write_table(self._bars_path(symbol), _bars_table(merged))
        if len(result.quarantined):
            self._append_quarantine(symbol, result.quarantined)
        log.info(
            "event=bars_written symbol=%s accepted=%d quarantined=%d",
            symbol,
            len(result.clean),
            len(result.quarantined),
        )
        return result

    def import_csv_folder(
        self,
        directory: str | Path,
        adjust: bool = False,
        symbols: Iterable[str] | None = None,
        files: Mapping[str, str | Path] | None = None,
    ) -> dict[str, GuardResult]:
        """Load CSV files with ``load_csv_folder`` (same arguments) and write each symbol; returns the results."""
        loaded = load_csv_folder(directory, symbols=symbols, adjust=adjust, calendar=self.calendar, files=files)
        return {symbol: self.write(symbol, result) for symbol, result in loaded.items()}

    # --------------------------------------------------------------------- read
    def has(self, symbol: str) -> bool:
        _check_symbol(symbol)
        return self._bars_path(symbol).is_file()

    def symbols(self) -> list[str]:
        """Symbols with stored bars, sorted (temp files of an interrupted write are not symbols)."""
        if not self.bars_dir.is_dir():
            return []
        return sorted(p.stem for p in self.bars_dir.glob("*.parquet") if p.is_file() and not p.name.startswith("."))

    def read(
        self, symbol: str, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Stored bars of ``symbol`` with ``start <= date <= end`` (inclusive, either bound optional).

        Raises ``DataError`` if nothing is stored for the symbol or the file is unreadable.
        """
        _check_symbol(symbol)
        path = self._bars_path(symbol)
        if not path.is_file():
            raise DataError(f"no bars stored for symbol={symbol} under {self.bars_dir}; have {self.symbols()}")
        table = _read_table(path, _BAR_SCHEMA)
        index = pd.DatetimeIndex(table.column("date").to_numpy(), name="date")
        frame = pd.DataFrame({c: table.column(c).to_numpy() for c in BAR_COLUMNS}, index=index)
        return frame.loc[_bound(start) : _bound(end)] if start is not None or end is not None else frame

    def read_quarantine(self, symbol: str) -> pd.DataFrame:
        """Every row ever quarantined for ``symbol`` (empty frame if none)."""
        _check_symbol(symbol)
        path = self._quarantine_path(symbol)
        if not path.is_file():
            return _quarantine_frame(pa.Table.from_pylist([], schema=_QUARANTINE_SCHEMA))
        return _quarantine_frame(_read_table(path, _QUARANTINE_SCHEMA))

    def fingerprint(
        self,
        symbols: Iterable[str] | None = None,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
    ) -> str:
        """SHA-256 (hex) of the stored bars of ``symbols`` (default: all) between ``start`` and ``end``.

        Hashes the stored values (symbol, int64 dates, little-endian float64 columns), not the Parquet file
        bytes, so it identifies the data a backtest saw independently of the Parquet writer's version or
        compression; it is stable across runs and machines and changes with any stored value.
        """
        chosen = sorted(set(self.symbols() if symbols is None else symbols))
        digest = hashlib.sha256(_FINGERPRINT_VERSION)
        for symbol in chosen:
            frame = self.read(symbol, start, end)
            name = symbol.encode()
            digest.update(len(name).to_bytes(4, "little") + name + len(frame).to_bytes(8, "little"))
            digest.update(frame.index.as_unit("ns").asi8.astype("<i8").tobytes())
            for c in BAR_COLUMNS:
                digest.update(frame[c].to_numpy(dtype="<f8").tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ helpers
    def _bars_path(self, symbol: str) -> Path:
        return self.bars_dir / f"{symbol}.parquet"

    def _quarantine_path(self, symbol: str) -> Path:
        return self.quarantine_dir / f"{symbol}.parquet"

    def _append_quarantine(self, symbol: str, new_rows: pd.DataFrame) -> None:
        stored = self.read_quarantine(symbol)
        new_rows = _normalized_quarantine(new_rows)
        combined = pd.concat([stored, new_rows]) if len(stored) else new_rows
        combined = combined.reset_index().drop_duplicates(keep="first").set_index("date")
        self._write_table(self._quarantine_path(symbol), _quarantine_table(combined))

    def _write_table(self, path: Path, table: pa.Table) -> None:
        """Write ``table`` to ``path`` atomically: temp file beside it, fsync, rename, fsync the folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise ValueError(
            f"invalid symbol {symbol!r}: use letters, digits and . _ ^ = - (it becomes a file name), "
            f"starting with a letter or digit"
        )


def _bound(value: str | pd.Timestamp | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _read_table(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable Parquet file ({exc}); restore it or re-import the symbol") from exc
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing columns {missing} (found {table.column_names}); not a bar store file")
    return table.select(schema.names).cast(schema)


def _bars_table(frame: pd.DataFrame) -> pa.Table:
    arrays = [pa.array(frame.index.to_numpy(dtype="datetime64[ns]"), type=pa.timestamp("ns"))]
    arrays += [pa.array(frame[c].to_numpy(dtype=np.float64)) for c in BAR_COLUMNS]
    return pa.Table.from_arrays(arrays, schema=_BAR_SCHEMA)


def _normalized_quarantine(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: frame[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS}, index=frame.index)
    out["reason"] = frame["reason"].astype(str).to_numpy(dtype=object)
    out.index = pd.DatetimeIndex(frame.index, name="date")
    return out


def _quarantine_table(frame: pd.DataFrame) -> pa.Table:
    dates = frame.index.to_numpy(dtype="datetime64[ns]")
    arrays = [pa.array(dates, type=pa.timestamp("ns"), mask=np.isnat(dates))]
    arrays += [pa.array(frame[c].to_numpy(dtype=np.float64), from_pandas=False) for c in BAR_COLUMNS]
    arrays.append(pa.array(frame["reason"].astype(str).tolist(), type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=_QUARANTINE_SCHEMA)


def _quarantine_frame(table: pa.Table) -> pd.DataFrame:
    dates = table.column("date").to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(
        {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in BAR_COLUMNS},
        index=pd.DatetimeIndex(dates, name="date"),
    )
    frame["reason"] = np.array(table.column("reason").to_pylist(), dtype=object)
    return frame
