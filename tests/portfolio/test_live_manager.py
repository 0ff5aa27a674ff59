"""LiveManager: risk log rows, fills today by New York date, reduce-only, handler failures end HALTED, restore."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.clock import NS_PER_SECOND, SimClock
from core.config_models import PortfolioConfig, PreTradeConfig, StrategiesConfig
from core.errors import InvariantViolation, StateCorruptError
from core.events import (
    MarketEvent,
    OrderEvent,
    OrderFailedEvent,
    OrderStatus,
    OrderType,
    Side,
    SignalDirection,
    SignalEvent,
    TradingState,
)
from data.calendar import TradingCalendar
from execution.order_state import BrokerLeg, ManagedOrder
from execution.order_store import OrderStore
from portfolio.ledger import Ledger
from portfolio.live_manager import RISK_LOG_COLUMNS, LiveManager, calendar_settlement, restore_books
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.optimizer import VolatilityTargeter
from portfolio.order_ids import OrderIdFactory
from portfolio.portfolio_manager import PortfolioManager
from portfolio.pre_trade import PreTradeGate
from portfolio.risk_manager import RiskManager
from portfolio.shared_sizing_logic import PositionSizer
from portfolio.snapshot import read_snapshot, write_snapshot
from testkit.fills import make_fill

SYMBOLS = ("AAA", "BBB")
DAY_NS = 86_400 * NS_PER_SECOND


def _ns(iso_utc: str) -> int:
    return int(datetime.fromisoformat(iso_utc).replace(tzinfo=UTC).timestamp()) * NS_PER_SECOND


TUE_1500_NY = _ns("2024-03-05T20:00:00")  # Tuesday 15:00 in New York (EST, UTC-5)
TUE_2330_NY = _ns("2024-03-06T04:30:00")  # still Tuesday in New York, already Wednesday in UTC
WED_0005_NY = _ns("2024-03-06T05:05:00")  # Wednesday 00:05 in New York


class StoreRouter:
    """The executor's side of the ports, below the wire: a real ``OrderStore``; submitted orders also land in
    ``sent`` (cancel-alls as ``("cancel_all", reason)``). ``broken`` makes every call raise."""

    def __init__(self, sent: list[object], broken: bool = False) -> None:
        self.store, self.sent, self.broken = OrderStore(), sent, broken

    def submit(self, order: OrderEvent) -> None:
        if self.broken:
            raise RuntimeError("executor gone")
        self.store.add(order)
        self.sent.append(order)

    def cancel(self, client_order_id: str, reason: str) -> None:
        raise NotImplementedError

    def cancel_all(self, reason: str) -> None:
        if self.broken:
            raise RuntimeError("executor gone")
        self.sent.append(("cancel_all", reason))


class Books:
    """What the engine wiring builds around one PortfolioManager (orders land in ``sent``)."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        ledger: Ledger | None = None,
        risk: RiskManager | None = None,
        broken_router: bool = False,
        start_ns: int = TUE_1500_NY,
        snapshot_path: Path | None = None,
    ) -> None:
        cfg = PortfolioConfig()
        self.clock = SimClock(start_ns)
        self.sent: list[object] = []
        self.router = StoreRouter(self.sent, broken_router)
        self.monthly = MonthlyTradeCounter(cfg.max_trades_per_month)
        self.open_orders = 0
        self.portfolio = PortfolioManager(
            config=cfg,
            strategies=StrategiesConfig(),
            symbols=SYMBOLS,
            ledger=ledger if ledger is not None else Ledger(cfg.initial_capital, SYMBOLS),
            risk=risk if risk is not None else RiskManager(cfg.risk),
            sizer=PositionSizer(cfg.sizing, cfg.risk_per_trade_pct),
            targeter=VolatilityTargeter(cfg.optimizer),
            monthly=self.monthly,
            gate=PreTradeGate(PreTradeConfig(), SYMBOLS),
            order_ids=OrderIdFactory(),
            router=self.router,
            working=self.router.store,
            now_ns=self.clock.now_ns,
            settles_at_ns=lambda ts: ts + DAY_NS,
            adv_lookback_days=20,
        )
        self.live = LiveManager(
            self.portfolio,
            monthly=self.monthly,
            open_orders=lambda: self.open_orders,
            now_ns=self.clock.now_ns,
            risk_log_path=tmp_path / "logs" / "risk_log.csv",
            snapshot_path=snapshot_path,
        )


