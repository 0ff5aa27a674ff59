"""The protective-stop rules of the decision core (issue 15), event by event, with the real simulated venue as the
router: placement from an entry's executions, idempotence, STARTING and HALTED, and the exit held for its stop."""

from __future__ import annotations

import numpy as np
import pytest

from core.clock import NS_PER_SECOND, SimClock
from core.config_models import CostsConfig, PortfolioConfig, PreTradeConfig, StrategiesConfig
from core.events import (
    FillEvent,
    MarketEvent,
    OrderEvent,
    OrderFailedEvent,
    OrderStatus,
    OrderType,
    Side,
    SignalDirection,
    SignalEvent,
    TimeInForce,
)
from execution.commissions import build_commission_model
from execution.sim_executor import SessionTimes, SimulatedExecutor
from execution.slippage import SlippageModel
from portfolio.ledger import Ledger
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.optimizer import VolatilityTargeter
from portfolio.order_ids import OrderIdFactory
from portfolio.portfolio_manager import PortfolioManager
from portfolio.pre_trade import PreTradeGate
from portfolio.protective_stops import stop_client_order_id, stop_price_for
from portfolio.risk_manager import RiskManager
from portfolio.shared_sizing_logic import PositionSizer
from portfolio.trading_state import Reason, TradingStateMachine

SYMBOLS = ("AAA",)
T0 = 1_700_000_000 * NS_PER_SECOND


class SlowCancels:
    """The venue, except that cancels are only recorded: as a broker whose cancel confirmation is still on its way."""

    def __init__(self, venue: SimulatedExecutor) -> None:
        self.venue, self.cancels = venue, []

    def submit(self, order: OrderEvent) -> None:
        self.venue.submit(order)

    def cancel(self, client_order_id: str, reason: str) -> None:
        self.cancels.append(client_order_id)

    def cancel_all(self, reason: str) -> None:
        self.cancels.append("*")


class Desk:
    """A PortfolioManager on the simulated venue; the venue's events are collected in ``events``, not dispatched."""

    def __init__(self, *, starting: bool = False, slow_cancels: bool = False,
                 pre_trade: PreTradeConfig | None = None, broker: dict[str, float] | None = None) -> None:  # fmt: skip
        self.clock = SimClock(T0)
        self.events: list[object] = []
        sessions = SessionTimes(np.array([T0]), np.array([T0 + 1]), np.array([T0]))
        self.venue = SimulatedExecutor(SYMBOLS, sessions, build_commission_model(CostsConfig()),
                                       SlippageModel.zero(), self.events.append, self.clock.now_ns)  # fmt: skip
        cfg = PortfolioConfig.model_validate({"sizing": {"method": "fixed_shares", "fixed_shares": 10}})
        self.risk = RiskManager(cfg.risk, trading=TradingStateMachine(starting=starting))
        self.slow = SlowCancels(self.venue)
        self.pm = PortfolioManager(
            config=cfg, strategies=StrategiesConfig.model_validate({"momentum": {"stop": "atr"}}), symbols=SYMBOLS,
            ledger=Ledger(cfg.initial_capital, SYMBOLS), risk=self.risk,
            sizer=PositionSizer(cfg.sizing, cfg.risk_per_trade_pct), targeter=VolatilityTargeter(cfg.optimizer),
            monthly=MonthlyTradeCounter(cfg.max_trades_per_month),
            gate=PreTradeGate(pre_trade or PreTradeConfig(), SYMBOLS),
            order_ids=OrderIdFactory(), router=self.slow if slow_cancels else self.venue, working=self.venue.store,
            now_ns=self.clock.now_ns, settles_at_ns=lambda ts: ts, adv_lookback_days=20,
            flatten_via=None if broker is None else lambda reason: self.pm.flatten(reason, broker),
        )  # fmt: skip
        self.pm.on_market(self.bar(100.0))

    def bar(self, price: float) -> MarketEvent:
        one = np.array([price])
        return MarketEvent(ts_event_ns=self.clock.now_ns(), ts_init_ns=self.clock.now_ns(), bar_index=0,
                           symbols=SYMBOLS, open=one, high=one, low=one, close=one, volume=np.array([1e6]))  # fmt: skip

    def signal(self, direction: SignalDirection) -> None:
        self.pm.on_signal(SignalEvent(ts_event_ns=self.clock.now_ns(), ts_init_ns=self.clock.now_ns(),
                                      strategy_id="momentum", symbol="AAA", direction=direction,
                                      reference_price=100.0, stop_distance=5.0))  # fmt: skip

    def orders(self, order_type: OrderType | None = None) -> list[OrderEvent]:
        return [m.order for m in self.venue.store.all() if order_type is None or m.order.order_type is order_type]

    def fill(self, order: OrderEvent, quantity: int, price: float, exec_id: str) -> FillEvent:
        """The venue executes ``order``; the fill is booked the way the dispatcher routes it."""
        managed = self.venue.store.get(order.client_order_id)
        assert managed is not None
        managed.apply_fill(exec_id, quantity, price, 1.0, self.clock.now_ns())
        fill = FillEvent(ts_event_ns=self.clock.now_ns(), ts_init_ns=self.clock.now_ns(),
                         client_order_id=order.client_order_id, broker_order_id=None, exec_id=exec_id,
                         strategy_id=order.strategy_id, symbol=order.symbol, side=order.side, quantity=quantity,
                         price=price, commission=1.0, order_type=order.order_type)  # fmt: skip
        self.book(fill)
        return fill

    def book(self, event: FillEvent | OrderFailedEvent) -> None:
        """The dispatcher's routes for fills and ends: the books, the store's view, then the held exits."""
        if isinstance(event, FillEvent):
            self.pm.on_fill(event)
            self.venue.store.on_fill_booked(event)
        else:
            self.pm.on_order_failed(event)
            self.venue.store.on_failure_booked(event)
        self.pm.on_order_booked(event)

    def deliver_venue_events(self) -> None:
        pending, self.events[:] = list(self.events), []
        for event in pending:
            assert isinstance(event, FillEvent | OrderFailedEvent)
            self.book(event)


