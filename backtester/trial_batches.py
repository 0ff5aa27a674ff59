"""Several trials per Dask task, and the bars sent to each worker once.

One task per trial made the scheduler's round trip (~5-20 ms per task on 2 busy cores, plus pickling the
result) a visible share of a 0.1-0.3 s trial, and let every worker build the panel itself. Here a sweep is cut
into ``TASKS_PER_WORKER`` tasks per worker: few enough that the per-task overhead is noise, enough that a worker
that finishes early takes another task (the load stays balanced at the end of the sweep). Trials are dealt
round-robin (trial ids 0, k, 2k... in one batch) so a sweep whose trials grow in cost along the ids (an anchored
walk-forward) still gives each batch a fair mix. Each trial inside a batch is run exactly like the serial
runner runs it, so the results do not depend on the batching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from backtester.sweep import DataRef, TrialResult, TrialSpec, remember_loaded
from data.loading import LoadedData

TASKS_PER_WORKER = 3  # 2-4 tasks per worker: overhead amortised, the last task's tail short

TrialTask = Callable[[str, DataRef, TrialSpec], TrialResult]


def split_batches(trials: Sequence[TrialSpec], n_workers: int) -> list[list[TrialSpec]]:
    """``trials`` dealt round-robin into ``TASKS_PER_WORKER`` batches per worker (fewer when there are fewer
    trials); every batch non-empty, each trial in exactly one batch, each batch in trial_id order."""
    n_batches = max(1, min(len(trials), max(1, n_workers) * TASKS_PER_WORKER))
    batches = [list(trials[k::n_batches]) for k in range(n_batches)]
    return [b for b in batches if b]


def run_batch(
    task: TrialTask, payload: str, data: DataRef, trials: Sequence[TrialSpec], loaded: LoadedData | None
) -> list[TrialResult]:
    """The Dask task: the trials of one batch, in this worker process, one after the other.

    ``loaded`` is the scattered panel (None when the runner could not scatter it, e.g. no worker yet): it
    becomes this process's data for ``data``, so the trials never read or generate the bars themselves. A trial
    whose task raises gets a failed result (like the serial runner's), the batch's other trials still run.
    """
    if loaded is not None:
        remember_loaded(data, loaded)
    return [call_task(task, payload, data, trial) for trial in trials]


def call_task(task: TrialTask, payload: str, data: DataRef, trial: TrialSpec) -> TrialResult:
    """``run_trial`` never raises, but an injected task might: treat that like any failed attempt."""
    try:
        return task(payload, data, trial)
    except Exception as exc:
        return TrialResult.failure(trial, f"{type(exc).__name__}: {exc}")


def batch_outcome(future: Any, batch: Sequence[TrialSpec]) -> list[TrialResult]:
    """One result per trial of ``batch``: the task's, or a failed one saying why the task produced none (it
    raised, its worker was lost, it was cancelled, or it returned something else)."""
    try:
        if future.status == "finished":
            results = future.result()
            if isinstance(results, list) and [getattr(r, "trial_id", None) for r in results] == [
                t.trial_id for t in batch
            ]:
                return results
            return _all_failed(batch, f"task returned {type(results).__name__}, not this batch's TrialResults")
        if future.status == "error":
            exc = future.exception()
            return _all_failed(batch, f"task failed on the cluster: {type(exc).__name__}: {exc}")
        return _all_failed(batch, f"task ended with status {future.status!r} (scheduler or worker lost)")
    except Exception as exc:
        return _all_failed(batch, f"could not fetch the result: {type(exc).__name__}: {exc}")


def _all_failed(batch: Sequence[TrialSpec], error: str) -> list[TrialResult]:
    return [TrialResult.failure(trial, error) for trial in batch]
