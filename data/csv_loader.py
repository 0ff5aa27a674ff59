"""Per-symbol daily-bar CSV files (our own ``date,open,...`` and Yahoo's ``Date,...,Adj Close,Volume``) to bars.

A file is read defensively: headers are matched case-insensitively in any order, extra columns are ignored,
and a row that cannot be read (wrong field count, bad date, a non-numeric or ``null`` field) becomes a
``PARSE_ERROR`` quarantine entry instead of aborting the load, so one corrupt line never costs a whole
history. Only a file that cannot be used at all (unreadable, no header, a required column missing) raises
``DataError``. Every row then goes through the bad-bar guard.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS, BadBarReason, GuardResult, guard_rows, value_reasons
from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
_DATE = "date"
_ADJ_CLOSE = "adjclose"
_REQUIRED: tuple[str, ...] = (_DATE, *BAR_COLUMNS)
_NAN_TOKENS = frozenset({"nan", "+nan", "-nan"})
_DELIMITERS = ",;\t|"
# names a date column goes by when it is not called "date": pandas' to_csv writes the index with an empty name
_DATE_ALIASES = ("", "datetime", "timestamp", "time", "day", "index", "unnamed:0")
_MAX_LOGGED_LINE_CHARS = 200


def symbol_from_path(path: str | Path) -> str:
    """Symbol implied by a file name: the stem up to the first '-' or '.', upper-cased ('yhoo-2003.txt' -> 'YHOO')."""
    stem = Path(path).name
    for sep in ("-", "."):
        stem = stem.split(sep, 1)[0]
    if not stem:
        raise DataError(f"{path}: cannot derive a symbol from the file name; pass symbol= explicitly")
    return stem.upper()


def load_csv(
    path: str | Path,
    symbol: str | None = None,
    adjust: bool = False,
    calendar: TradingCalendar | None = None,
) -> GuardResult:
    """Load one symbol's daily bars from ``path`` and screen them with the bad-bar guard.

    ``adjust=True`` back-adjusts for splits and dividends exactly as backtrader's
    ``YahooFinanceCSVData(adjclose=True, round=False)`` does: factor = Close / Adj Close, open/high/low divided
    by it, close = Adj Close, volume multiplied by it and rounded to a whole share (backtrader always rounds
    volume). Where that division leaves a high or low a float ulp inside the close, it is widened to it so a
    valid source row stays a valid bar; rows that are invalid in the file are quarantined with their file
    values. A bad ``Adj Close`` on an otherwise valid row shows up as NAN_VALUE or NON_POSITIVE_PRICE.
    """
    path = Path(path)
    symbol = symbol or symbol_from_path(path)
    header, rows = _read_rows(path)
    columns = _column_positions(path, header, need_adj_close=adjust)
    frame, preset = _parse_rows(path, symbol, rows, len(header), columns)
    if adjust:
        frame = _back_adjust(frame, preset)
    result = guard_rows(frame[list(BAR_COLUMNS)], symbol, calendar, preset_reasons=preset)
    log.info(
        "event=csv_loaded symbol=%s file=%s rows=%d clean=%d quarantined=%d adjust=%s",
        symbol,
        path,
        len(rows),
        len(result.clean),
        len(result.quarantined),
        adjust,
    )
    return result


def load_csv_folder(
    directory: str | Path,
    symbols: Iterable[str] | None = None,
    adjust: bool = False,
    calendar: TradingCalendar | None = None,
    files: Mapping[str, str | Path] | None = None,
) -> dict[str, GuardResult]:
    """Load every ``*.csv`` / ``*.txt`` in ``directory`` (or only ``symbols``), keyed by symbol.

    Symbols come from file names (``symbol_from_path``). Two files naming the same symbol are ambiguous and
    raise ``AmbiguousSymbolFiles`` (a ``DataError``) naming all of them; pass ``files={"YHOO":
    "yhoo-1996-2015.txt", ...}`` (paths relative to ``directory`` or absolute) to choose explicitly, in which case
    the folder is not scanned.
    """
    directory = Path(directory)
    if files is not None:
        chosen = {sym: (directory / p if not Path(p).is_absolute() else Path(p)) for sym, p in files.items()}
    else:
        chosen = _scan_folder(directory, None if symbols is None else set(symbols))
    if symbols is not None:
        wanted = list(dict.fromkeys(symbols))
        missing = [s for s in wanted if s not in chosen]
        if missing:
            raise DataError(f"{directory}: no CSV file for symbols {missing} (found {sorted(chosen)})")
        chosen = {s: chosen[s] for s in wanted}
    return {sym: load_csv(p, symbol=sym, adjust=adjust, calendar=calendar) for sym, p in sorted(chosen.items())}


class AmbiguousSymbolFiles(DataError):
    """Two or more files in a folder name the same symbol; ``files`` maps each such symbol to all its files."""

    def __init__(self, directory: Path, files: dict[str, list[Path]]) -> None:
        self.directory = directory
        self.files = files
        listed = "; ".join(f"{sym}: {', '.join(p.name for p in paths)}" for sym, paths in sorted(files.items()))
        example = next(iter(sorted(files)))
        super().__init__(
            f"{directory}: several files map to one symbol ({listed}); pass "
            f"files={{'{example}': <one of them>}} to choose, or remove the others from the folder"
        )


def _scan_folder(directory: Path, wanted: set[str] | None) -> dict[str, Path]:
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory; expected a folder of per-symbol CSV files")
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() not in CSV_SUFFIXES or path.name.startswith("."):
            continue
        sym = symbol_from_path(path)
        if wanted is None or sym in wanted:
            found.setdefault(sym, []).append(path)
    ambiguous = {sym: paths for sym, paths in found.items() if len(paths) > 1}
    if ambiguous:
        raise AmbiguousSymbolFiles(directory, ambiguous)
    return {sym: paths[0] for sym, paths in found.items()}


def _delimiter(path: Path) -> str:
    """The file's field separator among ``,;<tab>|``, read off its first line (a comma when unsure)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    try:
        return csv.Sniffer().sniff(first, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header fields and (line number, fields) of every non-blank data row; undecodable bytes become U+FFFD.
    The separator may be a comma, semicolon, tab or bar (``_delimiter``)."""
    try:
        delimiter = _delimiter(path)
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            numbered = [
                (i, fields) for i, fields in enumerate(csv.reader(fh, delimiter=delimiter), start=1)
                if any(f.strip() for f in fields)
            ]
    except (OSError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV file ({exc})") from exc
    if not numbered:
        raise DataError(f"{path}: file is empty; expected a header line such as date,open,high,low,close,volume")
    return numbered[0][1], numbered[1:]


def _column_positions(path: Path, header: list[str], need_adj_close: bool) -> dict[str, int]:
    """Position of each needed column, matching names case-, space- and underscore-insensitively."""
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        key = name.strip().lower().replace(" ", "").replace("_", "")
        if key in positions:
            raise DataError(f"{path}: column {name.strip()!r} appears twice in the header {header}")
        positions[key] = i
    if _DATE not in positions:  # e.g. pandas' to_csv: the date index is an unnamed first column
        alias = next((a for a in _DATE_ALIASES if a in positions), None)
        if alias is not None:
            positions[_DATE] = positions[alias]
    required = (*_REQUIRED, _ADJ_CLOSE) if need_adj_close else _REQUIRED
    missing = [c for c in required if c not in positions]
    if missing:
        hint = " (adjust=True needs an 'Adj Close' column)" if _ADJ_CLOSE in missing else ""
        if any(d in name for name in header for d in ";|\t"):
            hint += " (a header field holds ; | or a tab: is one separator (, ; tab |) used throughout the file?)"
        raise DataError(f"{path}: missing required columns {missing}{hint}; columns found: {header}")
    return {c: positions[c] for c in required}


def _parse_rows(
    path: Path, symbol: str, rows: list[tuple[int, list[str]]], n_fields: int, columns: dict[str, int]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse the needed columns; return the frame (NaN/NaT where unreadable) and PARSE_ERROR presets."""
    n = len(rows)
    preset = np.full(n, None, dtype=object)
    text = {c: np.full(n, "", dtype=object) for c in columns}
    for k, (line_no, fields) in enumerate(rows):
        if len(fields) != n_fields:
            preset[k] = BadBarReason.PARSE_ERROR
            _log_unparsable(symbol, path, line_no, fields, f"expected {n_fields} fields, got {len(fields)}")
            continue
        for c, pos in columns.items():
            text[c][k] = fields[pos].strip()
    dates = pd.to_datetime(pd.Series(text[_DATE], dtype=object), format="%Y-%m-%d", errors="coerce")
    parsed: dict[str, np.ndarray] = {}
    bad_fields: dict[int, list[str]] = {}
    for c in columns:
        if c == _DATE:
            continue
        raw = pd.Series(text[c], dtype=object)
        numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        # A literal NaN is a readable value (the guard will call it NAN_VALUE); anything else that failed is not.
        unreadable = np.isnan(numbers) & ~raw.str.lower().isin(_NAN_TOKENS).to_numpy()
        for k in np.flatnonzero(unreadable):
            bad_fields.setdefault(int(k), []).append(c)
        parsed[c] = numbers
    for k in np.flatnonzero(dates.isna().to_numpy()):
        bad_fields.setdefault(int(k), []).insert(0, _DATE)
    for k, names in sorted(bad_fields.items()):
        if preset[k] is None:
            preset[k] = BadBarReason.PARSE_ERROR
            line_no, fields = rows[k]
            detail = ", ".join(f"{c}={text[c][k]!r}" for c in names)
            _log_unparsable(symbol, path, line_no, fields, f"unreadable {detail}")
    frame = pd.DataFrame(parsed, index=pd.DatetimeIndex(dates.to_numpy(), name="date"))
    return frame, preset


def _log_unparsable(symbol: str, path: Path, line_no: int, fields: list[str], detail: str) -> None:
    line = ",".join(fields)[:_MAX_LOGGED_LINE_CHARS]
    log.warning(
        "event=csv_row_unparsable symbol=%s file=%s line=%d detail=%s text=%r", symbol, path, line_no, detail, line
    )


def _back_adjust(frame: pd.DataFrame, preset: np.ndarray) -> pd.DataFrame:
    """Apply backtrader's adjclose transform (see ``load_csv``) to the rows that are valid in the file.

    Rows the guard would reject as written are left unadjusted, so their quarantine entry shows the file's
    values and the file's fault (a zero close must read NON_POSITIVE_PRICE, not the NaN its factor makes).
    In valid rows the division can leave the high or low a float ulp inside the close; they are widened to it.
    """
    o, h, lo, c, v, adj = (frame[k].to_numpy(dtype=np.float64) for k in (*BAR_COLUMNS, _ADJ_CLOSE))
    valid_in_file = (preset == None) & (value_reasons(o, h, lo, c, v) == None)  # noqa: E711
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = c / adj
        o_adj, h_adj, lo_adj = o / factor, h / factor, lo / factor
        v_adj = np.round(v * factor)
    h_adj = np.maximum.reduce([h_adj, o_adj, adj])
    lo_adj = np.minimum.reduce([lo_adj, o_adj, adj])
    adjusted = {"open": o_adj, "high": h_adj, "low": lo_adj, "close": adj, "volume": v_adj}
    raw = {"open": o, "high": h, "low": lo, "close": c, "volume": v}
    return pd.DataFrame({k: np.where(valid_in_file, adjusted[k], raw[k]) for k in BAR_COLUMNS}, index=frame.index)
