"""Local-only IPC: the engine's endpoints cannot be reached, squatted or faked by anyone else on the machine.

Real ZeroMQ sockets and real processes. Attacks tried:
- another OS user connecting to the Unix sockets (as ``nobody`` when the test runs as root, else skipped);
- a second binder on a live ``ipc://`` endpoint (a second engine), a file planted at the socket path;
- a process squatting the TCP heartbeat port: the engine refuses to start naming the key (no traceback), and a
  foreign publisher on that port cannot feed the monitor's CURVE subscriber a single beat.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
import zmq

from core.clock import WallClock
from core.events import TradingState
from core.ipc_endpoints import EndpointUnavailable, bind_private
from core.ipc_heartbeat import HeartbeatCurve, HeartbeatPublisher, HeartbeatSubscriber
from core.ipc_keys import ensure_keys
from testkit.crash_cycles import fast_trading_config
from testkit.waiting import eventually, free_port

REPO = Path(__file__).resolve().parents[2]
KEY = "operational_risk.heartbeat_endpoint"


def short_dir(tmp_path: Path) -> Path:
    """A folder whose socket paths stay under the 107-byte Unix limit (pytest's tmp paths can be long)."""
    folder = Path("/tmp") / f"ipc-{os.getpid()}-{abs(hash(tmp_path)) % 10**6}"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def run_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = short_dir(tmp_path)
    try:
        yield folder / "run"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_ipc_bind_is_private_to_this_user(run_dir: Path) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    try:
        bound = bind_private(sock, f"ipc://{run_dir}/hb.sock", KEY)
        assert bound == f"ipc://{run_dir}/hb.sock"
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE((run_dir / "hb.sock").stat().st_mode) == 0o600
    finally:
        sock.close(0)
        context.term()


def test_an_existing_folder_is_tightened(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, mode=0o755)
    os.chmod(run_dir, 0o755)
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    try:
        bind_private(sock, f"ipc://{run_dir}/hb.sock", KEY)
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    finally:
        sock.close(0)
        context.term()


def test_a_live_endpoint_is_refused_and_a_stale_one_replaced(run_dir: Path) -> None:
    endpoint = f"ipc://{run_dir}/cmd.sock"
    context = zmq.Context()
    first, second = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
    try:
        bind_private(first, endpoint, "operational_risk.command_endpoint")
        with pytest.raises(EndpointUnavailable, match=r"command_endpoint: a live process already listens"):
            bind_private(second, endpoint, "operational_risk.command_endpoint")
    finally:
        first.close(0)
        second.close(0)
        context.term()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a socket file nobody listens on (a crash's)
    stale.bind(str(run_dir / "stale.sock"))
    stale.close()
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    try:
        bind_private(sock, f"ipc://{run_dir}/stale.sock", KEY)
    finally:
        sock.close(0)
        context.term()


def test_a_file_planted_at_the_socket_path_is_left_alone_and_refused(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    planted = run_dir / "hb.sock"
    planted.write_text("not a socket")
    context = zmq.Context()
    sock = context.socket(zmq.PUB)
    try:
        with pytest.raises(EndpointUnavailable, match="exists and is not a socket"):
            bind_private(sock, f"ipc://{planted}", KEY)
    finally:
        sock.close(0)
        context.term()
    assert planted.read_text() == "not a socket"


SYSTEM_PYTHON = "/usr/bin/python3"  # the probe needs only the standard library; nobody may not read our venv


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None or not Path(SYSTEM_PYTHON).exists(),
                    reason="needs root, runuser and /usr/bin/python3 to act as a second OS user (nobody)")  # fmt: skip
def test_another_user_cannot_connect_to_the_unix_sockets(run_dir: Path) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    try:
        bind_private(sock, f"ipc://{run_dir}/cmd.sock", KEY)
        os.chmod(run_dir.parent, 0o755)  # the test's own folder is traversable; the run folder is the barrier
        probe = textwrap.dedent(f"""
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect({str(run_dir / "cmd.sock")!r})
                print("CONNECTED")
            except OSError as exc:
                print("REFUSED", type(exc).__name__)
        """)
        result = subprocess.run(["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", probe],
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert result.stdout.strip() == "REFUSED PermissionError", result.stdout + result.stderr
    finally:
        sock.close(0)
        context.term()


def test_a_squatted_tcp_heartbeat_port_stops_the_engine_with_exit_2(tmp_path: Path) -> None:
    port = free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        config = tmp_path / "config.yaml"  # the e2e config; its relative paths land under tmp_path (the cwd)
        raw = fast_trading_config(free_port(), f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{free_port()}")
        config.write_text(yaml.safe_dump(raw))
        result = subprocess.run([sys.executable, str(REPO / "main.py"), "--config", str(config)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        squatter.close()
    assert result.returncode == 2, result.stderr
    assert f"operational_risk.heartbeat_endpoint: cannot bind tcp://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    journal = tmp_path / "state" / "order_journal.jsonl"
    assert not journal.exists() or journal.read_bytes() == b""


FAKE_PUBLISHER = textwrap.dedent("""
    import sys, time, zmq
    from core.clock import WallClock
    from core.events import TradingState
    from core.ipc_heartbeat import TOPIC, Heartbeat, encode_heartbeat
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(sys.argv[1])
    print("BOUND", flush=True)
    for seq in range(1, 400):
        beat = Heartbeat(seq=seq, ts_ns=WallClock().now_ns(), pid=4242, trading_state=TradingState.ACTIVE,
                         equity=1.0, drawdown_pct=0.0)
        pub.send_multipart([TOPIC, encode_heartbeat(beat)])
        time.sleep(0.01)
""")


def test_a_foreign_publisher_cannot_feed_the_monitors_curve_subscriber(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    ensure_keys(keys, ("risk_monitor", "operator"))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    clock = WallClock()
    fake = subprocess.Popen([sys.executable, "-c", FAKE_PUBLISHER, endpoint], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "BOUND"
        with HeartbeatSubscriber(endpoint, clock, curve_client=(keys, "risk_monitor")) as sub:
            for _ in range(100):  # 2 s of the fake's beats: none can pass the CURVE handshake
                assert sub.poll(0.02) is None
            assert sub.received_count == 0
    finally:
        fake.kill()
        fake.wait(10)
    # the engine's own publisher, with the engine's keys, reaches the same subscriber at once
    curve = HeartbeatCurve(keys, ("risk_monitor", "operator"))
    with HeartbeatPublisher(csv_path=None, clock=clock, endpoint=endpoint, curve=curve) as pub, \
            HeartbeatSubscriber(endpoint, clock, curve_client=(keys, "risk_monitor")) as sub:  # fmt: skip

        def beat_arrived() -> bool:
            pub.beat(trading_state=TradingState.ACTIVE, equity=1.0, drawdown_pct=0.0)
            return sub.poll(0.02) is not None

        eventually(beat_arrived, timeout_s=10)


def test_an_unauthorized_subscriber_gets_no_beat_from_the_curve_publisher(tmp_path: Path) -> None:
    keys, other = tmp_path / "keys", tmp_path / "other-keys"
    ensure_keys(keys, ("risk_monitor", "operator"))
    ensure_keys(other, ("risk_monitor",))  # a key pair the engine never authorized
    (other / "server.key").write_bytes((keys / "server.key").read_bytes())  # it knows the engine's public key
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    clock = WallClock()
    curve = HeartbeatCurve(keys, ("risk_monitor", "operator"))
    with HeartbeatPublisher(csv_path=None, clock=clock, endpoint=endpoint, curve=curve) as pub, \
            HeartbeatSubscriber(endpoint, clock, curve_client=(other, "risk_monitor")) as sub:  # fmt: skip
        for _ in range(100):
            pub.beat(trading_state=TradingState.ACTIVE, equity=1.0, drawdown_pct=0.0)
            assert sub.poll(0.02) is None
