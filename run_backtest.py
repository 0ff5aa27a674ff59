"""Research entry point: ``python run_backtest.py --strategy momentum --mode backtest|grid_search|...``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError, DataError, TradingSystemError

if TYPE_CHECKING:
    from core.config_models import AppConfig

MODES = ("backtest", "grid_search", "walk_forward", "monte_carlo", "scenario_analysis")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from backtester.cli_common import add_data_arguments, add_sweep_arguments, check_research_args
    from core.config_loader import ArgumentParser
    from strategy.registry import STRATEGY_NAMES

    parser = ArgumentParser(
        description="Event-driven backtest and research modes; each writes summary.json, CSV tables and report.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--strategy", required=True, choices=STRATEGY_NAMES)
    parser.add_argument("--mode", default="backtest", choices=MODES)
    parser.add_argument("--tca-db", type=Path, default=None,
                        help="the shared TCA log a backtest's rows go to (default <results_dir>/tca_log.duckdb)")
    parser.add_argument("--no-tca", action="store_true", help="do not write the backtest's TCA rows")
    add_data_arguments(parser)
    add_sweep_arguments(parser)
    return check_research_args(parser, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from backtester.cli_common import data_choice, setup_logging
    from backtester.job import default_out_dir
    from core.config_loader import load_config

    setup_logging(args.log_level)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"run_backtest: {exc}", file=sys.stderr)
        return 2
    for item in args.overrides:
        logging.getLogger("run_backtest").warning("event=config_override value=%s", item)
    choice = data_choice(args, config)
    out_dir = Path(args.out) if args.out else default_out_dir(config.system.results_dir, args.mode, args.strategy)
    try:
        if args.mode == "backtest":
            return _backtest(config, args, choice, out_dir)
        return _research(config, args, choice, out_dir)
    except ConfigError as exc:
        print(f"run_backtest: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"run_backtest: data problem: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError, TradingSystemError) as exc:  # TradingSystemError: e.g. the TCA log is busy
        print(f"run_backtest: {args.mode} failed: {exc}", file=sys.stderr)
        return 1


def _backtest(config: AppConfig, args: argparse.Namespace, choice: dict, out_dir: Path) -> int:
    from backtester.job import JobRequest, run_backtest_job
    from backtester.summary_table import print_summary

    tca_db = None if args.no_tca else (args.tca_db or Path(config.system.results_dir) / "tca_log.duckdb")
    request = JobRequest(strategy=args.strategy, overrides=tuple(args.overrides), tca_db=tca_db,
                         benchmark=args.benchmark, **choice)
    output = run_backtest_job(config, request, out_dir)
    print_summary(output.summary)
    print_warnings(output.summary["warnings"])
    print(f"results: {output.out_dir}")
    return 0


def _research(config: AppConfig, args: argparse.Namespace, choice: dict, out_dir: Path) -> int:
    from backtester.grid_search import parse_grid_overrides
    from backtester.research import ResearchContext
    from backtester.research_output import print_mode_summary, run_mode, write_outputs
    from backtester.run_warnings import run_warnings
    from backtester.runner_choice import make_runner
    from backtester.sweep import DataRef

    grid = parse_grid_overrides(args.grid)
    runner = make_runner(config.backtest.distributed, args.scheduler, args.workers, serial=args.serial,
                         local_cluster=args.local_cluster)  # fmt: skip
    try:
        data = DataRef.from_config(config, **choice)
        warnings = run_warnings(config, args.strategy, data.load())  # loaded here: a bad window is refused up front
        ctx = ResearchContext(config, args.strategy, data, runner, grid)
        output = run_mode(args.mode, ctx)
    finally:
        runner.close()  # the LocalCluster kept between the mode's sweeps, if one was started
    output.summary["overrides"] = list(args.overrides)
    output.summary["warnings"] = warnings
    write_outputs(out_dir, args.mode, output)
    print_mode_summary(args.mode, output.summary)
    print_warnings(warnings)
    print(f"results: {out_dir}")
    return 0


def print_warnings(warnings: list[str]) -> None:
    """Each warning of the run on stderr, after the summary table (they are in summary.json too)."""
    for line in warnings:
        print(f"run_backtest: warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
