"""Smoke test of the sweep scaling benchmark: ``--quick`` runs end to end and prints every label (no timing checks)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "sweep_scaling.py"
TIMEOUT_S = 240


def test_quick_sweep_benchmark_runs_and_prints_every_label() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the LocalCluster's processes are in this group: killed with it on a timeout
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    for label in (
        r"^machine: .*cpu count \d+",
        r"^python [\d.]+ \| dask [\d.]+ \| distributed [\d.]+",
        r"^parallel ceiling now: 2 processes",
        r"^sweep: momentum, 12 parameter sets",
        r"^serial \(this process\)\s+[\d.]+\s+[\d.]+\s+1\.00x$",
        r"^LocalCluster 2 workers, sweep only\s+[\d.]+\s+[\d.]+\s+[\d.]+x$",
        r"^  \+ start-up\s+[\d.]+\s+[\d.]+\s+[\d.]+x$",
        r"^cluster start-up [\d.]+ s",
        r"^speed-up without start-up [\d.]+x, with start-up [\d.]+x$",
        r"^goal: >= 1\.8x with 2 workers .*: (PASS|BELOW) \(quick sizes\)$",
        r"^check: serial and distributed tables identical \(12 trials.*\): yes; failed trials: serial 0, distributed 0",
    ):
        assert re.search(label, stdout, re.MULTILINE), f"{label!r} not in:\n{stdout}"