def adopted_entry() -> OrderEvent:
    return OrderEvent(ts_event_ns=T0, ts_init_ns=T0, client_order_id="adopted-entry", strategy_id="momentum",
                      symbol="AAA", side=Side.BUY, quantity=10, order_type=OrderType.MKT, reference_price=100.0,
                      protective_stop_distance=5.0)  # fmt: skip


def test_stop_price_and_id_rules() -> None:
    assert stop_price_for(Side.BUY, 100.004, 2.5) == 97.5 and stop_price_for(Side.SELL, 100.0, 2.504) == 102.5
    desk = Desk()
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    assert stop_client_order_id(entry, "E1") == stop_client_order_id(entry, "E1") != stop_client_order_id(entry, "E2")


def test_an_entry_carries_the_decisions_stop_distance_and_each_execution_places_one_gtc_stop() -> None:
    desk = Desk()
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    assert entry.protective_stop_distance == 5.0 and entry.order_type is OrderType.MKT
    fill = desk.fill(entry, 4, 101.0, "E1")
    desk.pm.on_fill(fill)  # the same execution again (a replay after a reconnect): no second stop
    desk.fill(entry, 6, 102.0, "E2")
    stops = desk.orders(OrderType.STP)
    assert [(s.side, s.quantity, s.stop_price, s.time_in_force, s.reduce_only, s.strategy_id) for s in stops] == [
        (Side.SELL, 4, 96.0, TimeInForce.GTC, True, "momentum"), (Side.SELL, 6, 97.0, TimeInForce.GTC, True,
                                                                  "momentum")]  # fmt: skip
    assert not desk.venue.store.is_working("AAA")  # a stop does not block the strategy's exit
    assert desk.venue.store.open_stops("AAA") == [s.client_order_id for s in stops]


def test_stops_wait_while_starting_and_go_once_reconciled() -> None:
    desk = Desk(starting=True)
    entry = adopted_entry()
    desk.venue.submit(entry)
    desk.fill(entry, 10, 100.0, "E-replayed")  # an execution learned during the start-up sync
    assert not desk.orders(OrderType.STP)
    desk.pm.on_market(desk.bar(100.0))
    assert not desk.orders(OrderType.STP)  # still STARTING
    desk.risk.trading.reconciled(desk.clock.now_ns())
    desk.pm.mark_intraday(desk.bar(100.0))
    [stop] = desk.orders(OrderType.STP)
    assert (stop.quantity, stop.stop_price) == (10, 95.0)


def test_no_stop_is_placed_once_halted() -> None:
    desk = Desk()
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    desk.risk.halt("test", desk.clock.now_ns())
    desk.fill(entry, 10, 100.0, "E1")
    assert not desk.orders(OrderType.STP)


