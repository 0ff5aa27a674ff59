"""Logging setup for entry points: one rotating file per process plus stderr, UTC ISO timestamps.

Only entry points (``main.py``, ``risk_monitor.py``, CLIs) call ``setup_logging``; library modules just do
``log = logging.getLogger(__name__)`` and write key=value messages. Lines look like::

    2024-01-02T14:31:05.123Z WARNING portfolio.risk_manager event=trading_state_changed from=ACTIVE to=REDUCING

Timestamps come from the logging record (wall time when the line was written), not from the engine clock: a log
line says when it was written; events carry their own ``ts_ns``.

``setup_logging`` is idempotent: calling it again with the same arguments does nothing, with other arguments it
replaces the handlers it installed before (never duplicates them). Handlers installed by anyone else (pytest's
capture, for instance) are left alone. Call it from the main thread before starting other threads.

The log says what the engine did with every order: the folder is ``LOG_DIR_MODE`` (0750) and every file,
rotated ones included, ``LOG_FILE_MODE`` (0640), whatever the umask; looser existing ones are tightened and the
change is logged once the handlers are in place (``event=file_permissions_tightened``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

from utils.atomic_files import LOG_DIR_MODE, LOG_FILE_MODE, make_dir, open_with_mode, tighten_mode

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_BACKUPS = 5

_installed: list[logging.Handler] = []
_installed_key: tuple[object, ...] | None = None


class UtcIsoFormatter(logging.Formatter):
    """``<UTC ISO time with ms>Z <LEVEL> <logger> <message>`` (tracebacks follow on their own lines)."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (stdlib name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def setup_logging(
    log_dir: Path | str,
    process_name: str,
    level: str,
    *,
    console: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
) -> Path:
    """Send the root logger to ``<log_dir>/<process_name>.log`` (size-rotated, ``backups`` old files kept) and,
    with ``console``, to stderr. Returns the log file's path.

    Raises ValueError for an unknown level, an empty or path-like process name, or non-positive sizes.
    """
    global _installed_key
    level_name = level.upper()
    if level_name not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)} (got {level!r})")
    if not process_name or Path(process_name).name != process_name:
        raise ValueError(f"process_name must be a plain file stem such as 'engine' (got {process_name!r})")
    if max_bytes <= 0 or backups < 1:
        raise ValueError(f"max_bytes must be positive and backups at least 1 (got {max_bytes}, {backups})")
    if Path(log_dir).exists() and not Path(log_dir).is_dir():
        raise NotADirectoryError(f"{log_dir} is a file, not a folder")  # mkdir would say only "File exists"
    path = Path(log_dir) / f"{process_name}.log"
    key = (path.resolve(), level_name, console, max_bytes, backups)
    root = logging.getLogger()
    if key == _installed_key:
        return path
    shutdown_logging()
    tightened = _prepare_log_files(path, backups)
    formatter = UtcIsoFormatter()
    file_handler = RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    file_handler.rotator = _rotate_to_private_file
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level_name)
    _installed.extend(handlers)
    _installed_key = key
    logging.getLogger(__name__).info(
        "event=logging_configured process=%s path=%s level=%s console=%s max_bytes=%d backups=%d",
        process_name, path, level_name, console, max_bytes, backups,
    )  # fmt: skip
    for tightened_path, was in tightened:
        logging.getLogger(__name__).warning("event=file_permissions_tightened path=%s was=%o now=%o", tightened_path,
                                            was, was & (LOG_DIR_MODE if tightened_path.is_dir() else LOG_FILE_MODE))
    return path


def _prepare_log_files(path: Path, backups: int) -> list[tuple[Path, int]]:
    """Create the folder and the file with their modes; tighten looser existing ones (returned, to be logged once
    the handlers exist: a warning now would reach no file)."""
    folder = path.parent
    existed = folder.is_dir()
    make_dir(folder, LOG_DIR_MODE)
    candidates = [folder] if existed else []
    candidates += [p for p in [path, *(Path(f"{path}.{i}") for i in range(1, backups + 1))] if p.is_file()]
    tightened = []
    for candidate in candidates:
        was = tighten_mode(candidate, LOG_DIR_MODE if candidate.is_dir() else LOG_FILE_MODE, quiet=True)
        if was is not None:
            tightened.append((candidate, was))
    os.close(open_with_mode(path, os.O_WRONLY | os.O_APPEND, LOG_FILE_MODE, quiet=True))
    return tightened


def _rotate_to_private_file(source: str, dest: str) -> None:
    """``RotatingFileHandler.rotator``: the default rename, then the new file created 0640 for the handler to
    open (it would otherwise be created with the umask's mode)."""
    if os.path.exists(source):
        os.rename(source, dest)
    os.close(open_with_mode(source, os.O_WRONLY | os.O_APPEND, LOG_FILE_MODE, quiet=True))


def shutdown_logging() -> None:
    """Remove and close the handlers ``setup_logging`` installed (for a clean exit and for tests)."""
    global _installed_key
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
    _installed_key = None
