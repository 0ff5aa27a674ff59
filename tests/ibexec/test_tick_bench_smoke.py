"""Smoke test of the tick-to-order benchmark: ``--quick`` runs end to end and prints p50 (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "tick_to_order.py"


def test_quick_tick_to_order_benchmark_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "latency_us p50=" in proc.stdout, proc.stdout
    assert "goal p50<=300us:" in proc.stdout, proc.stdout
    assert "fsync floor" in proc.stdout, proc.stdout
