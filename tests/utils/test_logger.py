"""setup_logging: one file and one console handler however often it is called, size rotation, UTC ISO lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from utils.logger import setup_logging, shutdown_logging

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ .*$")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    shutdown_logging()
    root.setLevel(level)
    assert root.handlers == handlers


def added_since(before: list[logging.Handler]) -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h not in before]


def test_setup_is_idempotent(tmp_path: Path) -> None:
    before = list(logging.getLogger().handlers)
    first = setup_logging(tmp_path, "engine", "INFO")
    second = setup_logging(tmp_path, "engine", "INFO")
    assert first == second == tmp_path / "engine.log"
    added = added_since(before)
    assert sorted(type(h).__name__ for h in added) == ["RotatingFileHandler", "StreamHandler"]


def test_setup_with_new_arguments_replaces_its_handlers(tmp_path: Path) -> None:
    before = list(logging.getLogger().handlers)
    setup_logging(tmp_path, "engine", "INFO")
    setup_logging(tmp_path, "engine", "DEBUG", console=False)
    assert [type(h).__name__ for h in added_since(before)] == ["RotatingFileHandler"]
    assert logging.getLogger().level == logging.DEBUG


def test_file_lines_have_utc_iso_time_level_logger_and_message(tmp_path: Path) -> None:
    path = setup_logging(tmp_path, "monitor", "INFO", console=False)
    logging.getLogger("portfolio.live_manager").warning("event=test_line value=%d", 7)
    logging.getLogger("portfolio.live_manager").debug("event=below_level")
    shutdown_logging()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert lines[-1].endswith(" WARNING portfolio.live_manager event=test_line value=7")
    assert not any("below_level" in line for line in lines)


def test_size_rotation_keeps_the_configured_backups(tmp_path: Path) -> None:
    path = setup_logging(tmp_path / "logs", "engine", "INFO", console=False, max_bytes=400, backups=2)
    log = logging.getLogger("test.rotation")
    for i in range(60):
        log.info("event=filler n=%d padding=%s", i, "x" * 40)
    shutdown_logging()
    assert path.exists()
    assert (path.parent / "engine.log.1").exists()
    assert (path.parent / "engine.log.2").exists()
    assert not (path.parent / "engine.log.3").exists()
    assert all(p.stat().st_size <= 400 for p in path.parent.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [({"level": "LOUD"}, "level"), ({"process_name": "../engine"}, "process_name"), ({"backups": 0}, "backups")],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object], what: str) -> None:
    arguments: dict[str, object] = {"log_dir": tmp_path, "process_name": "engine", "level": "INFO", **kwargs}
    with pytest.raises(ValueError, match=what):
        setup_logging(**arguments)  # type: ignore[arg-type]
