"""Framing and request parsing without a socket: split frames, malformed and unknown messages."""

from __future__ import annotations

import struct

from ibsim.requests import Malformed, PlaceOrder, Unsupported, parse_request
from ibsim.wire import FrameBuffer, frame, split_fields

# The placeOrder(1, AAPL, BUY 100 MKT) payload from docs/ib-protocol.md §7 (110 fields).
_PLACE = (
    b"3\x001\x000\x00AAPL\x00STK\x00\x000.0\x00\x00\x00SMART\x00\x00USD\x00\x00\x00\x00\x00BUY\x00100\x00MKT\x00\x00"
    b"\x00\x00\x00\x00\x000\x00\x001\x000\x000\x000\x000\x000\x000\x000\x00\x000\x00\x00\x00\x00\x00\x00\x00\x000"
    b"\x00\x00-1\x000\x00\x00\x000\x00\x00\x001\x001\x00\x000\x00\x00\x00\x00\x00\x000\x00\x00\x00\x00\x000\x00\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x000\x00\x00\x000\x000\x00\x00\x000\x00\x000\x000\x000\x000\x00\x00"
    + b"1.7976931348623157e+308\x00" * 5
    + b"0\x00\x00\x00\x001.7976931348623157e+308\x00\x00\x00\x00\x000\x000\x000\x00\x00"
)


def test_frames_split_across_reads_and_several_per_read() -> None:
    data = frame([49, 1]) + frame([9, 1, 5])
    buf = FrameBuffer()
    got = []
    for i in range(len(data)):
        buf.feed(data[i : i + 1])
        while (payload := buf.next_payload()) is not None:
            got.append(split_fields(payload))
    assert got == [["49", "1"], ["9", "1", "5"]]


def test_every_field_is_nul_terminated_and_unset_float_is_tws_text() -> None:
    assert frame([4, 2, -1, 2104, "ok"]) == struct.pack(">I", 15) + b"4\x002\x00-1\x002104\x00ok\x00"
    assert frame([float("inf")]).endswith(b"1.7976931348623157E308\x00")


def test_place_order_from_the_doc_parses() -> None:
    fields = split_fields(_PLACE)
    assert len(fields) == 110
    req = parse_request(fields)
    assert isinstance(req, PlaceOrder)
    assert (req.order_id, req.contract.symbol, req.action, req.total_quantity, req.order_type) == (
        1,
        "AAPL",
        "BUY",
        100.0,
        "MKT",
    )
    assert req.lmt_price is None and req.algo_strategy == "" and req.transmit


def test_bad_input_never_raises() -> None:
    assert isinstance(parse_request(["999", "1"]), Unsupported)
    assert isinstance(parse_request(["3", "x"]), Malformed)
    assert isinstance(parse_request(["3"]), Malformed)
    assert isinstance(parse_request(["abc"]), Malformed)
    assert isinstance(parse_request([]), Malformed)
