"""Signals in, orders out; fills in, books updated. The decision core shared by backtest and live.

The same object runs inside the backtester and (wrapped by ``live_manager``) inside the engine, so sizing, risk
limits, pre-trade checks, the monthly cap and the accounting are literally the same calls in both. It owns no
clock, socket or file: time arrives through events and ``now_ns``, orders leave through ``put``.

Decision rules:
- One working order per symbol: a signal for a symbol with an order still working is ignored (logged).
- LONG opens a long when flat (covers first when short); EXIT closes whatever is held; SHORT opens a short only
  when the portfolio allows shorting. Exits are reduce-only orders.
- The signal veto (``portfolio/veto.py``), when wired, is asked about entries only: after the working-order and
  position rules, before sizing. A vetoed entry counts in ``ignored_signals["veto"]`` and is logged
  (``event=signal_vetoed``); exits, covers and flattens never meet it, so a veto cannot keep a position open.
- Size = sizer(equity, price, stop) x drawdown throttle x volatility-target leverage; in a cash account also
  capped by settled cash minus what working buys have reserved (a margin account is bounded by the risk
  manager's gross-exposure limit instead).
- Order: risk manager (trading state, exposure) -> monthly cap -> pre-trade gate; the first rejection wins and is
  counted by check name. Counters move only after every check passed.
- On HALTED (drawdown or external) working orders are cancelled (``cancel_all`` on the router, the same path as
  the orders) and, if the policy says so, every position is closed with market orders that bypass the risk gate
  (they only reduce exposure).
- Protective stops (a strategy's ``stop: atr``): an entry carries the strategy's stop distance; each of its
  executions places a real STP order, and an exit on a symbol with open stops cancels them first and is decided
  only once their ends are booked (``portfolio.protective_stops``: placement, the no-overshoot rule, restarts).
  ``stop: none`` (the default) changes nothing.
- Orders go to the executor synchronously (``OrderRouter.submit``) and working orders are read back from its order
  store (``WorkingOrders``): this object keeps no list of its own, so orders adopted after a restart count for
  one-working-order-per-symbol, reserved cash and flatten coverage like any other.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace

import numpy as np

from core.config_models import PortfolioConfig, StrategiesConfig
from core.events import (
    ExecutionChoice,
    FillEvent,
    MarketEvent,
    OrderEvent,
    OrderFailedEvent,
    OrderType,
    Side,
    SignalDirection,
    SignalEvent,
    TradingState,
)
from execution.order_store import CASH_BUFFER
from execution.router import OrderRouter, WorkingOrders
from portfolio.ledger import Ledger
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.optimizer import VolatilityTargeter
from portfolio.order_ids import OrderIdFactory
from portfolio.pre_trade import PreTradeGate, Rejection
from portfolio.protective_stops import ProtectiveStops
from portfolio.risk_manager import RiskManager
from portfolio.shared_sizing_logic import PositionSizer
from portfolio.veto import SignalVeto
from portfolio.wheel_orders import WheelExecution, wheel_strategies

log = logging.getLogger(__name__)

FLATTEN_STRATEGY_ID = "flatten"  # strategy id of the orders flatten() sends
VOL_WINDOW_DAYS = 20  # the AlgoWheel's volatility: sample sd of the last 20 daily returns
TRADING_DAYS_PER_YEAR = 252


def _require_wheel(strategies: StrategiesConfig, wheel: WheelExecution | None) -> None:
    users = wheel_strategies(strategies)
    if users and wheel is None:
        raise ValueError(f"strategies {users} use order_type WHEEL but no AlgoWheel was wired")


def ring_mean(values: list[float]) -> float:
    """Mean of the non-NaN ``values``, their sum exactly rounded (``math.fsum``); NaN when there are none.

    The ADV of one symbol from its column of the volume ring. Why this way: asked for one or two symbols per
    bar, it costs ~2 us where numpy's masked mean over the whole ring cost ~25 us, and an exactly rounded sum
    does not depend on where the ring starts or how numpy orders its additions (share volumes, whole numbers,
    sum exactly in any order, so the figures are those of the vectorized mean it replaces).
    """
    total = math.fsum(values)
    if total == total and values:  # no NaN among them (the usual case): no filtered copy
        return total / len(values)
    known = [value for value in values if value == value]
    return math.fsum(known) / len(known) if known else math.nan


class LedgerPositions(Mapping[str, int]):
    """A live, copy-free view of the ledger's positions (symbol -> signed shares; unknown symbols read 0).

    The risk checks look up one symbol per order; building a dict of every position per order was the
    single largest cost of a many-symbol backtest.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getitem__(self, symbol: str) -> int:
        return self._ledger.position(symbol)

    def get(self, symbol: str, default: int = 0) -> int:  # type: ignore[override]
        """As ``Mapping.get``, without its try/except around ``__getitem__`` (which never raises: unknown is 0);
        the risk checks ask several times per order."""
        return self._ledger.position(symbol)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ledger.open_positions())

    def __len__(self) -> int:
        return self._ledger.open_position_count


