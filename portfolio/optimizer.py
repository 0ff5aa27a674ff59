"""Volatility targeting: scale the book so its realized volatility approaches a target.

``leverage = clip(target_annual_vol_pct / realized_annual_vol_pct, min_leverage, max_leverage)``, where the
realized volatility is the sample standard deviation (ddof=1, as ``numpy.std(..., ddof=1)``) of the last
``lookback_days`` daily returns of equity, annualized with √252. Until that many returns exist the leverage is
1.0, capped by ``max_leverage``; when disabled it is exactly 1.0. If ``min_leverage`` is configured above
``max_leverage``, the maximum wins (the safer side).

Each update costs O(1): running sums over a fixed window, shifted by a recent mean so the variance does not
suffer cancellation, and recomputed exactly once per window to stop rounding drift (amortized O(1)).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable

from core.config_models import OptimizerConfig

log = logging.getLogger(__name__)

TRADING_DAYS_PER_YEAR = 252


class VolatilityTargeter:
    """Fed one equity value per session close by the portfolio; read by sizing as a multiplier."""

    def __init__(self, cfg: OptimizerConfig) -> None:
        self._cfg = cfg
        self._returns: deque[float] = deque(maxlen=cfg.lookback_days)
        self._last_equity: float | None = None
        self._shift = 0.0
        self._sum = 0.0  # of (r - shift)
        self._sum_sq = 0.0  # of (r - shift)²
        self._appends_since_exact = 0

    def update(self, equity: float) -> None:
        """Record the session's closing equity. Non-positive or non-finite equity is skipped with a warning."""
        if not self._cfg.enabled:
            return
        if not (math.isfinite(equity) and equity > 0.0):
            log.warning("event=vol_target_skipped reason=unusable_equity equity=%s", equity)
            return
        if self._last_equity is not None:
            self._append(equity / self._last_equity - 1.0)
        self._last_equity = equity

    def update_many(self, equities: Iterable[float]) -> None:
        """``update`` for each session close in order (the backtester's quiet sessions)."""
        if self._cfg.enabled:
            for equity in equities:
                self.update(float(equity))

    def _append(self, daily_return: float) -> None:
        if len(self._returns) == self._returns.maxlen:
            dropped = self._returns[0] - self._shift
            self._sum -= dropped
            self._sum_sq -= dropped * dropped
        self._returns.append(daily_return)
        shifted = daily_return - self._shift
        self._sum += shifted
        self._sum_sq += shifted * shifted
        self._appends_since_exact += 1
        if self._appends_since_exact >= self._cfg.lookback_days:
            self._recompute_exactly()

    def _recompute_exactly(self) -> None:
        self._shift = math.fsum(self._returns) / len(self._returns)
        self._sum = math.fsum(r - self._shift for r in self._returns)
        self._sum_sq = math.fsum((r - self._shift) ** 2 for r in self._returns)
        self._appends_since_exact = 0

    def realized_vol_pct(self) -> float | None:
        """Annualized realized volatility in percent, or None until ``lookback_days`` returns are known."""
        n = len(self._returns)
        if n < self._cfg.lookback_days:
            return None
        variance = max((self._sum_sq - self._sum * self._sum / n) / (n - 1), 0.0)
        return math.sqrt(variance * TRADING_DAYS_PER_YEAR) * 100.0

    def leverage(self) -> float:
        """Multiplier for position sizes; a flat equity curve (zero volatility) gives ``max_leverage``."""
        cfg = self._cfg
        if not cfg.enabled:
            return 1.0
        vol_pct = self.realized_vol_pct()
        if vol_pct is None:
            return min(1.0, cfg.max_leverage)
        raw = cfg.target_annual_vol_pct / vol_pct if vol_pct > 0.0 else math.inf
        return min(max(raw, cfg.min_leverage), cfg.max_leverage)
