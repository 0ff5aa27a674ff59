"""The dashboard as a real process (``python -m dashboard``) with no engine at all: loopback only, the token on every
route, commands answered when nothing listens, and the page still served; no browser needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.clock import WallClock
from core.events import TradingState
from core.ipc_heartbeat import Heartbeat, write_heartbeat_csv
from testkit.dashboard_config import write_dashboard_config
from testkit.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Dashboard:
    proc: subprocess.Popen[str]
    base: str
    token: str
    root: Path
    port: int

    def request(self, path: str, *, token: str | None = None, method: str = "GET", body: object = None,
                header: bool = True, timeout_s: float = 10) -> tuple[int, str]:  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if token is not None and header:
            headers["X-Dashboard-Token"] = token
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as response:
                return response.status, response.read(200_000).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def state(self) -> dict:
        status, text = self.request("/api/state", token=self.token)
        assert status == 200, text
        return json.loads(text)


def write_config(root: Path, port: int, **dashboard: object) -> Path:
    return write_dashboard_config(root, port, root / "state" / "keys", command_timeout_s=0.5, **dashboard)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    port = free_port()
    config = write_config(tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        def serving() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        eventually(serving, 30, "the dashboard to accept connections")
        token = (tmp_path / "state" / "keys" / "dashboard.token").read_text().strip()
        yield Dashboard(proc, f"http://127.0.0.1:{port}", token, tmp_path, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("path", ["/", "/api/state", "/api/charts", "/events", "/static/plotly.min.js"])
def test_every_route_refuses_a_missing_or_wrong_token(dashboard: Dashboard, path: str) -> None:
    assert dashboard.request(path)[0] == 401
    assert dashboard.request(path, token="not-the-token")[0] == 401
    assert dashboard.request(f"{path}?token=not-the-token")[0] == 401


def test_the_page_its_data_and_plotly_are_served_with_the_token(dashboard: Dashboard) -> None:
    status, page = dashboard.request(f"/?token={dashboard.token}")
    assert status == 200 and '"/static/plotly.min.js"' in page and "cdn" not in page.lower()
    status, script = dashboard.request("/static/plotly.min.js", token=dashboard.token)
    assert status == 200 and "plotly" in script.lower()


def test_commands_need_the_header_and_a_matching_confirmation(dashboard: Dashboard) -> None:
    body = {"action": "HALT", "confirm": "HALT"}
    assert dashboard.request("/api/command", method="POST", body=body)[0] == 401
    assert dashboard.request(f"/api/command?token={dashboard.token}", method="POST", body=body)[0] == 401
    status, text = dashboard.request("/api/command", token=dashboard.token, method="POST",
                                     body={"action": "HALT", "confirm": "FLATTEN"})  # fmt: skip
    assert status == 400 and "confirm must repeat the action" in text
    status, text = dashboard.request("/api/command", token=dashboard.token, method="POST",
                                     body={"action": "REMOVE_KILL", "confirm": "REMOVE_KILL"})  # fmt: skip
    assert status == 400 and "action must be one of" in text


def test_it_listens_on_loopback_only(dashboard: Dashboard) -> None:
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == dashboard.port:
                listening.append(local.rsplit(":", 1)[0])
    assert listening == ["0100007F"], listening  # 127.0.0.1, nothing on 0.0.0.0 or ::


def test_a_non_loopback_host_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), host="0.0.0.0")
    result = subprocess.run([sys.executable, "-m", "dashboard", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "dashboard.host" in result.stderr and "loopback" in result.stderr


def test_it_survives_the_engine_being_gone(dashboard: Dashboard) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    beat = Heartbeat(seq=5, ts_ns=WallClock().now_ns(), pid=int(dead.stdout), trading_state=TradingState.ACTIVE,
                     equity=100_000.0, drawdown_pct=0.0)  # fmt: skip
    write_heartbeat_csv(dashboard.root / "logs" / "heartbeat.csv", beat)
    eventually(lambda: dashboard.state()["engine"]["mark"] == "GONE", 10, "the engine marked GONE")
    status, text = dashboard.request("/api/command", token=dashboard.token, method="POST",
                                     body={"action": "HALT", "confirm": "HALT"})  # fmt: skip
    assert status == 200 and json.loads(text)["code"] == "NO_REPLY" and not json.loads(text)["ok"]
    status, text = dashboard.request("/api/command", token=dashboard.token, method="POST",
                                     body={"action": "KILL_NOW", "confirm": "KILL_NOW"})  # fmt: skip
    assert status == 200 and json.loads(text)["code"] == "FLAG_WRITTEN"
    assert "source=dashboard" in (dashboard.root / "flags" / "KILL_NOW.flag").read_text()
    eventually(lambda: dashboard.state()["flags"]["kill_now"], 10, "the KILL_NOW flag on the page")
    assert dashboard.proc.poll() is None
    assert dashboard.request("/", token=dashboard.token)[0] == 200


def test_the_event_stream_sends_snapshots(dashboard: Dashboard) -> None:
    req = urllib.request.Request(dashboard.base + "/events", headers={"X-Dashboard-Token": dashboard.token})
    with urllib.request.urlopen(req, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = [stream.readline().decode() for _ in range(4)]
    event = next(line for line in lines if line.startswith("data: "))
    snapshot = json.loads(event[len("data: "):])
    assert snapshot["engine"]["mark"] == "NO_HEARTBEAT" and snapshot["monitor"]["mark"] == "NO_HEARTBEAT"


def test_the_token_file_is_private(dashboard: Dashboard) -> None:
    assert os.stat(dashboard.root / "state" / "keys" / "dashboard.token").st_mode & 0o777 == 0o600


def test_sigterm_ends_the_process_promptly_with_a_page_open(dashboard: Dashboard) -> None:
    req = urllib.request.Request(dashboard.base + "/events", headers={"X-Dashboard-Token": dashboard.token})
    with urllib.request.urlopen(req, timeout=10) as stream:
        assert stream.readline()  # the stream is open, as with a page left open in a browser
        began = time.monotonic()
        dashboard.proc.terminate()
        assert dashboard.proc.wait(8) == 0
    assert time.monotonic() - began < 2.5  # the stream ends at once, not after the 3-s graceful-shutdown cap


def test_a_non_finite_number_in_a_source_is_served_as_null(dashboard: Dashboard) -> None:
    """The monitor's heartbeat JSON may carry NaN (Python's json writes it): the page's JSON.parse would refuse the
    whole snapshot and freeze on the previous one, and /api/state's encoder would answer 500."""
    body = {"ts_ns": WallClock().now_ns(), "pid": os.getpid(), "state": "NORMAL",
            "broker": {"net_liquidation": float("nan"), "positions": {}}}  # fmt: skip
    (dashboard.root / "logs" / "risk_monitor_heartbeat.json").write_text(json.dumps(body), encoding="utf-8")
    eventually(lambda: dashboard.state()["monitor"]["mark"] == "ALIVE", 10, "the monitor's beat read")
    assert dashboard.state()["equity"]["broker_net_liquidation"] is None
    req = urllib.request.Request(dashboard.base + "/events", headers={"X-Dashboard-Token": dashboard.token})
    with urllib.request.urlopen(req, timeout=10) as stream:
        events = [line for line in (stream.readline().decode() for _ in range(4)) if line.startswith("data: ")]
    assert "NaN" not in events[0] and json.loads(events[0][len("data: "):])["monitor"]["mark"] == "ALIVE"
