"""The dashboard's token file (``dashboard.token``): created once, 0600, reused, compared in constant time."""

from __future__ import annotations

import stat
from pathlib import Path

from dashboard.token import ensure_token, token_matches


def test_the_token_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "dashboard.token"
    first = ensure_token(path)
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_token(path) == first


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.token"
    path.write_text("")
    token = ensure_token(path)
    assert token and path.read_text().strip() == token


def test_a_loosened_token_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.token"
    token = ensure_token(path)
    path.chmod(0o644)
    assert ensure_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_only_the_exact_token_matches() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("abc", "")
    assert not token_matches("abc", None)
