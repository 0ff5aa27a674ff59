"""Where a sweep's trials run: in this process, or on Dask distributed (a LocalCluster or an existing cluster).

Both runners implement ``SweepRunner`` and call the same pure task (``backtester.sweep.run_trial``), so a
sweep's table does not depend on the runner. The runners own what the task cannot: retrying failed trials,
keeping every trial in the results (a failure stays, with its error and attempt count, and is logged at
WARNING), a progress bar on stderr, and the cluster's life cycle: a LocalCluster started here is closed here;
a cluster reached by address belongs to someone else and is never shut down.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from backtester.sweep import DataRef, TrialResult, TrialSpec, run_trial
from backtester.trial_batches import TrialTask, batch_outcome, call_task, run_batch, split_batches

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
WORKER_START_TIMEOUT_S = 120.0
WORKER_PROFILER = "distributed.worker.profile.enabled"


class SweepRunner(Protocol):
    """Runs every trial of a sweep; returns one result per trial, in trial_id order, failures included.

    ``close`` ends what the runner keeps between sweeps (a LocalCluster a research run reuses); the caller calls
    it once, when the run's last sweep is done, on every exit path.
    """

    def run(
        self, payload: str, data: DataRef, trials: Sequence[TrialSpec], *, description: str = "sweep"
    ) -> list[TrialResult]: ...

    def close(self) -> None: ...


class SerialRunner:
    """Every trial in this process, one after the other: the reference the distributed runner must match.

    ``task`` is the function each trial runs (``run_trial``); tests pass a deliberately flaky one.
    """

    def __init__(self, retries: int = 1, progress: bool = True, *, task: TrialTask = run_trial) -> None:
        self.retries = _checked_retries(retries)
        self.progress = progress
        self.last_run_info: dict[str, Any] = {}
        self._task = task

    def run(
        self, payload: str, data: DataRef, trials: Sequence[TrialSpec], *, description: str = "sweep"
    ) -> list[TrialResult]:
        ordered = ordered_trials(trials)
        started = time.perf_counter()
        results: list[TrialResult] = []
        with progress_bar(description, len(ordered), self.progress) as advance:
            for trial in ordered:
                attempt = 1
                result = call_task(self._task, payload, data, trial)
                while not result.ok and attempt <= self.retries:
                    _log_retry(trial, attempt, result)
                    attempt += 1
                    result = call_task(self._task, payload, data, trial)
                results.append(_final(result, attempt))
                advance()
        wall = time.perf_counter() - started
        self.last_run_info = _run_info("serial", None, 1, results, startup_s=0.0, sweep_s=wall, shutdown_s=0.0)
        return results

    def close(self) -> None:
        """Nothing is kept between sweeps."""


class DaskRunner:
    """Trials as Dask tasks: on a LocalCluster started for the run, or on the cluster at ``scheduler``.

    With no ``scheduler`` a LocalCluster of ``workers`` (default: one per core) single-threaded worker
    processes is started on 127.0.0.1 with no dashboard, and closed when the run ends. With
    ``scheduler="tcp://HOST:PORT"`` a Client connects to that cluster, which is left running. The bars are loaded
    here and scattered to every worker once; a task carries only small values (the config payload, the
    ``DataRef``, a batch of ``TrialSpec``s): the sweep is cut into ``TASKS_PER_WORKER`` batches per worker
    (``backtester.trial_batches``). Task keys are ``run_trials-<first trial_id>-n<trials>-<attempt>-<run
    token>`` so the scheduler's logs name the batch. A trial whose result has an error, or whose task failed (a
    worker died, the task could not be unpickled), is resubmitted (with the batch's other failures) up to
    ``retries`` times. ``last_run_info`` describes the last run (start-up, sweep and shutdown seconds
    separately, for benchmarks and summaries). Raises only before any trial has run: ValueError for repeated
    trial ids, OSError or TimeoutError when the scheduler cannot be
    reached (30 s) or the local workers do not start.

    ``keep_cluster``: the LocalCluster (or the Client of a cluster at ``scheduler``) started by the first run is
    kept for the runs that follow, until ``close``: a walk-forward's or a recalibration's sweeps then pay the
    ~2-4 s start-up once. Without it every run starts and closes its own.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        retries: int = 1,
        progress: bool = True,
        *,
        task: TrialTask = run_trial,
        keep_cluster: bool = False,
    ) -> None:
        if scheduler is not None and "://" not in scheduler:
            raise ValueError(f"scheduler must be an address like tcp://HOST:PORT (got {scheduler!r})")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or None for one per core (got {workers})")
        self.scheduler = scheduler
        self.workers = workers
        self.retries = _checked_retries(retries)
        self.progress = progress
        self.last_run_info: dict[str, Any] = {}
        self._task = task
        self._n_tasks = 0
        self._keep_cluster = keep_cluster
        self._kept: ExitStack | None = None  # closes the kept Client and LocalCluster
        self._kept_client: tuple[Any, bool] | None = None

    @property
    def cluster_up(self) -> bool:
        """A cluster kept from an earlier run is ready (``keep_cluster``): the next run starts nothing."""
        return self._kept_client is not None

    def close(self) -> None:
        """Close the kept Client and the LocalCluster it runs on (a cluster at ``scheduler`` is left running);
        idempotent, and a no-op when nothing is kept."""
        kept, self._kept, self._kept_client = self._kept, None, None
        if kept is not None:
            kept.close()

    def run(
        self, payload: str, data: DataRef, trials: Sequence[TrialSpec], *, description: str = "sweep"
    ) -> list[TrialResult]:
        ordered = ordered_trials(trials)
        if not ordered:
            kind = "dask-remote" if self.scheduler else "dask-local"
            self.last_run_info = _run_info(kind, self.scheduler, 0, [], startup_s=0.0, sweep_s=0.0, shutdown_s=0.0)
            return []
        started = time.perf_counter()
        self._n_tasks = 0
        with self._client() as (client, local):
            n_workers = len(client.nthreads())
            address = client.scheduler.address
            _warm_up(client)
            startup_s = time.perf_counter() - started
            log.info(
                "event=sweep_start runner=dask scheduler=%s local=%s workers=%d trials=%d",
                address,
                local,
                n_workers,
                len(ordered),
            )
            if n_workers == 0:
                log.warning("event=no_workers scheduler=%s: tasks wait until a worker joins", address)
            by_id = self._sweep(client, payload, data, ordered, description)
            closing = time.perf_counter()
            sweep_s = closing - started - startup_s
        results = [by_id[t.trial_id] for t in ordered]
        kind = "dask-local" if local else "dask-remote"
        shutdown_s = time.perf_counter() - closing
        self.last_run_info = _run_info(kind, address, n_workers, results, startup_s, sweep_s, shutdown_s)
        self.last_run_info["n_tasks"] = self._n_tasks  # batches submitted, resubmissions included
        return results

    @contextmanager
    def _client(self) -> Iterator[tuple[Any, bool]]:
        """The run's Client, and whether it runs on a LocalCluster of ours: the kept one, a new one kept for the
        next runs (``keep_cluster``), or one closed when the run ends."""
        if self._kept_client is None and self._keep_cluster:
            kept = ExitStack()
            try:
                self._kept_client = self._connect(kept)
            except BaseException:
                kept.close()
                raise
            self._kept = kept
        if self._kept_client is not None:
            yield self._kept_client
            return
        with ExitStack() as closing:
            yield self._connect(closing)

    def _connect(self, closing: ExitStack) -> tuple[Any, bool]:
        """A Client, and whether it runs on a LocalCluster of ours; ``closing`` closes the Client, then our cluster
        (closing a Client leaves someone else's cluster running). Plain ``close`` callbacks, not the Client's own
        context manager: a kept Client may be closed from another thread than the one that opened it."""
        from distributed import Client

        follow_root_log_level()
        if self.scheduler is not None:
            client = Client(self.scheduler, timeout="30s")
            closing.callback(client.close)
            return client, False
        n_workers = self.workers or os.cpu_count() or 1
        cluster = start_local_cluster(n_workers)
        closing.callback(cluster.close)
        client = Client(cluster)
        closing.callback(client.close)
        client.wait_for_workers(n_workers, timeout=WORKER_START_TIMEOUT_S)
        return client, True

    def _sweep(
        self, client: Any, payload: str, data: DataRef, trials: list[TrialSpec], description: str
    ) -> dict[int, TrialResult]:
        """Scatter the bars, submit the trials in batches, resubmit failed trials while attempts remain, and
        drive the bar as batches finish."""
        from distributed import as_completed

        token = uuid.uuid4().hex[:12]
        loaded = _scatter_bars(client, data)
        in_flight: dict[str, tuple[list[TrialSpec], int]] = {}

        def submit(batch: list[TrialSpec], attempt: int) -> Any:
            key = f"run_trials-{batch[0].trial_id}-n{len(batch)}-{attempt}-{token}"
            in_flight[key] = (batch, attempt)
            self._n_tasks += 1
            return client.submit(run_batch, self._task, payload, data, batch, loaded, key=key, pure=False, retries=0)

        final: dict[int, TrialResult] = {}
        batches = split_batches(trials, len(client.nthreads()))
        pending = as_completed([submit(b, 1) for b in batches])
        with progress_bar(description, len(trials), self.progress) as advance:
            for future in pending:
                batch, attempt = in_flight.pop(future.key)
                results = batch_outcome(future, batch)
                future.release()
                again = [t for t, r in zip(batch, results, strict=True) if not r.ok and attempt <= self.retries]
                for trial, result in zip(batch, results, strict=True):
                    if trial in again:
                        _log_retry(trial, attempt, result)
                        continue
                    final[trial.trial_id] = _final(result, attempt)
                    advance()
                if again:
                    self._resubmit(pending, submit, again, attempt, final, advance)
        return final

    @staticmethod
    def _resubmit(pending: Any, submit: Callable[[list[TrialSpec], int], Any], again: list[TrialSpec], attempt: int,
                  final: dict[int, TrialResult], advance: Callable[[], None]) -> None:  # fmt: skip
        """The failed trials of a batch as one new task; if the client itself is gone they stay failed."""
        try:
            pending.add(submit(again, attempt + 1))
        except Exception as exc:
            for trial in again:
                final[trial.trial_id] = _final(_failed(trial, f"resubmission failed: {type(exc).__name__}: {exc}"),
                                               attempt)  # fmt: skip
                advance()


