"""The IB error table: every code the brief and ib-protocol.md name, with its policy, and safe defaults."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    BrokerTemporaryError,
    ConfigError,
    DataError,
    InvariantViolation,
    OrderRejected,
)
from core.ib_errors import IB_ERROR_TABLE, IbErrorAction, classify

A = IbErrorAction

EXPECTED = {
    2104: (None, A.IGNORE_INFO), 2106: (None, A.IGNORE_INFO), 2158: (None, A.IGNORE_INFO),
    2107: (None, A.IGNORE_INFO), 2108: (None, A.IGNORE_INFO), 2119: (None, A.IGNORE_INFO),
    2103: (BrokerTemporaryError, A.RESUBSCRIBE), 2105: (BrokerTemporaryError, A.RESUBSCRIBE),
    2157: (BrokerTemporaryError, A.RETRY_BACKOFF),
    1100: (BrokerTemporaryError, A.RECONNECT), 1101: (BrokerTemporaryError, A.RESUBSCRIBE),
    1102: (None, A.IGNORE_INFO), 1300: (BrokerTemporaryError, A.RECONNECT),
    326: (ConfigError, A.RETRY_BACKOFF),
    502: (BrokerTemporaryError, A.RECONNECT), 504: (BrokerTemporaryError, A.RECONNECT),
    507: (BrokerTemporaryError, A.RECONNECT), 509: (BrokerTemporaryError, A.RECONNECT),
    100: (BrokerTemporaryError, A.RETRY_BACKOFF),
    200: (OrderRejected, A.FAIL_ORDER), 201: (OrderRejected, A.FAIL_ORDER), 203: (OrderRejected, A.FAIL_ORDER),
    202: (None, A.IGNORE_INFO),
    103: (InvariantViolation, A.HALT), 104: (InvariantViolation, A.HALT), 105: (InvariantViolation, A.HALT),
    110: (OrderRejected, A.FAIL_ORDER), 135: (OrderRejected, A.FAIL_ORDER),
    161: (None, A.IGNORE_INFO), 399: (None, A.IGNORE_INFO),
    10147: (None, A.IGNORE_INFO), 10148: (None, A.IGNORE_INFO),
    10268: (OrderRejected, A.FAIL_ORDER), 10269: (OrderRejected, A.FAIL_ORDER),
    162: (DataError, A.RETRY_BACKOFF), 166: (DataError, A.FAIL_REQUEST), 354: (DataError, A.FAIL_REQUEST),
}


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED.items()))
def test_table_policy(code: int, expected: tuple[type | None, IbErrorAction]) -> None:
    result = classify(code, "text from TWS")
    assert result.known
    assert (result.error_class, result.action) == expected
    assert result.code == code and result.message == "text from TWS"


def test_every_rule_explains_itself_and_notices_have_no_error_class() -> None:
    for code, rule in IB_ERROR_TABLE.items():
        assert len(rule.why) > 20, code
        if rule.action is A.IGNORE_INFO:
            assert rule.error_class is None, code
        else:
            assert rule.error_class is not None, code


def test_classification_is_independent_of_the_text_and_the_id_for_known_codes() -> None:
    assert classify(201, "Order rejected - reason:x", order_id=5) == classify(201, "Order rejected - reason:x")
    assert classify(2104, "anything").action is classify(2104, "Market data farm connection is OK:usfarm").action


def test_unknown_code_with_an_order_fails_that_order() -> None:
    result = classify(98765, "new TWS message", order_id=12)
    assert not result.known
    assert (result.error_class, result.action) == (OrderRejected, A.FAIL_ORDER)


def test_unknown_code_without_an_order_is_retried() -> None:
    result = classify(98765, "new TWS message")
    assert not result.known
    assert (result.error_class, result.action) == (BrokerTemporaryError, A.RETRY_BACKOFF)


def test_unknown_21xx_code_is_a_warning_even_on_an_order() -> None:
    result = classify(2199, "some warning", order_id=3)
    assert not result.known and result.action is A.IGNORE_INFO and result.error_class is None


@given(st.integers(-10, 30000).filter(lambda c: c not in IB_ERROR_TABLE and not 2100 <= c < 2200),
       st.one_of(st.none(), st.integers(1, 10**6)))
def test_every_unknown_code_gets_the_safe_default(code: int, order_id: int | None) -> None:
    result = classify(code, "x", order_id=order_id)
    assert result.action is (A.FAIL_ORDER if order_id is not None else A.RETRY_BACKOFF)


def test_to_exception_carries_code_and_text() -> None:
    rejected = classify(201, "Order rejected - reason:margin").to_exception()
    assert isinstance(rejected, OrderRejected) and rejected.code == 201 and "margin" in rejected.reason
    halt = classify(103, "Duplicate order id").to_exception()
    assert isinstance(halt, InvariantViolation) and "103" in str(halt)
    config = classify(326, "client id in use").to_exception()
    assert isinstance(config, ConfigError) and "326" in str(config)
    assert classify(2104, "ok").to_exception() is None