def test_an_exit_cancels_the_stop_and_is_sent_only_when_the_cancel_is_booked() -> None:
    desk = Desk()
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    desk.fill(entry, 10, 100.0, "E1")
    [stop] = desk.orders(OrderType.STP)
    desk.signal(SignalDirection.EXIT)
    assert len(desk.orders()) == 2  # held: nothing sent yet
    [cancelled] = desk.events
    assert isinstance(cancelled, OrderFailedEvent) and cancelled.status is OrderStatus.CANCELLED
    assert cancelled.client_order_id == stop.client_order_id
    desk.deliver_venue_events()
    [exit_order] = desk.orders()[2:]
    assert (exit_order.side, exit_order.quantity, exit_order.order_type, exit_order.reduce_only) == (
        Side.SELL, 10, OrderType.MKT, True)  # fmt: skip


@pytest.mark.parametrize(("stop_filled", "exit_quantity"), [(10, None), (4, 6)])
def test_a_stop_that_fills_while_its_cancel_is_on_the_way_shrinks_the_held_exit(stop_filled: int,
                                                                                exit_quantity: int | None) -> None:
    desk = Desk(slow_cancels=True)
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    desk.fill(entry, 10, 100.0, "E1")
    [stop] = desk.orders(OrderType.STP)
    desk.signal(SignalDirection.EXIT)
    assert desk.slow.cancels == [stop.client_order_id] and len(desk.orders()) == 2
    desk.fill(stop, stop_filled, 95.0, "S1")  # the broker filled (part of) the stop before the cancel arrived
    if stop_filled < 10:
        managed = desk.venue.store.get(stop.client_order_id)
        assert managed is not None
        managed.transition(OrderStatus.CANCELLED)
        desk.book(OrderFailedEvent(ts_event_ns=T0, ts_init_ns=T0, client_order_id=stop.client_order_id,
                                   strategy_id="momentum", symbol="AAA", status=OrderStatus.CANCELLED,
                                   reason="cancelled", filled_quantity=stop_filled))  # fmt: skip
    exits = [o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]
    assert [o.quantity for o in exits] == ([] if exit_quantity is None else [exit_quantity])
    assert desk.pm.ledger.position("AAA") == 10 - stop_filled
    if exit_quantity is None:
        assert desk.pm.ignored_signals["exit_while_flat"] == 1


def test_a_flatten_from_the_broker_counts_a_stop_not_yet_confirmed_cancelled_as_covering() -> None:
    desk = Desk(slow_cancels=True)
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    desk.fill(entry, 10, 100.0, "E1")
    [stop] = desk.orders(OrderType.STP)
    desk.pm.flatten("kill", {"AAA": 10})  # the stop may still fill: selling 10 more could make a short
    assert not [o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]
    desk.venue.cancel(stop.client_order_id, "kill")  # the broker confirms the cancel
    desk.pm.flatten("kill", {"AAA": 10})  # the kill's next round trip
    [sale] = [o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]
    assert (sale.quantity, sale.strategy_id) == (10, "flatten")


def test_stops_are_placed_in_reducing_and_no_size_limit_cuts_them() -> None:
    desk = Desk(pre_trade=PreTradeConfig(max_order_notional_usd=1.0))  # no order would pass this limit
    entry = adopted_entry()
    desk.venue.submit(entry)  # an entry from before (adopted after a restart)
    desk.risk.trading.reduce(Reason.OPERATOR, "FLATTEN asked", desk.clock.now_ns())
    desk.fill(entry, 10, 100.0, "E1")
    [stop] = desk.orders(OrderType.STP)
    assert stop.quantity == 10 and desk.pm.rejections == {}


def test_a_halt_flattens_again_once_a_stop_it_counted_as_covering_is_cancelled() -> None:
    broker = {"AAA": 10.0}  # what the live engine's flatten round trip learns
    desk = Desk(slow_cancels=True, broker=broker)
    desk.signal(SignalDirection.LONG)
    [entry] = desk.orders()
    desk.fill(entry, 10, 100.0, "E1")
    [stop] = desk.orders(OrderType.STP)
    desk.pm.on_halt("drawdown")  # cancel all (not confirmed yet), then flatten from the broker's positions
    assert desk.slow.cancels == ["*"] and not [o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]
    desk.venue.cancel(stop.client_order_id, "halted")  # the broker confirms the stop's cancel
    desk.deliver_venue_events()
    [sale] = [o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]
    assert (sale.quantity, sale.strategy_id) == (10, "flatten")
    desk.pm.on_order_booked(OrderFailedEvent(ts_event_ns=T0, ts_init_ns=T0, client_order_id=stop.client_order_id,
                                             strategy_id="momentum", symbol="AAA", status=OrderStatus.CANCELLED,
                                             reason="told twice"))  # fmt: skip
    assert len([o for o in desk.orders(OrderType.MKT) if o.side is Side.SELL]) == 1  # never a second sale