def market(ts_ns: int, closes: tuple[float, ...] = (10.0, 20.0)) -> MarketEvent:
    close = np.array(closes, dtype=np.float64)
    return MarketEvent(
        ts_event_ns=ts_ns, ts_init_ns=ts_ns, bar_index=0, symbols=SYMBOLS, open=close, high=close, low=close,
        close=close, volume=np.full(len(closes), 1e7),
    )  # fmt: skip


def signal(symbol: str, direction: SignalDirection, ts_ns: int = TUE_1500_NY, price: float = 10.0) -> SignalEvent:
    return SignalEvent(
        ts_event_ns=ts_ns, ts_init_ns=ts_ns, strategy_id="momentum", symbol=symbol, direction=direction,
        reference_price=price, stop_distance=1.0,
    )  # fmt: skip


def risk_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture
def books(tmp_path: Path) -> Books:
    return Books(tmp_path)


def test_timer_appends_risk_rows_under_one_header(books: Books, tmp_path: Path) -> None:
    live = books.live
    live.on_market(market(TUE_1500_NY))
    live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, commission=1.0, ts_event_ns=TUE_1500_NY))
    books.open_orders = 2
    live.on_timer(TUE_1500_NY + 5 * NS_PER_SECOND)
    live.on_timer(TUE_1500_NY + 10 * NS_PER_SECOND)
    live.close()

    rows = risk_rows(tmp_path / "logs" / "risk_log.csv")
    assert tuple(rows[0]) == RISK_LOG_COLUMNS
    assert len(rows) == 3
    row = dict(zip(RISK_LOG_COLUMNS, rows[1], strict=True))
    assert row["ts_utc"] == "2024-03-05T20:00:05.000000Z"
    assert int(row["ts_ns"]) == TUE_1500_NY + 5 * NS_PER_SECOND
    assert float(row["equity"]) == pytest.approx(99_999.0)  # 100k - 1.0 commission, position marked at cost
    assert float(row["peak_equity"]) == pytest.approx(100_000.0)
    assert float(row["drawdown_pct"]) == pytest.approx(0.001)
    assert float(row["gross_exposure"]) == pytest.approx(1_000.0)
    assert float(row["net_exposure"]) == pytest.approx(1_000.0)
    assert (row["positions"], row["open_orders"], row["fills_today"], row["trading_state"]) == ("1", "2", "1", "ACTIVE")


def test_reopened_risk_log_gets_no_second_header_and_torn_tail_is_ended(tmp_path: Path) -> None:
    first = Books(tmp_path)
    first.live.on_timer(TUE_1500_NY)
    first.live.close()
    path = tmp_path / "logs" / "risk_log.csv"
    with path.open("a", encoding="utf-8") as f:
        f.write("2024-03-05T20:00:01.000000Z,171")  # a crash mid-row

    second = Books(tmp_path)
    second.live.on_timer(TUE_1500_NY + NS_PER_SECOND)
    second.live.close()

    rows = risk_rows(path)
    assert [r[0] for r in rows].count("ts_utc") == 1
    complete = [r for r in rows[1:] if len(r) == len(RISK_LOG_COLUMNS)]
    assert [int(r[1]) for r in complete] == [TUE_1500_NY, TUE_1500_NY + NS_PER_SECOND]


def test_risk_log_with_a_foreign_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "risk_log.csv"
    path.parent.mkdir(parents=True)
    path.write_text("time,equity\n1,2\n", encoding="utf-8")
    with pytest.raises(StateCorruptError, match=r"risk_log\.csv"):
        Books(tmp_path)


def test_fills_today_resets_at_the_new_york_date_not_the_utc_date(books: Books) -> None:
    live = books.live
    live.on_fill(make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=TUE_1500_NY))
    live.on_fill(make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=TUE_2330_NY))
    assert live.fills_today(TUE_2330_NY) == 2

    assert live.fills_today(WED_0005_NY) == 0
    live.on_timer(WED_0005_NY)
    assert live.risk_row(WED_0005_NY)["fills_today"] == 0
    live.on_fill(make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=WED_0005_NY))
    assert live.fills_today(WED_0005_NY) == 1


def test_duplicate_and_stale_fills_do_not_count_today(books: Books) -> None:
    live = books.live
    fill = make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=WED_0005_NY)
    live.on_fill(fill)
    live.on_fill(fill)  # the broker repeats an execution after a reconnect
    live.on_fill(make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=TUE_1500_NY))  # yesterday's, replayed
    assert live.fills_today(WED_0005_NY) == 1
    assert books.portfolio.ledger.position("AAA") == 20


