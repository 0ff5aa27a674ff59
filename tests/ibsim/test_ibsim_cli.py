"""``python -m ibsim`` starts a server a real client can use, and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cli_serves_a_client_and_stops(connect_to, eventually) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", "--speed", "600", "--seed", "3"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            match = re.search(r"event=listening host=\S+ port=(\d+)", proc.stderr.readline())
            port = int(match.group(1)) if match else None
        assert port, "ibsim did not report its port"
        client = connect_to(port, 5)
        client.reqCurrentTime()
        eventually(lambda: client.of("currentTime"))
        client.stop()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_cli_rejects_bad_speed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ibsim", "--speed", "0"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--speed" in result.stderr
