"""Sweep runners: serial and Dask give the same table, a scheduler address is really used, failures are kept.

The "separate cluster" tests start a real ``dask scheduler`` and ``dask worker`` (OS processes, own session, on
a free loopback port) and kill both process groups afterwards whatever happens. Every runner call is bounded
by ``bounded`` (a thread joined with a timeout), every process wait by a deadline.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cloudpickle
import dask
import numpy as np
import psutil
import pytest
from distributed import Client

from backtester.distributed_runner import DaskRunner, SerialRunner, start_local_cluster
from backtester.runner_choice import AutoRunner, make_runner
from backtester.sweep import DataRef, TrialResult, TrialSpec, config_payload, expand_grid, run_trial
from backtester.trial_batches import TASKS_PER_WORKER, split_batches
from core.config_loader import load_config
from core.config_models import DistributedConfig
from testkit.waiting import eventually, free_port

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DASK_CLI = Path(sys.executable).with_name("dask")
RUN_TIMEOUT_S = 90.0
START_TIMEOUT_S = 60.0
T = TypeVar("T")

DATA = DataRef(
    spec="synthetic",
    symbols=None,
    start=None,
    end=None,
    seed=7,
    synthetic_n_symbols=3,
    synthetic_start="2022-01-03",
    synthetic_end="2023-12-29",
)


def momentum_trials(grid: dict[str, Sequence[Any]] | None = None) -> list[TrialSpec]:
    grid = grid or {"roc_period": [20, 60], "entry_roc_pct": [2.0, 5.0, 10.0]}
    return [TrialSpec(i, "momentum", tuple(sorted(combo.items()))) for i, combo in enumerate(expand_grid(grid))]


@pytest.fixture(scope="module")
def payload() -> str:
    return config_payload(load_config(ROOT / "config.yaml"))


@pytest.fixture(scope="module")
def serial_results(payload: str) -> list[TrialResult]:
    return SerialRunner(retries=0, progress=False).run(payload, DATA, momentum_trials())


def bounded(func: Callable[[], T], timeout_s: float = RUN_TIMEOUT_S) -> T:
    """``func()`` in a daemon thread; the test fails (rather than hangs) if it takes longer than ``timeout_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        pytest.fail(f"did not finish within {timeout_s} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def assert_same_results(actual: Sequence[TrialResult], expected: Sequence[TrialResult]) -> None:
    """Same trials, params, attempts and errors; metrics equal to the last bit (NaN equals NaN); same equity."""
    assert [r.trial_id for r in actual] == [r.trial_id for r in expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.params == e.params, a.trial_id
        assert a.error == e.error, a.trial_id
        assert sorted(a.metrics) == sorted(e.metrics), a.trial_id
        for key, value in e.metrics.items():
            got = a.metrics[key]
            assert got == value or (math.isnan(got) and math.isnan(value)), (a.trial_id, key, got, value)
        assert a.n_trades == e.n_trades, a.trial_id
        assert np.array_equal(a.dates, e.dates), a.trial_id
        assert np.array_equal(a.equity, e.equity), a.trial_id


# ---------------------------------------------------------------- a separate scheduler and worker (OS processes)


@dataclass(frozen=True)
class ExternalCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]


# --no-dashboard alone still starts an HTTP server (health, metrics) on every interface, port 8787
LOOPBACK_HTTP = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]


def listening_addresses(processes: Sequence[psutil.Process]) -> list[Any]:
    return [c.laddr for p in processes for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]


