"""An append-only CSV record file that survives restarts and crashes: the order log and the risk log use it.

Both files are tailed by the independent risk monitor, so both need the same guarantees: the header is written
once (a reopened file gets no second header), a foreign header is refused rather than appended to (rows in
another layout would mislead the reader), a torn last line from a crash mid-row is ended with a newline on
reopen (a reader skips rows with the wrong field count), and every row is flushed to the OS before ``append``
returns (``fsync=True`` also makes it durable). Owned by one thread.

Both are read by people and by the monitor, and hold every order and the account's equity: ``LOG_FILE_MODE``
(0640) by default, exactly, whatever the umask; an existing file with looser bits is tightened on open (logged).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from core.errors import StateCorruptError
from utils.atomic_files import LOG_FILE_MODE, dir_mode_for, make_dir, open_with_mode

log = logging.getLogger(__name__)


class AppendOnlyCsv:
    def __init__(self, path: Path | str, columns: Sequence[str], name: str, *, fsync: bool = False,
                 mode: int = LOG_FILE_MODE) -> None:  # fmt: skip
        self.path = Path(path)
        self.columns = tuple(columns)
        self.name = name  # "order log", "risk log": for messages a person reads
        self._fsync = fsync
        make_dir(self.path.parent, dir_mode_for(mode))
        needs_header = self._check_existing()
        fd = open_with_mode(self.path, os.O_WRONLY | os.O_APPEND, mode)
        self._file: TextIO = open(fd, "a", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.writer(self._file, lineterminator="\n")
        if needs_header:
            self.append(list(self.columns))

    def _check_existing(self) -> bool:
        """True when a header must be written; ends a torn last line; refuses a foreign header."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return True
        with self.path.open("r", encoding="utf-8", newline="") as f:
            header = next(csv.reader(io.StringIO(f.readline())), [])
        if tuple(header) != self.columns:
            raise StateCorruptError(
                f"{self.path}: header {header} is not the {self.name} format {list(self.columns)}; move the file "
                "aside (the risk monitor reads it) and restart"
            )
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:
            with self.path.open("ab") as f:
                f.write(b"\n")
            log.warning("event=csv_torn_tail file=%s path=%s (crash mid-row; row ended with a newline)",
                        self.name.replace(" ", "_"), self.path)
        return False

    def append(self, fields: Sequence[str]) -> None:
        self._writer.writerow(fields)
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
