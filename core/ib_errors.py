"""The one table of IB error codes: code -> (our error class, what to do), with the reason for each choice.

``ibapi`` gives no code special treatment: every ``ERR_MSG`` arrives as ``wrapper.error(id, code, text)``, the
2xxx farm notices included (``ib-protocol.md`` section 5). Handlers match on the **code**, never on the text,
and look it up here so that every component (wrapper, data handler, executor, risk monitor) reacts the same way.

``action`` says what the receiving component does now; ``error_class`` names the handling policy from
``core.errors`` that applies when the action does not resolve it (retries exhausted, reconnect given up, order
failed), ``None`` for notices that are not errors. This module does not import ``ibapi``: codes are plain ints.

Unknown codes get a safe default (see ``classify``) and are logged, so a new TWS message never passes silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from core.errors import (
    BrokerTemporaryError,
    ConfigError,
    DataError,
    InvariantViolation,
    OrderRejected,
    TradingSystemError,
)

log = logging.getLogger(__name__)


class IbErrorAction(StrEnum):
    """What the component that received the error does next."""

    IGNORE_INFO = "IGNORE_INFO"  # log at info/warning; nothing to do
    RETRY_BACKOFF = "RETRY_BACKOFF"  # repeat the request later with capped exponential backoff
    RECONNECT = "RECONNECT"  # the link is down: stop sending, let the watchdog wait for/restore the connection
    RESUBSCRIBE = "RESUBSCRIBE"  # market data may have stopped: resubscribe (or watch staleness and resubscribe)
    FAIL_ORDER = "FAIL_ORDER"  # the order with this id will not work: OrderFailedEvent
    FAIL_REQUEST = "FAIL_REQUEST"  # a data request failed for good: that symbol gets no data (quarantined)
    HALT = "HALT"  # our own bookkeeping is broken: trading state -> HALTED


@dataclass(frozen=True, slots=True)
class IbErrorRule:
    """One row of the table: the policy for a code and, briefly, why."""

    error_class: type[TradingSystemError] | None
    action: IbErrorAction
    why: str


@dataclass(frozen=True, slots=True)
class ErrorClassification:
    """The verdict on one ``error(id, code, text)`` callback. ``known`` is False when the default was used."""

    code: int
    message: str
    error_class: type[TradingSystemError] | None
    action: IbErrorAction
    why: str
    known: bool

    def to_exception(self) -> TradingSystemError | None:
        """The exception a caller may raise or wrap (None for notices), carrying the code and IB's text."""
        if self.error_class is None:
            return None
        if self.error_class is OrderRejected:
            return OrderRejected(self.message, code=self.code)
        if self.error_class is ConfigError:
            return ConfigError("IB connection", [f"[{self.code}] {self.message}"])
        return self.error_class(f"IB error {self.code}: {self.message}")