def start_process(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, then SIGKILL whatever is left after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            os.killpg(proc.pid, 0)  # the leader is gone; are its children?
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def scheduler_worker_count(address: str) -> int:
    try:
        with Client(address, timeout="2s") as probe:
            return len(probe.nthreads())
    except (OSError, TimeoutError):
        return -1


@pytest.fixture(scope="module")
def external_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalCluster]:
    logs = tmp_path_factory.mktemp("dask_processes")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            start_process(
                [str(DASK_CLI), "scheduler", "--host", "127.0.0.1", "--port", str(port), *LOOPBACK_HTTP],
                logs / "scheduler.log",
            )
        )
        worker_args = [str(DASK_CLI), "worker", address, "--nworkers", "1", "--nthreads", "1", *LOOPBACK_HTTP]
        procs.append(start_process([*worker_args, "--host", "127.0.0.1", "--death-timeout", "60"], logs / "worker.log"))
        try:
            eventually(lambda: scheduler_worker_count(address) == 1, START_TIMEOUT_S, "scheduler sees 1 worker")
        except TimeoutError as exc:
            tails = {p.name: p.read_text(errors="replace")[-2000:] for p in logs.iterdir()}
            raise RuntimeError(f"{exc}; process logs: {tails}") from exc
        yield ExternalCluster(address, procs[0], procs[1])
    finally:
        for proc in reversed(procs):
            stop_process_group(proc)


def scheduler_trial_keys(dask_scheduler: Any) -> list[str]:
    """Runs on the scheduler: the task keys that reached memory there (from its transition log)."""
    return [str(t.key) for t in dask_scheduler.transition_log if t.finish == "memory"]


def executed_count(dask_worker: Any) -> int:
    """Runs on a worker: how many tasks it has executed."""
    return int(dask_worker.state.executed_count)


def test_dask_runner_runs_on_the_separate_scheduler_it_is_given(
    external_cluster: ExternalCluster, payload: str, serial_results: list[TrialResult]
) -> None:
    address = external_cluster.address
    with Client(address, timeout="10s") as probe:
        ((worker_address, worker_pid),) = probe.run(os.getpid).items()
        executed_before = probe.run(executed_count)[worker_address]
    # the worker process is a descendant of the `dask worker` we started, not of this test process's own tree
    assert external_cluster.worker.pid in {p.pid for p in psutil.Process(worker_pid).parents()}

    trials = momentum_trials()
    runner = DaskRunner(scheduler=address, retries=0, progress=False)
    results = bounded(lambda: runner.run(payload, DATA, trials, description="remote"))

    assert_same_results(results, serial_results)
    assert runner.last_run_info["runner"] == "dask-remote"
    assert runner.last_run_info["scheduler"] == address
    assert runner.last_run_info["n_workers"] == 1
    with Client(address, timeout="10s") as probe:
        keys = probe.run_on_scheduler(scheduler_trial_keys)
        executed_after = probe.run(executed_count)[worker_address]
        assert len(probe.nthreads()) == 1  # the runner left someone else's cluster running
    batches = split_batches(trials, 1)  # one worker: TASKS_PER_WORKER tasks of several trials each
    assert 1 < len(batches) < len(trials)
    done = {k.rsplit("-", 2)[0] for k in keys if k.startswith("run_trials-")}
    assert done >= {f"run_trials-{b[0].trial_id}-n{len(b)}" for b in batches}, keys
    assert executed_after - executed_before == len(batches)
    assert external_cluster.scheduler.poll() is None and external_cluster.worker.poll() is None


def test_separate_cluster_processes_listen_on_loopback_only(external_cluster: ExternalCluster) -> None:
    """The test's own scheduler and worker obey the loopback-only rule too."""
    processes = []
    for proc in (external_cluster.scheduler, external_cluster.worker):
        leader = psutil.Process(proc.pid)
        processes += [leader, *leader.children(recursive=True)]
    listening = listening_addresses(processes)
    assert len(listening) >= 2 + 2, listening  # scheduler comm + HTTP, nanny, worker
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening


# ---------------------------------------------------------------- LocalCluster


def test_serial_and_local_cluster_results_are_identical(payload: str) -> None:
    """20 trials on 2 workers go as 6 tasks of 3-4 trials (the bars scattered once), and the table is the serial
    runner's to the last bit."""
    trials = momentum_trials({"roc_period": [20, 40, 60, 90], "entry_roc_pct": [0.0, 2.0, 5.0, 10.0, 15.0]})
    serial = SerialRunner(retries=0, progress=False).run(payload, DATA, trials)
    runner = DaskRunner(workers=2, retries=0, progress=False)
    results = bounded(lambda: runner.run(payload, DATA, list(reversed(trials))))  # returned in trial_id order

    assert_same_results(results, serial)
    assert all(r.ok for r in results)
    info = runner.last_run_info
    assert (info["runner"], info["n_workers"], info["n_trials"], info["n_failed"]) == ("dask-local", 2, 20, 0)
    assert info["n_tasks"] == 2 * TASKS_PER_WORKER
    assert info["scheduler"].startswith("tcp://127.0.0.1:")


