"""The dashboard's access token: created once (0600) on the first run, then reused.

Why a token on a loopback page: any local process (or a web page in the operator's browser doing a cross-origin
request to 127.0.0.1) could otherwise reach a page that halts and flattens the account. The token is the page's
password; ``run_system.sh`` prints it inside a ready link. Delete the file to issue a new one.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_BYTES = 32
FILE_MODE = 0o600
DIR_MODE = 0o700


def ensure_token(path: Path) -> str:
    """The token in ``path``, created (race-safe: ``O_EXCL``) with 0600 if missing or empty."""
    path = Path(path)
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    existing = _read(path)
    if existing:
        os.chmod(path, FILE_MODE)
        return existing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        if path.exists():  # present but empty (a crash between create and write): replace it
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if another process created it meanwhile: its token wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path) or token


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
