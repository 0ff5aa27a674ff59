"""ibsim → client messages, encoded exactly as ``ibapi`` 9.81.1 decodes them at server version 157.

Each function returns the framed bytes of one message (layouts: docs/ib-protocol.md §4). Signature-decoded
("S") messages must have exactly one field per wrapper parameter or the client drops them silently; a bad
number in any field kills the client's reader, so ints are always written as plain ``int``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ibsim.book import Execution, SimOrder
from ibsim.market import Stock, exec_time_text
from ibsim.wire import UNSET_DOUBLE_TEXT, Field, frame


class In:
    """Incoming (server → client) message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_STRING = 46
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    TICK_REQ_PARAMS = 81


class Tick:
    BID_SIZE, BID, ASK, ASK_SIZE, LAST, LAST_SIZE, HIGH, LOW, VOLUME, CLOSE = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
    OPEN = 14
    DELAYED_OFFSET = 65  # BID 1 → 66, ASK 2 → 67, LAST 4 → 68 ... see delayed_tick()


_DELAYED = {0: 69, 1: 66, 2: 67, 3: 70, 4: 68, 5: 71, 6: 72, 7: 73, 8: 74, 9: 75, 14: 76}


def delayed_tick(tick_type: int) -> int:
    """The delayed-data tick type for a live one (market data type 3 or 4)."""
    return _DELAYED.get(tick_type, tick_type)


def server_version(conn_time: str) -> bytes:
    return frame([157, conn_time])


def managed_accounts(accounts: Iterable[str]) -> bytes:
    return frame([In.MANAGED_ACCTS, 1, ",".join(accounts)])


def next_valid_id(order_id: int) -> bytes:
    return frame([In.NEXT_VALID_ID, 1, int(order_id)])


def error(req_id: int, code: int, text: str) -> bytes:
    return frame([In.ERR_MSG, 2, int(req_id), int(code), _ascii(text)])


def current_time(epoch_s: int) -> bytes:
    return frame([In.CURRENT_TIME, 1, int(epoch_s)])


def contract_data(req_id: int, stock: Stock) -> bytes:
    s = stock
    fields: list[Field] = [In.CONTRACT_DATA, 8, int(req_id), s.symbol, "STK", "", 0.0, "", "SMART", s.currency]
    fields += [
        s.symbol,
        "NMS",
        "NMS",
        s.con_id,
        0.01,
        1,
        "",
        "ACTIVETIM,ADJUST,ALERT,ALGO,ALLOC,DAY,GTC,LMT,LOC,MKT,MOC",
    ]
    fields += [f"SMART,{s.primary_exchange}", 1, 0, f"{s.symbol} SIMULATED INC", s.primary_exchange, "", "", "", ""]
    fields += ["US/Eastern", "", "", "", 1, 0, 0, "", "", "26", "", "COMMON"]
    return frame(fields)


def contract_data_end(req_id: int) -> bytes:
    return frame([In.CONTRACT_DATA_END, 1, int(req_id)])


def _contract_block(s: Stock, exchange: str = "SMART") -> list[Field]:
    """conId .. tradingClass as OPEN_ORDER and EXECUTION_DATA carry it (no primaryExchange)."""
    return [s.con_id, s.symbol, "STK", "", 0.0, "", "", exchange, s.currency, s.symbol, "NMS"]


def open_order(o: SimOrder) -> bytes:
    """OPEN_ORDER: 120 fields for a plain order, more with algo params (see §4.1 of the protocol doc)."""
    f: list[Field] = [In.OPEN_ORDER, o.order_id, *_contract_block(o.stock)]
    f += [o.action, o.quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, "", o.account, "", 0, o.order_ref]
    f += [o.client_id, o.perm_id]
    f += [0, 0, 0, "", "", "", "", "", "", "", "", "", None, ""]  # outsideRth .. settlingFirm (26-39)
    f += [0, "", -1, 0, None, None, None, None, None]  # shortSaleSlot .. stockRangeUpper (40-48)
    f += [None, 0, 0, 0, None, 0, 0, 0, None, o.parent_id, 0]  # displaySize .. triggerMethod (49-59)
    f += [None, 0, "", None]  # volatility .. deltaNeutralAuxPrice (60-63)
    f += [0, 0, None, None, None, None]  # continuousUpdate .. basisPointsType (64-69)
    f += ["", 0, 0, 0]  # combo legs (70-73)
    f += [None, None, None]  # scale (74-76)
    f += ["", 0, "", "", 0, 0]  # hedgeType .. deltaNeutralContract flag (77-82)
    f += [o.algo_strategy]
    if o.algo_strategy:
        f += [len(o.algo_params)]
        for tag, value in o.algo_params:
            f += [tag, value]
    f += [0, 0, o.status]  # solicited, whatIf, status
    f += [""] * 9  # margins
    f += [None, None, None, "", "", 0, 0]  # commission .. randomizePrice (96-102)
    f += [0]  # conditionCount
    f += ["", UNSET_DOUBLE_TEXT, UNSET_DOUBLE_TEXT, UNSET_DOUBLE_TEXT, UNSET_DOUBLE_TEXT, UNSET_DOUBLE_TEXT]
    f += [UNSET_DOUBLE_TEXT, 0]  # adjustedTrailingAmount, adjustableTrailingUnit
    f += ["", "", "", UNSET_DOUBLE_TEXT, 0, 0, 0, ""]  # softDollarTier .. usePriceMgmtAlgo (112-119)
    return frame(f)


