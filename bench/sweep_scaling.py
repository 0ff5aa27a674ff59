"""Sweep scaling benchmark (not a test): parameter sets per second, serial vs a Dask LocalCluster, in one run.

    .venv/bin/python bench/sweep_scaling.py [--quick] [--workers 2] [--seed 42]
    .venv/bin/python bench/sweep_scaling.py --cli grid_search,walk_forward [--repeat 3]

``--cli MODES`` instead times ``run_backtest.py --strategy momentum --mode MODE`` as a user runs it (default
config, a subprocess each, wall time from start to exit) with the default runner, ``--serial`` and
``--local-cluster --workers N``, ``--repeat`` times each (interleaved), and prints the median, the runner the
default chose and the cores other processes kept busy meanwhile.

The sweep is a 200-combination momentum grid (roc_period x entry_roc_pct x trend_sma_period x exit_roc_pct, all
passing the params rules) over synthetic data, 10 symbols x 10 years (seeded). It runs once through
``SerialRunner`` (this process) and once through ``DaskRunner`` on a LocalCluster of ``--workers`` single-threaded
processes (default 2), both with ``retries=0``. Timing: serial is the whole loop, the data generation included
(it happens on the first trial); the cluster's start-up (cluster, workers, importing the trial code on them) is
reported separately and the speed-up is given with and without it; each worker generates the data once inside
the sweep time, like serial. Goal: >= 1.8x on 2 cores, judged on sweep time without start-up. Beforehand a
pure-Python CPU burn in 1 and in ``--workers`` processes measures the speed-up the machine itself gives right now
(shared or oversubscribed virtual CPUs give less than their count), to put the verdict in scale. The two tables
(``results_frame``: params, status, every metric) and every equity curve are compared exactly; the script exits
1 if they differ. Trials that fail (engine errors) are part of both tables and listed. ``--quick`` shrinks the
sweep for a smoke run (verdict not meaningful).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import distributed
import numpy as np
import pandas as pd
import psutil

from backtester.distributed_runner import DaskRunner, SerialRunner
from backtester.sweep import (
    DataRef,
    TrialResult,
    TrialSpec,
    config_payload,
    expand_grid,
    results_frame,
    valid_combinations,
)
from core.config_loader import load_config
from core.errors import ConfigError

GOAL_SPEEDUP = 1.8
STRATEGY = "momentum"


@dataclass(frozen=True, slots=True)
class Size:
    n_symbols: int
    start: str
    end: str
    grid: dict[str, tuple[float | int, ...]]


FULL = Size(
    10,
    "2015-01-02",
    "2024-12-31",
    {
        "roc_period": (20, 40, 60, 90, 120),
        "entry_roc_pct": (0.0, 2.5, 5.0, 10.0, 15.0),
        "trend_sma_period": (50, 100, 150, 200),
        "exit_roc_pct": (-5.0, 0.0),
    },
)
QUICK = Size(
    3,
    "2022-01-03",
    "2023-12-29",
    {"roc_period": (20, 60), "entry_roc_pct": (2.5, 5.0, 10.0), "trend_sma_period": (50, 100), "exit_roc_pct": (0.0,)},
)


def identical(a: Sequence[TrialResult], b: Sequence[TrialResult]) -> bool:
    """Same table (params, status, attempts, every metric bit for bit, NaN where NaN) and same equity curves."""
    keys = sorted({k for r in [*a, *b] for k in r.metrics})
    if not results_frame(a, keys).equals(results_frame(b, keys)):
        return False
    return all(
        np.array_equal(x.equity, y.equity) and np.array_equal(x.dates, y.dates) for x, y in zip(a, b, strict=True)
    )


def _spin(n: int) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - started


def parallel_ceiling(workers: int, n: int = 8_000_000) -> float:
    """Speed-up this machine gives right now to ``workers`` processes of pure CPU work (ideal: ``workers``).

    Shared or oversubscribed virtual CPUs deliver less than their count; this puts the sweep's speed-up in scale.
    """
    one = _spin(n)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_spin, [1] * workers)  # processes up before timing
        started = time.perf_counter()
        pool.map(_spin, [n] * workers, chunksize=1)
        return workers * one / (time.perf_counter() - started)


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (steal included: time the hypervisor gave to others)."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _own_cpu_s() -> float:
    """CPU seconds of this process and its children: reaped ones (a closed cluster's workers) and live ones."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            ct = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += ct.user + ct.system
    return total


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed run and the CPU the rest of the machine took meanwhile (on a shared machine, the timing's noise)."""

    seconds: float
    others_cores: float


def measured(run: Callable[[], list[TrialResult]]) -> tuple[list[TrialResult], Phase]:
    busy, own, started = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    results = run()
    wall = time.perf_counter() - started
    others = (_busy_cpu_s() - busy) - (_own_cpu_s() - own)
    return results, Phase(wall, max(others, 0.0) / wall)


def print_machine(workers: int) -> None:
    cpus = os.cpu_count() or 0
    print(
        f"machine: {platform.platform()} | cpu count {cpus} | {platform.processor() or platform.machine()}\n"
        f"python {platform.python_version()} | dask {dask.__version__} | distributed {distributed.__version__} | "
        f"numpy {np.__version__} | pandas {pd.__version__}"
    )
    if cpus < workers:
        print(f"note: {workers} workers on {cpus} cpus: the speed-up cannot reach the worker count")


def print_report(
    n: int,
    serial: dict[str, Any],
    dist: dict[str, Any],
    workers: int,
    ceiling: float,
    others: tuple[float, float],
    same: bool,
    quick: bool,
) -> bool:
    """The table, the verdict and the check; returns whether the two tables are identical."""
    serial_s = serial["wall_seconds"]
    rows = [
        ("serial (this process)", serial_s),
        (f"LocalCluster {workers} workers, sweep only", dist["sweep_seconds"]),
        ("  + start-up", dist["startup_seconds"] + dist["sweep_seconds"]),
        ("  + start-up + shutdown", dist["wall_seconds"]),
    ]
    header = f"{'runner':42} {'seconds':>8} {'param sets/s':>13} {'speed-up':>9}"
    print(f"\n{header}\n{'-' * len(header)}")
    for label, seconds in rows:
        print(f"{label:42} {seconds:8.2f} {n / seconds:13.2f} {serial_s / seconds:8.2f}x")
    print(
        f"cluster start-up {dist['startup_seconds']:.2f} s (cluster + workers + importing the trial code), "
        f"shutdown {dist['shutdown_seconds']:.2f} s; scheduler {dist['scheduler']}"
    )
    speedup = serial_s / dist["sweep_seconds"]
    verdict = ("PASS" if speedup >= GOAL_SPEEDUP else "BELOW") + (" (quick sizes)" if quick else "")
    with_startup = serial_s / (dist["startup_seconds"] + dist["sweep_seconds"])
    print(f"\nspeed-up without start-up {speedup:.2f}x, with start-up {with_startup:.2f}x")
    print(
        f"that is {speedup / ceiling:.0%} of the machine's parallel ceiling measured before the sweeps ({ceiling:.2f}x)"
    )
    print(
        f"other processes on this machine meanwhile (steal included): {others[0]:.2f} cores during serial, "
        f"{others[1]:.2f} cores during distributed (0 = a quiet machine; else the speed-up is not the runner's alone)"
    )
    print(f"goal: >= {GOAL_SPEEDUP}x with {workers} workers on 2 cores (sweep time, start-up excluded): {verdict}")
    print(
        f"check: serial and distributed tables identical ({n} trials, every metric and equity curve): "
        f"{'yes' if same else 'NO'}; failed trials: serial {serial['n_failed']}, distributed {dist['n_failed']}"
    )
    return same


CLI_RUNNERS: dict[str, tuple[str, ...]] = {"default": (), "--serial": ("--serial",), "local-cluster": ()}


def _cli_once(mode: str, runner: str, workers: int, out: str) -> tuple[float, float, str]:
    """One ``run_backtest.py`` run: wall seconds, others' busy cores meanwhile, and the runner it used."""
    import json
    import subprocess

    flags = ("--local-cluster", "--workers", str(workers)) if runner == "local-cluster" else CLI_RUNNERS[runner]
    command = [sys.executable, "run_backtest.py", "--strategy", STRATEGY, "--mode", mode, "--out", out, *flags]
    box: dict[str, Any] = {}

    def run() -> list[TrialResult]:
        box["proc"] = subprocess.run(command, capture_output=True, text=True, check=False)
        return []

    _, phase = measured(run)
    if box["proc"].returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {box['proc'].stderr[-2000:]}")
    info = json.loads((Path(out) / "summary.json").read_text()).get("runner", {})
    return phase.seconds, phase.others_cores, str(info.get("auto_choice") or info.get("runner"))


def cli_table(modes: Sequence[str], repeat: int, workers: int) -> None:
    """Median wall time of each mode under each runner (runs interleaved, so load drifts hit all alike)."""
    import statistics
    import tempfile

    times: dict[tuple[str, str], list[float]] = {}
    others: dict[tuple[str, str], list[float]] = {}
    chosen: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            for k in range(repeat):
                for runner in CLI_RUNNERS:
                    seconds, busy, why = _cli_once(mode, runner, workers, f"{tmp}/{mode}-{runner}-{k}")
                    times.setdefault((mode, runner), []).append(seconds)
                    others.setdefault((mode, runner), []).append(busy)
                    if runner == "default":
                        chosen.setdefault(mode, set()).add(why)
                    print(f"  {mode:14} {runner:14} run {k + 1}: {seconds:7.1f} s (others {busy:.2f} cores)",
                          flush=True)
    print(f"\n{'mode':14} {'runner':24} {'median s':>9} {'runs':>24} {'others cores':>13}")
    for (mode, runner), values in times.items():
        label = f"local-cluster x{workers}" if runner == "local-cluster" else runner
        runs = ",".join(f"{v:.1f}" for v in values)
        print(f"{mode:14} {label:24} {statistics.median(values):9.1f} {runs:>24} "
              f"{statistics.mean(others[(mode, runner)]):13.2f}")  # fmt: skip
    for mode, whys in chosen.items():
        print(f"default runner's choice for {mode}: {' | '.join(sorted(whys))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Parameter sets per second of a momentum sweep: serial vs a Dask LocalCluster.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sweep for a smoke run (verdict not meaningful)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    parser.add_argument("--config", default="config.yaml", help="config file (costs, risk and base params)")
    parser.add_argument("--cli", default=None, metavar="MODES",
                        help="time run_backtest.py MODES (comma-separated, e.g. grid_search,walk_forward) instead")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode and runner with --cli (median shown)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        print(f"--workers must be >= 1 (got {args.workers})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.cli:
        print_machine(args.workers)
        cli_table([m.strip() for m in args.cli.split(",") if m.strip()], max(1, args.repeat), args.workers)
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    size = QUICK if args.quick else FULL
    combos, refused = valid_combinations(config, STRATEGY, expand_grid(size.grid))
    trials = [TrialSpec(i, STRATEGY, tuple(sorted(c.items()))) for i, c in enumerate(combos)]
    data = DataRef("synthetic", None, None, None, args.seed, False, size.n_symbols, size.start, size.end)
    payload = config_payload(config)

    print_machine(args.workers)
    ceiling = parallel_ceiling(args.workers)
    print(f"parallel ceiling now: {args.workers} processes of pure-Python CPU work run {ceiling:.2f}x one process")
    grid = " x ".join(f"{name}({len(values)})" for name, values in sorted(size.grid.items()))
    print(
        f"sweep: {STRATEGY}, {len(trials)} parameter sets = {grid}, {len(refused)} refused by the params rules; "
        f"data synthetic {size.n_symbols} symbols {size.start}..{size.end}, seed {args.seed}"
    )
    serial_runner = SerialRunner(retries=0)
    serial, serial_phase = measured(lambda: serial_runner.run(payload, data, trials, description="serial"))
    dask_runner = DaskRunner(workers=args.workers, retries=0)
    dist, dist_phase = measured(lambda: dask_runner.run(payload, data, trials, description=f"dask x{args.workers}"))
    print(f"sessions per trial: {max((len(r.dates) for r in serial), default=0):,}")
    for r in serial:
        if not r.ok:  # the same in both tables when the check says identical; an engine problem, not the runner's
            print(f"failed trial {r.trial_id} {r.params}: {(r.error or '').splitlines()[0]}")
    ok = print_report(
        len(trials),
        serial_runner.last_run_info,
        dask_runner.last_run_info,
        args.workers,
        ceiling,
        (serial_phase.others_cores, dist_phase.others_cores),
        identical(serial, dist),
        args.quick,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
