"""Compute the daily bar features and publish them to the Feast feature store.

``python scripts/refresh_features.py [--config FILE] [--data synthetic|DIR|FILE] [--symbols A,B] [--start D] [--end D]
[--repo DIR]``

Loads bars the way ``run_backtest.py`` does (``--data`` defaults to ``backtest.data``), computes
``data.bar_features.bar_features``, writes them as the offline data of ``daily_bar_features``, applies the repo when
its definitions changed and loads each symbol's latest value into the online store (``FeatureRepo.publish``).
``--data ibsim`` takes the daily bars the simulated gateway serves when it starts: the market ``python -m ibsim``
replays with ``ibsim.seed`` and ``ibsim.data``, up to the session before its first replayed one, i.e. the history
the engine's warm-up receives (``run_system.sh`` runs this in sim mode when a strategy has the veto enabled; the
engine then writes each replayed session's features itself, ``live/session_features.py``).
``--repo`` defaults to ``features.repo_path``. Safe to rerun: nothing is applied or materialized twice.
Exit status: 0 published, 1 a data problem (the message says which), 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config_loader import ArgumentParser, date_arg, load_config  # after the sys.path line: runs from anywhere
from core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from core.config_models import AppConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from backtester.cli_common import symbols_arg

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="operator settings file")
    parser.add_argument("--data", default=None,
                        help="'synthetic', a bar store, a CSV folder or file (backtest.data), or 'ibsim'")  # fmt: skip
    parser.add_argument("--symbols", type=symbols_arg, default=None, help="comma-separated subset, e.g. AAPL,MSFT")
    parser.add_argument("--start", type=date_arg, default=None, help="first session YYYY-MM-DD")
    parser.add_argument("--end", type=date_arg, default=None, help="last session YYYY-MM-DD")
    parser.add_argument("--repo", default=None, help="the Feast repository folder (default: features.repo_path)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def ibsim_history(config: AppConfig, symbols: list[str] | None = None) -> tuple[dict[str, pd.DataFrame], str]:
    """The daily bars ``python -m ibsim --seed <ibsim.seed> --data <ibsim.data>`` serves at its start (its market
    before the first replayed session), by symbol, and a description. The very frames it replays, not a fetch:
    nothing needs to run, and no replayed (future) session leaks into the features."""
    from ibsim import SimConfig, build_market

    market = build_market(SimConfig(seed=config.ibsim.seed, data=config.ibsim.data))
    first = market.sessions[0]
    frames = {s: f.loc[f.index < first] for s, f in market.frames.items() if symbols is None or s in symbols}
    frames = {s: f for s, f in frames.items() if len(f)}
    if not frames:
        raise DataError(f"ibsim's market ({config.ibsim.data}) has no history before {first.date()} for {symbols}")
    return frames, f"ibsim's market (seed {config.ibsim.seed}, data {config.ibsim.data}) before {first.date()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"refresh_features.py: {exc}", file=sys.stderr)
        return 2
    import logging

    from core.clock import WallClock
    from data.bar_features import bar_features
    from data.calendar import TradingCalendar
    from data.loading import load_panel
    from ml.feature_store import FeatureRepo

    log_format = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=log_format)
    try:
        repo = FeatureRepo(args.repo or config.features.repo_path)
        if args.data == "ibsim":
            bars, description = ibsim_history(config, args.symbols)
        else:
            loaded = load_panel(
                args.data or config.backtest.data,
                calendar=TradingCalendar(),
                symbols=args.symbols,
                start=args.start or config.backtest.start,
                end=args.end or config.backtest.end,
                seed=config.backtest.seed,
                synthetic=config.backtest.synthetic,
                adjust=config.backtest.adjust_prices,
            )
            bars, description = loaded.panel, loaded.description
        features = bar_features(bars, created_ns=WallClock().now_ns())
        materialized = repo.publish(features)
    except ConfigError as exc:  # e.g. a --start/--end outside the data (load_panel names the flag)
        print(f"refresh_features.py: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"refresh_features.py: {exc}", file=sys.stderr)
        return 1
    last = features.groupby("symbol")["event_timestamp"].max()
    print(f"features: {len(features)} rows, {len(last)} symbols from {description}")
    print(f"latest session close: {last.min().isoformat()} .. {last.max().isoformat()}")
    print(f"online store: {', '.join(f'{view} {n} symbols loaded' for view, n in materialized.items())}")
    print(f"repo: {repo.repo_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
