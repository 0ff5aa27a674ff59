"""Smoke test of the kill-latency benchmark: one run end to end (ibsim + engine + KILL_NOW flag) reports both
figures. No timing goal is checked here: the figures depend on the machine; the benchmark itself reports them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "kill_latency.py"


def test_one_run_measures_cancel_all_and_flat(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--runs", "1", "--workdir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the benchmark stops its ibsim and engine on the way out
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"kill_latency.py --runs 1 did not finish within 300 s:\n{out}\n{err[-3000:]}")
    assert proc.returncode == 0, out + err
    for figure in ("cancel-all reached ibsim", "flat at ibsim"):
        assert re.search(rf"^{figure}: median \d+ ms  p90 \d+ ms  max \d+ ms", out, re.MULTILINE), out
    assert out.strip().splitlines()[-1] == str(tmp_path)  # the working folder is printed last