def test_issue_17_a_kept_local_cluster_serves_every_sweep_of_a_run_until_closed(
    payload: str, serial_results: list[TrialResult]
) -> None:
    """A walk-forward runs three sweeps: with ``keep_cluster`` the LocalCluster the first one starts serves the
    next (same scheduler, same worker processes, results still the serial runner's), and ``close`` stops it."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    runner = DaskRunner(workers=2, retries=0, progress=False, keep_cluster=True)
    try:
        first = bounded(lambda: runner.run(payload, DATA, momentum_trials()))
        first_info = dict(runner.last_run_info)
        workers = {p.pid for p in me.children(recursive=True)} - before
        second = bounded(lambda: runner.run(payload, DATA, list(reversed(momentum_trials()))))
        assert runner.cluster_up
        assert runner.last_run_info["scheduler"] == first_info["scheduler"]
        assert {p.pid for p in me.children(recursive=True)} - before == workers  # no second cluster
        assert_same_results(first, serial_results)
        assert_same_results(second, serial_results)
    finally:
        runner.close()
    assert not runner.cluster_up
    runner.close()  # idempotent
    eventually(lambda: not ({p.pid for p in me.children(recursive=True)} & workers), timeout_s=START_TIMEOUT_S,
               what="the kept cluster's processes exit after close")  # fmt: skip


def test_batches_deal_every_trial_once_and_fairly() -> None:
    trials = momentum_trials({"roc_period": list(range(2, 102))})  # 100 trials
    batches = split_batches(trials, 2)
    assert len(batches) == 2 * TASKS_PER_WORKER
    assert sorted(t.trial_id for b in batches for t in b) == list(range(100))
    assert {len(b) for b in batches} <= {16, 17}
    assert all([t.trial_id for t in b] == sorted(t.trial_id for t in b) for b in batches)
    assert [len(b) for b in split_batches(trials[:4], 2)] == [1, 1, 1, 1]  # never an empty task


def profiler_enabled() -> bool:
    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_local_cluster_is_loopback_only_and_unprofiled() -> None:
    me = psutil.Process()
    cluster = bounded(lambda: start_local_cluster(2), START_TIMEOUT_S)
    try:
        ours = [p for p in me.children(recursive=True) if os.getsid(p.pid) == os.getsid(0)]  # not other fixtures'
        listening = listening_addresses([me, *ours])
        scheduler_port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        assert scheduler_port in {a.port for a in listening}
        assert len(listening) >= 1 + 2 * 2, listening  # scheduler, and a nanny and a worker per worker process
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening
        with Client(cluster) as client:  # and the workers run without the 10 ms stack-sampling profiler
            assert set(client.run(profiler_enabled).values()) == {False}
    finally:
        cluster.close()


# ---------------------------------------------------------------- failures and retries


def runner_for(kind: str, cluster: ExternalCluster | None, retries: int, task: Callable[..., TrialResult]) -> Any:
    if kind == "serial":
        return SerialRunner(retries=retries, progress=False, task=task)
    assert cluster is not None
    return DaskRunner(scheduler=cluster.address, retries=retries, progress=False, task=task)


@pytest.fixture(params=["serial", "dask"])
def runner_kind(request: pytest.FixtureRequest) -> Iterator[tuple[str, ExternalCluster | None]]:
    cluster = request.getfixturevalue("external_cluster") if request.param == "dask" else None
    yield request.param, cluster


def test_always_failing_trial_is_kept_with_its_error_and_attempts(
    runner_kind: tuple[str, ExternalCluster | None], payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    kind, cluster = runner_kind
    trials = momentum_trials({"roc_period": [1, 20, 60]})  # roc_period 1 fails validation (>= 2)
    runner = runner_for(kind, cluster, retries=2, task=run_trial)
    with caplog.at_level(logging.WARNING, logger="backtester.distributed_runner"):
        results = bounded(lambda: runner.run(payload, DATA, trials))

    assert [r.trial_id for r in results] == [0, 1, 2]
    bad, *good = results
    assert bad.params == {"roc_period": 1} and not bad.ok and "roc_period" in (bad.error or "")
    assert bad.attempts == 3
    assert all(r.ok and r.attempts == 1 for r in good)
    assert (runner.last_run_info["n_failed"], runner.last_run_info["n_retried"]) == (1, 1)
    warnings = [r for r in caplog.records if r.name == "backtester.distributed_runner" and r.levelno == logging.WARNING]
    assert [(r.args[0], r.args[1]) for r in warnings] == [(0, 3)]  # (trial_id, attempts)


FLAKY_RAISES, FLAKY_RETURNS_ERROR = 1, 2


def flaky_task(marker_dir: str, payload: str, data: DataRef, trial: TrialSpec) -> TrialResult:
    """Fails the first attempt of two trials (one raises in the task, one returns an error), then behaves."""
    if trial.trial_id in (FLAKY_RAISES, FLAKY_RETURNS_ERROR):
        marker = Path(marker_dir) / f"attempted-{trial.trial_id}"
        if not marker.exists():
            marker.touch()
            if trial.trial_id == FLAKY_RAISES:
                raise RuntimeError("transient failure in the task")
            return run_trial(payload, data, TrialSpec(trial.trial_id, "no_such_strategy", trial.params))
    return run_trial(payload, data, trial)


@pytest.fixture
def flaky_task_shipped_by_value() -> Iterator[None]:
    """Workers cannot import this test module, so cloudpickle sends ``flaky_task`` by value while it is needed."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.parametrize("retries", [0, 1])
