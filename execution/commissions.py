"""Interactive Brokers commission models for US stocks, shared by the simulated executor and the backtester.

Each model answers one question per fill: how many USD does this execution cost? They are pure and cheap
(called once per fill on the dispatcher thread). Only ``IbTieredCommission`` keeps state, the month-to-date
share volume that picks the tier; the caller reports every executed quantity to ``record_fill`` *after*
pricing it, so an order is priced at the tier reached by the volume traded before it.

Rounding rule: commissions are returned at full float precision and are never rounded to cents. Historical
split-adjusted prices are sub-cent, and the backtrader parity test compares exact floats; reports round to
cents when they print. Quantities are share counts (positive ints, the direction is in ``side``), prices are
USD per share, timestamps are UTC epoch nanoseconds.
"""

from __future__ import annotations

import bisect
import logging
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from core.config_models import CostsConfig, IbFixedConfig, IbTieredConfig
from core.events import Side

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
_NS_PER_SECOND = 1_000_000_000


class CommissionModel(Protocol):
    """What the executors need from a commission schedule."""

    def commission(self, side: Side, quantity: int, price: float, ts_event_ns: int) -> float:
        """USD charged for executing ``quantity`` shares at ``price`` at ``ts_event_ns``; does not change state."""
        ...

    def record_fill(self, quantity: int, ts_event_ns: int) -> None:
        """Count an executed quantity toward volume-based pricing; stateless models ignore it."""
        ...


def _check_quantity(quantity: int) -> None:
    if quantity < 0:
        raise ValueError(
            f"quantity must be a non-negative share count, the side carries the direction (got {quantity})"
        )


class NoCommission:
    """Free trading, for parity runs and tests that isolate other costs."""

    def commission(self, side: Side, quantity: int, price: float, ts_event_ns: int) -> float:
        return 0.0

    def record_fill(self, quantity: int, ts_event_ns: int) -> None:
        return None


class IbFixedCommission:
    """IB "Fixed" pricing: ``min(max(per_share_usd * q, min_per_order_usd), max_pct_of_value / 100 * q * price)``.

    The minimum is applied first and the percentage cap last, so the cap wins on very cheap stocks: IB's own
    example, 100 shares at USD 0.25, costs USD 0.25 (1% of USD 25), not the USD 1.00 minimum. A zero quantity
    costs nothing. Regulatory pass-through fees on sales are not added (the backtrader parity test models
    Fixed as exactly this formula). No rounding to cents (see the module docstring).
    """

    def __init__(self, cfg: IbFixedConfig) -> None:
        self._per_share_usd = cfg.per_share_usd
        self._min_per_order_usd = cfg.min_per_order_usd
        self._max_fraction_of_value = cfg.max_pct_of_value / 100.0

    def commission(self, side: Side, quantity: int, price: float, ts_event_ns: int) -> float:
        if quantity <= 0:
            _check_quantity(quantity)
            return 0.0
        per_share = max(self._per_share_usd * quantity, self._min_per_order_usd)
        return min(per_share, self._max_fraction_of_value * quantity * price)

    def record_fill(self, quantity: int, ts_event_ns: int) -> None:
        return None


