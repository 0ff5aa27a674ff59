"""The engine's answer to command-channel verbs (``core.ipc_commands``): STATUS, HALT, CANCEL_ALL, FLATTEN.

Authentication, replay protection and the wire format belong to ``CommandServer``; this module only maps an
authenticated ``Command`` to an engine action and builds the reply. Every reply carries the resulting state
(``status()`` after the action), so the caller sees at once what its command did.

Semantics (all idempotent, so a client's retry after a lost reply is harmless):

- STATUS: read-only.
- HALT: trading state HALTED for the life of the process (no new orders); working orders are cancelled and
  positions flattened when ``portfolio.risk.flatten_on_halt`` says so (``LiveManager.halt``).
- CANCEL_ALL: cancel every working order (``IbExecutor.cancel_all``); the trading state is unchanged.
- FLATTEN: cancel all, then close every position with market orders; no new exposure afterwards.

Threads: ``CommandServer.serve_once`` calls ``handle`` on the engine's dispatcher thread, so the actions may
touch engine state without locks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from core.ipc_commands import Command, CommandReply, CommandVerb, ReplyCode

log = logging.getLogger(__name__)


class EngineControls(Protocol):
    """What the command handler may do to the engine (``live.engine.Engine`` implements it)."""

    def status(self) -> Mapping[str, Any]: ...

    def halt(self, reason: str) -> None: ...

    def cancel_all(self, reason: str) -> None: ...

    def flatten(self, reason: str) -> None: ...


class CommandHandler:
    """``CommandServer`` handler: verb -> engine action -> ``CommandReply`` with the resulting status."""

    def __init__(self, engine: EngineControls) -> None:
        self._engine = engine

    def __call__(self, command: Command) -> CommandReply:
        return self.handle(command)

    def handle(self, command: Command) -> CommandReply:
        reason = f"command {command.verb} from {command.client_name}" + (
            f": {command.reason}" if command.reason else ""
        )
        # STATUS is read-only and polled (the dashboard asks every few seconds): kept out of the warnings
        level = logging.DEBUG if command.verb is CommandVerb.STATUS else logging.WARNING
        log.log(level, "event=command_received verb=%s client=%s nonce=%d reason=%r", command.verb,
                command.client_name, command.nonce, command.reason)  # fmt: skip
        if command.verb is CommandVerb.STATUS:
            return CommandReply.accepted("status", self._engine.status())
        if command.verb is CommandVerb.HALT:
            self._engine.halt(reason)
            message = "halted: no new orders"
        elif command.verb is CommandVerb.CANCEL_ALL:
            self._engine.cancel_all(reason)
            message = "cancel of every working order requested"
        elif command.verb is CommandVerb.FLATTEN:
            self._engine.flatten(reason)
            message = "cancel all requested, closing orders sent for every position"
        else:  # CommandServer already refuses unknown verbs; kept for a verb added there but not here
            return CommandReply.refused(ReplyCode.REJECTED, f"verb {command.verb} is not handled by this engine")
        status = self._engine.status()
        log.warning("event=command_done verb=%s client=%s state=%s", command.verb, command.client_name,
                    status.get("state"))  # fmt: skip
        return CommandReply.accepted(message, status)