def _scatter_bars(client: Any, data: DataRef) -> Any:
    """The sweep's bars loaded here once and copied to every worker now (one ~2 MB transfer per worker for the
    default 20 symbols x 10 years), so no task carries them and no worker reads or generates them. None when
    there is no worker yet (a cluster still growing): the workers then load the data themselves, once each."""
    if not client.nthreads():
        return None
    return client.scatter(data.load(), broadcast=True, hash=False)


def start_local_cluster(n_workers: int) -> Any:
    """A LocalCluster of ``n_workers`` single-threaded processes, every socket on 127.0.0.1, no dashboards.

    (``dashboard_address=":0"`` would not do: an empty host means every interface.) The workers' statistical
    profiler (a thread sampling every task's stack every 10 ms) is off: measured here it made trials ~12% slower,
    and nobody looks at a dashboard that is not there. A cluster reached by address keeps its own settings.

    The caller closes it. Processes (not threads) because a trial holds the GIL for its whole run.
    """
    from distributed import LocalCluster

    level = follow_root_log_level()
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host=LOOPBACK,
        scheduler_port=0,
        dashboard_address=None,  # no dashboard; the scheduler's small HTTP server (health, metrics) still starts:
        scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},  # on loopback and a free port, never :8787
        worker_dashboard_address=None,
        silence_logs=level,  # the workers' own Dask logging
        config={WORKER_PROFILER: False},  # the nanny hands it to each worker process, restarted ones included
    )


