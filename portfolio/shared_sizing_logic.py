"""Position sizing shared by the backtester and the live engine: equity, price and stop in, whole shares out.

Methods (``SizingConfig.method``):

- ``volatility``: risk ``risk_per_trade_pct`` of equity over the strategy's stop distance,
  ``floor(equity × risk_pct/100 × scale / stop_distance)``, so a stop-out loses at most the risk budget.
- ``fixed_fraction``: put ``fixed_fraction_pct`` of equity in the position, ``floor(equity × pct/100 × scale /
  price)``.
- ``fixed_shares``: exactly ``fixed_shares``, **not** scaled by drawdown or leverage: validation runs compare
  share counts against a reference (peer backtesters, hand calculations) and need them exact. A scale of 0 or
  less still yields 0, because it means "no new exposure" (HALTED), not "smaller".

The result is never negative and never NaN: unusable inputs (equity or price NaN or ≤ 0, scale NaN or ≤ 0, a
missing or non-positive stop for ``volatility``) or a result below ``min_quantity`` give 0, meaning "do not
trade". Callers treat 0 as a decision, not an error.
"""

from __future__ import annotations

import logging
import math
from typing import TypeGuard

from core.config_models import SizingConfig

log = logging.getLogger(__name__)


def _positive(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value) and value > 0.0


class PositionSizer:
    """Turns a signal's price and stop into a share count; stateless, so one instance serves every strategy."""

    def __init__(self, cfg: SizingConfig, risk_per_trade_pct: float) -> None:
        if not (_positive(risk_per_trade_pct) and risk_per_trade_pct <= 100.0):
            raise ValueError(f"risk_per_trade_pct must be in (0, 100] percent of equity (got {risk_per_trade_pct})")
        self._cfg = cfg
        self.risk_per_trade_pct = risk_per_trade_pct

    def quantity(self, equity: float, price: float, stop_distance: float | None, scale: float = 1.0) -> int:
        """Shares to trade (≥ 0). ``scale`` is the product of the drawdown throttle and the leverage target."""
        cfg = self._cfg
        if not (_positive(equity) and _positive(price) and _positive(scale)):
            log.debug("event=size_zero reason=unusable_inputs equity=%s price=%s scale=%s", equity, price, scale)
            return 0
        if cfg.method == "fixed_shares":
            shares = cfg.fixed_shares
        elif cfg.method == "fixed_fraction":
            shares = _floor_shares(equity * (cfg.fixed_fraction_pct / 100.0) * scale, price)
        else:
            if not _positive(stop_distance):
                log.debug("event=size_zero reason=no_stop stop_distance=%s", stop_distance)
                return 0
            shares = _floor_shares(equity * (self.risk_per_trade_pct / 100.0) * scale, stop_distance)
        if shares < cfg.min_quantity:
            log.debug("event=size_zero reason=below_min_quantity shares=%d min_quantity=%d", shares, cfg.min_quantity)
            return 0
        return shares


def _floor_shares(budget: float, per_share: float) -> int:
    """Largest whole number of shares with ``shares × per_share ≤ budget``, also after float rounding."""
    raw = budget / per_share
    if not math.isfinite(raw):
        log.warning("event=size_zero reason=overflow budget=%s per_share=%s", budget, per_share)
        return 0
    shares = math.floor(raw)
    if shares > 0 and shares * per_share > budget:
        shares -= 1
    return shares
