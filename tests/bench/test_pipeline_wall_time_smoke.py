"""Smoke test of the pipeline wall-time benchmark: ``--quick`` runs both runs through every step (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prefect_flows.pipeline import STEP_NAMES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "pipeline_wall_time.py"


def test_quick_benchmark_times_every_step_twice() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("nightly run, step by step:")[0]
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.split()}
    for name in (*STEP_NAMES, "total"):
        assert len(rows[name]) == 2 and all(float(cell) >= 0 for cell in rows[name]), proc.stdout
    assert "2 symbols x 252 sessions" in proc.stdout
