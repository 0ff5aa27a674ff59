"""The trading state: one machine, one transition table, one pre-trade check (NautilusTrader's RiskEngine pattern).

Every reason the system has to trade less is held here, and nowhere else:

- ``STARTING``: not yet reconciled with the broker; no order at all (live only: a backtest starts ACTIVE).
- ``ACTIVE``: normal trading.
- ``REDUCING``: only orders that move a position toward zero, while at least one ``Reason`` is held
  (drawdown from the risk manager; the risk monitor's heartbeat stale or never seen; an operator's FLATTEN). Each
  reason is set and cleared by its owner alone, so one reason clearing never lifts another.
- ``HALTED``: no new order for the life of the process, with its cause (the first one stays). Closing positions
  is then the flatten path's job (it bypasses this check: flatten orders only shrink exposure).

Events move the state through ``TRANSITIONS``, the literal table below; ``None`` there means "REDUCING while a
reason is held, else ACTIVE". Reasons may be set while STARTING: they take effect once reconciled. The backtester
uses the same object and simply never sees the live-only reasons or STARTING.

Dispatcher thread only; pure apart from logging.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

from core.events import OrderEvent, TradingState
from portfolio.pre_trade import Rejection, describe, reduces_position

log = logging.getLogger(__name__)

Transition = tuple[int, TradingState, TradingState, str]


class Reason(StrEnum):
    """Why trading is REDUCING; each has exactly one owner that sets and clears it."""

    DRAWDOWN = "drawdown"  # portfolio.risk_manager: drawdown past risk.reducing_drawdown_pct
    MONITOR_STALE = "monitor_stale"  # live engine: the risk monitor's heartbeat is stale (policy reducing)
    MONITOR_NEVER_SEEN = "monitor_never_seen"  # live engine: no fresh monitor beat yet (policy refuse_start)
    OPERATOR = "operator"  # live engine: an operator's or the monitor's FLATTEN: no new exposure afterwards


class Event(StrEnum):
    RECONCILED = "reconciled"  # the broker's positions matched the books
    REDUCE = "reduce"  # a reason was set
    CLEAR = "clear"  # a reason was cleared
    HALT = "halt"


S, E = TradingState, Event
BY_REASONS = None  # REDUCING while any reason is held, else ACTIVE
TRANSITIONS: Mapping[tuple[TradingState, Event], TradingState | None] = {
    (S.STARTING, E.RECONCILED): BY_REASONS,
    (S.STARTING, E.REDUCE): S.STARTING,
    (S.STARTING, E.CLEAR): S.STARTING,
    (S.STARTING, E.HALT): S.HALTED,
    (S.ACTIVE, E.RECONCILED): S.ACTIVE,
    (S.ACTIVE, E.REDUCE): S.REDUCING,
    (S.ACTIVE, E.CLEAR): S.ACTIVE,
    (S.ACTIVE, E.HALT): S.HALTED,
    (S.REDUCING, E.RECONCILED): S.REDUCING,
    (S.REDUCING, E.REDUCE): S.REDUCING,
    (S.REDUCING, E.CLEAR): BY_REASONS,
    (S.REDUCING, E.HALT): S.HALTED,
    (S.HALTED, E.RECONCILED): S.HALTED,
    (S.HALTED, E.REDUCE): S.HALTED,
    (S.HALTED, E.CLEAR): S.HALTED,
    (S.HALTED, E.HALT): S.HALTED,
}


class TradingStateMachine:
    """Owns the trading state, its reasons and the halt cause; ``check`` is the state's one pre-trade check."""

    def __init__(self, *, starting: bool = False) -> None:
        self.state = TradingState.STARTING if starting else TradingState.ACTIVE
        self.reasons: dict[Reason, str] = {}  # reason -> what its owner said when setting it
        self.halt_cause: str | None = None
        self.transitions: list[Transition] = []

    def holds(self, reason: Reason) -> bool:
        return reason in self.reasons

    def reconciled(self, now_ns: int) -> TradingState:
        return self._apply(Event.RECONCILED, now_ns, "reconciled with the broker")

    def reduce(self, reason: Reason, detail: str, now_ns: int) -> TradingState:
        """Hold ``reason`` (its detail is updated if it is held already; only a new reason is a transition)."""
        new = reason not in self.reasons
        self.reasons[reason] = detail
        return self._apply(Event.REDUCE, now_ns, f"{reason}: {detail}") if new else self.state

    def clear(self, reason: Reason, now_ns: int, detail: str = "") -> TradingState:
        if self.reasons.pop(reason, None) is None:
            return self.state
        return self._apply(Event.CLEAR, now_ns, f"{reason} cleared" + (f": {detail}" if detail else ""))

    def halt(self, cause: str, now_ns: int) -> TradingState:
        """HALTED for the life of the process; the first cause stays (a later one is logged and ignored)."""
        if self.state is TradingState.HALTED:
            log.info('event=halt_ignored state=HALTED cause="%s" halt_cause="%s"', cause, self.halt_cause)
            return self.state
        self.halt_cause = cause
        return self._apply(Event.HALT, now_ns, cause)

    def check(self, order: OrderEvent, positions: Mapping[str, int]) -> Rejection | None:
        """The trading state's pre-trade check: STARTING and HALTED refuse everything, REDUCING what does not shrink
        a position (decided from the positions, not from the order's reduce-only flag)."""
        state = self.state
        if state is TradingState.ACTIVE:
            return None
        if state is TradingState.HALTED:
            return Rejection("trading_state", f"{describe(order)}: trading is HALTED ({self.halt_cause}); no order is "
                             "accepted for the rest of this process, positions are closed only by the flatten path.")
        if state is TradingState.STARTING:
            return Rejection("trading_state", f"{describe(order)}: trading is STARTING (not yet reconciled with the "
                             "broker); no order is sent before the broker's positions are known.")
        position = positions.get(order.symbol, 0)
        if reduces_position(order.side, order.quantity, position):
            return None
        after = position + order.side.sign * order.quantity
        claim = "is marked reduce-only but " if order.reduce_only else ""
        why = "; ".join(f"{reason}: {detail}" for reason, detail in self.reasons.items())
        return Rejection("trading_state", f"{describe(order)}: trading is REDUCING ({why}) and the order {claim}would "
                         f"take the position from {position:,} to {after:,} shares instead of toward zero; only "
                         "orders that shrink a position are accepted until every reason has cleared.")

    def describe(self) -> dict[str, object]:
        """Plain JSON for heartbeat, STATUS and logs: the state, its reasons and the halt cause."""
        return {"state": self.state.value, "reasons": {str(r): d for r, d in self.reasons.items()},
                "halt_cause": self.halt_cause}  # fmt: skip

    def _apply(self, event: Event, now_ns: int, why: str) -> TradingState:
        previous = self.state
        target = TRANSITIONS[(previous, event)]
        if target is BY_REASONS:
            target = TradingState.REDUCING if self.reasons else TradingState.ACTIVE
        if target is not previous:
            self.state = target
            self.transitions.append((now_ns, previous, target, why))
            level = logging.INFO if target is TradingState.ACTIVE else logging.WARNING
            log.log(level, 'event=trading_state_changed from=%s to=%s event=%s ts_ns=%d reason="%s"', previous,
                    target, event, now_ns, why)  # fmt: skip
        return self.state
