"""Atomic file replacement: a crash leaves the old content or the new, never a mix.

One implementation for every durable record that is rewritten whole (portfolio snapshot, approved params,
performance series): write a temp file in the same directory, fsync it, rename over the target, fsync the
directory so the rename itself survives a power loss.
"""

from __future__ import annotations

import os
from pathlib import Path


def temp_path_for(path: Path) -> Path:
    """Where ``atomic_write_bytes`` stages ``path`` (same directory, so ``os.replace`` is a rename)."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content, never a mix.

    Raises OSError if the disk refuses; ``path`` is then unchanged (a stale temp file may remain and is
    overwritten by the next call).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
