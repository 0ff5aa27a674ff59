"""A config.yaml for a dashboard process run on its own (no engine): every file and socket under one folder.

Shared by the dashboard's process tests and ``bench/dashboard_latency.py``, which start ``python -m dashboard``
against a folder they write the engine's files into themselves.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from testkit.waiting import free_port

REPO = Path(__file__).resolve().parents[1]


def write_dashboard_config(root: Path, port: int, keys_dir: Path, **dashboard: object) -> Path:
    """The shipped config with logs, state, flags and keys under ``root`` and fresh loopback endpoints;
    ``dashboard`` overrides settings of its section. Returns the file's path."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["system"].update(log_dir=str(root / "logs"), state_dir=str(root / "state"),
                            kill_flag_path=str(root / "flags" / "KILL.flag"),
                            kill_now_flag_path=str(root / "flags" / "KILL_NOW.flag"))  # fmt: skip
    config["operational_risk"].update(
        heartbeat_flag_path=str(root / "logs" / "heartbeat.csv"),
        monitor_heartbeat_path=str(root / "logs" / "risk_monitor_heartbeat.json"),
        order_rate_counter_path=str(root / "logs" / "order_submissions.csv"), command_keys_dir=str(keys_dir),
        heartbeat_endpoint=f"tcp://127.0.0.1:{free_port()}", command_endpoint=f"tcp://127.0.0.1:{free_port()}",
    )  # fmt: skip
    config["dashboard"].update(port=port, token_path=str(keys_dir / "dashboard.token"), **dashboard)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
