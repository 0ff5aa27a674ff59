"""placeOrder's wire message with its ~110 fixed fields encoded once, not per order (byte-identical to ibapi's).

Why: ``EClient.placeOrder`` (ibapi 9.81, pure Python) checks some 30 server-version conditions and encodes every
one of the ~130 ``Order`` attributes on each call: about 140 us of the tick-to-order path, while the orders we send
(``execution.ib_translate.to_ib_order``) differ from each other in a dozen fields only.

How: for a server version, ibapi's own ``placeOrder`` encodes a template order once, into a fake connection below
the wire; the fields that vary (order id, symbol, exchange, primary exchange, currency, action, quantity, order
type, limit, aux price, tif, account, orderRef, algo and its parameters) carry sentinels there and are cut out, so
what stays are the fixed stretches of ibapi's encoding. Per order, the variable fields are encoded with ibapi's own
``make_field`` and spliced in between.

When this applies (else ``send_place_order`` calls ibapi's ``EClient.placeOrder``, so nothing changes):
- the server version is one of ``PROVEN_SERVER_VERSIONS`` (the unit test compares bytes with ibapi's there);
- the contract and the order are plain ibapi objects whose every other attribute has the template's value and
  type (``to_ib_contract``/``to_ib_order`` shapes: a STK contract, transmit, eTradeOnly/firmQuoteOnly False...);
- the order type is one we send (MKT, LMT, STP, MOC, LOC: "PEG BENCH" would change the layout);
- the client is connected and ibapi's INFO request log is off (ibapi logs every request there: that path keeps
  its log lines), and every variable field encodes (non-ASCII text makes ibapi report error 579: it does so).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ibapi.client import EClient
from ibapi.comm import make_field, make_field_handle_empty
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.tag_value import TagValue
from ibapi.utils import ClientException
from ibapi.wrapper import EWrapper

PROVEN_SERVER_VERSIONS = frozenset({157})  # ibsim's, and ibapi 9.81's MAX_CLIENT_VER (what TWS 9.81+ negotiates)
ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "MOC", "LOC"})

_IBAPI_LOG = logging.getLogger("ibapi.client")  # EClient.logRequest's logger: INFO logs every request
_ORDER_VARIABLE = ("action", "totalQuantity", "orderType", "lmtPrice", "auxPrice", "tif", "account", "orderRef",
                   "algoStrategy", "algoParams", "orderId")  # fmt: skip  (orderId: the argument is sent, not this)
_CONTRACT_VARIABLE = ("symbol", "exchange", "primaryExchange", "currency")
_SENTINEL_ORDER_ID = 987_650_001
_SENTINEL_QUANTITY = 987_650_002
_SENTINEL_LMT = 13579.25
_SENTINEL_AUX = 24681.75
_SENTINELS = {  # attribute -> its template value, unique among all fields of the message
    "symbol": "@SYM@", "exchange": "@EXCH@", "primaryExchange": "@PEX@", "currency": "@CUR@", "action": "@ACT@",
    "orderType": "@OT@", "tif": "@TIF@", "account": "@ACC@", "orderRef": "@REF@", "algoStrategy": "@ALGO@",
}  # fmt: skip
_ALGO_TAG, _ALGO_VALUE = "@TAG@", "@VAL@"
_PRINTABLE = frozenset(map(chr, range(32, 128)))  # ibapi.utils.isAsciiPrintable's set, checked in C here


class _NotAscii(ValueError):
    """A text field ibapi would refuse (error 579): ibapi's placeOrder must see it and report it."""


def _text(value: Any) -> str:
    """``make_field(value)`` for the text fields, with ibapi's printable-ASCII check done by a set (ibapi's is a
    Python loop per character): the same string, or ``_NotAscii`` where ibapi would raise ClientException."""
    if type(value) is not str:
        return make_field(value)
    if value and not _PRINTABLE.issuperset(value):
        raise _NotAscii(value)
    return value + "\0"


