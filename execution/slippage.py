"""Fill-price model of the simulated executor: half the spread plus a power-law market impact.

Prices are USD per share, quantities are share counts (positive; the side carries the direction), bar volume
is the bar's traded share volume. The model is stateless and cheap: one call per simulated fill.
"""

from __future__ import annotations

import logging
import math
import sys

from core.config_models import SlippageConfig
from core.events import Side

log = logging.getLogger(__name__)


class SlippageModel:
    """Adverse price move of a simulated fill and the largest quantity one bar can absorb.

    ``fill_price = reference ± reference * (half_spread_bps + impact_coefficient_bps * participation **
    impact_exponent) / 1e4`` with ``participation = quantity / bar_volume``: buys pay up, sells receive less.
    A bar volume that is NaN, zero or negative means "unknown", and the order is charged as if it were the
    whole bar (participation 1.0). The executor is expected to cap quantities with ``max_fill_quantity``
    first; a sale is never priced below zero.
    """

    def __init__(self, cfg: SlippageConfig, *, volume_limited: bool = True) -> None:
        self._half_spread_bps = cfg.half_spread_bps
        self._impact_coefficient_bps = cfg.impact_coefficient_bps
        self._impact_exponent = cfg.impact_exponent
        self._max_participation_pct = cfg.max_participation_pct
        self._volume_limited = volume_limited

    @classmethod
    def zero(cls) -> SlippageModel:
        """No spread, no impact and no volume cap: fills at the reference price, as peer backtesters do."""
        cfg = SlippageConfig(half_spread_bps=0.0, impact_coefficient_bps=0.0, max_participation_pct=100.0)
        return cls(cfg, volume_limited=False)

    def cost_bps(self, quantity: int, bar_volume: float, spread_share: float = 1.0) -> float:
        """Total adverse move in basis points of the reference price for this order size; ``spread_share`` of the
        half-spread is paid (an algo that captures part of the spread pays less than 1)."""
        participation = quantity / bar_volume if bar_volume > 0.0 else 1.0  # NaN volume compares False
        impact = self._impact_coefficient_bps * participation**self._impact_exponent
        return self._half_spread_bps * spread_share + impact

    @property
    def spread_bps(self) -> float:
        """The quoted spread the model assumes (twice its half-spread), in bps of the price."""
        return 2.0 * self._half_spread_bps

    def fill_price(
        self, side: Side, reference_price: float, quantity: int, bar_volume: float, spread_share: float = 1.0
    ) -> float:
        """Price at which ``quantity`` shares fill against a bar of ``bar_volume`` shares.

        Raises ValueError for a reference price that is not a positive finite number (nothing may trade on
        a NaN bar) or a negative quantity.
        """
        if not (reference_price > 0.0 and math.isfinite(reference_price)):
            raise ValueError(f"reference_price must be a positive finite price (got {reference_price})")
        if quantity < 0:
            raise ValueError(f"quantity must be a non-negative share count (got {quantity})")
        move = reference_price * self.cost_bps(quantity, bar_volume, spread_share) / 1e4
        if side is Side.BUY:
            return reference_price + move
        return max(reference_price - move, 0.0)

    def max_fill_quantity(self, bar_volume: float) -> int:
        """Whole shares one bar can fill: ``floor(max_participation_pct / 100 * bar_volume)``.

        0 when the bar volume is NaN, zero or negative (an empty bar absorbs nothing). The ``zero()`` model
        has no cap and returns ``sys.maxsize``.
        """
        if not self._volume_limited:
            return sys.maxsize
        if not bar_volume > 0.0:
            return 0
        if math.isinf(bar_volume):
            return sys.maxsize
        # pct * volume / 100 rather than (pct / 100) * volume: 29 / 100 * 100 is 28.999999999999996 in floats.
        return math.floor(self._max_participation_pct * bar_volume / 100.0)
