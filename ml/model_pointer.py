"""What the model stores (``ml.algowheel_store``, ``ml.veto_model_store``) share: the model-id format, the
canonical JSON that is hashed and written, and the ``CURRENT`` pointer naming the promoted model.

One copy, so both stores refuse the same malformed pointers (the id pattern also keeps ``../`` out of ``CURRENT``)
and write it the same way (one atomic replace, 0600).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError
from utils.atomic_files import PRIVATE_FILE_MODE, atomic_write_bytes

CURRENT_FILE = "CURRENT"
MODEL_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, no NaN: the bytes that are hashed and written (equal content, equal bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def check_model_id(model_id: str) -> None:
    """ValueError for an id that is not ``YYYYMMDDTHHMMSSZ-<12 hex>``."""
    if not MODEL_ID_PATTERN.match(model_id):
        raise ValueError(f"model_id: must look like 20240501T120000Z-0123456789ab (got {model_id!r})")


def read_pointer(path: Path, what: str, remedy: str) -> str | None:
    """The model id in ``CURRENT`` at ``path``, None when the file does not exist. An unreadable or malformed
    pointer raises ``StateCorruptError`` naming it, ``what`` the model kind and ``remedy`` what to do."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateCorruptError(f"{path}: cannot read the promoted {what} id ({exc})") from exc
    if not MODEL_ID_PATTERN.match(text):
        raise StateCorruptError(
            f"{path}: does not hold a model id (got {text[:80]!r}); point it at a folder of {path.parent} or {remedy}"
        )
    return text


def write_pointer(path: Path, model_id: str) -> None:
    """Point ``CURRENT`` at ``model_id``: one atomic replace, private to the user."""
    atomic_write_bytes(path, f"{model_id}\n".encode(), mode=PRIVATE_FILE_MODE)
