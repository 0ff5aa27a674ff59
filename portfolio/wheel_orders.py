"""Orders of ``order_type: WHEEL`` strategies: the AlgoWheel picks MOC, LOC, IB Adaptive or TWAP for each one.

The same object runs in the backtester and in the live engine (the portfolio manager calls it once it has sized an
order), so a backtest and the engine choose the same way from the same facts:

- size/ADV from the portfolio manager's ADV, the 20-day volatility from its close history (annualized, √252),
  the spread the cost model assumes (the daily and 5-s bars carry no quotes; ``costs.slippage.half_spread_bps``
  × 2), the price collar for LOC's limit;
- the session facts at the moment the order can first trade (``session_at``): decisions are taken on a daily
  close, so that is the next session's open; during a session it is now. Minutes to the auction cut-off and to
  the close come from the XNYS calendar, half days included, so the guard rails (MOC/LOC before the cut-off,
  TWAP only with enough session left) see the real session.

What comes back is the order's type and limit plus an ``ExecutionChoice`` (the IB algo and its parameters, the
policy id, the propensity and the wheel's full decision record, with the raw context), which the executor sends
and journals and TCA keeps, so a new policy can be evaluated offline on exactly what this one saw.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

import pandas as pd

from core.config_models import AppConfig, StrategiesConfig
from core.events import ExecutionChoice, OrderType, Side
from portfolio.algo_wheel import AlgoWheel, SessionClock, WheelContext

log = logging.getLogger(__name__)

NS_PER_MINUTE = 60_000_000_000
FALLBACK_ORDER_TYPE = OrderType.MKT  # no arm eligible, or an unusable context: the next open, as a MKT order


class WheelCalendar(Protocol):
    """What ``session_at`` needs of ``data.calendar.TradingCalendar``."""

    @property
    def tz(self) -> tzinfo: ...

    def is_session(self, date: Any) -> bool: ...

    def next_session(self, date: Any) -> pd.Timestamp: ...

    def session_open_ns(self, dates: Any) -> Any: ...

    def session_close_ns(self, dates: Any) -> Any: ...

    def is_half_day(self, date: Any) -> bool: ...


def session_at(calendar: WheelCalendar, ts_ns: int, auction_cutoff_minutes: float) -> tuple[SessionClock, int]:
    """The session facts at the first moment an order decided at ``ts_ns`` can trade, and that moment (UTC ns).

    Inside a session: now. Before its open: the open. After its close, or on a non-session day: the next
    session's open. ``auction_cutoff_minutes`` before the close is the exchange's MOC/LOC cut-off.
    """
    day = pd.Timestamp(ts_ns, unit="ns", tz="UTC").tz_convert(calendar.tz).tz_localize(None).normalize()
    if not calendar.is_session(day):
        day = calendar.next_session(day)
    open_ns, close_ns = _bounds(calendar, day)
    if ts_ns >= close_ns:
        day = calendar.next_session(day)
        open_ns, close_ns = _bounds(calendar, day)
    active_ns = max(ts_ns, open_ns)
    cutoff_ns = close_ns - int(auction_cutoff_minutes * NS_PER_MINUTE)
    clock = SessionClock(minutes_to_auction_cutoff=(cutoff_ns - active_ns) / NS_PER_MINUTE,
                         minutes_to_close=(close_ns - active_ns) / NS_PER_MINUTE, regular_hours=True,
                         half_day=calendar.is_half_day(day))  # fmt: skip
    return clock, active_ns


def _bounds(calendar: WheelCalendar, day: pd.Timestamp) -> tuple[int, int]:
    dates = pd.DatetimeIndex([day])
    return int(calendar.session_open_ns(dates)[0]), int(calendar.session_close_ns(dates)[0])


@dataclass(frozen=True, slots=True)
class WheelOrder:
    """The wheel's answer for one order: what goes on the ``OrderEvent``."""

    order_type: OrderType
    limit_price: float | None
    execution: ExecutionChoice | None


