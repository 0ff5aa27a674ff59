"""The accounting ledger shared by the backtester and the live engine: positions, cash, settlement and P&L.

Positions live in numpy arrays aligned to ``symbols`` so valuing the book at a timestamp is one dot product.
Every fill goes through ``apply_fill`` exactly once (duplicate ``exec_id`` values are dropped); a fill that
would break an invariant (a short where shorts are not allowed, settled cash below zero in a cash account)
raises ``InvariantViolation`` and leaves the ledger untouched, so the caller can halt trading on a consistent
book.

Accounting rules:
- Average cost, long and short. Realized P&L is gross of commission; commissions are tracked apart.
- Cash moves by ``-side.sign * quantity * price - commission`` per fill. Slippage is already in the fill price
  and is only accumulated in ``slippage_paid`` for reporting.
- Settlement (T+N, the caller supplies ``settles_at_ns``): buy cost and buy commissions debit settled cash at
  once; a sale's proceeds net of its commission wait in an unsettled list until ``settle(now_ns)`` passes
  their settlement time. The sale commission is netted from the proceeds rather than debited from settled
  cash so that a fully invested cash account can always sell. In a cash account nothing may be bought with
  unsettled proceeds.

Cash rounding rule: cash is kept at full float precision, never rounded to cents. Historical split-adjusted
prices are sub-cent and parity with other backtesters needs exact floats. Cash and settled cash are
compensated (Neumaier) sums of their flows, so ``cash`` equals ``math.fsum`` of the signed flows to within
rounding of the result, however many fills there were. Reports round to cents when they print.

Units: prices and cash in USD, quantities in whole shares (float64 arrays holding integers), timestamps in UTC
epoch nanoseconds. One ledger belongs to one thread (the dispatcher); it is not thread-safe.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from core.errors import InvariantViolation, StateCorruptError
from core.events import FillEvent, Side

log = logging.getLogger(__name__)

AccountType = Literal["cash", "margin"]
SNAPSHOT_VERSION = 1


def _neumaier_add(total: float, compensation: float, value: float) -> tuple[float, float]:
    """Add ``value`` to the compensated sum ``total + compensation`` (Neumaier's variant of Kahan summation)."""
    new_total = total + value
    if abs(total) >= abs(value):
        compensation += (total - new_total) + value
    else:
        compensation += (value - new_total) + total
    return new_total, compensation


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def position_after_fill(
    quantity: float, avg_cost: float, signed_quantity: float, price: float
) -> tuple[float, float, float]:
    """Average-cost update of one position: returns ``(new_quantity, new_avg_cost, realized_pnl)``.

    Adding to a position (or opening one) moves the average cost; reducing it realizes
    ``closed * (price - avg_cost)`` for a long (the opposite sign for a short) and keeps the average cost;
    crossing zero closes the old position and opens the rest at ``price``. A flat position has cost 0.
    """
    new_quantity = quantity + signed_quantity
    if quantity == 0.0:
        return new_quantity, price, 0.0
    if (quantity > 0.0) == (signed_quantity > 0.0):
        new_avg = (avg_cost * abs(quantity) + price * abs(signed_quantity)) / abs(new_quantity)
        return new_quantity, new_avg, 0.0
    closed = min(abs(quantity), abs(signed_quantity))
    realized = closed * (price - avg_cost) if quantity > 0.0 else closed * (avg_cost - price)
    if new_quantity == 0.0:
        return 0.0, 0.0, realized
    if (new_quantity > 0.0) == (quantity > 0.0):
        return new_quantity, avg_cost, realized
    return new_quantity, price, realized


def _check_fill(fill: FillEvent) -> None:
    """Reject fills no accounting can be built on; the broker or the simulator produced garbage."""
    if not isinstance(fill.exec_id, str) or not fill.exec_id:
        raise InvariantViolation(f"fill has no exec_id (got {fill.exec_id!r}); every fill needs one to be deduplicated")
    if not fill.quantity > 0 or fill.quantity % 1:
        raise InvariantViolation(
            f"fill {fill.exec_id} {fill.symbol}: quantity must be a positive whole number of shares "
            f"(got {fill.quantity}); the side carries the direction"
        )
    if not (fill.price > 0.0 and math.isfinite(fill.price)):
        raise InvariantViolation(
            f"fill {fill.exec_id} {fill.symbol}: price must be positive and finite (got {fill.price})"
        )
    if not (math.isfinite(fill.commission) and math.isfinite(fill.slippage_cost)):
        raise InvariantViolation(
            f"fill {fill.exec_id} {fill.symbol}: commission and slippage_cost must be finite "
            f"(got {fill.commission}, {fill.slippage_cost})"
        )


class Ledger:
    """Positions, cash, T+N settlement and P&L of one account.

    ``account_type="cash"`` enforces the cash-account rules (no shorts, no buying with unsettled proceeds);
    ``"margin"`` lets cash go negative and, with ``allow_short=True``, positions go below zero. The arrays
    exposed as ``quantities``, ``avg_cost`` and ``last_prices`` are read-only views owned by the ledger; they
    grow (and old views go stale) when a fill arrives for a symbol not in ``symbols``.
    """

    def __init__(
        self,
        initial_cash: float,
        symbols: Sequence[str],
        account_type: AccountType = "cash",
        allow_short: bool = False,
    ) -> None:
        if account_type not in ("cash", "margin"):
            raise ValueError(f"account_type must be 'cash' or 'margin' (got {account_type!r})")
        if allow_short and account_type == "cash":
            raise ValueError("allow_short=True needs account_type='margin' (a cash account cannot sell short)")
        if not math.isfinite(initial_cash) or (account_type == "cash" and initial_cash < 0):
            raise ValueError(f"initial_cash must be finite, and not negative in a cash account (got {initial_cash})")
        duplicates = sorted(symbol for symbol, count in Counter(symbols).items() if count > 1)
        if duplicates:
            raise ValueError(f"symbols must be unique (duplicated: {duplicates})")
        self.initial_cash = float(initial_cash)
        self.account_type: AccountType = account_type
        self.allow_short = allow_short
        self._symbols: tuple[str, ...] = tuple(symbols)
        self._index = {symbol: i for i, symbol in enumerate(self._symbols)}
        self._quantities = np.zeros(len(self._symbols), dtype=np.float64)
        self._open_count = 0  # symbols with a non-zero position; lets a flat book skip valuation
        self._abs_quantities = np.zeros(len(self._symbols), dtype=np.float64)  # |quantities|, kept with them
        self._avg_cost = np.zeros(len(self._symbols), dtype=np.float64)
        self._last_prices = np.full(len(self._symbols), np.nan, dtype=np.float64)
        self._cash, self._cash_comp = self.initial_cash, 0.0
        self._settled, self._settled_comp = self.initial_cash, 0.0
        self._unsettled: list[tuple[int, int, float]] = []  # heap of (settles_at_ns, sequence, amount)
        self._unsettled_seq = 0
        self._realized_pnl = 0.0
        self._commissions_paid = 0.0
        self._slippage_paid = 0.0
        self._exec_ids: dict[str, None] = {}  # insertion-ordered set
        self._book: tuple[float, float] | None = None  # valuation() until a mark or a fill moves it

    # ----------------------------------------------------------------------------------------------- state
    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def quantities(self) -> np.ndarray:
        return _read_only(self._quantities)

    @property
    def avg_cost(self) -> np.ndarray:
        return _read_only(self._avg_cost)

    @property
    def last_prices(self) -> np.ndarray:
        return _read_only(self._last_prices)

    @property
    def cash(self) -> float:
        """Settled plus unsettled cash, USD; negative only in a margin account."""
        return self._cash + self._cash_comp

    @property
    def settled_cash(self) -> float:
        return self._settled + self._settled_comp

    @property
    def unsettled_cash(self) -> float:
        """Sale proceeds (net of their commission) not yet settled, USD."""
        return math.fsum(amount for _, _, amount in self._unsettled)

    @property
    def realized_pnl(self) -> float:
        """Realized P&L since inception, gross of commissions, USD."""
        return self._realized_pnl

    @property
    def commissions_paid(self) -> float:
        return self._commissions_paid

    @property
    def slippage_paid(self) -> float:
        """Sum of the fills' ``slippage_cost``; already inside the fill prices, so not a cash flow."""
        return self._slippage_paid

    def available_for_buying(self) -> float:
        """Cash a new purchase may use: settled cash in a cash account, all cash in a margin account."""
        return self.settled_cash if self.account_type == "cash" else self.cash

    def position(self, symbol: str) -> int:
        index = self._index.get(symbol)
        return 0 if index is None else int(self._quantities[index])

    @property
    def open_position_count(self) -> int:
        """Symbols with a non-zero position (kept by ``apply_fill``, not counted per call)."""
        return self._open_count

    def open_positions(self) -> dict[str, int]:
        return {self._symbols[i]: int(self._quantities[i]) for i in np.flatnonzero(self._quantities)}

    def has_exec_id(self, exec_id: str) -> bool:
        return exec_id in self._exec_ids

    def applied_exec_ids(self) -> tuple[str, ...]:
        """Every applied fill's exec_id, in the order applied."""
        return tuple(self._exec_ids)

    # --------------------------------------------------------------------------------------------- fills
    def apply_fill(self, fill: FillEvent, settles_at_ns: int) -> float:
        """Book one execution; returns its realized P&L (gross of commission), USD.

        ``settles_at_ns`` is when a sale's proceeds become settled (the caller's T+N from the exchange
        calendar); it is not used for buys. A fill whose ``exec_id`` was already applied is ignored and
        returns 0.0. Raises InvariantViolation, with the ledger unchanged, if the fill is malformed, would
        open or extend a short where shorting is not allowed, or would make settled cash negative in a cash
        account.
        """
        if fill.exec_id in self._exec_ids:
            log.warning(
                "event=duplicate_fill_ignored exec_id=%s symbol=%s side=%s qty=%s price=%s",
                fill.exec_id, fill.symbol, fill.side, fill.quantity, fill.price,
            )  # fmt: skip
            return 0.0
        _check_fill(fill)
        index = self._index.get(fill.symbol)
        quantity, avg_cost = (
            (0.0, 0.0) if index is None else (float(self._quantities[index]), float(self._avg_cost[index]))
        )
        is_buy = fill.side is Side.BUY
        signed_quantity = float(fill.quantity) if is_buy else -float(fill.quantity)
        new_quantity, new_avg, realized = position_after_fill(quantity, avg_cost, signed_quantity, fill.price)
        self._check_short(fill, quantity, new_quantity)
        notional = fill.quantity * fill.price
        proceeds_net = notional - fill.commission
        settled = self._settled_after_fill(is_buy, notional, fill.commission, proceeds_net)
        self._check_settled(fill, settled)
        # Commit: nothing below can fail.
        self._book = None
        self._commit_position(fill, index, quantity, new_quantity, new_avg)
        self._commit_cash(fill, is_buy, notional, proceeds_net, settled, settles_at_ns)
        self._realized_pnl += realized
        self._commissions_paid += fill.commission
        self._slippage_paid += fill.slippage_cost
        self._exec_ids[fill.exec_id] = None
        return realized

    def _check_short(self, fill: FillEvent, held: float, new_quantity: float) -> None:
        """Raise before any mutation if ``fill`` would open or extend a short this account does not allow."""
        if new_quantity < 0.0 and not self.allow_short:
            raise InvariantViolation(
                f"fill {fill.exec_id}: {fill.side} {fill.quantity} {fill.symbol} would leave a position of "
                f"{new_quantity:g} shares, but this {self.account_type} account does not allow shorts "
                f"(allow_short={self.allow_short}); held {held:g}"
            )

    def _settled_after_fill(
        self, is_buy: bool, notional: float, commission: float, proceeds_net: float
    ) -> tuple[float, float]:
        """Settled cash ``(total, compensation)`` the fill would leave, computed without touching the ledger.

        A buy debits its cost and commission at once; a sale's net proceeds wait for settlement, except the part
        of a commission larger than the proceeds, which is owed now.
        """
        if is_buy:
            return _neumaier_add(*_neumaier_add(self._settled, self._settled_comp, -notional), -commission)
        if proceeds_net < 0.0:  # commission larger than the proceeds: the rest is owed now
            return _neumaier_add(self._settled, self._settled_comp, proceeds_net)
        return self._settled, self._settled_comp

    def _check_settled(self, fill: FillEvent, settled: tuple[float, float]) -> None:
        """Raise before any mutation if ``settled`` (from ``_settled_after_fill``) is negative in a cash account."""
        if self.account_type == "cash" and settled[0] + settled[1] < 0.0:
            raise InvariantViolation(
                f"fill {fill.exec_id}: {fill.side} {fill.quantity} {fill.symbol} @ {fill.price} with commission "
                f"{fill.commission} would make settled cash {settled[0] + settled[1]:.6f} in a cash account "
                f"(settled {self.settled_cash:.6f}, unsettled {self.unsettled_cash:.6f}); unsettled proceeds "
                "cannot buy, so the order should have been sized from available_for_buying()"
            )

    def _commit_position(
        self, fill: FillEvent, index: int | None, quantity: float, new_quantity: float, new_avg: float
    ) -> None:
        """Write the checked position update (adding the symbol if it is new); part of ``apply_fill``'s commit."""
        if index is None:
            index = self._add_symbol(fill.symbol)
        self._open_count += (new_quantity != 0.0) - (quantity != 0.0)
        self._quantities[index] = new_quantity
        self._abs_quantities[index] = abs(new_quantity)
        self._avg_cost[index] = new_avg
        if self._last_prices[index] != self._last_prices[index]:  # never marked: the fill is the best price known
            self._last_prices[index] = fill.price

    def _commit_cash(
        self,
        fill: FillEvent,
        is_buy: bool,
        notional: float,
        proceeds_net: float,
        settled: tuple[float, float],
        settles_at_ns: int,
    ) -> None:
        """Write the checked cash flows: total cash, settled cash, and a sale's proceeds queued until they settle."""
        self._cash, self._cash_comp = _neumaier_add(
            *_neumaier_add(self._cash, self._cash_comp, -notional if is_buy else notional), -fill.commission
        )
        self._settled, self._settled_comp = settled
        if not is_buy and proceeds_net > 0.0:
            heapq.heappush(self._unsettled, (settles_at_ns, self._unsettled_seq, proceeds_net))
            self._unsettled_seq += 1

    def next_settlement_ns(self) -> int | None:
        """When the earliest unsettled amount settles (None when nothing is pending)."""
        return self._unsettled[0][0] if self._unsettled else None

    def settle(self, now_ns: int) -> float:
        """Move every unsettled amount due at or before ``now_ns`` to settled cash; returns the USD moved."""
        moved = 0.0
        while self._unsettled and self._unsettled[0][0] <= now_ns:
            _, _, amount = heapq.heappop(self._unsettled)
            self._settled, self._settled_comp = _neumaier_add(self._settled, self._settled_comp, amount)
            moved += amount
        return moved

    def _add_symbol(self, symbol: str) -> int:
        log.warning("event=ledger_symbol_added symbol=%s reason=fill_for_unconfigured_symbol", symbol)
        self._index[symbol] = len(self._symbols)
        self._symbols = (*self._symbols, symbol)
        self._quantities = np.append(self._quantities, 0.0)
        self._abs_quantities = np.append(self._abs_quantities, 0.0)
        self._avg_cost = np.append(self._avg_cost, 0.0)
        self._last_prices = np.append(self._last_prices, np.nan)
        return self._index[symbol]

    # ------------------------------------------------------------------------------------------ valuation
    def mark(self, prices: np.ndarray) -> None:
        """Remember the non-NaN prices (aligned to ``symbols``) as the symbols' last prices.

        Called once per bar by the backtester: the common case (a float64 array of the right shape) is one
        ``copyto`` with a NaN mask (``p == p`` is False only for NaN).
        """
        self._book = None
        last = self._last_prices
        if isinstance(prices, np.ndarray) and prices.dtype == np.float64 and prices.shape == last.shape:
            np.copyto(last, prices, where=prices == prices)
            return
        resolved = self._aligned(prices)
        known = ~np.isnan(resolved)
        last[known] = resolved[known]

    def last_price(self, symbol: str) -> float:
        """Last marked price of ``symbol`` (or its first fill price if never marked); NaN if unknown."""
        index = self._index.get(symbol)
        return math.nan if index is None else float(self._last_prices[index])

    def market_value(self, prices: np.ndarray | None = None) -> float:
        """Signed value of all positions, USD.

        ``prices`` is aligned to ``symbols``. NaN entries, a tail missing from a shorter array (symbols added
        since the caller built it) and ``prices=None`` use the last marked prices. A symbol held but never
        priced makes the result NaN; flat symbols never matter.
        """
        return self._value(self._quantities, prices)

    def equity(self, prices: np.ndarray | None = None) -> float:
        """Cash plus market value, USD (prices as in ``market_value``)."""
        return self.cash + self._value(self._quantities, prices)

    def valuation(self) -> tuple[float, float]:
        """(equity, gross exposure) at the last marked prices, in one pass: the backtester's per-bar call.

        Same numbers as ``equity()`` and ``gross_exposure()`` (it falls back to them when a held symbol has no
        price yet); measured ~1.5 us cheaper per bar on one symbol, where numpy call overhead dominates. The
        answer is kept until ``mark`` or a fill changes the book: every order of a session asks for it (500
        symbols: ~19 orders, each valuing 500 positions, ~11 % of a backtest before it was kept).
        """
        book = self._book
        if book is None:
            book = self._book = self._valuation()
        return book

    def _valuation(self) -> tuple[float, float]:
        if self._open_count == 0:
            return self.cash, 0.0
        last = self._last_prices
        market_value = float((self._quantities * last).sum())
        gross = float((self._abs_quantities * last).sum())
        if market_value == market_value and gross == gross:
            return self.cash + market_value, gross
        return self.equity(), self.gross_exposure()

    def quiet_valuations(self, last_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``valuation()`` after each of ``last_rows`` (last prices, one row per session) with the book unchanged.

        The backtester's quiet sessions value the same positions at successive prices: the numbers are those
        ``mark`` + ``valuation`` would give row by row, bit for bit. Why they are: a position's value is the sum
        of the element-wise products (``(quantities * prices).sum()``, never a BLAS dot product, whose order of
        additions is its own), and numpy sums each row of a C-contiguous matrix along its last axis exactly as
        it sums that row alone (pairwise, in the same blocks). A row where a flat symbol's unknown price makes
        that NaN takes ``valuation``'s fallback (only the held symbols); a held symbol with no price gives NaN.
        """
        n = last_rows.shape[0]
        cash = self.cash
        if self._open_count == 0:
            return np.full(n, cash), np.zeros(n)
        rows = np.ascontiguousarray(last_rows, dtype=np.float64)
        market_value = (rows * self._quantities).sum(axis=1)
        gross = (rows * self._abs_quantities).sum(axis=1)
        total = float(market_value.sum()) + float(gross.sum())
        if total != total:  # some row is NaN (or infinities cancelled: the rows are then looked at one by one)
            unknown = np.flatnonzero(np.isnan(market_value) | np.isnan(gross))
            held = self._quantities != 0.0
            held_quantities, held_absolute = self._quantities[held], self._abs_quantities[held]
            for i in unknown:
                row = rows[i, held]
                if market_value[i] != market_value[i]:
                    market_value[i] = (held_quantities * row).sum()
                if gross[i] != gross[i]:
                    gross[i] = (held_absolute * row).sum()
        return cash + market_value, gross

    def gross_exposure(self, prices: np.ndarray | None = None) -> float:
        """Sum of absolute position values, USD (prices as in ``market_value``)."""
        return self._value(np.abs(self._quantities), prices)

    def unrealized_pnl(self, prices: np.ndarray | None = None) -> float:
        """Market value minus average-cost basis, USD (prices as in ``market_value``)."""
        return self._value(self._quantities, prices) - float(self._quantities @ self._avg_cost)

    def _value(self, weights: np.ndarray, prices: np.ndarray | None) -> float:
        if self._open_count == 0:
            return 0.0  # flat: nothing to value (and no NaN of an unpriced symbol to step around)
        if prices is None:
            prices = self._last_prices
        if isinstance(prices, np.ndarray) and prices.shape == weights.shape:
            value = float((weights * prices).sum())
            if value == value:  # fast path: no NaN anywhere
                return value
        resolved = self._aligned(prices)
        resolved = np.where(np.isnan(resolved), self._last_prices, resolved)
        held = self._quantities != 0.0  # a flat symbol's unknown price does not matter
        return float((weights[held] * resolved[held]).sum())

    def _aligned(self, prices: np.ndarray) -> np.ndarray:
        """``prices`` as float64 aligned to ``symbols``; a shorter array (symbols added since) is NaN-padded."""
        array = np.asarray(prices, dtype=np.float64)
        n = len(self._symbols)
        if array.ndim != 1 or array.shape[0] > n:
            raise ValueError(
                f"prices must be a 1-d array aligned to the ledger's {n} symbols (got shape {array.shape})"
            )
        if array.shape[0] < n:
            array = np.concatenate([array, np.full(n - array.shape[0], np.nan)])
        return array

    # ------------------------------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, Any]:
        """Everything needed to rebuild this ledger, as JSON-compatible values (NaN prices become None).

        ``cash`` is the reportable value; ``cash_residual`` is the part of the compensated sum that a float
        cannot hold, so a restored ledger continues bit for bit like the original (likewise settled cash).
        """
        return {
            "version": SNAPSHOT_VERSION,
            "initial_cash": self.initial_cash,
            "account_type": self.account_type,
            "allow_short": self.allow_short,
            "symbols": list(self._symbols),
            "quantities": [int(q) for q in self._quantities],
            "avg_cost": self._avg_cost.tolist(),
            "last_prices": [None if math.isnan(p) else p for p in self._last_prices.tolist()],
            "cash": self.cash,
            "cash_residual": _two_sum(self._cash, self._cash_comp)[1],
            "settled_cash": self.settled_cash,
            "settled_cash_residual": _two_sum(self._settled, self._settled_comp)[1],
            "unsettled": [[ts, amount] for ts, _, amount in sorted(self._unsettled)],
            "realized_pnl": self._realized_pnl,
            "commissions_paid": self._commissions_paid,
            "slippage_paid": self._slippage_paid,
            "exec_ids": list(self._exec_ids),
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> Ledger:
        """Rebuild a ledger from ``snapshot()``; raises StateCorruptError if the snapshot cannot be trusted."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise StateCorruptError(
                f"ledger snapshot version {snapshot.get('version')!r} unsupported (expected {SNAPSHOT_VERSION})"
            )
        try:
            ledger = cls(
                snapshot["initial_cash"], snapshot["symbols"], snapshot["account_type"], snapshot["allow_short"]
            )
            n = len(ledger._symbols)
            arrays = {
                key: np.array(snapshot[key], dtype=np.float64) for key in ("quantities", "avg_cost", "last_prices")
            }
            if any(array.shape != (n,) for array in arrays.values()):
                raise ValueError(f"position arrays must have one entry per symbol ({n})")
            ledger._quantities = arrays["quantities"]
            ledger._open_count = int(np.count_nonzero(ledger._quantities))
            ledger._abs_quantities = np.abs(ledger._quantities)
            ledger._avg_cost = arrays["avg_cost"]
            ledger._last_prices = arrays["last_prices"]
            ledger._cash, ledger._cash_comp = float(snapshot["cash"]), float(snapshot["cash_residual"])
            ledger._settled = float(snapshot["settled_cash"])
            ledger._settled_comp = float(snapshot["settled_cash_residual"])
            for ts, amount in snapshot["unsettled"]:
                heapq.heappush(ledger._unsettled, (int(ts), ledger._unsettled_seq, float(amount)))
                ledger._unsettled_seq += 1
            ledger._realized_pnl = float(snapshot["realized_pnl"])
            ledger._commissions_paid = float(snapshot["commissions_paid"])
            ledger._slippage_paid = float(snapshot["slippage_paid"])
            ledger._exec_ids = dict.fromkeys(str(e) for e in snapshot["exec_ids"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorruptError(
                f"ledger snapshot is malformed: {exc!r}; restore from the broker's positions"
            ) from exc
        return ledger


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view
