"""Research entry point: ``python run_backtest.py --strategy momentum --mode backtest``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.errors import ConfigError, DataError

MODES = ("backtest", "grid_search", "walk_forward", "monte_carlo", "scenario_analysis")
NOT_YET = {"grid_search", "walk_forward", "monte_carlo", "scenario_analysis"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from strategy.registry import STRATEGY_NAMES

    parser = argparse.ArgumentParser(
        description="Event-driven backtest of one strategy; writes summary.json, trades.csv, equity.csv, report.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--strategy", required=True, choices=STRATEGY_NAMES)
    parser.add_argument("--mode", default="backtest", choices=MODES)
    parser.add_argument("--config", default="config.yaml", help="operator settings file")
    parser.add_argument(
        "--data",
        default=None,
        help="'synthetic', a folder of per-symbol CSVs or one CSV file (default: backtest.data from the config)",
    )
    parser.add_argument("--symbols", default=None, help="comma-separated subset, e.g. AAPL,MSFT")
    parser.add_argument("--start", default=None, help="first session YYYY-MM-DD")
    parser.add_argument("--end", default=None, help="last session YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=None, help="synthetic data seed (default: backtest.seed)")
    parser.add_argument("--out", default=None, help="results folder (default: results/<mode>-<strategy>-<time>/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override any config value (validated like the file); repeatable",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def _symbols(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in text.split(",") if s.strip()) if text else ()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.mode in NOT_YET:
        print(
            f"run_backtest: --mode {args.mode} is not available yet (research suite, issue #4); use --mode backtest",
            file=sys.stderr,
        )
        return 2
    from backtester.job import JobRequest, default_out_dir, run_backtest_job
    from backtester.summary_table import print_summary
    from core.config_loader import load_config

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"run_backtest: {exc}", file=sys.stderr)
        return 2
    for item in args.overrides:
        logging.getLogger("run_backtest").warning("event=config_override value=%s", item)
    request = JobRequest(
        strategy=args.strategy,
        data=args.data or config.backtest.data,
        symbols=_symbols(args.symbols) or config.symbols or None,
        start=args.start or config.backtest.start,
        end=args.end or config.backtest.end,
        seed=config.backtest.seed if args.seed is None else args.seed,
        overrides=tuple(args.overrides),
    )
    out_dir = Path(args.out) if args.out else default_out_dir(config.system.results_dir, args.mode, args.strategy)
    try:
        output = run_backtest_job(config, request, out_dir)
    except DataError as exc:
        print(f"run_backtest: data problem: {exc}", file=sys.stderr)
        return 1
    print_summary(output.summary)
    print(f"results: {output.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
