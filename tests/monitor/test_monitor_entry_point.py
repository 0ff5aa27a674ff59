"""``risk_monitor.py``: its command line, exit codes, and that it imports no engine runtime module."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from monitor_harness import REPO, wait_for

from testkit.waiting import free_port

ENGINE_RUNTIME = ("live", "portfolio", "strategy", "backtester", "execution")
ALLOWED_EXECUTION = ("execution.ib_translate",)
PROJECT_PACKAGES = (
    "core",
    "data",
    "execution",
    "monitor",
    "utils",
    "live",
    "portfolio",
    "strategy",
    "backtester",
    "performance",
    "testkit",
    "ibsim",
    "etl",
)


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_engine_runtime(name: str) -> bool:
    if any(name == allowed or name.startswith(f"{allowed}.") for allowed in ALLOWED_EXECUTION):
        return False
    return any(name == top or name.startswith(f"{top}.") for top in ENGINE_RUNTIME)


def test_risk_monitor_imports_no_engine_runtime_module_directly_or_through_the_project() -> None:
    direct = imported_modules(REPO / "risk_monitor.py")
    assert not [m for m in direct if is_engine_runtime(m)], direct
    seen: set[str] = set()
    todo = [m for m in direct if m.split(".")[0] in PROJECT_PACKAGES]
    chains: dict[str, str] = {m: "risk_monitor.py" for m in todo}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is None:
            continue  # "from package import name": name is an attribute, not a module
        for child in imported_modules(path):
            if child.split(".")[0] in PROJECT_PACKAGES and child not in seen:
                chains.setdefault(child, name)
                todo.append(child)
    offenders = sorted(m for m in seen if is_engine_runtime(m) and module_file(m) is not None)
    assert offenders == [], {m: chains[m] for m in offenders}
    assert "monitor.runner" in seen and "execution.ib_translate" in seen  # the walk did reach the monitor


def test_invalid_config_exits_2_with_the_problem(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, str(REPO / "risk_monitor.py"), "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "cannot read the config file" in missing.stderr
    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "risk_monitor.py"),
            "--config",
            str(REPO / "config.yaml"),
            "--set",
            "risk_monitor.confirm_checks=0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "risk_monitor.confirm_checks" in bad.stderr


def test_runs_without_an_engine_or_gateway_beats_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["ib_connection"]["port"] = free_port()  # nothing listens: the monitor keeps retrying, and keeps beating
    raw["operational_risk"].update(
        heartbeat_endpoint=f"tcp://127.0.0.1:{free_port()}", command_endpoint=f"tcp://127.0.0.1:{free_port()}"
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    with (tmp_path / "monitor.out").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "risk_monitor.py"), "--config", "config.yaml"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        beat_path = tmp_path / "logs" / "risk_monitor_heartbeat.json"
        body = wait_for(lambda: beat_path.exists() and json.loads(beat_path.read_text()), 30, "a heartbeat", proc)
        assert body["pid"] == proc.pid and body["can_stop_engine"] is True and body["placeholder"] is False
        wait_for(lambda: json.loads(beat_path.read_text())["engine_status"] == "NOT_SEEN", 15, "no engine", proc)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (tmp_path / "flags" / "KILL.flag").exists()  # no engine, no gateway: alarms, never a kill
