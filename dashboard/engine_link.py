"""The dashboard's two ways to act on the engine: the authenticated command channel and the KILL_NOW flag.

Commands go through ``core.ipc_commands.CommandClient`` with the dashboard's own CURVE key
(``dashboard.client_name``; the engine accepts it when the name is in ``operational_risk.command_authorized_clients``;
``ensure_keys`` creates the keypair on the first run of either process). KILL_NOW is the file the engine and the
monitor both watch (``monitor.flags.write_kill_flag``: a line appended, never removed). Removing a kill flag is not
offered here: restarting trading after a kill stays an operator's shell action.

Thread-safe: ``CommandClient.send`` serializes on its own lock (the collector's STATUS and a person's HALT).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from core.clock import WallClock
from core.config_models import AppConfig
from core.errors import TradingSystemError
from core.ipc_commands import CommandClient, CommandReply, ReplyCode
from core.ipc_keys import ensure_keys
from monitor.flags import write_kill_flag

log = logging.getLogger(__name__)

OPERATOR_VERBS = ("HALT", "CANCEL_ALL", "FLATTEN")
ACTIONS = (*OPERATOR_VERBS, "KILL_NOW")


class EngineLink:
    """Sends STATUS and the operator verbs; writes KILL_NOW. Every call returns a plain-JSON result, never raises."""

    def __init__(self, config: AppConfig) -> None:
        ops, dash = config.operational_risk, config.dashboard
        self._config = config
        self._keys_dir = Path(ops.command_keys_dir)
        self._endpoint = ops.command_endpoint
        self._client_name = dash.client_name
        self._authorized = dash.client_name in ops.command_authorized_clients
        self._client: CommandClient | None = None

    def _ensure_client(self) -> CommandClient:
        if self._client is None:
            ensure_keys(self._keys_dir, self._config.operational_risk.command_authorized_clients)
            self._client = CommandClient(self._endpoint, self._keys_dir, self._client_name, WallClock())
        return self._client

    def send(self, verb: str, timeout_s: float, reason: str) -> dict[str, Any]:
        """One command; the reply as ``{"ok", "code", "message", "data"}`` (NO_REPLY when the engine is silent)."""
        if not self._authorized:
            return _result(CommandReply.refused(ReplyCode.UNAUTHENTICATED, (
                f"dashboard.client_name {self._client_name!r} is not in operational_risk.command_authorized_clients; "
                "add it there and restart the engine")))  # fmt: skip
        try:
            reply = self._ensure_client().send(verb, timeout_s, reason=reason)
        except (TradingSystemError, OSError, ValueError) as exc:
            log.warning("event=dashboard_command_failed verb=%s error=%s", verb, exc)
            return {"ok": False, "code": "UNREACHABLE", "message": str(exc), "data": {}}
        return _result(reply)

    def kill_now(self, reason: str) -> dict[str, Any]:
        """Write ``system.kill_now_flag_path``: the engine cancels and flattens at once; the monitor watches it."""
        path = Path(self._config.system.kill_now_flag_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_kill_flag(path, {"source": "dashboard", "pid": os.getpid(), "reason": reason,
                                   "ts_ns": WallClock().now_ns()})  # fmt: skip
        except OSError as exc:
            return {"ok": False, "code": "FLAG_NOT_WRITTEN", "message": f"cannot write {path}: {exc}", "data": {}}
        return {"ok": True, "code": "FLAG_WRITTEN", "message": f"{path} written: the engine cancels and flattens",
                "data": {"flag": str(path)}}  # fmt: skip

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _result(reply: CommandReply) -> dict[str, Any]:
    return {"ok": reply.ok, "code": reply.code.value, "message": reply.message, "data": dict(reply.data)}
