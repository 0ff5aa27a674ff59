"""The order log folded into positions, average cost and realized P&L (``dashboard.book``): pure, no files."""

from __future__ import annotations

import pytest

from dashboard.book import Lot, OrderBook, symbol_rows


def row(event: str, order: str, side: str = "BUY", filled: str = "", price: str = "", symbol: str = "SPY",
        strategy: str = "momentum") -> dict[str, str]:  # fmt: skip
    return {"event": event, "client_order_id": order, "side": side, "filled_quantity": filled, "fill_price": price,
            "symbol": symbol, "strategy_id": strategy, "ts_ns": "1", "ts_utc": "t"}  # fmt: skip


def test_partial_fills_count_the_increase_of_the_cumulative_quantity() -> None:
    book = OrderBook()
    for r in (row("submit", "a"), row("partial", "a", filled="4", price="10"), row("fill", "a", filled="10",
                                                                                   price="13")):  # fmt: skip
        book.apply_row(r)
    lot = book.by_symbol["SPY"]
    assert lot.quantity == 10
    assert lot.avg_cost == pytest.approx((4 * 10 + 6 * 13) / 10)
    assert book.working == {}
    assert [f["shares"] for f in book.fills] == [4, 6]


def test_a_repeated_fill_row_is_not_booked_twice() -> None:
    book = OrderBook()
    book.apply_row(row("fill", "a", filled="5", price="10"))
    book.apply_row(row("fill", "a", filled="5", price="10"))
    assert book.by_symbol["SPY"].quantity == 5


def test_selling_realizes_against_the_average_cost_per_strategy_and_symbol() -> None:
    book = OrderBook()
    book.apply_row(row("fill", "a", filled="10", price="100"))
    book.apply_row(row("fill", "b", filled="10", price="110", strategy="mean_reversion"))
    book.apply_row(row("fill", "c", side="SELL", filled="5", price="120"))
    assert book.by_symbol["SPY"].quantity == 15
    assert book.by_symbol["SPY"].realized_pnl == pytest.approx(5 * (120 - 105))
    assert book.by_strategy[("momentum", "SPY")].realized_pnl == pytest.approx(5 * (120 - 100))
    assert book.by_strategy[("momentum", "SPY")].quantity == 5  # the sell was momentum's, from its own lot
    assert book.by_strategy[("mean_reversion", "SPY")].realized_pnl == 0


def test_flipping_through_zero_opens_the_rest_at_the_fill_price() -> None:
    lot = Lot()
    lot.apply(10, 100.0)
    lot.apply(-15, 90.0)
    assert (lot.quantity, lot.avg_cost, lot.realized_pnl) == (-5, 90.0, -100.0)


def test_working_orders_leave_on_cancel_reject_and_expire() -> None:
    book = OrderBook()
    for order in "abcd":
        book.apply_row(row("submit", order))
    book.apply_row(row("ack", "a"))
    for event, order in (("cancel", "b"), ("reject", "c"), ("expire", "d")):
        book.apply_row(row(event, order))
    assert list(book.working) == ["a"]


def test_symbol_rows_prefer_the_engine_ledger_and_show_the_broker_beside_it() -> None:
    lots = {"SPY": Lot(quantity=5, avg_cost=100.0, realized_pnl=7.0), "QQQ": Lot(realized_pnl=3.0)}
    ledger = {"SPY": {"quantity": 5.0, "avg_cost": 101.0, "mark": 103.0}, "IWM": {"quantity": 0.0, "avg_cost": None,
                                                                                   "mark": 50.0}}  # fmt: skip
    rows = {r["symbol"]: r for r in symbol_rows(ledger, lots, {"SPY": 5.0, "TLT": 2.0})}
    assert set(rows) == {"SPY", "QQQ", "TLT"}  # IWM: priced but neither held nor traded
    assert rows["SPY"]["avg_cost"] == 101.0 and rows["SPY"]["unrealized_pnl"] == pytest.approx(10.0)
    assert rows["SPY"]["realized_pnl"] == 7.0 and rows["SPY"]["source"] == "engine"
    assert rows["TLT"]["quantity"] == 0.0 and rows["TLT"]["broker_quantity"] == 2.0
    assert rows["QQQ"]["source"] == "order log"


def test_without_the_engine_the_order_log_book_gives_quantity_and_cost() -> None:
    rows = symbol_rows(None, {"SPY": Lot(quantity=5, avg_cost=100.0)}, {})
    assert rows == [{"symbol": "SPY", "quantity": 5, "broker_quantity": 0.0, "avg_cost": 100.0, "mark": None,
                     "unrealized_pnl": None, "realized_pnl": 0.0, "source": "order log"}]  # fmt: skip


def test_a_flatten_closes_the_strategies_lots_pro_rata() -> None:
    book = OrderBook()
    book.apply_row(row("fill", "a", filled="6", price="100"))
    book.apply_row(row("fill", "b", filled="2", price="100", strategy="mean_reversion"))
    book.apply_row(row("fill", "f", side="SELL", filled="8", price="110", strategy="flatten"))
    assert book.by_strategy[("momentum", "SPY")].quantity == pytest.approx(0)
    assert book.by_strategy[("momentum", "SPY")].realized_pnl == pytest.approx(60)
    assert book.by_strategy[("mean_reversion", "SPY")].realized_pnl == pytest.approx(20)
    assert ("flatten", "SPY") not in book.by_strategy
    assert book.by_symbol["SPY"].quantity == 0 and book.by_symbol["SPY"].realized_pnl == pytest.approx(80)
