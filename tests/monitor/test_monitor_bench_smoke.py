"""Smoke test of the detection benchmark: ``--quick`` runs every breach kind end to end (no timing checks)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "monitor_detection.py"
KINDS = (
    "kill_now",
    "engine_gone",
    "engine_crashed",
    "engine_frozen",
    "order_rate",
    "duplicate_orders",
    "drawdown_engine",
    "drawdown_broker",
)
TIMEOUT_S = 180


def test_quick_detection_benchmark_prints_a_line_per_breach_kind() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick", "--runs", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    assert re.search(r"^risk monitor detection latency: 1 runs per kind, seed 7;", stdout, re.MULTILINE), stdout
    number = r"\s+-?[\d.]+ ms"  # a detection can precede the row's own timestamp by a clock tick
    for kind in KINDS:
        line = rf"^{kind}\s+n=1\s+detect median{number}\s+max{number}\s+kill median{number}\s+max{number}"
        assert re.search(line, stdout, re.MULTILINE), stdout
    assert re.search(rf"^kill_now .* ibsim cancel median{number}", stdout, re.MULTILINE), stdout