def test_settlement_runs_on_the_timer_through_the_ledger(books: Books) -> None:
    live, ledger = books.live, books.portfolio.ledger
    live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, commission=0.0, ts_event_ns=TUE_1500_NY))
    live.on_fill(make_fill("AAA", Side.SELL, 100, 11.0, commission=0.0, ts_event_ns=TUE_1500_NY))
    assert ledger.unsettled_cash == pytest.approx(1_100.0)
    live.on_timer(TUE_1500_NY + DAY_NS - 1)
    assert ledger.unsettled_cash == pytest.approx(1_100.0)
    live.on_timer(TUE_1500_NY + DAY_NS)
    assert ledger.unsettled_cash == 0.0
    assert ledger.settled_cash == pytest.approx(100_100.0)


def test_calendar_settlement_is_t_plus_one_session_open() -> None:
    settles_at = calendar_settlement(TradingCalendar(start="2024-01-01", end="2024-12-31"), settlement_days=1)
    friday_1500_ny = _ns("2024-03-08T20:00:00")
    assert settles_at(friday_1500_ny) == _ns("2024-03-11T13:30:00")  # Monday 09:30 EDT
    thursday_before_good_friday = _ns("2024-03-28T19:00:00")
    assert settles_at(thursday_before_good_friday) == _ns("2024-04-01T13:30:00")  # Good Friday is no session
    saturday = _ns("2024-03-09T15:00:00")  # trade date is Monday, settles Tuesday
    assert settles_at(saturday) == _ns("2024-03-12T13:30:00")


def test_handlers_raise_typed_errors_and_leave_the_policy_to_the_dispatcher(books: Books) -> None:
    """No local guard: what follows an error is decided once, by ``core.error_policy`` at the dispatcher."""
    live = books.live
    with pytest.raises(InvariantViolation):
        live.on_fill(make_fill("AAA", Side.SELL, 100, 10.0, ts_event_ns=TUE_1500_NY))  # a short in a cash account
    with pytest.raises(ValueError):
        live.on_market(market(TUE_1500_NY, closes=(10.0, 20.0, 30.0)))  # wrong shape


def test_halt_is_one_way_and_never_raises_even_when_cancel_and_flatten_fail(tmp_path: Path) -> None:
    books = Books(tmp_path, broken_router=True)
    books.live.on_market(market(TUE_1500_NY))
    books.portfolio.ledger.apply_fill(make_fill("AAA", Side.BUY, 10, 10.0, ts_event_ns=TUE_1500_NY), TUE_1500_NY)
    books.live.halt("first halt")  # flatten_on_halt: the flatten order cannot be put
    assert books.live.state is TradingState.HALTED
    books.live.halt("second halt")
    assert books.portfolio.risk.halt_reason == "first halt"
    books.live.on_signal(signal("AAA", SignalDirection.LONG))
    assert books.sent == []


def test_reduce_only_blocks_new_exposure_but_lets_exits_through(books: Books) -> None:
    live = books.live
    live.on_market(market(TUE_1500_NY))
    live.on_fill(make_fill("BBB", Side.BUY, 10, 20.0, ts_event_ns=TUE_1500_NY))
    live.on_monitor_status(stale=True, heartbeat_age_s=12.0)
    assert live.state is TradingState.REDUCING
    assert live.heartbeat_fields()["state"] == "REDUCING"

    live.on_signal(signal("AAA", SignalDirection.LONG))
    live.on_signal(signal("BBB", SignalDirection.EXIT, price=20.0))
    orders = [o for o in books.sent if isinstance(o, OrderEvent)]
    assert [(o.symbol, o.side, o.reduce_only) for o in orders] == [("BBB", Side.SELL, True)]
    assert books.portfolio.ignored_signals["reduce_only"] == 1

    live.on_monitor_status(stale=False, heartbeat_age_s=0.5)
    assert live.state is TradingState.ACTIVE
    live.on_signal(signal("AAA", SignalDirection.LONG))
    assert [o.symbol for o in books.sent if isinstance(o, OrderEvent)] == ["BBB", "AAA"]


def test_operator_reduce_only_survives_a_fresh_monitor_heartbeat(books: Books) -> None:
    books.live.set_reduce_only(True, "operator command")
    books.live.on_monitor_status(stale=False)
    assert books.live.reduce_only


