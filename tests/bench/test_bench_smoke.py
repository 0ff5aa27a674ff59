"""Smoke test of the throughput benchmark: ``--quick`` runs end to end and reports every case, every peer that
imports, the goal lines and the peak RSS (no timing checks: the figures belong in the benchmark's output)."""

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
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    for key in ("a", "b", "c"):
        assert re.search(rf"^\({key}\) \d[\d,]* symbols? x [\d,]+ bars +ours ", out, re.MULTILINE), out
        assert re.search(rf"^  \({key}\) .*peak RSS after the case [\d,]+ MiB$", out, re.MULTILINE), out
    for key in ("a", "b"):  # backtesting is a dev dependency: both peers must run and fill exactly as ours
        for peer in ("backtrader", "backtesting.py"):
            assert re.search(rf"^\({key}\) .* {re.escape(peer)} .* identical yes$", out, re.MULTILINE), out
        assert re.search(rf"^\({key}\) .* vectorbt +(skipped \(not importable|.* identical yes$)", out, re.M), out
    assert "identical NO" not in out, out
    assert "median of 1 runs per engine" in out, out
    assert re.search(r"^  \(a\) ours >= 25x backtrader: [\d.]+x", out, re.MULTILINE), out
    assert re.search(r"^  \(a\) ours >= 2x backtesting.py: [\d.]+x", out, re.MULTILINE), out
    assert re.search(r"^  \(b\) ours vs vectorbt: ", out, re.MULTILINE), out
    assert re.search(r"^  \(c\) ours >= 3,000,000 bars/s: [\d,]+", out, re.MULTILINE), out
