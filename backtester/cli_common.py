"""Arguments and set-up shared by the research entry points (``run_backtest.py``, ``run_recalibration.py``).

Every argument is checked when it is parsed, by the rule its config key has (``--seed`` like ``backtest.seed``,
``--scheduler`` like ``backtest.distributed.scheduler``...), so a bad one exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from core.config_loader import date_arg, non_negative_int_arg, positive_int_arg
from core.config_models import AppConfig, tcp_address

log = logging.getLogger(__name__)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.yaml", help="operator settings file")
    parser.add_argument(
        "--data",
        default=None,
        help="'synthetic', a bar store folder, a folder of per-symbol CSVs "
        "or one CSV file (default: backtest.data from the config)",
    )
    parser.add_argument("--symbols", type=symbols_arg, default=None, help="comma-separated subset, e.g. AAPL,MSFT")
    parser.add_argument("--start", type=date_arg, default=None, help="first session YYYY-MM-DD")
    parser.add_argument("--end", type=date_arg, default=None, help="last session YYYY-MM-DD")
    parser.add_argument("--seed", type=non_negative_int_arg, default=None,
                        help="synthetic data seed (default: backtest.seed)")  # fmt: skip
    parser.add_argument("--out", default=None, help="results folder (default: results/<mode>-<strategy>-<time>/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override any config value (validated like the file); repeatable",
    )
    parser.add_argument("--benchmark", type=benchmark_arg, default=None, metavar="SYMBOL",
                        help="the backtest report's benchmark: buy-and-hold of this symbol of the data "
                             "(default: buy-and-hold of the run's symbols, equal weight)")  # fmt: skip
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PARAM=V1,V2,...",
        help="replace one dimension of the strategy's research grid; repeatable",
    )
    parser.add_argument(
        "--scheduler",
        type=scheduler_arg,
        default=None,
        help="tcp://HOST:PORT of an existing Dask scheduler "
        "(default: backtest.distributed.scheduler, else a LocalCluster on this machine)",
    )
    parser.add_argument("--workers", type=positive_int_arg, default=None,
                        help="LocalCluster workers (default: one per core)")  # fmt: skip
    parser.add_argument("--serial", action="store_true", help="run trials in this process (no Dask)")
    parser.add_argument(
        "--local-cluster",
        action="store_true",
        help="run trials on a Dask LocalCluster of --workers processes even when the automatic choice "
        "(in this process unless workers pay for their start-up) would not",
    )


def check_research_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Rules between arguments (exit 2 naming them, like a single bad argument)."""
    if args.start is not None and args.end is not None and args.end < args.start:
        parser.error(f"argument --end: must not be before --start (got --start {args.start} --end {args.end})")
    runners = [flag for flag, on in (("--serial", getattr(args, "serial", False)),
                                     ("--local-cluster", getattr(args, "local_cluster", False)),
                                     ("--scheduler", getattr(args, "scheduler", None))) if on]  # fmt: skip
    if len(runners) > 1:
        parser.error(f"argument {runners[1]}: not allowed with {runners[0]}; they ask for different runners, give one")
    return args


def symbols_arg(text: str) -> tuple[str, ...]:
    """argparse type: ``AAPL,msft`` -> ``("AAPL", "MSFT")``; tickers without spaces, each once, at least one."""
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not symbols or any(" " in s for s in symbols) or len(set(symbols)) != len(symbols):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated tickers without spaces, each once, e.g. AAPL,MSFT (got {text!r})"
        )
    return symbols


def benchmark_arg(text: str) -> str:
    """argparse type: one ticker without spaces, upper-cased (``spy`` -> ``SPY``); the data is checked later."""
    symbol = text.strip().upper()
    if not symbol or " " in symbol or "," in symbol:
        raise argparse.ArgumentTypeError(f"must be one ticker, e.g. SPY (got {text!r})")
    return symbol


def scheduler_arg(text: str) -> str:
    """argparse type: a Dask scheduler address ``SCHEME://HOST:PORT``, the rule of backtest.distributed.scheduler."""
    try:
        tcp_address(text, "a Dask scheduler address SCHEME://HOST:PORT", "tcp://127.0.0.1:8786")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def setup_logging(level: str) -> None:
    """Our lines at ``level`` on stderr; Dask's at ``level`` too (WARNING by default: its INFO lines, 33-97 per
    LocalCluster run, only with ``--log-level INFO`` or DEBUG). Dask installs its own handler and level for the
    ``distributed`` logger when it is first imported, so the sweep runner applies this again after importing it
    (``backtester.distributed_runner.follow_root_log_level``)."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if level != "DEBUG":  # a sweep runs thousands of backtests: their per-run state changes are not news
        for name in ("portfolio.risk_manager", "portfolio.trading_state"):  # per-run state changes
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(level)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(jsonable(payload), indent=2) + "\n")


def jsonable(value: Any) -> Any:
    """Deep conversion to strict JSON: numpy scalars to Python, NaN to null, inf to a string."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def data_choice(args: argparse.Namespace, config: AppConfig) -> dict[str, Any]:
    """``--symbols`` wins; the configured universe names the synthetic market's symbols; a folder or file of real
    data brings its own symbols (the configured live universe need not exist in it)."""
    data = args.data or config.backtest.data
    return {
        "data": data,
        "symbols": args.symbols or (config.symbols if data == "synthetic" else ()) or None,
        "start": args.start or config.backtest.start,
        "end": args.end or config.backtest.end,
        "seed": config.backtest.seed if args.seed is None else args.seed,
    }
