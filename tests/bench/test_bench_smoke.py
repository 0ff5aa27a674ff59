"""Smoke test of the throughput benchmark: ``--quick`` runs end to end and reports every case (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "backtest_throughput.py"


def test_quick_benchmark_runs_and_prints_the_three_cases() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for key in ("a", "b", "c"):
        assert re.search(rf"^\({key}\) \d[\d,]* symbols? x [\d,]+ bars ", proc.stdout, re.MULTILINE), proc.stdout
    assert "backtrader" in proc.stdout and "bars/s" in proc.stdout
    assert "identical NO" not in proc.stdout, proc.stdout
