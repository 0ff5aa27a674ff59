"""run_system.sh end to end, with real processes in a temporary working copy.

The working copy links every repository entry except the runtime folders (logs, state, flags, results), which are
real folders in tmp; its config uses free ports for ibsim and both ZeroMQ endpoints. The engine is ``main.py``
once it exists; until then (or with ``E2E_ENGINE=standin``) ``ENGINE_CMD`` runs ``tests/e2e/standin_engine.py``.
Every started process group is killed in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ibsim.config import DEFAULT_SYMBOLS
from testkit.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "e2e" / "standin_engine.py"
RUNTIME_DIRS = {"logs", "state", "flags", "results"}
SKIPPED = {".git", ".pytest_cache", ".ruff_cache", ".hypothesis", ".import_linter_cache"}
ROLES = ("ibsim", "main", "risk_monitor", "dashboard")
USE_STANDIN = not (REPO / "main.py").exists() or os.environ.get("E2E_ENGINE") == "standin"


def make_workdir(root: Path) -> Path:
    work = root / "wc"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name in RUNTIME_DIRS:
            (work / entry.name).mkdir()
        elif entry.name not in SKIPPED:
            (work / entry.name).symlink_to(entry)
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config["ib_connection"].update(mode="sim", host="127.0.0.1", port=free_port())
    config["symbols"] = list(DEFAULT_SYMBOLS[:3])  # the live engine needs a universe that ibsim serves
    config["operational_risk"]["heartbeat_endpoint"] = f"tcp://127.0.0.1:{free_port()}"
    config["operational_risk"]["command_endpoint"] = f"tcp://127.0.0.1:{free_port()}"
    config["dashboard"]["port"] = free_port()
    (work / "test_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return work


def script_env(standin: bool = USE_STANDIN, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_CMD", "STANDIN_IGNORE_SIGTERM")}
    if standin:
        env["ENGINE_CMD"] = f"{sys.executable} {STANDIN}"
    env.update(extra)
    return env


def run_script(
    work: Path, *args: str, timeout: float = 90, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./run_system.sh", *args],
        cwd=work,
        env=env or script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pid_files(work: Path) -> dict[str, int]:
    pids = {}
    for role in ROLES:
        path = work / "state" / "pids" / f"{role}.pid"
        if path.exists():
            pids[role] = int(path.read_text().split()[0])
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return state != "Z"


@contextlib.contextmanager
def cleaned_up(work: Path) -> Iterator[list[int]]:
    """Yields a list to record pids in; afterwards stops the system and kills every remaining process group."""
    seen: list[int] = []
    try:
        yield seen
    finally:
        seen.extend(pid_files(work).values())
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_script(work, "stop", "--config", "test_config.yaml", "--timeout", "5", timeout=60)
        seen.extend(pid_files(work).values())
        for pid in set(seen):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def start(work: Path, seen: list[int], *args: str, env: dict[str, str] | None = None) -> None:
    result = run_script(work, "--config", "test_config.yaml", *args, env=env)
    seen.extend(pid_files(work).values())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = make_workdir(tmp_path_factory.mktemp("run_system"))
    with cleaned_up(work) as seen:
        start(work, seen)
        yield work


def test_start_runs_every_process_with_its_log_and_pid_file(system: Path) -> None:
    pids = pid_files(system)
    assert set(pids) == set(ROLES)
    assert all(alive(pid) for pid in pids.values()), pids
    for role in ROLES:
        assert (system / "logs" / f"{role}.log").stat().st_size > 0
    port = yaml.safe_load((system / "test_config.yaml").read_text())["ib_connection"]["port"]
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    monitor_log = system / "logs" / "risk_monitor.log"
    eventually(lambda: "event=monitor_started" in monitor_log.read_text(), 30, "the risk monitor's start line")
    assert "can_stop_engine=true" in monitor_log.read_text()
    eventually(lambda: (system / "logs" / "risk_monitor_heartbeat.json").exists(), 10, "the monitor heartbeat")


def test_status_prints_every_section(system: Path) -> None:
    eventually(lambda: (system / "logs" / "heartbeat.csv").exists(), 30, "the engine heartbeat")
    result = run_script(system, "status", "--config", "test_config.yaml", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for section in ("== processes", "== engine heartbeat", "== risk monitor heartbeat", "== positions",
                    "== engine STATUS"):  # fmt: skip
        assert section in out, out
    assert out.count(" alive ") == 4, out
    assert "trading_state" in out and "monitor_state" in out and "can_stop_engine True" in out, out
    assert "PLACEHOLDER" not in out, out
    if USE_STANDIN:
        assert "OK: stand-in engine" in out and "positions 1" in out, out


def test_issue_16_status_json_is_machine_readable_and_watch_refreshes(system: Path) -> None:
    eventually(lambda: (system / "logs" / "risk_log.csv").exists(), 30, "the engine's risk log")
    result = run_script(system, "status", "--config", "test_config.yaml", "--json", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report["processes"]) == set(ROLES) and all(p["alive"] for p in report["processes"].values())
    assert report["engine"]["mark"] == "ALIVE" and isinstance(report["engine"]["equity"], float)
    assert isinstance(report["risk_log"]["drawdown_pct"], float)
    assert isinstance(report["positions"], list) and "broker_net_liquidation" in report["equity"]
    text = run_script(system, "status", "--config", "test_config.yaml", timeout=60).stdout
    assert re.search(r"equity \d{1,3}(,\d{3})*\.\d\d ", text), text  # 100,000.00, not 100000.0
    assert not re.search(r"(?<![\d:.])\d+\.\d{5,}", text), text  # no unformatted floats (0.18787340181630074)
    watch = subprocess.Popen(["./run_system.sh", "status", "--config", "test_config.yaml", "--watch", "0.5"],
                             cwd=system, env=script_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        seen: list[str] = []
        eventually(lambda: seen.append(watch.stdout.readline()) or sum("== processes" in x for x in seen) >= 2, 30,
                   "two redraws of status --watch")  # fmt: skip
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(10)
    assert watch.returncode == 0


def test_second_start_is_refused_and_leaves_the_running_system_alone(system: Path) -> None:
    before = pid_files(system)
    result = run_script(system, "--config", "test_config.yaml")
    assert result.returncode == 1
    assert f"main is already running (pid {before['main']}" in result.stderr, result.stderr
    assert pid_files(system) == before
    assert all(alive(pid) for pid in before.values())


def test_stop_terminates_everything_within_the_timeout_and_removes_pid_files(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    with cleaned_up(work) as seen:
        start(work, seen)
        pids = pid_files(work)
        began = time.monotonic()
        result = run_script(work, "stop", "--config", "test_config.yaml", "--timeout", "10", timeout=60)
        elapsed = time.monotonic() - began
        assert result.returncode == 0, result.stdout + result.stderr
        assert elapsed < 10, f"stop took {elapsed:.1f}s"
        assert not any(alive(pid) for pid in pids.values()), result.stdout
        assert not list((work / "state" / "pids").glob("*.pid"))
        assert "SIGKILL" not in result.stdout + result.stderr
        second = run_script(work, "stop", "--config", "test_config.yaml", timeout=60)
        assert second.returncode == 0
        status = run_script(work, "status", "--config", "test_config.yaml", timeout=60)
        assert status.returncode == 1
        assert "ENGINE STOPPED" in status.stdout and "MONITOR STOPPED" in status.stdout, status.stdout


def test_stop_kills_an_engine_that_ignores_sigterm(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    with cleaned_up(work) as seen:
        start(work, seen, env=script_env(standin=True, STANDIN_IGNORE_SIGTERM="1"))
        pids = pid_files(work)
        result = run_script(work, "stop", "--config", "test_config.yaml", "--timeout", "2", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"main: pid {pids['main']} still running after 2s: sending SIGKILL" in result.stderr
        assert not any(alive(pid) for pid in pids.values())
        assert not list((work / "state" / "pids").glob("*.pid"))


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    config = yaml.safe_load((work / "test_config.yaml").read_text())
    config["ib_connection"]["mode"] = "simulated"
    (work / "bad.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with cleaned_up(work):
        result = run_script(work, "--config", "bad.yaml", timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "ib_connection.mode" in result.stderr and "simulated" in result.stderr
        assert not (work / "state" / "pids").exists()


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    result = run_script(work, "--duration", "soon", timeout=30)
    assert result.returncode == 2 and "--duration" in result.stderr


@pytest.mark.parametrize("command", ["start", "status", "stop"])
@pytest.mark.parametrize("port", ["0", "65536", "99999", "4002x", ""])
def test_a_bad_port_exits_2_for_every_subcommand(tmp_path: Path, command: str, port: str) -> None:
    work = make_workdir(tmp_path)
    result = run_script(work, command, "--config", "test_config.yaml", "--port", port, timeout=30)
    assert result.returncode == 2 and "--port" in result.stderr, result.stderr
    assert not (work / "state" / "pids").exists()


def test_a_busy_port_names_its_holder_and_port_overrides_the_config(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    try:
        with cleaned_up(work):
            result = run_script(work, "start", "--config", "test_config.yaml", "--port", str(port), timeout=60)
            started = pid_files(work)
    finally:
        squatter.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"127.0.0.1:{port} already accepts connections (held by pid {os.getpid()} (" in result.stderr
    assert started == {}  # nothing was started on a port somebody else holds


def test_duration_demo_runs_stops_and_prints_a_summary(tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    with cleaned_up(work) as seen:
        began = time.monotonic()
        result = run_script(work, "--config", "test_config.yaml", "--duration", "5", timeout=120)
        elapsed = time.monotonic() - began
        seen.extend(int(pid) for pid in re.findall(r"^started \w+: pid (\d+),", result.stdout, re.MULTILINE))
        assert result.returncode == 0, result.stdout + result.stderr
        assert 5 <= elapsed < 60
        out = result.stdout
        assert "== run summary" in out and "equity" in out and "orders:" in out and "fills:" in out, out
        assert "trading_state" in out or "state" in out
        assert not list((work / "state" / "pids").glob("*.pid"))
        if USE_STANDIN:
            assert "orders: 1 submitted  fills: 1" in out, out
            assert "last heartbeat: seq" in out and "trading_state ACTIVE" in out, out


@pytest.mark.skipif(USE_STANDIN, reason="the stand-in engine does not trade; this checks the real demo")
def test_the_readme_demo_trades_with_the_shipped_strategies(tmp_path: Path) -> None:
    """The Quick start's ``--duration`` run with config.yaml as shipped (only free ports): orders go out and fill."""
    work = make_workdir(tmp_path)
    config = yaml.safe_load((work / "test_config.yaml").read_text(encoding="utf-8"))
    config["symbols"] = list(DEFAULT_SYMBOLS)
    (work / "test_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with cleaned_up(work) as seen:
        result = run_script(work, "--config", "test_config.yaml", "--duration", "30", timeout=150)
        seen.extend(int(pid) for pid in re.findall(r"^started \w+: pid (\d+),", result.stdout, re.MULTILINE))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "demo run: ibsim replays at 8000.0x" in result.stdout
        summary = re.search(r"orders: (\d+) submitted  fills: (\d+)", result.stdout)
        assert summary, result.stdout
        assert int(summary.group(1)) >= 1 and int(summary.group(2)) >= 1, result.stdout


def test_sim_start_moves_the_previous_sim_runs_books_aside(tmp_path: Path) -> None:
    """A new ibsim is a fresh account: the last sim run's books would never reconcile with it (HALTED), so start
    moves them to state/sim_runs/<time>/ (kept, not deleted); here an unreadable snapshot proves the engine never
    read it (it would refuse to start, exit 1)."""
    work = make_workdir(tmp_path)
    old = {"portfolio_snapshot.json": "not the new account's books\n", "order_journal.jsonl": "{}\n"}
    for name, text in old.items():
        (work / "state" / name).write_text(text)
    old_fill = "2020-01-02T15:59:00Z,x,FILLED,previous-sim-run,momentum,ZZZZ,BUY,7,MKT,,7,1.0,FILLED,old\n"
    (work / "logs").mkdir(exist_ok=True)
    (work / "logs" / "order_submissions.csv").write_text(old_fill)
    with cleaned_up(work) as seen:
        result = run_script(work, "--config", "test_config.yaml", "--duration", "6", timeout=120)
        seen.extend(int(pid) for pid in re.findall(r"^started \w+: pid (\d+),", result.stdout, re.MULTILINE))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "previous sim run's books were moved to" in result.stdout
        moved = list((work / "state" / "sim_runs").glob("*/portfolio_snapshot.json"))
        assert len(moved) == 1 and moved[0].read_text() == old["portfolio_snapshot.json"]
        assert (moved[0].parent / "order_journal.jsonl").read_text() == old["order_journal.jsonl"]
        # the last run's order log went with its books: this run's log (status, dashboard) has none of its fills
        assert (moved[0].parent / "order_submissions.csv").read_text() == old_fill
        current = work / "logs" / "order_submissions.csv"
        assert not current.exists() or "previous-sim-run" not in current.read_text()
        assert "state_corrupt" not in (work / "logs" / "main.log").read_text()


def write_constant_veto_model(models_dir: Path, strategy: str, intercept: float) -> None:
    """A promoted veto model (``ml.veto_model_store``'s layout), p = 1 / (1 + e^-intercept) for every signal."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(60, 2))
    estimator = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    estimator.coef_[:], estimator.intercept_[:] = 0.0, intercept
    from ml import veto_model_store

    card = {"strategy": strategy, "features": ["ret_1d", "vol_20d"]}
    veto_model_store.promote(models_dir, strategy, veto_model_store.write_model(models_dir, strategy, estimator, card))


@pytest.mark.skipif(USE_STANDIN, reason="the stand-in engine has no signal veto")
def test_issue_14_with_the_veto_on_start_publishes_ibsim_features_first_and_the_engine_vetoes(tmp_path: Path) -> None:
    """A new user's sim run with a veto: no manual step. run_system.sh applies the feature repo and publishes ibsim's
    history before the engine starts; the engine writes each replayed close's features itself; a model below the
    threshold for every signal (p = 0.12 < 0.5) lets nothing through, and the summary and risk log say so."""
    from ml.feature_store import copy_definitions

    work = make_workdir(tmp_path)
    config = yaml.safe_load((work / "test_config.yaml").read_text(encoding="utf-8"))
    config["symbols"] = list(DEFAULT_SYMBOLS)
    config["strategies"]["momentum"]["enabled"] = config["strategies"]["mean_reversion"]["enabled"] = False
    config["strategies"]["sma_crossover"].update(
        enabled=True, params={"fast_period": 2, "slow_period": 5, "atr_period": 2, "atr_stop_multiple": 2.0},
        veto={"enabled": True, "threshold": 0.5, "models_dir": str(tmp_path / "models")},
    )  # fmt: skip
    config["features"] = {"repo_path": str(copy_definitions(REPO / "feature_repo", tmp_path / "feature_repo"))}
    write_constant_veto_model(tmp_path / "models", "sma_crossover", intercept=-2.0)
    (work / "test_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with cleaned_up(work) as seen:
        result = run_script(work, "--config", "test_config.yaml", "--duration", "30", timeout=180)
        seen.extend(int(pid) for pid in re.findall(r"^started \w+: pid (\d+),", result.stdout, re.MULTILINE))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "signal veto on (sma_crossover): publishing the features of ibsim's history" in out
    assert "features: 2000 rows, 8 symbols from ibsim's market (seed 7, data synthetic) before 2024-01-02" in out
    assert out.index("publishing the features") < out.index("started main")
    assert "orders: 0 submitted" in out, out
    vetoed = re.search(r"signal veto: vetoed (\d+) \(p below threshold\) \+ 0 \(no fresh features\), passed 0", out)
    assert vetoed and int(vetoed.group(1)) >= 1, out
    engine_log = (work / "logs" / "main.log").read_text()
    assert "event=session_features_written" in engine_log and "event=session_features_failed" not in engine_log
