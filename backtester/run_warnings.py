"""What a person must know about a run's inputs before trusting its numbers, as one line each.

A window shorter than the strategy's warm-up makes an empty backtest whose Sharpe is ``None``; synthetic data
carries real-looking ticker names on generated prices. Neither is an error (both are legitimate on purpose),
but both must be said: the lines go to ``summary.json["warnings"]`` and, through the entry point, to stderr.
"""

from __future__ import annotations

from core.config_models import AppConfig
from data.loading import LoadedData
from strategy.registry import build_strategy

SYMBOLS_SHOWN = 5


def run_warnings(config: AppConfig, strategy: str, loaded: LoadedData) -> list[str]:
    """The warnings for running ``strategy`` (its configured params) on ``loaded``; empty when there are none."""
    return [w for w in (warmup_warning(config, strategy, loaded), synthetic_warning(loaded)) if w]


def warmup_warning(config: AppConfig, strategy: str, loaded: LoadedData) -> str | None:
    """Said when the window has no more sessions than the strategy's warm-up (its longest indicator lookback):
    no signal can appear, nothing trades and the risk-adjusted metrics are undefined."""
    needed = build_strategy(strategy, config.strategies).warmup_bars
    dates = loaded.panel.dates
    if len(dates) > needed:
        return None
    params = getattr(config.strategies, strategy).params.model_dump()
    lookbacks = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k.endswith("_period"))
    window = f"{dates[0].date()}..{dates[-1].date()}" if len(dates) else "empty"
    return (
        f"warm-up: the window {window} has {len(dates)} sessions but {strategy} needs {needed} before its first "
        f"signal ({lookbacks}): nothing can trade and Sharpe/Sortino are undefined; move --start at least "
        f"{needed - len(dates) + 1} sessions earlier or shorten the periods (--set strategies.{strategy}.params.*)"
    )


def synthetic_warning(loaded: LoadedData) -> str | None:
    """Said whenever the bars are the seeded synthetic market: the ticker names are labels, not those symbols'
    market history (``--symbols AAPL,GOOG`` on synthetic data invents both)."""
    if not loaded.description.startswith("synthetic"):
        return None
    symbols = list(loaded.panel.symbols)
    named = ", ".join(symbols[:SYMBOLS_SHOWN]) + (f" and {len(symbols) - SYMBOLS_SHOWN} more" if len(symbols) >
                                                 SYMBOLS_SHOWN else "")  # fmt: skip
    return (
        f"synthetic data ({loaded.description.split(':', 1)[0]}): {named} are labels on generated prices, not "
        "those symbols' market history; give --data a CSV file, a folder of CSVs or a bar store for real bars"
    )
