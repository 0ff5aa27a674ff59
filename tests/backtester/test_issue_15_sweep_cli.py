"""Issue 15, sweeps from the command line: Dask stays quiet unless asked, a LocalCluster can be forced, and the
forced cluster's table is the serial one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--symbols", "AAA,BBB,CCC", "--start", "2019-01-02", "--end", "2020-12-31", "--seed", "4",
         "--grid", "roc_period=20,60", "--grid", "entry_roc_pct=2,5", "--grid", "trend_sma_period=50"]  # fmt: skip
DASK_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO) distributed\.", re.M)  # Dask's own format: "date time LEVEL name"


def grid(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), "--config", str(REPO / "config.yaml"), "--strategy",
         "momentum", "--mode", "grid_search", "--out", str(out), *SMALL, *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    return proc, out


def test_issue_15_dask_info_lines_only_when_the_log_level_asks(tmp_path: Path) -> None:
    quiet, quiet_out = grid(tmp_path, "quiet", "--local-cluster", "--workers", "2")
    assert quiet.returncode == 0, quiet.stderr
    assert DASK_LINE.findall(quiet.stderr) == [], quiet.stderr
    assert len(quiet.stderr.splitlines()) <= 12, quiet.stderr  # the warnings and the progress bar's lines only
    runner = json.loads((quiet_out / "summary.json").read_text())["runner"]
    assert (runner["runner"], runner["n_workers"]) == ("dask-local", 2)

    chatty, _ = grid(tmp_path, "chatty", "--local-cluster", "--workers", "2", "--log-level", "INFO")
    assert chatty.returncode == 0, chatty.stderr
    assert len(DASK_LINE.findall(chatty.stderr)) >= 5  # the same run says what Dask does when asked

    serial, serial_out = grid(tmp_path, "serial", "--serial")
    assert serial.returncode == 0, serial.stderr
    pd.testing.assert_frame_equal(pd.read_csv(quiet_out / "grid.csv"), pd.read_csv(serial_out / "grid.csv"))


def test_issue_15_contradicting_runner_flags_exit_2_naming_them(tmp_path: Path) -> None:
    proc, _ = grid(tmp_path, "both", "--serial", "--local-cluster")
    assert proc.returncode == 2
    assert "--local-cluster" in proc.stderr and "--serial" in proc.stderr
    proc, _ = grid(tmp_path, "both2", "--local-cluster", "--scheduler", "tcp://127.0.0.1:8786")
    assert proc.returncode == 2 and "--scheduler" in proc.stderr and "--local-cluster" in proc.stderr