class IbTieredCommission:
    """IB "Tiered" pricing with its pass-through fees.

    For ``q`` shares at ``price`` (``value = q * price``), with ``rate`` the per-share rate of the tier that
    contains the month-to-date volume ``v`` traded *before* this order:

        ib   = min(max(rate * q, min_per_order_usd), max_pct_of_value / 100 * value)
        fees = exchange_fee_per_share_usd * q + clearing_fee_per_share_usd * q
               + finra_pass_through_pct_of_commission / 100 * ib
        SELL only: + sec_fee_rate_of_sale_value * value
                   + min(finra_taf_per_share_sold_usd * q, finra_taf_max_per_trade_usd)
        commission = ib + fees

    The percentage cap limits IB's own commission only, as on IB's price list; exchange, clearing and
    regulatory fees come on top. Tier ``k`` holds volumes ``tiers[k-1].up_to <= v < tiers[k].up_to``: with
    exactly 300,000 shares already traded the next share is the 300,001st and is priced in the second tier.
    Volumes beyond the last bound use the last tier.

    State: month-to-date volume per calendar month in America/New_York (a fill at 23:30 New York time on
    31 January counts toward January although it is February in UTC). A new month starts from zero. Volumes
    are kept per month, so a late fill of a past month does not disturb the current one. The model belongs
    to one executor on the dispatcher thread; it is not thread-safe.
    """

    def __init__(self, cfg: IbTieredConfig) -> None:
        self._bounds = [tier.up_to_shares_per_month for tier in cfg.tiers]
        self._rates = [tier.per_share_usd for tier in cfg.tiers]
        self._min_per_order_usd = cfg.min_per_order_usd
        self._max_fraction_of_value = cfg.max_pct_of_value / 100.0
        self._per_share_fees_usd = cfg.exchange_fee_per_share_usd + cfg.clearing_fee_per_share_usd
        self._finra_pass_through_fraction = cfg.finra_pass_through_pct_of_commission / 100.0
        self._sec_fee_rate = cfg.sec_fee_rate_of_sale_value
        self._taf_per_share_usd = cfg.finra_taf_per_share_sold_usd
        self._taf_max_usd = cfg.finra_taf_max_per_trade_usd
        self._shares_by_month: dict[tuple[int, int], float] = {}
        # Cache of the last month looked up: [start_ns, end_ns) and its key; most fills fall in it.
        self._cached_month: tuple[int, int] = (0, 0)
        self._cached_start_ns = 0
        self._cached_end_ns = 0

    def _month_of(self, ts_event_ns: int) -> tuple[int, int]:
        if self._cached_start_ns <= ts_event_ns < self._cached_end_ns:
            return self._cached_month
        local = datetime.fromtimestamp(ts_event_ns // _NS_PER_SECOND, tz=NEW_YORK)
        start = datetime(local.year, local.month, 1, tzinfo=NEW_YORK)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=NEW_YORK)
        self._cached_month = (local.year, local.month)
        self._cached_start_ns = int(start.timestamp()) * _NS_PER_SECOND
        self._cached_end_ns = int(end.timestamp()) * _NS_PER_SECOND
        return self._cached_month

    def month_to_date_shares(self, ts_event_ns: int) -> float:
        """Shares recorded so far in the New York calendar month of ``ts_event_ns``."""
        return self._shares_by_month.get(self._month_of(ts_event_ns), 0.0)

    def per_share_rate(self, ts_event_ns: int) -> float:
        """USD per share of the tier that the next order at ``ts_event_ns`` would be priced in."""
        index = bisect.bisect_right(self._bounds, self.month_to_date_shares(ts_event_ns))
        return self._rates[min(index, len(self._rates) - 1)]

    def commission(self, side: Side, quantity: int, price: float, ts_event_ns: int) -> float:
        if quantity <= 0:
            _check_quantity(quantity)
            return 0.0
        value = quantity * price
        ib = min(
            max(self.per_share_rate(ts_event_ns) * quantity, self._min_per_order_usd),
            self._max_fraction_of_value * value,
        )
        total = ib + self._per_share_fees_usd * quantity + self._finra_pass_through_fraction * ib
        if side is Side.SELL:
            total += self._sec_fee_rate * value + min(self._taf_per_share_usd * quantity, self._taf_max_usd)
        return total

    def record_fill(self, quantity: int, ts_event_ns: int) -> None:
        """Add an executed quantity to its month's volume; call once per fill, after ``commission``."""
        _check_quantity(quantity)
        month = self._month_of(ts_event_ns)
        self._shares_by_month[month] = self._shares_by_month.get(month, 0.0) + quantity


def build_commission_model(costs: CostsConfig) -> CommissionModel:
    """The commission model named by ``costs.commission_model``, configured from its own section."""
    if costs.commission_model == "ib_fixed":
        return IbFixedCommission(costs.ib_fixed)
    if costs.commission_model == "ib_tiered":
        return IbTieredCommission(costs.ib_tiered)
    if costs.commission_model == "none":
        return NoCommission()
    raise ValueError(f"unknown commission_model {costs.commission_model!r}; allowed: ib_fixed, ib_tiered, none")
