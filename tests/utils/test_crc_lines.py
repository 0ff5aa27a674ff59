"""``encode_line`` serializes once; its line must be exactly the plain definition's: ``json.dumps`` of the body with
its ``crc`` (the CRC-32 of the body's canonical JSON), sorted keys, no spaces, ASCII."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.crc_lines import checked_record, encode_line


def _reference(body: dict) -> bytes:
    options = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True, "allow_nan": False}
    crc = f"{zlib.crc32(json.dumps(body, **options).encode('ascii')):08x}"
    return (json.dumps({**body, "crc": crc}, **options) + "\n").encode("ascii")


NEAR_CRC = ["", "a", "algo", "client_order_id", "code", "commission", "cr", "crb", "crc0", "crd", "d", "kind", "order",
            "seq", "v", "Z", "\u00e9", "cr\u00e9"]  # fmt: skip
KEYS = st.one_of(st.sampled_from(NEAR_CRC), st.text(max_size=6))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=12),
                    st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                      max_leaves=12)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(KEYS, VALUES, max_size=10))
def test_encode_line_equals_the_plain_definition(body: dict) -> None:
    line = encode_line(body)
    assert line == _reference(body)
    assert checked_record(line[:-1], "x:1", "") == body


def test_encode_line_with_a_crc_field_or_nan_behaves_as_before() -> None:
    assert encode_line({"crc": "x", "a": 1}) == _reference({"crc": "x", "a": 1})
    assert encode_line({}) == _reference({})
    with pytest.raises(ValueError):
        encode_line({"a": float("nan")})