_I = IbErrorAction
IB_ERROR_TABLE: dict[int, IbErrorRule] = {
    # --- farm status notices (id -1) ------------------------------------------------------------------------
    2104: IbErrorRule(None, _I.IGNORE_INFO, "market data farm OK: normal start-up notice"),
    2106: IbErrorRule(None, _I.IGNORE_INFO, "HMDS (historical) farm OK: normal start-up notice"),
    2158: IbErrorRule(None, _I.IGNORE_INFO, "sec-def farm OK: normal start-up notice"),
    2107: IbErrorRule(None, _I.IGNORE_INFO, "HMDS farm inactive but available on demand: TWS reconnects it itself"),
    2108: IbErrorRule(None, _I.IGNORE_INFO, "market data farm inactive but available on demand: reconnects itself"),
    2119: IbErrorRule(None, _I.IGNORE_INFO, "market data farm is connecting: transient, an OK (2104) follows"),
    2100: IbErrorRule(None, _I.IGNORE_INFO, "unsubscribed from account data: we request account data explicitly"),
    2109: IbErrorRule(None, _I.IGNORE_INFO, "outside-RTH attribute ignored: warning, the order still works"),
    2103: IbErrorRule(
        BrokerTemporaryError, _I.RESUBSCRIBE,
        "market data farm broken: bars stop until 2104; watch staleness and resubscribe if they do not resume",
    ),
    2105: IbErrorRule(
        BrokerTemporaryError, _I.RESUBSCRIBE,
        "HMDS farm broken: historical requests stall; re-issue them once 2106 arrives",
    ),
    2157: IbErrorRule(
        BrokerTemporaryError, _I.RETRY_BACKOFF,
        "sec-def farm broken: contract look-ups fail meanwhile, subscriptions are unaffected, so retry look-ups",
    ),
    2110: IbErrorRule(
        BrokerTemporaryError, _I.RECONNECT,
        "TWS <-> IB server connectivity broken: as 1100, wait for restoration before trading",
    ),
    # --- connectivity ---------------------------------------------------------------------------------------
    1100: IbErrorRule(
        BrokerTemporaryError, _I.RECONNECT,
        "IB <-> TWS connectivity lost while our socket stays up: no orders until 1101/1102; the watchdog "
        "reconnects the socket only if restoration does not come in time",
    ),
    1101: IbErrorRule(
        BrokerTemporaryError, _I.RESUBSCRIBE,
        "connectivity restored, data lost: every market data subscription must be requested again",
    ),
    1102: IbErrorRule(
        None, _I.IGNORE_INFO,
        "connectivity restored, data maintained: subscriptions continue (order reconciliation is routine anyway)",
    ),
    1300: IbErrorRule(
        BrokerTemporaryError, _I.RECONNECT, "TWS socket port was reset and this connection is dropped: reconnect",
    ),
    326: IbErrorRule(
        ConfigError, _I.RETRY_BACKOFF,
        "client id in use: a just-crashed instance can hold it for seconds, so retry a few times; if it "
        "persists two processes share the id (engine and monitor need distinct ids) - a configuration error",
    ),
    502: IbErrorRule(BrokerTemporaryError, _I.RECONNECT, "client could not open the TCP connection: reconnect"),
    504: IbErrorRule(BrokerTemporaryError, _I.RECONNECT, "request sent while not connected: reconnect first"),
    507: IbErrorRule(
        BrokerTemporaryError, _I.RECONNECT, "bad message length: the client stops reading, so the socket is dead",
    ),
    509: IbErrorRule(BrokerTemporaryError, _I.RECONNECT, "exception while reading the socket: reconnect"),
    # --- pacing ---------------------------------------------------------------------------------------------
    100: IbErrorRule(
        BrokerTemporaryError, _I.RETRY_BACKOFF,
        "over 50 messages/s: the 9.81 client has no throttle; back off (TWS may disconnect if it continues)",
    ),
    # --- orders ---------------------------------------------------------------------------------------------
    200: IbErrorRule(
        OrderRejected, _I.FAIL_ORDER,
        "no security definition: the order cannot work (for a market-data reqId the data handler "
        "quarantines the symbol instead)",
    ),
    201: IbErrorRule(OrderRejected, _I.FAIL_ORDER, "order rejected by IB (reason in the text): terminal"),
    203: IbErrorRule(OrderRejected, _I.FAIL_ORDER, "security not available or allowed for this account: terminal"),
    202: IbErrorRule(
        None, _I.IGNORE_INFO,
        "cancel confirmed: the ORDER_STATUS 'Cancelled' that comes with it drives the state machine",
    ),
    103: IbErrorRule(
        InvariantViolation, _I.HALT,
        "duplicate order id: our id bookkeeping (journal/nextValidId) is broken; more orders could duplicate",
    ),
    104: IbErrorRule(
        InvariantViolation, _I.HALT,
        "cannot modify a filled order: we never modify, so we reused a finished order's id - bookkeeping broken",
    ),
    105: IbErrorRule(
        InvariantViolation, _I.HALT,
        "modified order does not match the original: we never modify, so an id was reused for another order",
    ),
    110: IbErrorRule(
        OrderRejected, _I.FAIL_ORDER, "price does not conform to the minimum tick: this order cannot be placed",
    ),
    135: IbErrorRule(
        OrderRejected, _I.FAIL_ORDER,
        "IB cannot find the order: it is not working at the broker, so it must not count as working here",
    ),
    161: IbErrorRule(
        None, _I.IGNORE_INFO,
        "cancel attempted in a non-cancellable state: the order is finishing; its final status follows",
    ),
    399: IbErrorRule(
        None, _I.IGNORE_INFO,
        "order message warning (e.g. held until the open): the order is still working, log it",
    ),
    10147: IbErrorRule(
        None, _I.IGNORE_INFO, "cancel of an unknown order id: nothing working to cancel; reconciliation checks",
    ),
    10148: IbErrorRule(
        None, _I.IGNORE_INFO, "cancel of a filled/cancelled order: the fill or cancel status already tells us",
    ),
    10268: IbErrorRule(
        OrderRejected, _I.FAIL_ORDER,
        "eTradeOnly not supported: to_ib_order sets it False, so this means the translation regressed",
    ),
    10269: IbErrorRule(
        OrderRejected, _I.FAIL_ORDER,
        "firmQuoteOnly not supported: to_ib_order sets it False, so this means the translation regressed",
    ),
    # --- market and historical data -------------------------------------------------------------------------
    101: IbErrorRule(DataError, _I.FAIL_REQUEST, "max number of tickers reached: this subscription gets no data"),
    162: IbErrorRule(
        DataError, _I.RETRY_BACKOFF,
        "historical data service error (pacing, no data, cancelled): no bars follow; retry with capped backoff",
    ),
    166: IbErrorRule(
        DataError, _I.FAIL_REQUEST, "HMDS expired-contract violation: the request cannot succeed as asked",
    ),
    300: IbErrorRule(None, _I.IGNORE_INFO, "cancel of an unknown ticker id: nothing to cancel"),
    354: IbErrorRule(
        DataError, _I.FAIL_REQUEST,
        "market data not subscribed: no live data for this symbol, so it must not be traded",
    ),
}
del _I

_WARNING_RANGE = range(2100, 2200)  # IB documents 21xx as warnings: the request or order continues


def classify(code: int, message: str, order_id: int | None = None) -> ErrorClassification:
    """Look up ``code``; ``order_id`` is the IB order id when the error's id is one of *our* orders, else None.

    Unknown codes are logged at warning and defaulted safely: a 21xx code is a warning (IB's documented
    range); otherwise with an order attached the order is failed (an unexplained error on an order must not
    leave it counted as working), and without one the request is retried with backoff.
    """
    rule = IB_ERROR_TABLE.get(code)
    if rule is not None:
        return ErrorClassification(code, message, rule.error_class, rule.action, rule.why, known=True)
    if code in _WARNING_RANGE:
        default = IbErrorRule(None, IbErrorAction.IGNORE_INFO, "unknown 21xx code: IB's warning range")
    elif order_id is not None:
        default = IbErrorRule(
            OrderRejected, IbErrorAction.FAIL_ORDER, "unknown code with an order attached: fail the order"
        )
    else:
        default = IbErrorRule(
            BrokerTemporaryError, IbErrorAction.RETRY_BACKOFF, "unknown code without an order: retry with backoff"
        )
    log.warning(
        "event=ib_error_unknown code=%s order_id=%s action=%s message=%r", code, order_id, default.action, message
    )
    return ErrorClassification(code, message, default.error_class, default.action, default.why, known=False)
