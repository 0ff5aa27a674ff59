"""Nightly pipeline wall time (not a test): 8 symbols x 10 years of daily bars through every step, plain mode.

    .venv/bin/python bench/pipeline_wall_time.py [--symbols 8] [--years 10] [--quick]

Everything lives in a temporary folder: a copy of ``feature_repo/``'s definitions, a TCA log with one MOC fill per
symbol every fifth session (costs for the ETL to aggregate), and a promoted veto model card for ``momentum`` whose
training window ends a quarter before the data does (so the drift step computes PSI for all seven bar features).
Two runs in one process, each the real ``prefect_flows.pipeline.run_pipeline`` on the synthetic market
(``backtest.seed`` of config.yaml):

- *first*: an empty repo, ending one session before the last: pays ``import feast``, the first ``feast apply``
  and materializing every symbol;
- *nightly*: the same repo the next evening, one session more: features recomputed over the whole history,
  the offline file rewritten, one new session materialized, no apply.

Per-step seconds are printed for both. The retrain step calls the real trainer when ``ml.ml_model_trainer`` exists
(its time is then part of the figure); without it the step reports "trainer not available". Exit 1 if a step
failed. ``--quick``: 2 symbols x 1 year, for the smoke test.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config_loader import load_config  # noqa: E402  (after the sys.path line: runs from anywhere)
from data.bar_features import BAR_FEATURE_NAMES  # noqa: E402
from data.calendar import TradingCalendar  # noqa: E402
from ml.feature_store import copy_definitions  # noqa: E402
from prefect_flows.pipeline import STEP_NAMES, PipelineResult, run_pipeline  # noqa: E402
from prefect_flows.settings import PipelineOptions, build_settings  # noqa: E402
from tca.logger import write_records  # noqa: E402
from tca.records import ExecutionRecord  # noqa: E402

LAST_SESSION = "2024-12-31"
STRATEGY = "momentum"


def write_tca_log(path: Path, symbols: list[str], sessions: pd.DatetimeIndex, calendar: TradingCalendar) -> int:
    """One filled MOC BUY of 100 per symbol every fifth session, at the close, costing 1-9 bps."""
    closes = calendar.session_close_ns(sessions[::5])
    records = []
    for j, symbol in enumerate(symbols):
        for i, close_ns in enumerate(closes):
            cost_bps = 1.0 + (i * 7 + j * 3) % 9
            records.append(ExecutionRecord(
                exec_id=f"E{j}-{i}", client_order_id=f"O{j}-{i}", strategy_id=STRATEGY, symbol=symbol, side="BUY",
                order_quantity=100, quantity=100, price=50.0 * (1 + cost_bps / 1e4), commission=1.0, algo="MOC",
                decision_ts=int(close_ns) - 600_000_000_000, decision_price=50.0, arrival_price=50.0,
                fill_ts=int(close_ns), source="backtest", run_id="bench"))  # fmt: skip
    write_records(records, path)
    return len(records)


def write_card(models_dir: Path, sessions: pd.DatetimeIndex) -> None:
    """A promoted card (veto store layout) trained on all but the last 63 sessions."""
    folder = models_dir / "veto" / STRATEGY
    (folder / "bench-1").mkdir(parents=True)
    window = {"start": str(sessions[0].date()), "end": str(sessions[-64].date())}
    card = {"model_id": "bench-1", "strategy": STRATEGY, "features": list(BAR_FEATURE_NAMES), "training_window": window}
    (folder / "bench-1" / "model_card.json").write_text(json.dumps(card))
    (folder / "CURRENT").write_text("bench-1\n")


def one_run(options: PipelineOptions) -> tuple[PipelineResult, float]:
    started = time.perf_counter()
    result = run_pipeline(build_settings(options))
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=8, help="symbols (config.yaml's first N)")
    parser.add_argument("--years", type=int, default=10, help="years of daily bars ending 2024-12-31")
    parser.add_argument("--quick", action="store_true", help="2 symbols x 1 year (smoke test)")
    args = parser.parse_args(argv)
    n_symbols, years = (2, 1) if args.quick else (args.symbols, args.years)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = load_config(ROOT / "config.yaml")
    symbols = [*config.symbols, *(f"SYM{i:03d}" for i in range(n_symbols))][:n_symbols]
    calendar = TradingCalendar()
    start = str((pd.Timestamp(LAST_SESSION) - pd.DateOffset(years=years) + pd.Timedelta(days=1)).date())
    sessions = calendar.sessions(start, LAST_SESSION)
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        root = Path(tmp)
        repo = copy_definitions(ROOT / "feature_repo", root / "feature_repo")
        orders = write_tca_log(root / "tca.duckdb", symbols, sessions, calendar)
        write_card(root / "models", sessions)
        common = {"config": str(ROOT / "config.yaml"), "data": "synthetic", "symbols": symbols, "start": start,
                  "repo": str(repo), "tca_db": str(root / "tca.duckdb"), "models_dir": str(root / "models"),
                  "strategies": [STRATEGY], "store": str(root / "store")}  # fmt: skip
        print(f"{len(symbols)} symbols x {len(sessions)} sessions ({start} .. {LAST_SESSION}), {orders} TCA fills")
        first, first_s = one_run(PipelineOptions(**common, end=str(sessions[-2].date())))
        nightly, nightly_s = one_run(PipelineOptions(**common, end=LAST_SESSION))
    print(f"{'step':<17} {'first s':>8} {'nightly s':>10}")
    for name in STEP_NAMES:
        cells = [f"{r.seconds[name]:8.2f}" if name in r.seconds else "     --" for r in (first, nightly)]
        print(f"{name:<17} {cells[0]:>8} {cells[1]:>10}")
    print(f"{'total':<17} {first_s:8.2f} {nightly_s:10.2f}")
    print("nightly run, step by step:")
    for line in nightly.lines():
        print(f"  {line}")
    failed = [r.failed_step for r in (first, nightly) if r.failed_step]
    if failed:
        print(f"FAILED steps: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