def test_heartbeat_fields(books: Books) -> None:
    books.live.on_market(market(TUE_1500_NY))
    books.live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, commission=0.0, ts_event_ns=TUE_1500_NY))
    books.open_orders = 1
    assert books.live.heartbeat_fields() == {
        "state": "ACTIVE", "equity": 100_000.0, "drawdown_pct": 0.0, "positions": 1, "open_orders": 1,
    }  # fmt: skip


def test_snapshot_restore_round_trip(tmp_path: Path) -> None:
    snapshot_path = tmp_path / "state" / "portfolio_snapshot.json"
    books = Books(tmp_path, snapshot_path=snapshot_path)
    live = books.live
    live.on_market(market(TUE_1500_NY))
    live.on_signal(signal("AAA", SignalDirection.LONG))  # one accepted order: one trade this month
    live.on_fill(make_fill("AAA", Side.BUY, 300, 10.0, commission=1.0, ts_event_ns=TUE_1500_NY))
    live.on_fill(make_fill("BBB", Side.BUY, 50, 20.0, commission=1.0, ts_event_ns=TUE_1500_NY))
    live.on_fill(make_fill("BBB", Side.SELL, 50, 21.0, commission=1.0, ts_event_ns=TUE_1500_NY))
    live.on_market(market(TUE_1500_NY + 60 * NS_PER_SECOND, closes=(6.0, 21.0)))  # 1.2% drawdown
    books.portfolio.risk.restore_drawdown_reducing(TUE_1500_NY)  # as after a deeper dip and a partial recovery
    live.on_timer(TUE_1500_NY + 120 * NS_PER_SECOND)  # writes the snapshot
    live.close()

    stored = read_snapshot(snapshot_path)
    assert stored is not None
    ledger, risk = restore_books(stored, PortfolioConfig().risk)
    again = Books(tmp_path, ledger=ledger, risk=risk, start_ns=TUE_2330_NY)
    again.live.restore(stored)

    before, after = books.portfolio, again.portfolio
    assert after.ledger.equity() == before.ledger.equity()
    assert after.ledger.open_positions() == before.ledger.open_positions() == {"AAA": 300}
    assert after.ledger.cash == before.ledger.cash
    assert after.ledger.settled_cash == before.ledger.settled_cash
    assert after.ledger.unsettled_cash == before.ledger.unsettled_cash > 0
    assert after.risk.peak_equity == before.risk.peak_equity
    assert after.risk.high_water_mark == before.risk.high_water_mark
    assert again.live.state is TradingState.REDUCING
    assert again.monthly.count(TUE_2330_NY) == books.monthly.count(TUE_1500_NY) == 1
    assert again.live.fills_today(TUE_2330_NY) == 3
    assert again.live.heartbeat_fields() == books.live.heartbeat_fields()


def test_restore_keeps_halted_unless_the_operator_resumes(tmp_path: Path) -> None:
    books = Books(tmp_path)
    books.live.halt("kill switch")
    snapshot = books.live.snapshot()
    books.live.close()

    kept = Books(tmp_path, ledger=restore_books(snapshot, PortfolioConfig().risk)[0])
    kept.live.restore(snapshot)
    assert kept.live.state is TradingState.HALTED
    assert "kill switch" in (kept.portfolio.risk.halt_reason or "")
    assert kept.sent == []  # restoring never sends an order

    resumed = Books(tmp_path, ledger=restore_books(snapshot, PortfolioConfig().risk)[0])
    resumed.live.restore(snapshot, resume_after_halt=True)
    assert resumed.live.state is TradingState.ACTIVE


def test_restore_refuses_books_not_built_from_the_snapshot(books: Books, tmp_path: Path) -> None:
    books.live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, ts_event_ns=TUE_1500_NY))
    snapshot = books.live.snapshot()
    fresh = Books(tmp_path)
    with pytest.raises(StateCorruptError, match="restore_books"):
        fresh.live.restore(snapshot)


def test_snapshot_written_by_the_manager_reads_back_identically(books: Books, tmp_path: Path) -> None:
    books.live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, ts_event_ns=TUE_1500_NY))
    snapshot = books.live.snapshot()
    path = tmp_path / "state" / "snap.json"
    write_snapshot(path, snapshot)
    assert read_snapshot(path) == snapshot


