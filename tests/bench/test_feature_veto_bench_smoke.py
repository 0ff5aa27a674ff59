"""Smoke test of ``bench/feature_veto_latency.py``: ``--quick`` runs end to end and prints every figure (no timing
checks: the figures belong in the benchmark's output, not in a test's verdict)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "feature_veto_latency.py"


def test_quick_feature_veto_benchmark_prints_p50_and_p99_of_each_step() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 closes x 5 reads = 15 decision reads" in proc.stdout, proc.stdout
    for label in ("fetch+score", "online get", "predict_proba", "cached", "close write"):
        assert re.search(rf"{re.escape(label)}.* p50=\s*[\d.]+ ms\s+p99=\s*[\d.]+ ms", proc.stdout), proc.stdout
    assert re.search(r"goal fetch\+score p99<=2 ms: (met|MISSED)", proc.stdout), proc.stdout