class PortfolioManager:
    def __init__(
        self,
        *,
        config: PortfolioConfig,
        strategies: StrategiesConfig,
        symbols: tuple[str, ...],
        ledger: Ledger,
        risk: RiskManager,
        sizer: PositionSizer,
        targeter: VolatilityTargeter,
        monthly: MonthlyTradeCounter,
        gate: PreTradeGate,
        order_ids: OrderIdFactory,
        router: OrderRouter,
        working: WorkingOrders,
        now_ns: Callable[[], int],
        settles_at_ns: Callable[[int], int],
        adv_lookback_days: int,
        accept_signals_from_ns: int | None = None,
        flatten_via: Callable[[str], None] | None = None,
        wheel: WheelExecution | None = None,
        veto: SignalVeto | None = None,
    ) -> None:
        self.config = config
        self._strategies = strategies
        self.symbols = symbols
        self._index = {s: j for j, s in enumerate(symbols)}
        self.ledger = ledger
        self.risk = risk
        self._sizer = sizer
        self._targeter = targeter
        self._monthly = monthly
        self._gate = gate
        self._ids = order_ids
        self._router = router
        self._orders = working
        self._now_ns = now_ns
        self._settles_at_ns = settles_at_ns
        self._accept_signals_from_ns = accept_signals_from_ns  # earlier bars only warm up indicators (None: all)
        # how a halt flattens: the backtester closes its ledger's positions (``flatten``); the live engine passes a
        # flattener that first asks the broker what it holds (``live.broker_flatten``)
        self._flatten_via = flatten_via or self.flatten
        self._wheel = wheel  # how orders of ``order_type: WHEEL`` strategies are worked
        self.veto = veto  # entries only (see the module docstring); None: nothing is vetoed
        self._stops = ProtectiveStops(router, working, now_ns, lambda: self.risk.state)
        _require_wheel(strategies, wheel)
        self._init_history(adv_lookback_days, len(symbols))
        self._positions = LedgerPositions(ledger)
        self.rejections: Counter[str] = Counter()
        self.ignored_signals: Counter[str] = Counter()
        self.clipped: Counter[str] = Counter()  # entries cut to a size limit, by the binding limit
        self.fills: list[FillEvent] = []
        self.equity_ts: list[int] = []
        self.equity_values: list[float] = []
        self.gross_exposure_values: list[float] = []
        self.state_history: list[str] = []
        self._flattened = False

    def _init_history(self, adv_lookback_days: int, n_symbols: int) -> None:
        """The rings of past sessions the decisions read: volumes for ADV, closes for the 20-day volatility."""
        self._close_hist = np.full((VOL_WINDOW_DAYS + 1, n_symbols), np.nan)
        self._volume_hist = np.full((adv_lookback_days, n_symbols), np.nan)
        self._adv_cache: dict[int, float] = {}  # ADV by symbol column, each computed at most once per bar
        self._bars_seen = 0

    # -- BookView for the pre-trade gate -----------------------------------------------------------------------
    def position(self, symbol: str) -> int:
        return self.ledger.position(symbol)

    def last_price(self, symbol: str) -> float:
        return self.ledger.last_price(symbol)

    def average_daily_volume(self, symbol: str) -> float:
        j = self._index.get(symbol)
        if j is None or self._bars_seen == 0:
            return math.nan
        adv = self._adv_cache.get(j)
        if adv is None:
            adv = self._adv_cache[j] = ring_mean(self._volume_hist[:, j].tolist())
        return adv

    def volatility_20d(self, symbol: str) -> float:
        """Annualized volatility (a fraction) of the last 20 daily close-to-close returns; NaN until known."""
        j = self._index.get(symbol)
        rows = self._close_hist.shape[0]
        if j is None or self._bars_seen < rows:
            return math.nan
        start = self._bars_seen % rows  # the ring's oldest row
        closes = np.roll(self._close_hist[:, j], -start)
        returns = closes[1:] / closes[:-1] - 1.0
        return float(np.std(returns, ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR))

    def _record_volume(self, event: MarketEvent) -> None:
        """Keep the last ``adv_lookback_days`` volume rows and the last 21 closes (rings); the ADV mean is taken
        lazily, once per bar."""
        self._volume_hist[self._bars_seen % self._volume_hist.shape[0]] = event.volume
        self._close_hist[self._bars_seen % self._close_hist.shape[0]] = event.close
        self._bars_seen += 1
        self._adv_cache.clear()

    # -- event handlers ----------------------------------------------------------------------------------------
    def on_market(self, event: MarketEvent) -> None:
        ledger = self.ledger
        ledger.mark(event.close)
        ledger.settle(event.ts_event_ns)
        self._record_volume(event)
        equity, gross = ledger.valuation()
        previous_state = self.risk.state
        state = self.risk.update(equity, event.ts_event_ns, flat=gross == 0.0)
        self._targeter.update(equity)
        self.equity_ts.append(event.ts_event_ns)
        self.equity_values.append(equity)
        self.gross_exposure_values.append(gross)
        self._after_risk_update(previous_state, state, event.ts_event_ns)
        self._stops.place_deferred()

    def absorb_quiet(self, last_rows: np.ndarray, closes: np.ndarray, volumes: np.ndarray, ts_ns: np.ndarray) -> int:
        """``on_market`` for a run of session closes in which nothing can happen but marks; returns how many.

        The backtester calls it for sessions with no working order, no signal, no settlement due and no deferred
        stop (``quiet_ready``), passing each session's close and volume rows, its close time, and the last-price
        rows those closes leave (``last_rows``: the closes carried forward over NaN). The book cannot change, so
        the equity and exposure series, the risk rules' peak and drawdowns, the optimizer's returns and the
        history rings end where as many ``on_market`` calls would leave them, and the cash due by the last absorbed
        close is settled (in the same order: each ``on_market`` settles what is due by its close, oldest first, and
        nothing in between reads the settled part). It stops before a session whose equity would move the trading
        state (``RiskManager.absorb_quiet``); that one goes to ``on_market``.
        """
        equity, gross = self.ledger.quiet_valuations(last_rows)
        n = self.risk.absorb_quiet(equity, gross == 0.0)
        if n == 0:
            return 0
        self.ledger.mark(last_rows[n - 1])
        self.ledger.settle(int(ts_ns[n - 1]))
        self._record_history_rows(closes[:n], volumes[:n])
        self._targeter.update_many(equity[:n])
        self.equity_ts.extend(ts_ns[:n].tolist())
        self.equity_values.extend(equity[:n].tolist())
        self.gross_exposure_values.extend(gross[:n].tolist())
        return n

    def quiet_ready(self) -> bool:
        """No deferred protective stop waits for the next market event (``absorb_quiet`` would not send it)."""
        return not self._stops.has_deferred()

    def _record_history_rows(self, closes: np.ndarray, volumes: np.ndarray) -> None:
        """``_record_volume`` for consecutive sessions at once: only the rows each ring still holds are written,
        as at most two slice copies (the ring wraps once at most; fancy indexing cost ~6 us per ring and run)."""
        n = len(closes)
        for ring, rows in ((self._volume_hist, volumes), (self._close_hist, closes)):
            size = ring.shape[0]
            kept = min(n, size)
            start = (self._bars_seen + n - kept) % size
            first = min(kept, size - start)
            ring[start : start + first] = rows[n - kept : n - kept + first]
            if first < kept:
                ring[: kept - first] = rows[n - kept + first : n]
        self._bars_seen += n
        self._adv_cache.clear()

    def record_history(self, event: MarketEvent) -> None:
        """A past daily bar seen only for its volume (the live engine's warm-up): ADV needs the history.

        No mark, no risk update and no equity point: marking today's book at an old close would fake a drawdown.
        """
        self._record_volume(event)

    def mark_intraday(self, event: MarketEvent) -> None:
        """An intraday bar (live only): mark the book, settle due cash, and let the drawdown rules see it.

        Unlike ``on_market`` this is not a session: no volume for ADV, no return for the optimizer, no equity
        point, and the flat-sessions count of REDUCING is left alone. An equity that cannot be computed yet (a
        position not priced since a restart) is skipped rather than treated as a broken book.
        """
        ledger = self.ledger
        ledger.mark(event.close)
        ledger.settle(event.ts_event_ns)
        equity, _gross = ledger.valuation()
        if equity != equity:  # NaN: some held symbol has no price yet
            return
        previous_state = self.risk.state
        state = self.risk.update(equity, event.ts_event_ns, flat=None)
        self._after_risk_update(previous_state, state, event.ts_event_ns)
        self._stops.place_deferred()

    def _after_risk_update(self, previous_state: TradingState, state: TradingState, ts_ns: int) -> None:
        """Record a state change; a move to HALTED cancels and (by policy) flattens."""
        if state is not previous_state:
            self.state_history.append(f"{ts_ns}:{previous_state}->{state}")
            if state is TradingState.HALTED:
                self.on_halt(self.risk.halt_reason or "risk manager halted")

    def on_signal(self, signal: SignalEvent) -> None:
        if self._accept_signals_from_ns is not None and signal.ts_event_ns < self._accept_signals_from_ns:
            self.ignored_signals["warmup"] += 1
            return
        if self.risk.state is TradingState.HALTED:
            self.ignored_signals["halted"] += 1
            return
        symbol = signal.symbol
        if self._orders.is_working(symbol):
            self.ignored_signals["order_working"] += 1
            return
        position = self.ledger.position(symbol)
        order = self._order_for(signal, position)
        if order is None or (order.reduce_only and self._stops.hold_exit(signal)):
            return
        book = self.ledger.valuation()  # (equity, gross): nothing moves the ledger until the order is sent
        order = self._clip_to_limits(order, book)
        rejection = self._first_rejection(order, book)
        if rejection is not None:
            self.rejections[rejection.check] += 1
            log.info(
                "event=order_rejected check=%s symbol=%s side=%s qty=%d reason=%s",
                rejection.check,
                symbol,
                order.side,
                order.quantity,
                rejection.reason,
            )
            return
        self._send(order)

    def on_fill(self, fill: FillEvent) -> None:
        is_new = not self.ledger.has_exec_id(fill.exec_id)
        self.ledger.apply_fill(fill, self._settles_at_ns(fill.ts_event_ns))
        self.fills.append(fill)
        if is_new:
            self._stops.on_entry_fill(fill)

    def on_order_booked(self, event: FillEvent | OrderFailedEvent) -> None:
        """Routed after the order store's booking handlers: an exit held for its protective stops is decided now
        that their ends (a cancel, or the fill that made the position smaller or flat) are in the books."""
        released = self._stops.released_exit(event.symbol)
        if released is not None:
            log.info("event=held_exit_released strategy_id=%s symbol=%s position=%d", released.strategy_id,
                     released.symbol, self.ledger.position(released.symbol))  # fmt: skip
            self.on_signal(released)
        elif isinstance(event, OrderFailedEvent) and self._stop_cancelled_after_halt(event):
            # the halt's flatten counted this stop as covering its shares while the broker might still fill it;
            # now that it is gone, flatten again (idempotent: what working flatten orders cover is not sent twice)
            self._flatten_via(f"protective stop {event.client_order_id} ended after the halt")

    def _stop_cancelled_after_halt(self, event: OrderFailedEvent) -> bool:
        order = self._orders.order_event(event.client_order_id)
        return (order is not None and order.order_type is OrderType.STP and self.risk.state is TradingState.HALTED
                and self.config.risk.flatten_on_halt)  # fmt: skip

    def on_order_failed(self, event: OrderFailedEvent) -> None:
        log.info(
            "event=order_failed client_order_id=%s symbol=%s status=%s reason=%s",
            event.client_order_id,
            event.symbol,
            event.status,
            event.reason,
        )

    def on_halt(self, reason: str) -> None:
        """Cancel everything working and, by policy, flatten. Safe to call more than once."""
        if self.risk.state is not TradingState.HALTED:
            self.risk.halt(reason, self._now_ns())
        self._router.cancel_all(f"halted: {reason}")
        if self.config.risk.flatten_on_halt and not self._flattened:
            self._flattened = True
            self._flatten_via(reason)

    def flatten(self, reason: str, positions: Mapping[str, float] | None = None) -> None:
        """Close every position with reduce-only market orders (bypasses the risk gate: exposure only shrinks).

        ``positions`` (symbol -> signed shares) is what to close: the broker's, as the live engine just learned
        them; the ledger's when None (the backtester, whose venue is its ledger). Symbols outside the universe are
        left alone (logged): no order can be priced or booked for them.

        Idempotent: shares already covered by a working flatten order are not sent again. A halt, a kill flag and
        the monitor's FLATTEN can all ask within milliseconds, before the first flatten's fills reach the ledger;
        sending the full position each time would turn a long into a short. Coverage is netted the way the
        positions were learned: the books' working view against the ledger, what the broker may still fill
        against the broker's positions; the latter also counts the shares of protective stops the broker may still
        fill (a halt's cancel of them not yet confirmed), so a stop filling in that window cannot make a short.
        """
        now = self._now_ns()
        held = self.ledger.open_positions() if positions is None else positions
        for symbol, signed in held.items():
            quantity = int(signed)
            if quantity == 0:
                continue
            if symbol not in self._index:
                log.warning("event=flatten_symbol_unknown symbol=%s position=%s (not in the universe: left alone)",
                            symbol, signed)  # fmt: skip
                continue
            side = Side.SELL if quantity > 0 else Side.BUY
            covered = (self._orders.working_quantity(symbol, side, FLATTEN_STRATEGY_ID) if positions is None
                       else self._orders.working_at_broker(symbol, side, FLATTEN_STRATEGY_ID)
                       + self._orders.stops_at_broker(symbol, side))  # a stop not yet confirmed cancelled  # fmt: skip
            remaining = abs(quantity) - covered
            if remaining <= 0:
                log.info("event=flatten_already_working symbol=%s position=%d covered=%d", symbol, quantity, covered)
                continue
            order = self._make_order(
                FLATTEN_STRATEGY_ID,
                symbol,
                side,
                remaining,
                OrderType.MKT,
                None,
                self.ledger.last_price(symbol),
                now,
                reduce_only=True,
                reason=f"flatten: {reason}",
            )
            self._send(order)

    @property
    def reserved_cash(self) -> float:
        """Cash held back for working buys (a cash account's entries are sized on what is left)."""
        return self._orders.reserved_cash()

    def working_symbols(self) -> set[str]:
        return self._orders.working_symbols()

    # -- internals ---------------------------------------------------------------------------------------------
    def _order_for(self, signal: SignalEvent, position: int) -> OrderEvent | None:
        direction = signal.direction
        if (
            direction is SignalDirection.EXIT
            or (direction is SignalDirection.LONG and position < 0)
            or (direction is SignalDirection.SHORT and position > 0)
        ):
            if position == 0:
                self.ignored_signals["exit_while_flat"] += 1
                return None
            side = Side.SELL if position > 0 else Side.BUY
            return self._strategy_order(signal, side, abs(position), reduce_only=True)
        if position != 0:
            self.ignored_signals["already_positioned"] += 1
            return None
        if direction is SignalDirection.SHORT and not self.config.allow_short:
            self.ignored_signals["short_not_allowed"] += 1
            return None
        if self.veto is not None and self._vetoed(self.veto, signal):
            return None
        quantity = self._entry_quantity(signal)
        if quantity <= 0:
            self.ignored_signals["zero_size"] += 1
            return None
        side = Side.BUY if direction is SignalDirection.LONG else Side.SELL
        return self._strategy_order(signal, side, quantity, reduce_only=False)

    def _vetoed(self, veto: SignalVeto, signal: SignalEvent) -> bool:
        """Ask the veto about an entry; a veto is counted and logged with its probability and threshold."""
        decision = veto.check(signal)
        if not decision.vetoed:
            return False
        self.ignored_signals["veto"] += 1
        threshold = veto.threshold(signal.strategy_id)
        log.info(
            "event=signal_vetoed strategy_id=%s symbol=%s p=%s threshold=%s reason=%s",
            signal.strategy_id,
            signal.symbol,
            "none" if decision.probability is None else f"{decision.probability:.4f}",
            "none" if threshold is None else f"{threshold:.2f}",
            decision.reason,
        )
        return True

    def _entry_quantity(self, signal: SignalEvent) -> int:
        equity = self.ledger.valuation()[0]  # equity() as valuation() keeps it: the same number, not recomputed
        scale = self.risk.size_scale() * self._targeter.leverage()
        quantity = self._sizer.quantity(equity, signal.reference_price, signal.stop_distance, scale)
        if signal.direction is SignalDirection.LONG and self.config.account_type == "cash":
            spendable = self.ledger.available_for_buying() - self._orders.reserved_cash()
            price_with_buffer = signal.reference_price * (1.0 + CASH_BUFFER)
            quantity = min(quantity, max(0, int(spendable // price_with_buffer)))
        return quantity

    def _strategy_order(self, signal: SignalEvent, side: Side, quantity: int, *, reduce_only: bool) -> OrderEvent:
        strategy_cfg = getattr(self._strategies, signal.strategy_id, None)
        configured = strategy_cfg.order_type if strategy_cfg is not None else "MKT"
        execution = None
        if configured == "WHEEL" and self._wheel is not None:
            choice = self._wheel.choose(symbol=signal.symbol, side=side, quantity=quantity,
                                        reference_price=signal.reference_price,
                                        adv_shares=self.average_daily_volume(signal.symbol),
                                        vol_20d=self.volatility_20d(signal.symbol), ts_event_ns=signal.ts_event_ns)
            order_type, limit, execution = choice.order_type, choice.limit_price, choice.execution  # fmt: skip
        else:
            order_type, limit = OrderType(configured), None
            if order_type in (OrderType.LMT, OrderType.LOC):
                offset = strategy_cfg.limit_offset_bps / 1e4 if strategy_cfg is not None else 0.0
                limit = round(signal.reference_price * (1 + offset if side is Side.BUY else 1 - offset), 2)
        stop_distance = None
        if not reduce_only and strategy_cfg is not None and strategy_cfg.stop == "atr":
            stop_distance = signal.stop_distance
            if stop_distance is None:
                log.warning("event=entry_without_protective_stop strategy_id=%s symbol=%s reason=no_stop_distance",
                            signal.strategy_id, signal.symbol)  # fmt: skip
        return self._make_order(
            signal.strategy_id,
            signal.symbol,
            side,
            quantity,
            order_type,
            limit,
            signal.reference_price,
            signal.ts_event_ns,
            reduce_only=reduce_only,
            reason=signal.direction.name,
            execution=execution,
            protective_stop_distance=stop_distance,
        )

    def _make_order(
        self,
        strategy_id: str,
        symbol: str,
        side: Side,
        quantity: int,
        order_type: OrderType,
        limit: float | None,
        reference_price: float,
        ts_event_ns: int,
        *,
        reduce_only: bool,
        reason: str,
        execution: ExecutionChoice | None = None,
        protective_stop_distance: float | None = None,
    ) -> OrderEvent:
        return OrderEvent(
            ts_event_ns=ts_event_ns,
            ts_init_ns=self._now_ns(),
            client_order_id=self._ids.next_id(strategy_id, symbol, ts_event_ns, side),
            strategy_id=strategy_id,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            limit_price=limit,
            reference_price=reference_price,
            reduce_only=reduce_only,
            reason=reason,
            execution=execution,
            protective_stop_distance=protective_stop_distance,
        )

    def _clip_to_limits(self, order: OrderEvent, book: tuple[float, float]) -> OrderEvent:
        """An entry above a size limit cut to the most that limit allows (``risk.on_limit: clip``, the default).

        Why: refusing the whole entry because it is a few shares over a weight or ADV limit hides trades a trader
        would expect (one YHOO run made 5 round trips instead of 32). Only size limits cut (position weight, gross
        exposure, per-order quantity, notional, ADV share); what is left must pass every check as usual, and an
        order with nothing left is refused with the limit's own reason.
        """
        if self.config.risk.on_limit != "clip" or order.reduce_only:
            return order
        caps = [cap for cap in (self._risk_cap(order, book), self._gate.size_cap(order, self)) if cap is not None]
        if not caps:
            return order
        quantity, limit = min(caps)
        if quantity <= 0:
            return order
        clipped = replace(order, quantity=quantity)
        if self._first_rejection(clipped, book, quiet=True) is not None and quantity > 1:  # a float tie at the limit
            clipped = replace(order, quantity=quantity - 1)
        self.clipped[limit] += 1
        log.info("event=order_clipped limit=%s symbol=%s side=%s qty_wanted=%d qty_sent=%d", limit, order.symbol,
                 order.side, order.quantity, clipped.quantity)  # fmt: skip
        return clipped

    def _risk_cap(self, order: OrderEvent, book: tuple[float, float]) -> tuple[int, str] | None:
        equity, gross = book
        return self.risk.size_cap(order, order.reference_price, equity, gross, self._positions)

    def _first_rejection(
        self, order: OrderEvent, book: tuple[float, float], *, quiet: bool = False
    ) -> Rejection | None:
        """The first check ``order`` fails, ours then the gate's; ``book`` is the ledger's (equity, gross)."""
        now = self._now_ns()
        equity, gross = book
        positions = self._positions
        rejection = self.risk.check_order(
            order, order.reference_price, equity, gross, positions, open_position_count=len(positions)
        )
        if rejection is None:
            rejection = self._monthly.check(order, now)
        if rejection is None and quiet:  # a trial of a clipped size: no rejection log
            failed = self._gate.check_all(order, self, now)
            rejection = failed[0] if failed else None
        elif rejection is None:
            rejection = self._gate.check(order, self, now)
        return rejection

    def _send(self, order: OrderEvent) -> None:
        now = self._now_ns()
        self._gate.accept(order, now)
        self._monthly.record(order, now)
        log.debug(
            "event=order_created client_order_id=%s symbol=%s side=%s qty=%d type=%s reason=%s",
            order.client_order_id,
            order.symbol,
            order.side,
            order.quantity,
            order.order_type,
            order.reason,
        )
        self._router.submit(order)
