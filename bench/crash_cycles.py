"""Crash-cycle benchmark: SIGKILL the live engine at chosen points of the order path, restart, verify - many times.

The same procedure as ``tests/e2e/test_engine_crash_cycles.py`` (both call ``testkit.crash_cycles``), with more
cycles: one ``python -m ibsim`` and one engine working directory; per cycle the engine is started, reconciles,
and is SIGKILLed after a seeded trigger (a signal logged, an intent journaled, an execution at ibsim, or a
uniform random moment) plus a seeded delay. The point each kill landed on is derived afterwards from the
journal at the kill, the order log and ibsim's log. A final run (no new orders) checks: no ref accepted twice by
ibsim, every ibsim execution journaled exactly once, engine = journal = ibsim positions, no
``reconcile_positions_mismatch``, no corrupt-state exit.

Usage: ``python bench/crash_cycles.py [--cycles 100] [--seed 7] [--ibsim-seed N] [--speed 6000] [--workdir DIR]``.
Progress goes to stderr; the per-point counts, violations and total time to stdout, the working folder (every
run's output, the journal, ibsim's log, ``work/cycles.jsonl``) last. Exit 0 when no invariant was broken, 1 on
any violation, 2 on bad arguments.

ibsim replays 2024 (about 5.9 million simulated seconds) and then stops: at ``--speed`` 6000 that is ~16 min of
wall time, enough for ~150 cycles; cycles after the replay ended see no orders (a warning says so).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.crash_cycles import (  # noqa: E402
    SESSION_SIM_S,
    CycleResult,
    KillPoint,
    format_cycle,
    run_crash_cycles,
    start_ibsim,
    stop_group,
)

REPLAY_SESSIONS = 251  # ibsim's default replay, 2024-01-02 .. 2024-12-31 (half days counted as full)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="crash_cycles.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--cycles", type=int, default=100, help="kill/restart cycles")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill plan (and of ibsim unless --ibsim-seed)")
    parser.add_argument("--ibsim-seed", type=int, default=None, help="seed of ibsim's market (default: --seed)")
    parser.add_argument("--speed", type=float, default=6000.0, help="ibsim sim seconds per wall second")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for ibsim's log and the engine's files "
                        "(default: a new temporary folder, kept)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.speed <= 0:
        parser.error(f"--cycles must be >= 1 and --speed > 0 (got {args.cycles}, {args.speed})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # the probes' IB connections log every normal disconnect as a WARNING; only errors matter here
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind through the finally that stops ibsim/engine
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crash_cycles_"))
    workdir.mkdir(parents=True, exist_ok=True)
    ibsim_log = workdir / "ibsim.log"

    def progress(c: CycleResult) -> None:
        print(f"[{c.plan.index + 1}/{args.cycles}] {format_cycle(c)}", file=sys.stderr, flush=True)

    ibsim_seed = args.seed if args.ibsim_seed is None else args.ibsim_seed
    ibsim, port = start_ibsim(ibsim_log, args.speed, ibsim_seed)
    try:
        report = run_crash_cycles(workdir / "work", port, ibsim_log, cycles=args.cycles, seed=args.seed,
                                  speed=args.speed, on_cycle=progress)  # fmt: skip
    finally:
        stop_group(ibsim)

    for line in report.summary_lines():
        print(line)
    found = report.violations_by_kind()
    print(f"duplicates found={len(found['duplicate_orders'])} lost fills={len(found['lost_fills'])} "
          f"mismatches={len(found['reconcile_mismatches']) + len(found['position_mismatches'])} "
          f"corrupt-state exits={len(found['corrupt_state'])} total time={report.elapsed_s:.1f} s")  # fmt: skip
    if report.elapsed_s * args.speed > REPLAY_SESSIONS * SESSION_SIM_S:
        print("warning: ibsim's replay ended during the run; the last cycles had no orders to interrupt")
    if report.histogram().get(KillPoint.PARTIAL_FILL, 0) == 0:
        print("note: partial_fill needs multi-execution orders; the strategy's MKT/MOC orders fill in one execution")
    violations = report.violations()
    for text in violations:
        print(f"VIOLATION {text}")
    print(f"verdict: {'FAIL' if violations else 'OK'} ({len(violations)} violations)")
    print(workdir)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
