"""Follow an append-only text file line by line: complete lines only, across rotation, truncation and restarts.

Why: the engine's order log and risk log are CSV files with one row per physical line, flushed row by row. A
reader sees them grow in arbitrary chunks, so a read may end in the middle of a line: ``LineTail`` keeps that
piece and hands the line out once its newline has arrived. A crash can leave a torn line that the engine's next
start ends with a newline; the tail hands it out like any line and the row parser rejects it (wrong field count).
When the file is rotated (renamed, a new file created) the rest of the old file is read through the still-open
descriptor, then the new file is followed from its first byte; a truncated file is followed from its start again.

A monitor that (re)starts must not mistake old rows for new ones: ``LineTail(start_at_end=True)`` starts at the
end of the file, or at the start of its last line when that line is still incomplete (the writer is mid-row), so
that the row is read whole once finished. ``scan_back`` reads the rows just before that point, newest first, for
the few facts that need today's history (the fills of the day, the first equity of the day).

Not thread-safe: one owner (the monitor loop). Never raises for a missing or unreadable file: it reports no lines
and ``error`` says why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES_PER_READ = 4 * 1024 * 1024  # bounds one read so a huge backlog cannot stall the loop
_SCAN_CHUNK_BYTES = 64 * 1024


class LineTail:
    """Complete new lines of ``path`` (decoded UTF-8, newline stripped), oldest first; see the module docstring."""

    def __init__(
        self, path: Path | str, *, start_at_end: bool, max_bytes_per_read: int = DEFAULT_MAX_BYTES_PER_READ
    ) -> None:
        if max_bytes_per_read <= 0:
            raise ValueError(f"max_bytes_per_read must be > 0 (got {max_bytes_per_read})")
        self.path = Path(path)
        self.max_bytes_per_read = max_bytes_per_read
        self.error: str | None = None
        self.rotations = 0
        self.truncations = 0
        self.dropped_partial_lines = 0
        self._file: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        self.start_offset = 0  # where following began in the first file (``scan_back`` reads before it)
        self._open(start_at_end=start_at_end)

    @property
    def following(self) -> bool:
        """True while a file is open (it existed at least once)."""
        return self._file is not None

    def read_lines(self) -> list[str]:
        """Every complete line appended since the previous call (at most ``max_bytes_per_read`` worth)."""
        if self._file is None and not self._open(start_at_end=False):  # appeared after we started: all of it is new
            return []
        lines = self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # renamed away and no new file yet: the writer may still append to the old one
        except OSError as exc:
            self.error = f"cannot stat {self.path}: {exc}"
            return lines
        if (st.st_dev, st.st_ino) != self._ident:
            lines += self._drain(limit=False)  # the rest of the rotated file, through our descriptor
            if self._partial:
                self.dropped_partial_lines += 1
                log.warning(
                    "event=tail_partial_line_dropped path=%s bytes=%d reason=file_rotated",
                    self.path,
                    len(self._partial),
                )
            self.rotations += 1
            log.info("event=tail_file_rotated path=%s rotations=%d", self.path, self.rotations)
            self._close()
            if self._open(start_at_end=False):
                lines += self._drain()
        elif st.st_size < self._offset and self._file is not None:
            self.truncations += 1
            log.warning("event=tail_file_truncated path=%s size=%d offset=%d", self.path, st.st_size, self._offset)
            self._file.seek(0)
            self._offset, self._partial = 0, b""
            lines += self._drain()
        return lines

    def close(self) -> None:
        self._close()

    # ------------------------------------------------------------------ internals
    def _open(self, *, start_at_end: bool) -> bool:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self.error = f"{self.path} does not exist (yet)"
            return False
        except OSError as exc:
            self.error = f"cannot open {self.path}: {exc}"
            return False
        st = os.fstat(handle.fileno())
        offset = last_line_start(handle, st.st_size) if start_at_end else 0
        handle.seek(offset)
        self._file, self._ident = handle, (st.st_dev, st.st_ino)
        self._offset, self._partial, self.error = offset, b"", None
        self.start_offset = offset
        return True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._ident, self._partial = None, None, b""

    def _drain(self, *, limit: bool = True) -> list[str]:
        if self._file is None:
            return []
        try:
            data = self._file.read(self.max_bytes_per_read if limit else -1)
        except OSError as exc:
            self.error = f"cannot read {self.path}: {exc}"
            return []
        if not data:
            return []
        self._offset += len(data)
        pieces = (self._partial + data).split(b"\n")
        self._partial = pieces.pop()
        return [piece.decode("utf-8", errors="replace").rstrip("\r") for piece in pieces]


def last_line_start(handle: BinaryIO, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 if none): where an unfinished last line starts."""
    position = size
    while position > 0:
        start = max(0, position - _SCAN_CHUNK_BYTES)
        handle.seek(start)
        chunk = handle.read(position - start)
        if position == size and chunk.endswith(b"\n"):
            return size
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def scan_back(path: Path | str, end_offset: int, is_older: Callable[[str], bool], max_bytes: int) -> list[str]:
    """Complete lines before ``end_offset``, walking back until one ``is_older`` (excluded) or ``max_bytes`` read.

    Returns them oldest first. ``is_older`` decides on one decoded line (a header or a malformed line should answer
    False unless it marks the boundary). Never raises: an unreadable file gives an empty list.
    """
    found: list[str] = []
    try:
        with Path(path).open("rb") as handle:
            position, carry, read = end_offset, b"", 0
            while position > 0 and read < max_bytes:
                start = max(0, position - _SCAN_CHUNK_BYTES)
                handle.seek(start)
                chunk = handle.read(position - start) + carry
                read += position - start
                pieces = chunk.split(b"\n")
                carry = pieces.pop(0) if start > 0 else b""  # the first piece may be the tail of an earlier line
                for piece in reversed(pieces):
                    if not piece:
                        continue
                    line = piece.decode("utf-8", errors="replace").rstrip("\r")
                    if is_older(line):
                        return found[::-1]
                    found.append(line)
                position = start
    except OSError as exc:
        log.warning("event=scan_back_failed path=%s error=%s", path, exc)
        return []
    return found[::-1]
