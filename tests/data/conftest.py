"""Fixtures shared by the data-package tests: the exchange calendar and the read-only shared data folder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

SHARED_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared real-data folder beside the checkout; tests needing it skip on a clone without it."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA_DIR} is absent (it sits beside the repository checkout)")
    return SHARED_DATA_DIR