class WheelExecution:
    """The portfolio manager's door to the AlgoWheel (one per process; the dispatcher thread only)."""

    def __init__(
        self,
        wheel: AlgoWheel,
        session: Callable[[int], tuple[SessionClock, int]],
        *,
        spread_bps: float,
        collar_pct: float,
    ) -> None:
        self.wheel = wheel
        self._session = session
        self._spread_bps = spread_bps
        self._collar_pct = collar_pct
        self.decisions = 0
        self.fallbacks = 0

    def choose(self, *, symbol: str, side: Side, quantity: int, reference_price: float, adv_shares: float,
               vol_20d: float, ts_event_ns: int) -> WheelOrder:  # fmt: skip
        """Decide how to work one sized order; ``vol_20d`` is a fraction (0.25 = 25 % a year), NaN if unknown."""
        clock, active_ns = self._session(ts_event_ns)
        context = WheelContext(side=side, quantity_shares=float(quantity), adv_shares=adv_shares,
                               volatility_20d_pct=vol_20d * 100.0, spread_bps=self._spread_bps,
                               reference_price=reference_price, collar_pct=self._collar_pct)  # fmt: skip
        decision = self.wheel.decide(context, active_ns, clock)
        self.decisions += 1
        if decision.arm is None or decision.order_type is None:
            self.fallbacks += 1
            log.info("event=wheel_fallback symbol=%s order_type=%s reason=%s", symbol, FALLBACK_ORDER_TYPE,
                     decision.reason)  # fmt: skip
            return WheelOrder(FALLBACK_ORDER_TYPE, None, None)
        record = decision.to_record()
        record["context"] = {
            "adv_participation": _finite_or_none(quantity / adv_shares) if adv_shares > 0 else None,
            "vol_20d": _finite_or_none(vol_20d), "spread_bps": self._spread_bps,
            "minutes_to_close": max(clock.minutes_to_close, 0.0),
            "minutes_to_auction_cutoff": clock.minutes_to_auction_cutoff, "half_day": clock.half_day,
            "active_ns": active_ns,
        }  # fmt: skip
        execution = ExecutionChoice(arm=decision.arm.value, algo=decision.algo,
                                    algo_params=tuple(sorted(decision.algo_params.items())),
                                    policy_id=decision.policy_id, propensity=decision.propensity,
                                    decision=record)  # fmt: skip
        return WheelOrder(decision.order_type, decision.limit_price, execution)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def wheel_strategies(strategies: StrategiesConfig) -> list[str]:
    """The enabled strategies whose orders the AlgoWheel works (``order_type: WHEEL``): they need a wheel wired."""
    sections = ((name, getattr(strategies, name)) for name in type(strategies).model_fields)
    return [name for name, cfg in sections
            if getattr(cfg, "enabled", False) and getattr(cfg, "order_type", None) == "WHEEL"]  # fmt: skip


def build_wheel_execution(
    config: AppConfig, calendar: WheelCalendar, model_state: Mapping[str, Any] | None = None
) -> WheelExecution | None:
    """The wheel for this config, or None when no enabled strategy uses ``order_type: WHEEL``.

    ``model_state``: a promoted model (``ml.algowheel_store``), else the wheel starts from its prior. Its draws
    are seeded with ``algo_wheel.seed`` either way, so a backtest is deterministic for a seed.
    """
    if not wheel_strategies(config.strategies):
        return None
    wheel_cfg = config.algo_wheel
    wheel = AlgoWheel(wheel_cfg, rng_seed=wheel_cfg.seed)
    if model_state is not None:
        wheel = AlgoWheel.from_state(model_state, wheel_cfg)
        wheel.reseed(wheel_cfg.seed)
    cutoff = float(config.backtest.moc_cutoff_minutes_before_close)  # the exchange's MOC/LOC cut-off

    def session(ts_ns: int) -> tuple[SessionClock, int]:
        return session_at(calendar, ts_ns, cutoff)

    log.info("event=algo_wheel_ready policy_id=%s model=%s strategies=%s", wheel.policy_id,
             "promoted" if model_state is not None else "prior", wheel_strategies(config.strategies))  # fmt: skip
    return WheelExecution(wheel, session, spread_bps=2.0 * config.costs.slippage.half_spread_bps,
                          collar_pct=config.pre_trade.price_collar_pct)  # fmt: skip
