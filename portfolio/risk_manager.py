"""The drawdown rules that move the trading state, and the exposure limits on each order.

The state itself lives in ``portfolio.trading_state.TradingStateMachine`` (one owner, one table); this module is
the owner of its ``drawdown`` reason and asks the machine to HALT on the hard limit.

Plain Python over numbers the caller passes in (equity, exposure, positions), so the backtester and the live
engine share it. Drawdown is measured from the peak equity seen by ``update``, in percent:
``drawdown_pct = (peak - equity) / peak * 100``.

State rules (``RiskConfig``):

- the ``drawdown`` reason is set (ACTIVE → REDUCING) when drawdown ≥ ``reducing_drawdown_pct``.
- it is cleared (REDUCING → ACTIVE unless another reason is held) only once drawdown is back below
  ``drawdown_throttle_start_pct`` (or equity is at a new
  peak, which matters when that threshold is 0): the gap between the two thresholds is hysteresis, so the
  state does not flap around one level.
- REDUCING → ACTIVE also when ``rearm_after_flat_sessions`` is set and the book has been flat for that many
  consecutive updates: a flat book cannot earn its way back, so without this the state would stay REDUCING
  forever. The throttle's peak is then re-based to the current equity (logged), but the HALT threshold keeps
  measuring from the all-time high-water mark, so re-arming never widens the hard loss limit.
- any state → HALTED when the drawdown from the high-water mark ≥ ``halt_drawdown_pct``, on
  ``halt(reason, now_ns)`` (kill switch), or when ``update`` receives an equity that is not a positive finite
  number (our books are broken). HALTED is one-way for the life of the process; closing positions then is the
  flatten path's job, not ``check_order``'s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from core.config_models import RiskConfig
from core.events import OrderEvent, TradingState
from portfolio.pre_trade import Rejection, describe, reduces_position, usable_price
from portfolio.trading_state import Reason, TradingStateMachine, Transition

log = logging.getLogger(__name__)


_BOUND_MARGIN_PCT = 1e-9
"""Percentage points a run's drawdown bound must stay under a limit for the run to be cleared from its extremes:
the computed drawdowns differ from their exact values by ~1e-13 points (a few ulps of numbers up to 100)."""


def _or_minus_inf(value: float | None) -> float:
    return -math.inf if value is None else value


class RiskManager:
    """The drawdown rules and exposure limits; one instance per engine (or backtest), dispatcher thread only.

    ``trading`` is the trading-state machine it moves (a fresh ACTIVE one when None: the backtester's case).
    ``initial_peak_equity`` restores the peak after a restart (from the portfolio snapshot), so a restart in a
    drawdown does not forget it.
    """

    def __init__(
        self, cfg: RiskConfig, *, initial_peak_equity: float | None = None, trading: TradingStateMachine | None = None
    ) -> None:
        self._cfg = cfg
        self.trading = trading if trading is not None else TradingStateMachine()
        self.peak_equity: float | None = initial_peak_equity if usable_price(initial_peak_equity) else None
        self.high_water_mark: float | None = self.peak_equity
        self.drawdown_pct = 0.0
        self.hard_drawdown_pct = 0.0
        self._flat_updates = 0

    @property
    def state(self) -> TradingState:
        return self.trading.state

    @property
    def halt_reason(self) -> str | None:
        return self.trading.halt_cause

    @property
    def transitions(self) -> list[Transition]:
        return self.trading.transitions

    @property
    def drawdown_reducing(self) -> bool:
        """The drawdown reason is held (REDUCING because of drawdown, whatever other reasons say)."""
        return self.trading.holds(Reason.DRAWDOWN)

    def update(self, equity: float, now_ns: int, *, flat: bool | None = False) -> TradingState:
        """Mark equity (account currency) at ``now_ns``; move the state if a threshold is crossed.

        ``flat`` tells whether the book holds no position at this session close (for
        ``rearm_after_flat_sessions``); ``None`` for an intraday mark, which is not a session and leaves the count.
        """
        if not (math.isfinite(equity) and equity > 0.0):
            self.halt(f"equity must be a positive finite number to measure drawdown (got {equity})", now_ns)
            return self.state
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        if self.high_water_mark is None or equity > self.high_water_mark:
            self.high_water_mark = equity
        self.drawdown_pct = (self.peak_equity - equity) / self.peak_equity * 100.0
        self.hard_drawdown_pct = (self.high_water_mark - equity) / self.high_water_mark * 100.0
        cfg = self._cfg
        trading = self.trading
        if trading.state is TradingState.HALTED:
            return trading.state
        reducing = trading.holds(Reason.DRAWDOWN)
        if flat is not None:
            self._flat_updates = self._flat_updates + 1 if (flat and reducing) else 0
        if self.hard_drawdown_pct >= cfg.halt_drawdown_pct:
            trading.halt(
                f"drawdown {self.hard_drawdown_pct:.2f}% from the high-water mark of ${self.high_water_mark:,.2f} "
                f"(equity ${equity:,.2f}) reached risk.halt_drawdown_pct of {cfg.halt_drawdown_pct:g}%",
                now_ns,
            )
        elif cfg.rearm_after_flat_sessions is not None and self._flat_updates >= cfg.rearm_after_flat_sessions:
            self._flat_updates = 0
            self.peak_equity = equity
            self.drawdown_pct = 0.0
            trading.clear(
                Reason.DRAWDOWN,
                now_ns,
                f"book flat for {cfg.rearm_after_flat_sessions} sessions in REDUCING "
                f"(risk.rearm_after_flat_sessions); throttle peak re-based to ${equity:,.2f}, HALT still measured "
                f"from the high-water mark ${self.high_water_mark:,.2f}",
            )
        elif not reducing and self.drawdown_pct >= cfg.reducing_drawdown_pct:
            trading.reduce(
                Reason.DRAWDOWN,
                f"{self._where(equity)} reached risk.reducing_drawdown_pct of {cfg.reducing_drawdown_pct:g}%",
                now_ns,
            )
        elif reducing and (self.drawdown_pct < cfg.drawdown_throttle_start_pct or self.drawdown_pct == 0.0):
            trading.clear(
                Reason.DRAWDOWN,
                now_ns,
                f"{self._where(equity)} recovered below risk.drawdown_throttle_start_pct of "
                f"{cfg.drawdown_throttle_start_pct:g}%",
            )
        return trading.state

    def absorb_quiet(self, equity: np.ndarray, flat: np.ndarray) -> int:
        """``update`` for a run of session closes, as far as none of them would move the state; returns how many.

        The backtester's quiet sessions (no order, no signal) come here in one call: the peak, the high-water
        mark, both drawdowns and the flat-sessions count end exactly where as many ``update`` calls would leave
        them (the same float operations, element-wise). It stops before the first session that would cross a
        threshold, re-arm, or bring an unusable equity, or whose flatness differs from the first's: the caller
        gives that session to ``update``, so every transition is still made, and logged, by ``update`` alone.
        """
        if len(equity) and self._absorb_uneventful(equity, flat):
            return len(equity)
        usable = np.isfinite(equity) & (equity > 0.0) & (flat == flat[0]) if len(equity) else np.zeros(0, bool)
        n = int(np.argmin(usable)) if len(usable) and not usable.all() else len(usable)
        if n == 0:
            return 0
        eq = equity[:n]
        running_max = np.maximum.accumulate(eq)
        peaks = np.maximum(running_max, _or_minus_inf(self.peak_equity))
        drawdown = (peaks - eq) / peaks * 100.0
        if self.high_water_mark == self.peak_equity:  # until a re-arm re-bases the peak: one series serves both
            highs, hard = peaks, drawdown
        else:
            highs = np.maximum(running_max, _or_minus_inf(self.high_water_mark))
            hard = (highs - eq) / highs * 100.0
        flat_run = np.zeros(n, dtype=np.int64)
        halted = self.trading.state is TradingState.HALTED
        if not halted:
            cfg, reducing = self._cfg, self.trading.holds(Reason.DRAWDOWN)
            if bool(flat[0]) and reducing:
                flat_run = self._flat_updates + np.arange(1, n + 1, dtype=np.int64)
            moves = hard >= cfg.halt_drawdown_pct
            if cfg.rearm_after_flat_sessions is not None:
                moves |= flat_run >= cfg.rearm_after_flat_sessions
            if reducing:
                moves |= (drawdown < cfg.drawdown_throttle_start_pct) | (drawdown == 0.0)
            else:
                moves |= drawdown >= cfg.reducing_drawdown_pct
            n = int(np.argmax(moves)) if moves.any() else n
            if n == 0:
                return 0
        last = n - 1
        self.peak_equity, self.high_water_mark = float(peaks[last]), float(highs[last])
        self.drawdown_pct, self.hard_drawdown_pct = float(drawdown[last]), float(hard[last])
        if not halted:
            self._flat_updates = int(flat_run[last])
        return n

    def _absorb_uneventful(self, equity: np.ndarray, flat: np.ndarray) -> bool:
        """Take a whole run that provably moves nothing, from its extremes alone; False leaves it to the exact path.

        Most quiet runs are far from every threshold, and the element-wise path's ~20 numpy calls were a tenth of
        a one-symbol backtest (a run there is ~27 sessions). Outside REDUCING the only moves are a drawdown
        reaching ``reducing_drawdown_pct`` or a hard drawdown reaching ``halt_drawdown_pct``; every session's
        drawdown ``1 - e/p`` is at most ``1 - lowest/peak`` of the run's lowest equity and final peak, so a bound
        under both limits (with a margin far above the few ulps the computed values may differ by) clears them
        all. The state then ends at the last session's values, computed with ``update``'s float operations.
        """
        lowest, highest = float(equity.min()), float(equity.max())
        if not (lowest > 0.0 and highest < math.inf):  # NaN fails both
            return False
        if (not flat.all()) if flat[0] else flat.any():  # not one flatness throughout
            return False
        halted = self.trading.state is TradingState.HALTED
        if not halted and self.trading.holds(Reason.DRAWDOWN):
            return False
        peak = highest if self.peak_equity is None else max(highest, self.peak_equity)
        high = highest if self.high_water_mark is None else max(highest, self.high_water_mark)
        if not halted:
            cfg = self._cfg
            worst, worst_hard = (peak - lowest) / peak * 100.0, (high - lowest) / high * 100.0
            margin = _BOUND_MARGIN_PCT
            if worst + margin >= cfg.reducing_drawdown_pct or worst_hard + margin >= cfg.halt_drawdown_pct:
                return False
            self._flat_updates = 0
        last = float(equity[-1])
        self.peak_equity, self.high_water_mark = peak, high
        self.drawdown_pct = (peak - last) / peak * 100.0
        self.hard_drawdown_pct = (high - last) / high * 100.0
        return True

    def _where(self, equity: float) -> str:
        """Built only on a transition: formatting it every bar was a measurable share of a backtest."""
        return f"drawdown {self.drawdown_pct:.2f}% from the peak of ${self.peak_equity:,.2f} (equity ${equity:,.2f})"

    def halt(self, reason: str, now_ns: int) -> None:
        """Stop trading for the life of the process (kill switch, invariant violation). The first reason stays."""
        self.trading.halt(reason, now_ns)

    def restore_drawdown_reducing(self, now_ns: int) -> None:
        """A restart in REDUCING (from the snapshot): the drawdown rules decide when it may leave it."""
        self.trading.reduce(Reason.DRAWDOWN, "restored REDUCING from the snapshot", now_ns)

    def persisted_state(self) -> TradingState:
        """What a snapshot stores: HALTED, REDUCING for drawdown, else ACTIVE (live-only reasons are runtime)."""
        if self.trading.state is TradingState.HALTED:
            return TradingState.HALTED
        return TradingState.REDUCING if self.drawdown_reducing else TradingState.ACTIVE

    def size_scale(self) -> float:
        """Multiplier for new position sizes: 1.0 up to the throttle start, linear down to ``min_size_scale`` at
        the reducing threshold, ``min_size_scale`` beyond it, and 0.0 once HALTED."""
        if self.state is TradingState.HALTED:
            return 0.0
        cfg = self._cfg
        start, end = cfg.drawdown_throttle_start_pct, cfg.reducing_drawdown_pct
        if self.drawdown_pct <= start and self.drawdown_pct < end:
            return 1.0
        if self.drawdown_pct >= end:
            return cfg.min_size_scale
        fraction = (self.drawdown_pct - start) / (end - start)
        return 1.0 - (1.0 - cfg.min_size_scale) * fraction

    def check_order(
        self,
        order: OrderEvent,
        price: float,
        equity: float,
        gross_exposure: float,
        positions: Mapping[str, int],
        *,
        open_position_count: int | None = None,
    ) -> Rejection | None:
        """Refuse the order if the trading state or an exposure limit forbids it; never mutates anything.

        ``open_position_count`` (symbols with a non-zero position) may be passed by a caller that keeps it
        cheaply; otherwise it is counted from ``positions``.

        ``price`` values the order's symbol, ``gross_exposure`` is the current sum of |position| × price over all
        symbols (account currency), ``positions`` maps symbol → signed shares. Whether an order is reduce-only is
        decided from ``positions``, not from its flag: it must move the position toward zero without crossing.
        Reduce-only orders skip the exposure limits (they only shrink exposure).
        """
        rejection = self._state_rejection(order, positions)
        if rejection is None and not reduces_position(order.side, order.quantity, positions.get(order.symbol, 0)):
            rejection = self._exposure_rejection(
                order, price, equity, gross_exposure, positions, open_position_count
            )
        if rejection is not None:
            log.debug(
                'event=order_rejected check=%s client_order_id=%s symbol=%s side=%s qty=%d state=%s reason="%s"',
                rejection.check,
                order.client_order_id,
                order.symbol,
                order.side,
                order.quantity,
                self.state,
                rejection.reason,
            )
        return rejection

    def size_cap(
        self, order: OrderEvent, price: float, equity: float, gross_exposure: float, positions: Mapping[str, int]
    ) -> tuple[int, str] | None:
        """The most shares an order that adds exposure may have under the weight and gross limits, and the binding
        limit's name; None when those limits do not bind it (or cannot be measured: the check then refuses)."""
        position = positions.get(order.symbol, 0)
        if reduces_position(order.side, order.quantity, position):
            return None
        if not usable_price(price) or not usable_price(equity) or not math.isfinite(gross_exposure):
            return None
        held = abs(position)
        caps = (
            (math.floor(self._cfg.max_position_weight_pct / 100.0 * equity / price + 1e-9) - held,
             "max_position_weight"),
            (math.floor((self._cfg.max_gross_exposure_pct / 100.0 * equity - gross_exposure) / price + 1e-9),
             "max_gross_exposure"),
        )  # fmt: skip
        quantity, name = min(caps)
        return (max(quantity, 0), name) if quantity < order.quantity else None

    def _state_rejection(self, order: OrderEvent, positions: Mapping[str, int]) -> Rejection | None:
        return self.trading.check(order, positions)

    def _exposure_rejection(
        self,
        order: OrderEvent,
        price: float,
        equity: float,
        gross_exposure: float,
        positions: Mapping[str, int],
        open_position_count: int | None,
    ) -> Rejection | None:
        cfg = self._cfg
        if not usable_price(price) or not usable_price(equity) or not math.isfinite(gross_exposure):
            return Rejection(
                "risk_inputs",
                f"{describe(order)}: exposure cannot be measured because the price, equity or gross exposure is "
                f"not usable (got price {price}, equity {equity}, gross exposure {gross_exposure}).",
            )
        position = positions.get(order.symbol, 0)
        after = position + order.side.sign * order.quantity
        if position == 0:
            open_positions = (
                open_position_count
                if open_position_count is not None
                else sum(1 for quantity in positions.values() if quantity != 0)
            )
            if open_positions >= cfg.max_positions:
                return Rejection(
                    "max_positions",
                    f"{describe(order)}: opening a position in {order.symbol} would make {open_positions + 1} open "
                    f"positions, above the limit of {cfg.max_positions} (risk.max_positions).",
                )
        gross_after = gross_exposure + (abs(after) - abs(position)) * price
        gross_after_pct = gross_after / equity * 100.0
        if gross_after_pct > cfg.max_gross_exposure_pct:
            return Rejection(
                "max_gross_exposure",
                f"{describe(order)}: gross exposure after the order would be {gross_after_pct:.2f}% of equity "
                f"(${gross_after:,.2f} of ${equity:,.2f}), above the limit of {cfg.max_gross_exposure_pct:g}% "
                "(risk.max_gross_exposure_pct).",
            )
        weight_pct = abs(after) * price / equity * 100.0
        if weight_pct > cfg.max_position_weight_pct:
            return Rejection(
                "max_position_weight",
                f"{describe(order)}: the position after the order ({after:,} shares, ${abs(after) * price:,.2f}) "
                f"would be {weight_pct:.2f}% of equity, above the limit of {cfg.max_position_weight_pct:g}% "
                "(risk.max_position_weight_pct).",
            )
        return None