def order_status(o: SimOrder) -> bytes:
    return frame(
        [
            In.ORDER_STATUS, o.order_id, o.status, o.filled, o.remaining, o.avg_fill_price, o.perm_id,
            o.parent_id, o.last_fill_price, o.client_id, "", 0.0,
        ]
    )  # fmt: skip


def execution_data(req_id: int, e: Execution) -> bytes:
    exchange = "ISLAND" if e.stock.primary_exchange == "NASDAQ" else e.stock.primary_exchange
    f: list[Field] = [In.EXECUTION_DATA, int(req_id), e.order_id, *_contract_block(e.stock, exchange)]
    f += [e.exec_id, exec_time_text(e.time_ns), e.account, exchange, e.side, e.shares, e.price, e.perm_id]
    f += [e.client_id, 0, e.cum_qty, e.avg_price, e.order_ref, "", "", "", 2 if e.shares else 1]
    return frame(f)


def execution_data_end(req_id: int) -> bytes:
    return frame([In.EXECUTION_DATA_END, 1, int(req_id)])


def commission_report(e: Execution) -> bytes:
    pnl = UNSET_DOUBLE_TEXT if e.realized_pnl is None else e.realized_pnl
    return frame([In.COMMISSION_REPORT, 1, e.exec_id, e.commission, "USD", pnl, UNSET_DOUBLE_TEXT, ""])


def open_order_end() -> bytes:
    return frame([In.OPEN_ORDER_END, 1])


def position(account: str, stock: Stock, quantity: float, avg_cost: float) -> bytes:
    f: list[Field] = [In.POSITION_DATA, 3, account, stock.con_id, stock.symbol, "STK", "", 0.0, "", "", ""]
    f += [stock.currency, stock.symbol, "NMS", float(quantity), float(avg_cost)]
    return frame(f)


def position_end() -> bytes:
    return frame([In.POSITION_END, 1])


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return frame([In.ACCOUNT_SUMMARY, 1, int(req_id), account, tag, value, currency])


def account_summary_end(req_id: int) -> bytes:
    return frame([In.ACCOUNT_SUMMARY_END, 1, int(req_id)])


def tick_req_params(req_id: int, min_tick: float = 0.01, bbo_exchange: str = "9c0001", permissions: int = 3) -> bytes:
    return frame([In.TICK_REQ_PARAMS, int(req_id), min_tick, bbo_exchange, int(permissions)])


def tick_price(req_id: int, tick_type: int, price: float, size: int, attrib_mask: int = 0) -> bytes:
    return frame([In.TICK_PRICE, 6, int(req_id), int(tick_type), float(price), int(size), int(attrib_mask)])


def tick_size(req_id: int, tick_type: int, size: int) -> bytes:
    return frame([In.TICK_SIZE, 6, int(req_id), int(tick_type), int(size)])


def tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return frame([In.TICK_STRING, 6, int(req_id), int(tick_type), _ascii(value)])


def tick_snapshot_end(req_id: int) -> bytes:
    return frame([In.TICK_SNAPSHOT_END, 1, int(req_id)])


def market_data_type(req_id: int, data_type: int) -> bytes:
    return frame([In.MARKET_DATA_TYPE, 1, int(req_id), int(data_type)])


def historical_data(req_id: int, start: str, end: str, bars: pd.DataFrame) -> bytes:
    """All daily bars in one message, dated ``YYYYMMDD``; the client also fires historicalDataEnd from it."""
    f: list[Field] = [In.HISTORICAL_DATA, int(req_id), start, end, len(bars)]
    for day, row in bars.iterrows():
        o, h, low, c = (float(row[k]) for k in ("open", "high", "low", "close"))
        f += [f"{day:%Y%m%d}", o, h, low, c, int(row["volume"]), round((h + low + c) / 3.0, 4), 1]
    return frame(f)


def real_time_bar(req_id: int, start_epoch_s: int, o: float, h: float, low: float, c: float, volume: int) -> bytes:
    wap = round((h + low + c) / 3.0, 4)
    return frame([In.REAL_TIME_BARS, 3, int(req_id), int(start_epoch_s), o, h, low, c, int(volume), wap, 1])


def _ascii(text: str) -> str:
    """Printable ASCII without backslashes: the client decodes S-mode text with ``unicode-escape``."""
    return "".join(ch if 32 <= ord(ch) < 127 and ch != "\\" else "?" for ch in text)