def test_flatten_asked_again_before_its_fills_arrive_sends_nothing_more(books: Books) -> None:
    """A halt, a kill flag and the monitor's FLATTEN can all ask within milliseconds: one long, one closing sale."""
    live, pm = books.live, books.portfolio
    live.on_market(market(TUE_1500_NY))
    live.on_fill(make_fill("AAA", Side.BUY, 100, 10.0, ts_event_ns=TUE_1500_NY))
    pm.flatten("halt")
    pm.flatten("kill flag")
    pm.flatten("monitor FLATTEN")
    orders = [o for o in books.sent if isinstance(o, OrderEvent)]
    assert [(o.symbol, o.side, o.quantity, o.strategy_id) for o in orders] == [("AAA", Side.SELL, 100, "flatten")]

    # a flatten order that the broker cancelled no longer covers the position: the next flatten sends again
    cancelled = OrderFailedEvent(ts_event_ns=TUE_1500_NY, ts_init_ns=TUE_1500_NY,
                                 client_order_id=orders[0].client_order_id, strategy_id="flatten", symbol="AAA",
                                 status=OrderStatus.CANCELLED, reason="global cancel")  # fmt: skip
    pm.flatten("before the cancel is booked")  # still working for the books: nothing more
    assert len([o for o in books.sent if isinstance(o, OrderEvent)]) == 1
    # against the broker's positions, coverage is what the broker may still fill: the executor has the cancel
    managed = books.router.store.get(orders[0].client_order_id)
    managed.transition(OrderStatus.CANCELLED)
    books.router.store.settle_terminal(managed)
    pm.flatten("from the broker", positions={"AAA": 100})
    assert [o.quantity for o in books.sent if isinstance(o, OrderEvent)] == [100, 100]
    pm.on_order_failed(cancelled)
    books.router.store.on_failure_booked(cancelled)
    pm.flatten("again")  # the books' view: the first is cancelled, the second (from the broker) still covers
    assert len([o for o in books.sent if isinstance(o, OrderEvent)]) == 2


def _order(symbol: str, side: Side, quantity: int, strategy_id: str, *, reduce_only: bool = False) -> OrderEvent:
    return OrderEvent(
        ts_event_ns=TUE_1500_NY, ts_init_ns=TUE_1500_NY, client_order_id=f"{strategy_id}.{symbol}.{side.name}",
        strategy_id=strategy_id, symbol=symbol, side=side, quantity=quantity, order_type=OrderType.MOC,
        reference_price=10.0 if symbol == "AAA" else 20.0, reduce_only=reduce_only,
    )  # fmt: skip


def test_orders_adopted_after_a_restart_count_for_one_per_symbol_reserved_cash_and_flatten(books: Books) -> None:
    """After a restart the executor recovers a working BUY of AAA and a working flatten SELL of BBB; the decision
    core must see both, exactly as if it had sent them itself."""
    pm, store = books.portfolio, books.router.store
    books.live.on_market(market(TUE_1500_NY))
    books.live.on_fill(make_fill("BBB", Side.BUY, 10, 20.0, ts_event_ns=TUE_1500_NY))
    buy = ManagedOrder(_order("AAA", Side.BUY, 100, "momentum"))
    flatten = ManagedOrder(_order("BBB", Side.SELL, 10, "flatten", reduce_only=True))
    flatten.transition(OrderStatus.SUBMITTED)
    flatten.apply_fill("e-4", 4, 20.0)
    store.restore(buy, BrokerLeg(1, 0, -1))  # what the executor's recover() does with the journal
    store.restore(flatten, BrokerLeg(2, 0, -1))
    assert pm.reserved_cash == pytest.approx(100 * 10.0 * 1.02)  # the working buy's cash stays reserved
    books.live.on_signal(signal("AAA", SignalDirection.LONG))
    assert books.sent == [] and pm.ignored_signals["order_working"] == 1  # one working order per symbol
    pm.flatten("operator", positions={"BBB": 10})  # the broker still holds 10: 6 are covered by the working order
    assert [(o.symbol, o.side, o.quantity) for o in books.sent] == [("BBB", Side.SELL, 4)]
    assert pm.working_symbols() == {"AAA", "BBB"}


def test_flatten_closes_the_positions_it_is_given_not_the_ledgers(books: Books) -> None:
    books.live.on_market(market(TUE_1500_NY))
    books.live.on_fill(make_fill("BBB", Side.BUY, 10, 20.0, ts_event_ns=TUE_1500_NY))
    books.portfolio.flatten("kill", positions={})  # the broker is flat (the monitor flattened): nothing to send
    assert books.sent == []
    books.portfolio.flatten("kill", positions={"BBB": 3, "ZZZ": 5})  # ZZZ is outside the universe: left alone
    assert [(o.symbol, o.side, o.quantity, o.reduce_only) for o in books.sent] == [("BBB", Side.SELL, 3, True)]