@pytest.mark.usefixtures("flaky_task_shipped_by_value")
def test_flaky_trials_succeed_when_retried(
    runner_kind: tuple[str, ExternalCluster | None],
    retries: int,
    payload: str,
    serial_results: list[TrialResult],
    tmp_path: Path,
) -> None:
    kind, cluster = runner_kind
    runner = runner_for(kind, cluster, retries=retries, task=functools.partial(flaky_task, str(tmp_path)))
    results = bounded(lambda: runner.run(payload, DATA, momentum_trials()))

    flaky = {FLAKY_RAISES, FLAKY_RETURNS_ERROR}
    assert [r.trial_id for r in results] == [r.trial_id for r in serial_results]
    if retries:
        assert_same_results(results, serial_results)
        assert [r.attempts for r in results] == [2 if r.trial_id in flaky else 1 for r in results]
        assert (runner.last_run_info["n_failed"], runner.last_run_info["n_retried"]) == (0, 2)
    else:
        assert {r.trial_id for r in results if not r.ok} == flaky
        assert "transient failure" in (results[FLAKY_RAISES].error or "")
        assert all(r.attempts == 1 for r in results)
        assert runner.last_run_info["n_failed"] == 2


# ---------------------------------------------------------------- progress, inputs, wiring


def test_progress_bar_works_when_stderr_is_not_a_terminal(payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert not sys.stderr.isatty()
    results = SerialRunner(retries=0, progress=True).run(payload, DATA, momentum_trials()[:2], description="tiny")
    assert all(r.ok for r in results)
    err = capsys.readouterr().err
    assert "tiny" in err and "2/2" in err and "trials/s" in err


def test_duplicate_trial_ids_are_refused(payload: str) -> None:
    trials = [TrialSpec(3, "momentum", ()), TrialSpec(3, "momentum", (("roc_period", 20),))]
    with pytest.raises(ValueError, match=r"repeated: \[3\]"):
        SerialRunner(progress=False).run(payload, DATA, trials)
    with pytest.raises(ValueError, match=r"repeated: \[3\]"):
        DaskRunner(workers=1, progress=False).run(payload, DATA, trials)


def test_make_runner_flags_override_the_config() -> None:
    cfg = DistributedConfig(scheduler="tcp://127.0.0.1:8786", workers=3, retries=2)
    from_config = make_runner(cfg)
    assert isinstance(from_config, DaskRunner)
    assert (from_config.scheduler, from_config.retries) == ("tcp://127.0.0.1:8786", 2)

    flagged = make_runner(cfg, scheduler="tcp://127.0.0.1:9999", workers=5, progress=False)
    assert isinstance(flagged, DaskRunner)
    assert (flagged.scheduler, flagged.workers, flagged.progress) == ("tcp://127.0.0.1:9999", 5, False)

    local = make_runner(DistributedConfig(workers=3))
    assert isinstance(local, AutoRunner) and local.workers == 3  # a local sweep: Dask only when it pays off

    serial = make_runner(cfg, serial=True)
    assert isinstance(serial, SerialRunner) and serial.retries == 2
    with pytest.raises(ValueError, match="contradict"):
        make_runner(cfg, scheduler="tcp://127.0.0.1:9999", serial=True)

    forced = make_runner(cfg, workers=2, local_cluster=True)  # a LocalCluster, not the configured scheduler
    assert isinstance(forced, DaskRunner) and (forced.scheduler, forced.workers) == (None, 2)
    with pytest.raises(ValueError, match="--serial and --local-cluster contradict"):
        make_runner(cfg, serial=True, local_cluster=True)




def test_issue_15_a_fast_sweep_runs_in_this_process_with_the_serial_results(payload: str,
                                                                            serial_results: list[TrialResult]) -> None:
    """Six ~0.1 s momentum trials: workers would not pay for their start-up, so they run here; the results are
    exactly the serial runner's and the summary says why."""
    fast = AutoRunner(workers=2, retries=0, progress=False)
    results = bounded(lambda: fast.run(payload, DATA, momentum_trials()))
    assert fast.last_run_info["auto_choice"].startswith("serial") and fast.last_run_info["n_trials"] == 6
    assert [r.metrics for r in results] == [r.metrics for r in serial_results]


@pytest.mark.parametrize(("per_trial_s", "n", "workers", "free_cores", "dask"), [
    (0.1, 25, 2, 2.0, False),    # a 27-trial grid on 2 quiet cores: ~1.1 s saved, the cluster costs ~4 s
    (0.25, 457, 2, 2.0, True),   # a walk-forward's training sweep: ~51 s saved
    (0.25, 457, 2, 1.0, False),  # the same while another process holds a core: nothing to gain
    (0.25, 457, 2, 1.5, True),   # half a core taken: ~34 s saved against a ~5.3 s (slower) start-up
    (1.0, 13, 2, 2.0, False),    # 5.9 s saved, not worth 1.5 x 4 s
    (1.0, 14, 2, 2.0, True),     # 6.3 s saved
    (5.0, 100, 1, 2.0, False),   # one worker: never
])  # fmt: skip
def test_issue_15_the_auto_rule(per_trial_s: float, n: int, workers: int, free_cores: float, dask: bool) -> None:
    from backtester.runner_choice import auto_choice

    use_dask, why = auto_choice(per_trial_s, n, workers, free_cores)
    assert use_dask is dask and why.startswith("dask" if dask else "serial")


@pytest.mark.parametrize(("per_trial_s", "n", "dask"), [
    (0.35, 25, True),   # the walk-forward's full-period grid once its training sweep left the cluster up: ~3.9 s
    (0.03, 14, False),  # its 16 test windows: ~0.2 s to save, less than a warm sweep's own ~0.5 s
])  # fmt: skip
def test_issue_17_a_cluster_already_up_is_weighed_at_its_warm_cost(per_trial_s: float, n: int, dask: bool) -> None:
    from backtester.runner_choice import LOCAL_CLUSTER_COST_S, WARM_CLUSTER_COST_S, auto_choice

    assert auto_choice(per_trial_s, n, 2, 2.0, WARM_CLUSTER_COST_S)[0] is dask
    assert auto_choice(per_trial_s, n, 2, 2.0, LOCAL_CLUSTER_COST_S)[0] is False  # a cold start would not pay
