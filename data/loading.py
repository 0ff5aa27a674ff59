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
from core.errors import ConfigError, DataError
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.csv_loader import CSV_SUFFIXES, AmbiguousSymbolFiles, load_csv, load_csv_folder, symbol_from_path
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
    """The guarded, aligned bars of ``spec`` between ``start`` and ``end`` (inclusive, either optional).

    Raises ``ConfigError`` when the choice must change (a window outside the data, saying where the data starts
    and ends; a folder with several files for one symbol, naming them): the messages name ``--data``,
    ``--start`` and ``--end``, the flags of every entry point that loads bars. Raises ``DataError`` when the
    data itself cannot be used (no such file, unreadable, no symbols asked for).
    """
    if spec == "synthetic":
        frames = _synthetic_frames(symbols, start, end, seed, synthetic, calendar)
        description, quarantined = f"synthetic(seed={seed}): {SYNTHETIC_NOTE}", 0
    else:
        frames, description, quarantined = _file_frames(spec, symbols, adjust, calendar)
        frames = _within(frames, start, end, spec)
    return LoadedData(BarPanel.from_frames(frames, calendar), description, quarantined,
                      missing_sessions_report(frames, calendar))  # fmt: skip


SYNTHETIC_NOTE = "generated prices, the symbol names are labels only"


def _synthetic_frames(
    symbols: Sequence[str] | None, start: str | None, end: str | None, seed: int, synthetic: SyntheticDataConfig,
    calendar: TradingCalendar,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The seeded synthetic market on the sessions of [start, end]; the window defaults to
    backtest.synthetic.start/end, and a flag moving one bound past the other says which and where the data is."""
    first, last = start or synthetic.start, end or synthetic.end
    runs = f"the synthetic data runs {synthetic.start}..{synthetic.end} (backtest.synthetic.start/end)"
    problems = []
    if pd.Timestamp(first) > pd.Timestamp(last):
        if start and not end:
            problems.append(f"--start {start}: after the data's last session {last}; {runs}; give a --start on or "
                            f"before {last} (or a later --end)")  # fmt: skip
        else:
            problems.append(f"--end {last}: before the data's first session {first}; {runs}; give an --end on or "
                            f"after {first} (or an earlier --start)")  # fmt: skip
    else:
        lo, hi = calendar.first_session.date(), calendar.last_session.date()
        for flag, value in (("--start", first), ("--end", last)):
            if not lo <= pd.Timestamp(value).date() <= hi:
                problems.append(f"{flag} {value}: outside the {calendar.name} calendar the synthetic data is "
                                f"generated on ({lo}..{hi}); give a date inside it")  # fmt: skip
    if not problems and len(calendar.sessions(first, last)) == 0:
        problems.append(f"--start {first} --end {last}: no {calendar.name} session in between; widen the window")
    if problems:
        raise ConfigError("--start/--end", problems)
    universe: Sequence[str] | int = list(symbols) if symbols else synthetic.n_symbols
    return generate_market(universe, first, last, seed, calendar)


def _file_frames(
    spec: str, symbols: Sequence[str] | None, adjust: bool, calendar: TradingCalendar
) -> tuple[dict[str, pd.DataFrame], str, int]:
    """Every bar of a bar store, a CSV folder or one CSV file: frames, description, quarantined bar count."""
    path = Path(spec)
    if path.is_dir() and (path / "bars").is_dir():
        store = BarStore(path, calendar)
        names = list(symbols) if symbols else store.symbols()
        missing = sorted(set(names) - set(store.symbols()))
        if missing:
            raise DataError(f"--data {spec!r}: bar store has no symbols {missing}; it has {store.symbols()}")
        return {s: store.read(s) for s in names}, f"bar_store({path})", 0  # guarded when written
    if path.is_dir():
        try:
            results = load_csv_folder(path, symbols=symbols, adjust=adjust, calendar=calendar)
        except AmbiguousSymbolFiles as exc:
            raise ConfigError(f"--data {spec}", ambiguity_advice(exc, spec)) from exc
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
    quarantined = sum(len(r.quarantined) for r in results.values())
    return {s: r.clean for s, r in results.items()}, f"csv({path}{', adjusted' if adjust else ''})", quarantined


def ambiguity_advice(exc: AmbiguousSymbolFiles, spec: str) -> list[str]:
    """One line per ambiguous symbol: its files and the command-line ways out (one file as --data, leave the
    symbol out with --symbols, or move the other files away)."""
    lines = []
    for symbol, paths in sorted(exc.files.items()):
        others = sorted(set(symbol_from_path(p) for p in exc.directory.iterdir()
                            if p.is_file() and p.suffix.lower() in CSV_SUFFIXES) - set(exc.files))  # fmt: skip
        leave_out = f", leave {symbol} out with --symbols {','.join(others)}" if others else ""
        lines.append(
            f"symbol {symbol} has {len(paths)} files in {spec}: {', '.join(p.name for p in paths)} (a file's name "
            f"up to the first '-' or '.' is its symbol); choose one: run on one file with --data {paths[0]}"
            f"{leave_out}, or move the other files out of the folder"
        )
    return lines


def _within(frames: Mapping[str, pd.DataFrame], start: str | None, end: str | None, spec: str
            ) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The frames cut to [start, end]; a window outside the data is refused saying where the data is."""
    spans = [(f.index[0], f.index[-1]) for f in frames.values() if len(f)]
    if not spans:
        raise DataError(f"--data {spec!r}: no usable bars at all (every row quarantined; see the log)")
    first, last = min(a for a, _ in spans).date(), max(b for _, b in spans).date()
    runs = f"{spec} runs {first}..{last} (first and last session)"
    problems = []
    if start and pd.Timestamp(start).date() > last:
        problems.append(f"--start {start}: after the data's last session {last}; {runs}; give a --start on or "
                        f"before {last}")  # fmt: skip
    if end and pd.Timestamp(end).date() < first:
        problems.append(f"--end {end}: before the data's first session {first}; {runs}; give an --end on or "
                        f"after {first}")  # fmt: skip
    window = {s: _between(f, start, end) for s, f in frames.items()}
    window = {s: f for s, f in window.items() if len(f)}
    if not problems and not window:
        problems.append(f"--start {start} --end {end}: no bars in between; {runs}; choose a window inside it")
    if problems:
        raise ConfigError("--start/--end", problems)
    return window


def _between(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    if start:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end:
        frame = frame[frame.index <= pd.Timestamp(end)]
    return frame


def _symbol_of(result: object, path: Path) -> str:
    return path.name.split("-")[0].split(".")[0].upper()
