"""The precomputed placeOrder encoder writes exactly ibapi's bytes, and leaves every other shape to ibapi.

ibapi's bytes are captured below the wire: an ``EClient`` whose connection object keeps what ``sendMsg`` would have
written to the socket (``place_order_encoder.ibapi_place_order_bytes``), at the server version ibsim negotiates.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.client import EClient
from ibapi.comm import make_msg
from ibapi.order import Order
from ibapi.tag_value import TagValue
from ibapi.wrapper import EWrapper

from core.events import OrderEvent, OrderType, Side, TimeInForce
from execution.ib_translate import to_ib_contract, to_ib_order
from execution.place_order_encoder import (
    PROVEN_SERVER_VERSIONS,
    PlaceOrderEncoder,
    encoder_for,
    ibapi_place_order_bytes,
    place_order,
    send_place_order,
)
from ibsim.wire import SERVER_VERSION

SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "IWM", "TLT", "GLD", "XLF", "BRK B", "A")
ACCOUNTS = ("DU111111", "", "U1234567", "DF9-x")
PRICES = (0.01, 1.0, 3.5, 99.99, 187.25, 1234.5678, 100000.0, 0.1 + 0.2, 123456789.123)


class _Capture:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:  # noqa: N802
        return True

    def sendMsg(self, msg: bytes) -> int:  # noqa: N802
        self.sent.append(msg)
        return len(msg)


class _Wrapper(EWrapper):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[tuple[int, int]] = []

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:  # noqa: N803
        self.errors.append((reqId, errorCode))


def _client(server_version: int = SERVER_VERSION) -> EClient:
    client = EClient(_Wrapper())
    client.conn = _Capture()
    client.connState = EClient.CONNECTED
    client.serverVersion_ = server_version
    return client


def _event(rng: random.Random, i: int, order_type: OrderType) -> OrderEvent:
    limit = rng.choice(PRICES) if order_type in (OrderType.LMT, OrderType.LOC) else None
    stop = rng.choice(PRICES) if order_type is OrderType.STP else None
    tif = TimeInForce.DAY if order_type in (OrderType.MOC, OrderType.LOC) else rng.choice(list(TimeInForce))
    return OrderEvent(ts_event_ns=i, ts_init_ns=i, client_order_id=f"{rng.choice(['momentum', 'mr', 'w'])}-{i:06d}",
                      strategy_id="momentum", symbol=rng.choice(SYMBOLS), side=rng.choice(list(Side)),
                      quantity=rng.choice((1, 7, 100, 2500, 10**6)), order_type=order_type, limit_price=limit,
                      time_in_force=tif, reference_price=100.0, stop_price=stop)  # fmt: skip


def _algo(rng: random.Random, order_type: OrderType) -> tuple[str | None, dict[str, str]]:
    if order_type not in (OrderType.MKT, OrderType.LMT):
        return None, {}
    pick = rng.randrange(4)
    if pick == 0:
        return "Adaptive", {"adaptivePriority": rng.choice(["Normal", "Urgent", "Patient"])}
    if pick == 1:
        return "Adaptive", {}
    if pick == 2:
        return "Twap", {"strategyType": "Marketable", "startTime": "09:45:00 US/Eastern",
                        "endTime": "15:30:00 US/Eastern", "allowPastEndTime": rng.choice(["true", "0"])}  # fmt: skip
    return None, {}


def _orders(n: int, seed: int = 17) -> list[tuple[int, object, Order]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        order_type = list(OrderType)[i % len(OrderType)]
        event = _event(rng, i, order_type)
        algo, params = _algo(rng, order_type)
        ib_id = rng.choice((1, 42, 10**5 + i, 2**31 - 1))
        contract = to_ib_contract(event.symbol, primary_exchange=rng.choice(["", "NASDAQ", "NYSE"]))
        out.append((ib_id, contract, to_ib_order(event, ib_id, rng.choice(ACCOUNTS), algo, params)))
    return out


def test_ibsim_negotiates_a_proven_version() -> None:
    assert SERVER_VERSION in PROVEN_SERVER_VERSIONS


@pytest.mark.parametrize("server_version", sorted(PROVEN_SERVER_VERSIONS))
def test_encoder_bytes_equal_ibapi_over_many_orders(server_version: int) -> None:
    encoder = PlaceOrderEncoder(server_version)
    shapes = set()
    for ib_id, contract, order in _orders(600):
        payload = encoder.encode(ib_id, contract, order)
        assert payload is not None, (order.orderType, order.algoStrategy)
        assert make_msg(payload) == ibapi_place_order_bytes(server_version, ib_id, contract, order)
        shapes.add((order.orderType, order.algoStrategy, order.tif, order.lmtPrice != order.auxPrice))
    assert {s[0] for s in shapes} == {"MKT", "LMT", "STP", "MOC", "LOC"}
    assert {s[1] for s in shapes} == {"", "Adaptive", "Twap"}


def test_send_place_order_writes_ibapi_bytes_through_send_msg() -> None:
    fast, slow = _client(), _client()
    for ib_id, contract, order in _orders(200, seed=3):
        send_place_order(fast, ib_id, contract, order)
        EClient.placeOrder(slow, ib_id, contract, order)
    assert fast.conn.sent == slow.conn.sent and len(fast.conn.sent) == 200


@settings(max_examples=200, deadline=None)
@given(symbol=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12),
       ref=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=40),
       qty=st.integers(1, 10**9), price=st.floats(1e-4, 1e9, allow_nan=False), ib_id=st.integers(1, 2**31 - 1),
       order_type=st.sampled_from(list(OrderType)))  # fmt: skip
def test_encoder_bytes_equal_ibapi_for_any_text_and_numbers(symbol: str, ref: str, qty: int, price: float,
                                                            ib_id: int, order_type: OrderType) -> None:  # fmt: skip
    event = OrderEvent(ts_event_ns=0, ts_init_ns=0, client_order_id=ref, strategy_id="s", symbol=symbol.strip() or "X",
                       side=Side.SELL, quantity=qty, order_type=order_type,
                       limit_price=price if order_type in (OrderType.LMT, OrderType.LOC) else None,
                       reference_price=1.0, stop_price=price if order_type is OrderType.STP else None)  # fmt: skip
    contract = to_ib_contract(event.symbol)
    order = to_ib_order(event, ib_id, "DU111111")
    payload = encoder_for(SERVER_VERSION).encode(ib_id, contract, order)
    assert payload is not None
    assert make_msg(payload) == ibapi_place_order_bytes(SERVER_VERSION, ib_id, contract, order)


def _base() -> tuple[object, Order]:
    event = OrderEvent(ts_event_ns=0, ts_init_ns=0, client_order_id="c-1", strategy_id="s", symbol="AAPL",
                       side=Side.BUY, quantity=10, order_type=OrderType.MKT, reference_price=1.0)  # fmt: skip
    return to_ib_contract("AAPL"), to_ib_order(event, 5, "DU111111")


def _outside_rth(_c: object, o: Order) -> None:
    o.outsideRth = True


def _hidden_int(_c: object, o: Order) -> None:
    o.hidden = 0  # equal to False but ibapi writes "0" for both: still refused (the type differs from the template)


def _parent(_c: object, o: Order) -> None:
    o.parentId = 3


def _float_parent(_c: object, o: Order) -> None:
    o.parentId = 0.0  # equal to 0, but ibapi would write "0.0"


def _peg_bench(_c: object, o: Order) -> None:
    o.orderType = "PEG BENCH"  # adds fields to the layout


def _option(c: object, _o: Order) -> None:
    c.secType = "OPT"


def _con_id(c: object, _o: Order) -> None:
    c.conId = 265598


def _negative_zero_strike(c: object, _o: Order) -> None:
    c.strike = -0.0  # equals the template's 0.0, but ibapi would write "-0.0"


def _negative_zero_discretionary(_c: object, o: Order) -> None:
    o.discretionaryAmt = -0.0


def _params_without_algo(_c: object, o: Order) -> None:
    o.algoParams = [TagValue("adaptivePriority", "Urgent")]


def _misc_options(_c: object, o: Order) -> None:
    o.orderMiscOptions = [TagValue("a", "b")]


def _soft_dollar(_c: object, o: Order) -> None:
    o.softDollarTier.name = "tier"


def _non_ascii_ref(_c: object, o: Order) -> None:
    o.orderRef = "caf\u00e9"


def _control_char(c: object, _o: Order) -> None:
    c.symbol = "AA\tPL"


UNPROVEN = [_outside_rth, _hidden_int, _parent, _float_parent, _peg_bench, _option, _con_id, _negative_zero_strike,
            _negative_zero_discretionary, _params_without_algo, _misc_options, _soft_dollar, _non_ascii_ref,
            _control_char]  # fmt: skip


@pytest.mark.parametrize("change", UNPROVEN, ids=lambda f: f.__name__)
def test_unproven_shapes_go_to_ibapi(change) -> None:
    contract, order = _base()
    change(contract, order)
    assert encoder_for(SERVER_VERSION).encode(5, contract, order) is None
    fast, slow = _client(), _client()
    send_place_order(fast, 5, contract, order)
    EClient.placeOrder(slow, 5, contract, order)
    assert fast.conn.sent == slow.conn.sent
    assert fast.wrapper.errors == slow.wrapper.errors  # a non-ASCII field: ibapi's error 579, no bytes


def test_other_server_versions_and_disconnected_clients_go_to_ibapi() -> None:
    contract, order = _base()
    assert encoder_for(151) is None
    old = _client(151)
    send_place_order(old, 5, contract, order)
    assert old.conn.sent == [ibapi_place_order_bytes(151, 5, contract, order)]
    down = _client()
    down.connState = EClient.DISCONNECTED
    send_place_order(down, 5, contract, order)
    assert down.conn.sent == [] and down.wrapper.errors == [(5, 504)]


def test_place_order_keeps_a_client_s_own_place_order() -> None:
    calls = []

    class Recording(EClient):
        def placeOrder(self, orderId, contract, order) -> None:  # noqa: N802, N803
            calls.append(orderId)

    contract, order = _base()
    recording = Recording(_Wrapper())
    place_order(recording, 9, contract, order)
    assert calls == [9]
    plain = _client()
    place_order(plain, 9, contract, order)
    assert plain.conn.sent == [ibapi_place_order_bytes(SERVER_VERSION, 9, contract, order)]
