"""Validate a strategy against the mandate and, only if every rule passes, promote its parameters.

``python run_recalibration.py --strategy momentum [--dry-run]``: walk-forward -> Monte Carlo -> scenarios ->
mandate table; exit 0 when every rule passed, 1 when a rule failed (nothing promoted), 2 on a bad config or
mandate file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from backtester.cli_common import add_data_arguments, add_sweep_arguments, check_research_args
    from core.config_loader import ArgumentParser
    from strategy.registry import STRATEGY_NAMES

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--strategy", required=True, choices=STRATEGY_NAMES)
    parser.add_argument("--mandate", default="validation_mandate.yaml", help="promotion rules")
    parser.add_argument("--dry-run", action="store_true", help="check everything, promote nothing")
    add_data_arguments(parser)
    add_sweep_arguments(parser)
    return check_research_args(parser, parser.parse_args(argv))


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from backtester.cli_common import data_choice, setup_logging, write_json
    from backtester.grid_search import parse_grid_overrides
    from backtester.job import default_out_dir
    from backtester.mandate import load_mandate
    from backtester.recalibration import recalibrate
    from backtester.recalibration_report import print_verdicts, write_recalibration_report
    from backtester.research import ResearchContext
    from backtester.runner_choice import make_runner
    from backtester.sweep import DataRef
    from core.config_loader import load_config
    from core.errors import ConfigError, DataError, StateCorruptError

    setup_logging(args.log_level)
    try:
        config = load_config(args.config, args.overrides)
        mandate = load_mandate(args.mandate)
        grid = parse_grid_overrides(args.grid)
    except ConfigError as exc:
        print(f"run_recalibration: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else default_out_dir(config.system.results_dir, "recalibration", args.strategy)
    try:
        runner = make_runner(config.backtest.distributed, args.scheduler, args.workers, serial=args.serial,
                             local_cluster=args.local_cluster)  # fmt: skip
        try:
            data = DataRef.from_config(config, **data_choice(args, config))
            ctx = ResearchContext(config, args.strategy, data, runner, grid)
            outcome = recalibrate(
                ctx,
                mandate,
                dry_run=args.dry_run,
                state_dir=Path(config.system.state_dir),
                audit_db=Path(config.system.results_dir) / "recalibration_audit.duckdb",
                git_commit=git_commit(),
                results_dir=out_dir,
            )
        finally:
            runner.close()  # the LocalCluster kept between the recalibration's sweeps, if one was started
    except StateCorruptError as exc:
        print(f"run_recalibration: {exc}", file=sys.stderr)
        return 1
    except (DataError, RuntimeError, ValueError) as exc:
        print(f"run_recalibration: failed: {exc}", file=sys.stderr)
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome.summary["overrides"] = list(args.overrides)
    write_json(out_dir / "summary.json", outcome.summary)
    write_recalibration_report(out_dir / "report.html", outcome)
    print_verdicts(outcome)
    print(f"results: {out_dir}")
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
