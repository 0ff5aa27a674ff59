"""The dashboard's page load time and its state-change latency, in real headless Chromium against the real process.

Setup: a temporary folder with a config whose files all live there, ``python -m dashboard`` started on a free
loopback port, Debian's Chromium through Playwright (``testkit.browser``). No engine runs: the engine's heartbeat CSV
is written by this script in the engine's exact format (``core.ipc_heartbeat.write_heartbeat_csv``, an atomic
replace), which is how the engine announces its trading state every ``heartbeat_interval_s``.

Measured:

- **load**: the page's navigation timing (``loadEventEnd``: the HTML and its script), the wall time from ``goto``
  to the first snapshot shown (the server-sent event stream open and rendered), and to the charts drawn (the page
  fetches the local plotly.js only after its first picture);
- **state change -> page**: ``--changes`` times (default 20), the trading state in the heartbeat flips
  (ACTIVE <-> REDUCING); a ``MutationObserver`` on the page's state badge stamps ``Date.now()`` when the new text
  appears; latency = that stamp minus the wall clock just before the file was replaced (both the host's clock, ms
  resolution). Changes are spaced by a random 0.3-1.0 s so they do not lock onto the collector's refresh phase.
  This is the dashboard's own part; an engine adds up to one heartbeat interval before the file says it (a command
  from the page is faster: the reply carries the new state, see tests/e2e/test_dashboard_browser.py).

Usage: ``python bench/dashboard_latency.py [--changes 20] [--seed 7]``. Prints the figures; exit 0.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import WallClock  # after the sys.path line: runs from anywhere
from core.events import TradingState
from core.ipc_heartbeat import Heartbeat, write_heartbeat_csv
from testkit.browser import headless_page, missing_browser_reason
from testkit.dashboard_config import write_dashboard_config
from testkit.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[1]
OBSERVER = """() => { window.stateChanges = []; const badge = document.querySelector('#trading-state');
  new MutationObserver(() => window.stateChanges.push([Date.now(), badge.textContent]))
    .observe(badge, {childList: true, characterData: true, subtree: true}); }"""


def write_config(root: Path, port: int) -> Path:
    return write_dashboard_config(root, port, root / "keys")


def beat(path: Path, seq: int, state: TradingState) -> int:
    """Replace the heartbeat file; returns the wall clock (ms) just before the replace."""
    now_ns = WallClock().now_ns()
    write_heartbeat_csv(path, Heartbeat(seq=seq, ts_ns=now_ns, pid=os.getpid(), trading_state=state,
                                        equity=100_000.0, drawdown_pct=0.0))  # fmt: skip
    return now_ns // 1_000_000


def measure(root: Path, changes: int, rng: random.Random) -> dict[str, object]:
    port = free_port()
    config = write_config(root, port)
    heartbeat = root / "logs" / "heartbeat.csv"
    heartbeat.parent.mkdir(parents=True, exist_ok=True)
    beat(heartbeat, 1, TradingState.ACTIVE)
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        eventually(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30, "the dashboard to serve")
        token = (root / "keys" / "dashboard.token").read_text().strip()
        with headless_page() as page:
            started = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/?token={token}")
            page.wait_for_function("document.querySelector('#trading-state').textContent === 'ACTIVE'")
            first_data_ms = (time.perf_counter() - started) * 1000
            load_ms = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            page.wait_for_function("window.chartsDrawn !== undefined", timeout=60_000)
            charts_ms = (time.perf_counter() - started) * 1000
            page.evaluate(OBSERVER)
            latencies = []
            state = TradingState.ACTIVE
            for seq in range(2, changes + 2):
                time.sleep(rng.uniform(0.3, 1.0))
                state = TradingState.REDUCING if state is TradingState.ACTIVE else TradingState.ACTIVE
                seen = len(page.evaluate("window.stateChanges"))
                written_ms = beat(heartbeat, seq, state)
                page.wait_for_function(f"window.stateChanges.slice({seen}).some(c => c[1] === '{state.value}')")
                stamp = next(c[0] for c in page.evaluate("window.stateChanges")[seen:] if c[1] == state.value)
                latencies.append(stamp - written_ms)
    finally:
        proc.terminate()
        proc.wait(10)
    return {"load_ms": load_ms, "first_data_ms": first_data_ms, "charts_ms": charts_ms, "latencies_ms": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=20, help="state changes to time (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="spacing of the changes (default %(default)s)")
    args = parser.parse_args(argv)
    reason = missing_browser_reason()
    if reason is not None:
        print(f"dashboard_latency: cannot run: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        result = measure(Path(tmp), args.changes, random.Random(args.seed))
    latencies = sorted(result["latencies_ms"])  # type: ignore[arg-type]
    print(f"page load (navigation loadEventEnd): {result['load_ms']:.0f} ms")
    print(f"goto -> first snapshot shown: {result['first_data_ms']:.0f} ms")
    print(f"goto -> charts drawn (plotly.js loaded after the first snapshot): {result['charts_ms']:.0f} ms")
    print(f"state change -> page, {len(latencies)} changes: median {statistics.median(latencies):.0f} ms, "
          f"min {latencies[0]:.0f} ms, max {latencies[-1]:.0f} ms")
    print("  all (ms): " + " ".join(f"{v:.0f}" for v in latencies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
