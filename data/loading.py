"""Resolve a data spec into a guarded, aligned BarPanel.

A spec is 'synthetic', a bar store (a folder with ``bars/<SYMBOL>.parquet``, already guarded when written), a
folder of per-symbol CSV files, or one CSV file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.config_models import SyntheticDataConfig
from core.errors import DataError
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.csv_loader import load_csv, load_csv_folder
from data.panel import BarPanel
from data.synthetic import generate_market

log = logging.getLogger(__name__)


MISSING_SHOWN = 5  # first missing dates listed per symbol


@dataclass(frozen=True, slots=True)
class LoadedData:
    panel: BarPanel
    description: str
    quarantined: int
    missing_sessions: dict[str, dict[str, object]] = field(default_factory=dict)  # symbol -> count, first dates


def missing_sessions_report(
    frames: Mapping[str, pd.DataFrame], calendar: TradingCalendar
) -> dict[str, dict[str, object]]:
    """Per symbol, the XNYS sessions inside its own date range that its data lacks: count and first dates.

    A missing session is never filled in: the panel holds NaN there and nothing trades on it; it is reported so a
    reader knows the history has a hole (logged as a warning per symbol).
    """
    report: dict[str, dict[str, object]] = {}
    for symbol, frame in frames.items():
        missing = calendar.missing_sessions(pd.DatetimeIndex(frame.index))
        if len(missing):
            first = [str(day.date()) for day in missing[:MISSING_SHOWN]]
            report[symbol] = {"count": len(missing), "first": first}
            log.warning("event=missing_sessions symbol=%s count=%d first=%s (XNYS sessions absent from the data)",
                        symbol, len(missing), ",".join(first))  # fmt: skip
    return report


def load_panel(
    spec: str,
    *,
    calendar: TradingCalendar,
    symbols: Sequence[str] | None,
    start: str | None,
    end: str | None,
    seed: int,
    synthetic: SyntheticDataConfig,
    adjust: bool = False,
) -> LoadedData:
    if spec == "synthetic":
        universe: Sequence[str] | int = list(symbols) if symbols else synthetic.n_symbols
        frames = generate_market(universe, start or synthetic.start, end or synthetic.end, seed, calendar)
        description = f"synthetic(seed={seed})"
        quarantined = 0
    else:
        path = Path(spec)
        if path.is_dir() and (path / "bars").is_dir():
            store = BarStore(path, calendar)
            names = list(symbols) if symbols else store.symbols()
            missing = sorted(set(names) - set(store.symbols()))
            if missing:
                raise DataError(f"--data {spec!r}: bar store has no symbols {missing}; it has {store.symbols()}")
            frames = {s: _between(store.read(s), start, end) for s in names}
            frames = {s: f for s, f in frames.items() if len(f)}
            if not frames:
                raise DataError(f"no bars in bar store {spec!r} between {start or 'the start'} and {end or 'the end'}")
            return LoadedData(BarPanel.from_frames(frames, calendar), f"bar_store({path})", 0,
                              missing_sessions_report(frames, calendar))  # fmt: skip
        if path.is_dir():
            results = load_csv_folder(path, symbols=symbols, adjust=adjust, calendar=calendar)
        elif path.is_file():
            result = load_csv(path, adjust=adjust, calendar=calendar)
            stem_symbol = symbols[0] if symbols and len(symbols) == 1 else None
            results = {stem_symbol or _symbol_of(result, path): result}
        else:
            raise DataError(f"--data {spec!r}: not 'synthetic', an existing folder or an existing CSV file")
        if symbols:
            missing = sorted(set(symbols) - set(results))
            if missing:
                raise DataError(f"--data {spec!r}: no file for symbols {missing}; found {sorted(results)}")
        frames = {s: r.clean for s, r in results.items()}
        quarantined = sum(len(r.quarantined) for r in results.values())
        description = f"csv({path}{', adjusted' if adjust else ''})"
    frames = {s: _between(f, start, end) for s, f in frames.items()}
    frames = {s: f for s, f in frames.items() if len(f)}
    if not frames:
        raise DataError(f"no bars for data {spec!r} between {start or 'the start'} and {end or 'the end'}")
    return LoadedData(BarPanel.from_frames(frames, calendar), description, quarantined,
                      missing_sessions_report(frames, calendar))  # fmt: skip


def _between(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    if start:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end:
        frame = frame[frame.index <= pd.Timestamp(end)]
    return frame


def _symbol_of(result: object, path: Path) -> str:
    return path.name.split("-")[0].split(".")[0].upper()
