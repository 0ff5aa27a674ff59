"""Atomic file replacement and the permissions of durable records.

One implementation for every durable record that is rewritten whole (portfolio snapshot, approved params,
performance series): write a temp file in the same directory, fsync it, rename over the target, fsync the
directory so the rename itself survives a power loss. A crash leaves the old content or the new, never a mix.

Permissions (issue 12): state (journal, snapshot, lock, keys) is the owner's alone, ``PRIVATE_FILE_MODE`` in
``PRIVATE_DIR_MODE`` folders: the journal lists every order and the snapshot the account's books. Logs and audit
CSVs are ``LOG_FILE_MODE`` in ``LOG_DIR_MODE`` folders: the owner writes, the group (operators, a monitor under
another account) may read, others nothing. A file created here gets exactly its mode whatever the umask (an
``fchmod`` after ``os.open``); an existing file or folder looser than its mode is tightened, and that is logged,
never loosened: a stricter mode the operator chose is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
LOG_FILE_MODE = 0o640
LOG_DIR_MODE = 0o750


def temp_path_for(path: Path) -> Path:
    """Where ``atomic_write_bytes`` stages ``path`` (same directory, so ``os.replace`` is a rename)."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new content, never a mix.

    ``mode``: the new file's permission bits exactly (e.g. ``PRIVATE_FILE_MODE`` for state). None keeps the bits
    of the file being replaced, so a file tightened once stays tight through every rewrite; a new file then gets
    0o644 less the umask, as before. Raises OSError if the disk refuses; ``path`` is then unchanged (a stale temp
    file may remain and is overwritten by the next call).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path)
    if mode is None:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(path.stat().st_mode)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # the umask, or a leftover temp file's own mode, must not decide
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


def tighten_mode(path: Path | str, allowed: int, *, quiet: bool = False) -> int | None:
    """Clear the permission bits of ``path`` outside ``allowed``; returns the old bits when it changed them.

    Never adds a bit (an owner-only file stays owner-only). Logged as ``event=file_permissions_tightened`` unless
    ``quiet`` (for callers that log it themselves, e.g. before logging is set up). Raises OSError as ``chmod``.
    """
    current = stat.S_IMODE(os.stat(path).st_mode)
    if not current & ~allowed:
        return None
    os.chmod(path, current & allowed)
    if not quiet:
        log.warning("event=file_permissions_tightened path=%s was=%o now=%o", path, current, current & allowed)
    return current


def make_dir(path: Path | str, mode: int, *, tighten: bool = False) -> None:
    """Create ``path`` (and missing parents, with the default mode like ``mkdir -p``) with exactly ``mode``.

    ``tighten`` also clears the bits of an existing ``path`` outside ``mode``: only for a folder the config names
    as ours (state dir, log dir), never for a file's parent, which may be a shared folder such as /tmp. Raises
    OSError (FileExistsError when ``path`` is a file) as ``mkdir``.
    """
    path = Path(path)
    existed = path.is_dir()
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if not existed:
        os.chmod(path, mode)
    elif tighten:
        tighten_mode(path, mode)


def open_with_mode(path: Path | str, flags: int, mode: int, *, quiet: bool = False) -> int:
    """``os.open(path, flags | O_CREAT)`` where a new file gets exactly ``mode`` whatever the umask and an existing
    file with bits outside ``mode`` is tightened (logged unless ``quiet``); returns the descriptor."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        created = True
    except FileExistsError:
        fd = os.open(path, flags, mode)
        created = False
    try:
        current = stat.S_IMODE(os.fstat(fd).st_mode)
        if created and current != mode:
            os.fchmod(fd, mode)
        elif not created and current & ~mode:
            os.fchmod(fd, current & mode)
            if not quiet:
                log.warning("event=file_permissions_tightened path=%s was=%o now=%o", path, current, current & mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def dir_mode_for(file_mode: int) -> int:
    """The folder mode that goes with a file mode: whoever may read the files may also enter the folder."""
    return file_mode | (file_mode & 0o444) >> 2
