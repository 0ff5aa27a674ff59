"""Which runner a sweep gets: the flags and the config decide, and for a local sweep a measured rule.

A LocalCluster costs its start-up and close (worker processes importing numpy, pandas, TA-Lib and the engine)
and pays back only when the trials are long or many and the cores are really free. ``AutoRunner`` runs the first
two trials in this process, times the second (the data already loaded, as on a warm worker) and watches how
many cores the rest of the machine kept busy meanwhile; Dask is chosen only when the expected saving beats the
cluster's cost by ``PAYOFF_MARGIN``. ``--scheduler`` (an existing cluster) never comes here: everything goes to
it; ``--serial`` and ``--local-cluster`` skip the rule.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from backtester.distributed_runner import DaskRunner, SerialRunner, SweepRunner, ordered_trials
from backtester.sweep import DataRef, TrialResult, TrialSpec, run_trial
from backtester.trial_batches import TrialTask
from core.config_models import DistributedConfig

log = logging.getLogger(__name__)

# LocalCluster of 2 workers: start, warm-up, scatter and close, measured on the 2-core machine with nothing else
# running (3-4 s; under the other helpers' load it took 12-19 s, which the contention factor below accounts for)
LOCAL_CLUSTER_COST_S = 4.0
# a sweep on the cluster an earlier sweep of the run started and kept: the bars scattered again, the workers'
# warm-up call, the batches' tail (measured ~0.3-0.6 s per sweep on the 2-core machine)
WARM_CLUSTER_COST_S = 0.5
PAYOFF_MARGIN = 1.5  # Dask must be expected to save this many times its cost to be chosen
DASK_EFFICIENCY = 0.9  # share of the ideal saving a LocalCluster delivers (scheduler round trips, batch tails)
T = TypeVar("T")


class AutoRunner:
    """A local sweep on Dask only when workers pay for themselves, else in this process.

    The rule (``auto_choice``): the usable parallelism is ``min(workers, free cores)``, free cores being the
    machine's cores less those other processes kept busy during the pilot; the saving is ``rest x per-trial x
    (1 - 1/parallel) x DASK_EFFICIENCY``, the cost ``LOCAL_CLUSTER_COST_S x workers / parallel`` (start-up is
    CPU work, slower on busy cores); Dask when the saving exceeds ``PAYOFF_MARGIN x cost``. Measured on the
    2-core machine while other processes held ~1.4 cores (bench/sweep_scaling.py, medians of 3): the default
    27-trial grid took 28.9 s serial, 25.5 s with this runner (it chose serial) and 62.2 s on a forced 2-worker
    LocalCluster; the default walk-forward (459 trials) 58.1 s serial, 65.4 s with this runner (serial; load
    noise) and 80.9 s on the cluster; 200 trials took 173 s serial and 165 s on the cluster plus 16 s of
    start-up (the machine's parallel ceiling was 0.76x then). On a quiet machine a 27-trial grid (~0.1 s a
    trial) would save ~1.2 s, never worth a ~4 s cluster, and the ~459-trial walk-forward ~50 s. The two pilot
    trials' results are kept, never run twice.

    A cluster once started is kept for the run's later sweeps (a walk-forward's test windows and full-period
    grid, a recalibration's steps), each then weighed at ``WARM_CLUSTER_COST_S``; the caller ``close``s the
    runner when the run ends.
    """

    def __init__(self, workers: int | None, retries: int = 1, progress: bool = True, *,
                 task: TrialTask = run_trial) -> None:  # fmt: skip
        self.workers = workers or os.cpu_count() or 1
        self._serial = SerialRunner(retries=retries, progress=progress, task=task)
        self._dask = DaskRunner(workers=self.workers, retries=retries, progress=progress, task=task,
                                keep_cluster=True)  # fmt: skip
        self.last_run_info: dict[str, Any] = {}
        self.choices: list[dict[str, Any]] = []  # every sweep's choice (a walk-forward runs three sweeps)

    def run(
        self, payload: str, data: DataRef, trials: Sequence[TrialSpec], *, description: str = "sweep"
    ) -> list[TrialResult]:
        ordered = ordered_trials(trials)
        if len(ordered) < 3 or self.workers < 2:
            return self._finish(self._serial.run(payload, data, ordered, description=description), "too small",
                                description)  # fmt: skip
        pilot_run = self._serial.run
        first = f"{description} (pilot)"
        pilot, others_cores = busy_elsewhere(lambda: pilot_run(payload, data, ordered[:1], description=first))
        started = time.perf_counter()
        pilot += pilot_run(payload, data, ordered[1:2], description=first)
        per_trial = time.perf_counter() - started  # the second trial: data already loaded, as on a warm worker
        rest = ordered[2:]
        cost = WARM_CLUSTER_COST_S if self._dask.cluster_up else LOCAL_CLUSTER_COST_S
        use_dask, why = auto_choice(per_trial, len(rest), self.workers, free_cores(others_cores), cost)
        if not use_dask:
            return self._finish(pilot + self._serial.run(payload, data, rest, description=description), why,
                                description)  # fmt: skip
        results = pilot + self._dask.run(payload, data, rest, description=description)
        return self._finish(results, why, description, self._dask.last_run_info)

    def close(self) -> None:
        """Close the LocalCluster an earlier sweep started and kept for the next ones (if any)."""
        self._dask.close()

    def _finish(self, results: list[TrialResult], why: str, description: str, info: dict[str, Any] | None = None
                ) -> list[TrialResult]:  # fmt: skip
        self.choices.append({"sweep": description, "n_trials": len(results), "auto_choice": why})
        self.last_run_info = {**(info or self._serial.last_run_info), "n_trials": len(results), "auto_choice": why,
                              "sweeps": list(self.choices)}  # fmt: skip
        log.info("event=sweep_runner_chosen choice=%r trials=%d", why, len(results))
        return results


def auto_choice(per_trial_s: float, n_trials: int, workers: int, free_cores: float | None = None,
                cluster_cost_s: float = LOCAL_CLUSTER_COST_S) -> tuple[bool, str]:  # fmt: skip
    """Whether ``n_trials`` more trials of ``per_trial_s`` each should go to a LocalCluster of ``workers``, and why
    (``AutoRunner``'s rule); ``free_cores`` None means every core is free; ``cluster_cost_s`` what using the cluster
    costs on free cores (``WARM_CLUSTER_COST_S`` when an earlier sweep of the run left it up)."""
    cores = float(os.cpu_count() or 1) if free_cores is None else free_cores
    parallel = max(1.0, min(float(workers), cores))
    saved = per_trial_s * n_trials * (1.0 - 1.0 / parallel) * DASK_EFFICIENCY
    cost = cluster_cost_s * workers / parallel
    where = (f"{n_trials} x {per_trial_s:.3f} s would save {saved:.1f} s on {workers} workers "
             f"({cores:.1f} cores free), cluster cost ~{cost:.1f} s")  # fmt: skip
    if saved <= PAYOFF_MARGIN * cost:
        return False, f"serial: {where} (x {PAYOFF_MARGIN:g} needed)"
    return True, f"dask: {where}"


def free_cores(others_cores_now: float) -> float:
    """Cores a LocalCluster could use: the machine's, less what other processes keep busy, taking the worse of
    the moment just measured (the pilot's fraction of a second) and the last minute's load average (whose count
    includes this process, hence the 1): a burst between two helpers' test runs must not look like a free machine.
    """
    cores = float(os.cpu_count() or 1)
    try:
        minute_load = os.getloadavg()[0]
    except OSError:  # not on this platform
        minute_load = 1.0
    return max(cores - max(others_cores_now, minute_load - 1.0, 0.0), 0.0)


def busy_elsewhere(run: Callable[[], T]) -> tuple[T, float]:
    """``run()``'s value and the cores the rest of the machine kept busy while it ran (0.0 if unmeasurable).

    Machine-wide busy CPU time (steal included: cores the hypervisor gave to other guests) less this process's,
    over the wall time: on a shared machine the cores a LocalCluster would really get.
    """
    try:
        import psutil  # comes with distributed

        me = psutil.Process()
    except Exception:  # no psutil, or no /proc: assume a quiet machine
        return run(), 0.0

    def busy() -> float:
        t = psutil.cpu_times()
        return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))

    def own() -> float:
        t = me.cpu_times()
        return t.user + t.system

    busy_before, own_before, started = busy(), own(), time.perf_counter()
    value = run()
    wall = time.perf_counter() - started
    others = (busy() - busy_before) - (own() - own_before)
    return value, max(others, 0.0) / wall if wall > 0 else 0.0


def make_runner(
    cfg: DistributedConfig,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    progress: bool = True,
    local_cluster: bool = False,
) -> SweepRunner:
    """The runner the config asks for, with command-line flags (when given) taking precedence over it.

    ``serial`` beats a scheduler set in the config; ``local_cluster`` (a LocalCluster whatever the rule says)
    beats it too. Two flags asking for opposite things (``serial``, ``local_cluster``, an explicit
    ``scheduler``) are a usage error (ValueError naming them).
    """
    chosen = [name for name, on in (("--serial", serial), ("--local-cluster", local_cluster),
                                    (f"--scheduler {scheduler}", bool(scheduler))) if on]  # fmt: skip
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)} contradict each other; give one of them")
    for key, flag, configured in (("scheduler", scheduler, cfg.scheduler), ("workers", workers, cfg.workers)):
        if flag is not None and configured is not None and flag != configured:
            log.info("event=config_override key=backtest.distributed.%s config=%s flag=%s", key, configured, flag)
    if (serial or local_cluster) and cfg.scheduler:
        log.info("event=config_override key=backtest.distributed.scheduler config=%s flag=%s", cfg.scheduler,
                 chosen[0])  # fmt: skip
    n_workers = workers if workers is not None else cfg.workers
    if serial:
        return SerialRunner(retries=cfg.retries, progress=progress)
    if local_cluster:
        return DaskRunner(workers=n_workers, retries=cfg.retries, progress=progress, keep_cluster=True)
    address = scheduler or cfg.scheduler
    if address and n_workers is not None:
        log.info("event=workers_ignored workers=%d scheduler=%s: the cluster decides its workers", n_workers, address)
    if address:
        return DaskRunner(scheduler=address, workers=n_workers, retries=cfg.retries, progress=progress,
                          keep_cluster=True)
    return AutoRunner(n_workers, retries=cfg.retries, progress=progress)
