"""Smoke test of the session-overhead benchmark: ``--quick`` runs every point, fits a + b*N and prints both
goal lines (no timing checks: the figures belong in the benchmark's output)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "session_overhead.py"


def test_quick_session_overhead_fits_a_and_b_for_both_books() -> None:
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
    for book in ("flat", "held"):
        for n in (1, 5, 20):
            for sessions in (300, 150):
                assert re.search(rf"^{book} +{n} +{sessions} +\d+\.\d+ ", out, re.MULTILINE), out
        a_line = rf"^  {book}: a = -?\d+\.\d+ us per session +\(goal <= 2 us\) +(PASS|ABOVE) \(quick sizes\)$"
        assert re.search(a_line, out, re.MULTILINE), out
        b_line = rf"^  {book}: b = -?\d+\.\d+ ns per symbol +\(goal <= 20 ns/symbol\) +(PASS|ABOVE) \(quick sizes\)$"
        assert re.search(b_line, out, re.MULTILINE), out
        assert re.search(rf"^  {book}: c = -?\d+\.\d+ ms, d = -?\d+\.\d+ us/symbol, a' = ", out, re.MULTILINE), out
