"""What a run is compared with: buy-and-hold of its own universe, or of one symbol (``--benchmark SYMBOL``).

Both are equity series in the run's currency, starting at the run's initial capital on its first session, built
from the same closes the run traded on (so no second data source can disagree with the run).
"""

from __future__ import annotations

import pandas as pd

from core.errors import ConfigError
from data.panel import BarPanel

UNIVERSE_NAME = "Benchmark: buy-and-hold, equal weight"


def panel_closes(panel: BarPanel) -> pd.DataFrame:
    """Sessions x symbols closes of a panel (NaN where a symbol has no bar)."""
    return pd.DataFrame(panel.close, index=pd.DatetimeIndex(panel.dates), columns=list(panel.symbols))


def buy_and_hold(closes: pd.DataFrame, initial_capital: float) -> pd.Series:
    """Equal weight of every symbol, bought at its first close and held (not rebalanced).

    A symbol whose history starts later holds its share in cash until its first close; after its last close its
    value stays at that close. Empty or all-NaN input gives an empty series.
    """
    if closes.empty:
        return pd.Series(dtype=float, name=UNIVERSE_NAME)
    growth = closes.astype(float).ffill() / closes.astype(float).bfill().iloc[0]
    growth = growth.fillna(1.0).loc[:, closes.notna().any()]
    if growth.empty:
        return pd.Series(dtype=float, name=UNIVERSE_NAME)
    return (growth.mean(axis=1) * float(initial_capital)).rename(UNIVERSE_NAME)


def symbol_benchmark(closes: pd.DataFrame, symbol: str, initial_capital: float) -> pd.Series:
    """``initial_capital`` in ``symbol`` bought at its first close; ``ConfigError`` naming --benchmark when the data
    has no such symbol (or no price for it)."""
    if symbol not in closes.columns or not closes[symbol].notna().any():
        shown = ", ".join(map(str, closes.columns[:20])) + (" ..." if len(closes.columns) > 20 else "")
        raise ConfigError("--benchmark", [
            f"--benchmark: {symbol!r} is not a symbol of the run's data (it has {shown}); pick one of them, add it "
            "to --symbols, or leave --benchmark out for buy-and-hold of the universe"])  # fmt: skip
    prices = closes[symbol].astype(float).ffill()
    first = prices.dropna().iloc[0]
    values = (prices / first).fillna(1.0) * float(initial_capital)
    return values.rename(f"Benchmark: {symbol}")


def run_benchmark(closes: pd.DataFrame, symbol: str | None, initial_capital: float) -> pd.Series:
    """The report's benchmark: ``symbol`` when given, else buy-and-hold of the universe."""
    if symbol:
        return symbol_benchmark(closes, symbol, initial_capital)
    return buy_and_hold(closes, initial_capital)

