"""The state dir, opened once per engine before anything in it is read: checked, locked, made private.

Why a lock: two engines on one state dir would replay the same journal, each believe it owns every order in it,
and send, cancel and book them twice; the second one used to get as far as reading the journal before it failed
on a port. ``open_state_dir`` takes an exclusive ``flock`` on ``<state_dir>/engine.lock`` and writes the holder's
pid into it (for the message a second engine prints, and for people). The kernel releases the lock when the holder
exits, however it exits (SIGKILL included), so a crash never leaves a stale lock; the pid left in the file after
a crash means nothing without the lock. The file is never deleted (deleting a lock file lets two holders race).

Why the checks: a state path that is a file, or a folder the engine cannot write (read-only, another owner), would
otherwise surface as a traceback later on; here it is a ``StateCorruptError`` naming the path and what is wrong,
and nothing is changed. Once locked, the dir and everything in it lose the group and other bits (``0700`` folders,
``0600`` files; logged when a bit is cleared): the journal lists every order, the snapshot the account's books.

Called from the dispatcher thread during the engine's construction; ``StateLock.close`` releases the lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

from core.errors import StateCorruptError, StateInUseError
from utils.atomic_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, make_dir, open_with_mode, tighten_mode

log = logging.getLogger(__name__)

LOCK_NAME = "engine.lock"
_PID_MAX_BYTES = 32


class StateLock:
    """The held lock on ``path`` (an open descriptor with an exclusive ``flock``) until ``close``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def close(self) -> None:
        """Release the lock (idempotent). The pid is cleared first, while still held, so no reader sees ours."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def open_state_dir(state_dir: Path) -> StateLock:
    """Check ``state_dir`` (created 0700 when missing), lock it and make it private; returns the held lock.

    Raises ``StateInUseError`` (a ``ConfigError``: exit 2) when another process holds the lock, naming its pid;
    ``StateCorruptError`` (exit 1) naming the path when the state path is not a directory, cannot be created or
    written, or the lock file cannot be opened. Nothing in the dir is changed before the lock is held.
    """
    _check_state_dir(state_dir)
    lock = _acquire(state_dir / LOCK_NAME)
    try:
        _make_private(state_dir)
    except BaseException:
        lock.close()
        raise
    log.info("event=state_dir_locked path=%s lock=%s pid=%d", state_dir, lock.path, os.getpid())
    return lock


def _check_state_dir(state_dir: Path) -> None:
    what = f"{state_dir}: the state dir (system.state_dir)"
    if state_dir.exists() and not state_dir.is_dir():
        raise StateCorruptError(f"{what} is a file, not a directory; nothing was changed: move the file aside or "
                                "point system.state_dir at a directory")  # fmt: skip
    try:
        make_dir(state_dir, PRIVATE_DIR_MODE)
    except OSError as exc:
        raise StateCorruptError(f"{what} cannot be created ({exc.strerror}); create it, or point "
                                "system.state_dir at a writable place") from exc  # fmt: skip
    if not os.access(state_dir, os.R_OK | os.W_OK | os.X_OK):
        info = state_dir.stat()
        raise StateCorruptError(
            f"{what} is not writable by this user (uid {os.getuid()}; the dir has mode {stat.S_IMODE(info.st_mode):o}, "
            f"owner uid {info.st_uid}): every order is journaled there before it is sent; nothing was changed: "
            "make it writable (chmod u+rwx) or run the engine as its owner"
        )


def _acquire(path: Path) -> StateLock:
    try:
        fd = open_with_mode(path, os.O_RDWR, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise StateCorruptError(f"{path}: the state dir's lock file cannot be opened ({exc.strerror}); nothing "
                                "was changed: it must be a regular file the engine can write") from exc  # fmt: skip
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise StateInUseError(str(path), holder) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return StateLock(path, fd)


def _read_pid(fd: int) -> int | None:
    """The holder's pid from the lock file, or None while it has not written it yet (or wrote nonsense)."""
    text = os.pread(fd, _PID_MAX_BYTES, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _make_private(state_dir: Path) -> None:
    """Clear the group and other bits of the dir and of everything under it (symbolic links are not followed:
    their targets are not ours). A file this user may not chmod is logged and left as it is."""
    tighten_mode(state_dir, PRIVATE_DIR_MODE)
    for folder, dirs, names in os.walk(state_dir):
        for name in dirs + names:
            path = Path(folder, name)
            if path.is_symlink():
                continue
            try:
                tighten_mode(path, PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)
            except OSError as exc:
                log.warning("event=state_permissions_not_tightened path=%s error=%s", path, exc)