class _Capture:
    """The connection below ``EClient``: keeps what would have gone to the socket."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:  # noqa: N802 - ibapi's name
        return True

    def sendMsg(self, msg: bytes) -> int:  # noqa: N802
        self.sent.append(msg)
        return len(msg)


def ibapi_place_order_bytes(server_version: int, order_id: int, contract: Contract, order: Order) -> bytes:
    """What ibapi's ``EClient.placeOrder`` writes to the socket (length prefix included) at ``server_version``.

    Raises ``ValueError`` when ibapi writes nothing (it reported an error to the wrapper instead).
    """
    client = EClient(EWrapper())
    client.conn = _Capture()
    client.connState = EClient.CONNECTED
    client.serverVersion_ = server_version
    client.placeOrder(order_id, contract, order)
    if len(client.conn.sent) != 1:
        raise ValueError(f"ibapi's placeOrder wrote {len(client.conn.sent)} messages for order {order_id}")
    return client.conn.sent[0]


def template_contract() -> Contract:
    """The contract shape ``to_ib_contract`` builds (a SMART-routed US stock)."""
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = "AAPL", "STK", "SMART", "USD"
    contract.primaryExchange = ""
    return contract


def template_order() -> Order:
    """The order shape ``to_ib_order`` builds (the fields it sets on purpose, the rest ibapi's defaults)."""
    order = Order()
    order.action, order.totalQuantity, order.orderType, order.tif = "BUY", 1, "MKT", "DAY"
    order.transmit, order.eTradeOnly, order.firmQuoteOnly = True, False, False
    return order


def _fixed_values(obj: object, variable: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    names = tuple(sorted(k for k in vars(obj) if k not in variable and k != "softDollarTier"))
    return names, tuple(getattr(obj, k) for k in names)


def _zero_float_positions(values: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(i for i, v in enumerate(values) if isinstance(v, float) and v == 0.0)


class PlaceOrderEncoder:
    """placeOrder messages at one server version; ``encode`` returns None for a shape it was not built for."""

    def __init__(self, server_version: int) -> None:
        self.server_version = server_version
        contract, order = template_contract(), template_order()
        self._contract_names, self._contract_fixed = _fixed_values(contract, _CONTRACT_VARIABLE)
        self._order_names, self._order_fixed = _fixed_values(order, _ORDER_VARIABLE)
        self._contract_types = tuple(map(type, self._contract_fixed))
        self._order_types = tuple(map(type, self._order_fixed))
        self._contract_get: Callable[[dict], tuple] = itemgetter(*self._contract_names)
        self._order_get: Callable[[dict], tuple] = itemgetter(*self._order_names)
        self._zero_floats = _zero_float_positions(self._order_fixed)
        self._contract_zero_floats = _zero_float_positions(self._contract_fixed)
        self._segments = self._cut(contract, order)

    def _cut(self, contract: Contract, order: Order) -> tuple[str, ...]:
        """ibapi's payload for the template with sentinels, split around the variable fields (11 + algo block)."""
        for name in _CONTRACT_VARIABLE:
            setattr(contract, name, _SENTINELS[name])
        for name in ("action", "orderType", "tif", "account", "orderRef", "algoStrategy"):
            setattr(order, name, _SENTINELS[name])
        order.totalQuantity, order.lmtPrice, order.auxPrice = _SENTINEL_QUANTITY, _SENTINEL_LMT, _SENTINEL_AUX
        order.algoParams = [TagValue(_ALGO_TAG, _ALGO_VALUE)]
        framed = ibapi_place_order_bytes(self.server_version, _SENTINEL_ORDER_ID, contract, order)
        fields = framed[4:].decode("ascii").split("\0")
        if fields[-1] != "":
            raise ValueError("ibapi's placeOrder payload does not end with a field terminator")
        fields = fields[:-1]
        marks = [str(_SENTINEL_ORDER_ID), _SENTINELS["symbol"], _SENTINELS["exchange"], _SENTINELS["primaryExchange"],
                 _SENTINELS["currency"], _SENTINELS["action"], str(_SENTINEL_QUANTITY), _SENTINELS["orderType"],
                 str(_SENTINEL_LMT), str(_SENTINEL_AUX), _SENTINELS["tif"], _SENTINELS["account"],
                 _SENTINELS["orderRef"], _SENTINELS["algoStrategy"]]  # fmt: skip
        positions = []
        for mark in marks:
            hits = [i for i, f in enumerate(fields) if f == mark]
            if len(hits) != 1:
                raise ValueError(f"sentinel {mark!r} found {len(hits)} times in ibapi's placeOrder fields")
            positions.append(hits[0])
        if positions != sorted(positions):
            raise ValueError("the variable fields are not in the order this encoder splices them")
        algo_at = positions[-1]
        if fields[algo_at + 1:algo_at + 4] != ["1", _ALGO_TAG, _ALGO_VALUE]:
            raise ValueError("the algo block is not algoStrategy, count, tag, value")
        segments, start = [], 0
        for index, end in zip(positions, [p + 1 for p in positions[:-1]] + [algo_at + 4], strict=True):
            segments.append("".join(f + "\0" for f in fields[start:index]))
            start = end
        segments.append("".join(f + "\0" for f in fields[start:]))
        return tuple(segments)

    def proven_shape(self, contract: Any, order: Any) -> bool:
        """True when every field outside the variable ones has the template's value and type (so ibapi's encoding
        of them is the template's) and the order type keeps the template's layout."""
        if type(order) is not Order or type(contract) is not Contract or order.orderType not in ORDER_TYPES:
            return False
        try:
            order_fixed = self._order_get(vars(order))
            contract_fixed = self._contract_get(vars(contract))
        except KeyError:
            return False
        if order_fixed != self._order_fixed or contract_fixed != self._contract_fixed:
            return False
        if tuple(map(type, order_fixed)) != self._order_types:
            return False
        if tuple(map(type, contract_fixed)) != self._contract_types:
            return False
        if any(math.copysign(1.0, order_fixed[i]) < 0 for i in self._zero_floats) or any(
                math.copysign(1.0, contract_fixed[i]) < 0 for i in self._contract_zero_floats):  # fmt: skip
            return False  # -0.0 equals 0.0 but ibapi would write "-0.0"
        tier = order.softDollarTier
        if tier.name or tier.val or tier.displayName or (order.algoParams is not None and not order.algoStrategy):
            return False
        return all(type(p) is TagValue for p in order.algoParams or ())

    def encode(self, order_id: int, contract: Any, order: Any) -> str | None:
        """ibapi's payload (without the length prefix) for this order, or None when the shape is not proven or a
        field does not encode (ibapi then reports the error itself)."""
        if not self.proven_shape(contract, order):
            return None
        seg = self._segments
        try:
            algo = order.algoStrategy
            if algo:
                params = order.algoParams or ()
                block = _text(algo) + make_field(len(params)) + "".join(
                    _text(p.tag) + _text(p.value) for p in params)  # fmt: skip
            else:
                block = _text(algo)
            parts = (
                seg[0], make_field(order_id), seg[1], _text(contract.symbol),
                seg[2], _text(contract.exchange), seg[3], _text(contract.primaryExchange),
                seg[4], _text(contract.currency), seg[5], _text(order.action),
                seg[6], make_field(order.totalQuantity), seg[7], _text(order.orderType),
                seg[8], make_field_handle_empty(order.lmtPrice), seg[9], make_field_handle_empty(order.auxPrice),
                seg[10], _text(order.tif), seg[11], _text(order.account),
                seg[12], _text(order.orderRef), seg[13], block, seg[14],
            )  # fmt: skip
        except (ClientException, ValueError, TypeError):
            return None
        return "".join(parts)


_ENCODERS: dict[int, PlaceOrderEncoder] = {}


def encoder_for(server_version: int) -> PlaceOrderEncoder | None:
    """The (cached) encoder of a proven server version, else None."""
    if server_version not in PROVEN_SERVER_VERSIONS:
        return None
    encoder = _ENCODERS.get(server_version)
    if encoder is None:
        encoder = _ENCODERS[server_version] = PlaceOrderEncoder(server_version)
    return encoder


def send_place_order(client: EClient, order_id: int, contract: Any, order: Any) -> None:
    """``client.placeOrder``'s bytes, encoded by the precomputed encoder where proven, else by ibapi itself.

    The message goes through ``client.sendMsg`` (ibapi's framing, its connection lock) exactly as ibapi's would.
    """
    encoder = encoder_for(client.serverVersion())
    if encoder is not None and not _IBAPI_LOG.isEnabledFor(logging.INFO) and client.isConnected():
        msg = encoder.encode(order_id, contract, order)
        if msg is not None:
            client.sendMsg(msg)
            return
    EClient.placeOrder(client, order_id, contract, order)


def place_order(client: Any, order_id: int, contract: Any, order: Any) -> None:
    """``send_place_order`` for an ibapi ``EClient`` whose ``placeOrder`` is ibapi's; any other client (a test
    double, a subclass that intercepts placeOrder) gets its own ``placeOrder`` call."""
    if isinstance(client, EClient) and type(client).placeOrder is EClient.placeOrder:
        send_place_order(client, order_id, contract, order)
    else:
        client.placeOrder(order_id, contract, order)

