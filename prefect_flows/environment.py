"""Prefect's environment for this project, set before ``prefect`` is first imported (it reads its settings then).

- ``PREFECT_HOME`` inside the checkout (``.prefect/``, git-ignored): the ephemeral server's SQLite database,
  profiles and local result storage stay with the project instead of the user's ``~/.prefect``;
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false``: the server otherwise sends usage data over the network at start-up;
- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90``: the ephemeral server's default 20 s is too short on a busy
  2-core machine or a CI runner (a first start here takes 8-14 s when idle);
- ``PREFECT_SERVER_EPHEMERAL_ENABLED=true`` when no ``PREFECT_API_URL`` is set, so a plain ``python -m ...`` run
  starts its own temporary server whatever profile ``PREFECT_HOME`` holds.

A value the user already exported wins (``setdefault``), except analytics, which stay off.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PREFECT_HOME = PROJECT_ROOT / ".prefect"
EPHEMERAL_STARTUP_TIMEOUT_S = 90
LOCAL_SERVER_API_URL = "http://127.0.0.1:4200/api"  # where `prefect server start` listens by default


def prefect_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the variables above in ``environ`` (default ``os.environ``); returns the values in effect."""
    env = os.environ if environ is None else environ
    env.setdefault("PREFECT_HOME", str(PREFECT_HOME))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_TIMEOUT_S))
    if not env.get("PREFECT_API_URL"):
        env.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
    if environ is None and "prefect" in sys.modules:
        log.warning(
            "event=prefect_already_imported detail=%r",
            "prefect was imported before its environment was set; PREFECT_HOME and timeouts may not apply",
        )
    names = ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
             "PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_API_URL")  # fmt: skip
    return {name: env[name] for name in names if name in env}