class _RateColumn(ProgressColumn):
    """Trials per second since the start (rich's own speed column speaks bytes and follows recent samples)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = f"{task.completed / elapsed:.1f}" if elapsed and task.completed else "--"
        return Text(f"{rate} trials/s", style="progress.data.speed")


@contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """A rich bar on stderr (description, done/total, rate, elapsed, ETA); yields ``advance()``.

    On a stderr that is not a terminal (CI, pipes) rich draws nothing live and the run is unaffected.
    """
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False) as bar:
        task_id = bar.add_task(description, total=total)
        yield lambda: bar.advance(task_id)


def follow_root_log_level() -> int:
    """Put Dask's ``distributed`` logger at the root logger's level (the entry point's ``--log-level``) and
    return it; called after ``distributed`` is imported, since importing it installs Dask's own level (INFO)."""
    level = logging.getLogger().getEffectiveLevel()
    logging.getLogger("distributed").setLevel(level)
    return level


def _warm_up(client: Any) -> None:
    """Import the trial code on every worker now, so start-up cost is not counted as sweep time.

    A worker that cannot import it is not fatal here: its tasks fail, are retried and reported like any other.
    """
    try:
        client.run(_import_sweep_module)
    except Exception as exc:
        log.warning("event=worker_warm_up_failed error=%r: trials on such workers will fail and be reported", exc)


def _import_sweep_module() -> None:
    """Also quiets per-trial trading-state messages: thousands of backtests changing state are not news, and a
    worker without logging handlers would print every WARNING to stderr."""
    import logging

    import backtester.sweep  # noqa: F401

    for name in ("portfolio.risk_manager", "portfolio.trading_state"):  # per-run state changes
        logging.getLogger(name).setLevel(logging.ERROR)


def ordered_trials(trials: Sequence[TrialSpec]) -> list[TrialSpec]:
    ordered = sorted(trials, key=lambda t: t.trial_id)
    duplicates = sorted(i for i, n in Counter(t.trial_id for t in ordered).items() if n > 1)
    if duplicates:
        raise ValueError(f"trial ids must be unique within a sweep (repeated: {duplicates})")
    return ordered


def _checked_retries(retries: int) -> int:
    if retries < 0:
        raise ValueError(f"retries must be >= 0 (got {retries})")
    return retries


def _failed(trial: TrialSpec, error: str) -> TrialResult:
    return TrialResult.failure(trial, error)


def _first_line(error: str | None) -> str:
    return (error or "").strip().splitlines()[0] if error and error.strip() else repr(error)


def _log_retry(trial: TrialSpec, attempt: int, result: TrialResult) -> None:
    log.info("event=trial_retry trial_id=%d attempt=%d error=%s", trial.trial_id, attempt, _first_line(result.error))


def _final(result: TrialResult, attempts: int) -> TrialResult:
    """The result as kept, with its attempt count; a failure that used every attempt is logged at WARNING."""
    if not result.ok:
        log.warning(
            "event=trial_failed_final trial_id=%d attempts=%d params=%s error=%s",
            result.trial_id,
            attempts,
            result.params,
            _first_line(result.error),
        )
    return dataclasses.replace(result, attempts=attempts)


def _run_info(
    kind: str,
    scheduler: str | None,
    n_workers: int,
    results: Sequence[TrialResult],
    startup_s: float,
    sweep_s: float,
    shutdown_s: float,
) -> dict[str, Any]:
    info = {
        "runner": kind,
        "scheduler": scheduler,
        "n_workers": n_workers,
        "n_trials": len(results),
        "n_failed": sum(not r.ok for r in results),
        "n_retried": sum(r.attempts > 1 for r in results),
        "startup_seconds": startup_s,
        "sweep_seconds": sweep_s,
        "shutdown_seconds": shutdown_s,
        "wall_seconds": startup_s + sweep_s + shutdown_s,
    }
    log.info(
        "event=sweep_done runner=%s scheduler=%s workers=%d trials=%d failed=%d retried=%d wall_s=%.2f",
        kind,
        scheduler,
        n_workers,
        info["n_trials"],
        info["n_failed"],
        info["n_retried"],
        info["wall_seconds"],
    )
    return info
