"""Where promoted AlgoWheel models live: immutable model folders and one ``CURRENT`` pointer.

Layout under a models root (``algo_wheel.models_dir``, default ``state/models``)::

    <root>/algowheel/<model_id>/wheel_state.json   AlgoWheel.state()
    <root>/algowheel/<model_id>/model_card.json    what the model was trained on and why it was (not) promoted
    <root>/algowheel/CURRENT                        the promoted model_id, one line

Why this shape: a model folder is written once and never changed (``model_id`` = UTC timestamp + a content
hash), so a card always describes the posterior next to it; promotion is one atomic replace of ``CURRENT``, so
the engine sees either the old model or the new one, never half of either. A ``CURRENT`` that names a missing or
unreadable model raises ``StateCorruptError`` naming the file: falling back to the prior without a word would
silently throw away everything the wheel learned. Folders are ``PRIVATE_DIR_MODE`` and files
``PRIVATE_FILE_MODE``: the cards count the account's orders per arm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.clock import WallClock
from core.config_models import AlgoWheelConfig, AppConfig
from core.errors import StateCorruptError
from ml.model_pointer import CURRENT_FILE, canonical_json, check_model_id, read_pointer, write_pointer
from portfolio.algo_wheel import AlgoWheel
from utils.atomic_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, atomic_write_bytes, fsync_dir, make_dir

MODELS_SUBDIR = "algowheel"
STATE_FILE = "wheel_state.json"
CARD_FILE = "model_card.json"


def models_dir(root: Path | str) -> Path:
    """``<root>/algowheel``: the folder that holds every AlgoWheel model and ``CURRENT``."""
    return Path(root) / MODELS_SUBDIR


def make_model_id(wheel_state: dict[str, Any], card: dict[str, Any], now_ns: int) -> str:
    """``YYYYMMDDTHHMMSSZ-<12 hex>``: sorts by creation time; the hash is of the state and the card's content."""
    stamp = datetime.fromtimestamp(now_ns // 1_000_000_000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(canonical_json({"state": wheel_state, "card": card})).hexdigest()[:12]
    return f"{stamp}-{digest}"


def write_model(
    root: Path | str, wheel_state: dict[str, Any], card: dict[str, Any], *, now_ns: int | None = None
) -> str:
    """Write a new model folder and return its ``model_id``; the card gains ``model_id`` and ``created_at``.

    ``now_ns`` (UTC epoch ns; default the wall clock) names the model. The folder is assembled under a hidden
    temporary name and renamed into place, so a crash leaves no half model. Never overwrites: the same content
    at the same second is the same model (its id is returned, nothing is written); raises ``FileExistsError``
    if that id's folder holds other content. ``card`` must be JSON (no NaN).
    """
    now_ns = WallClock().now_ns() if now_ns is None else now_ns
    model_id = make_model_id(wheel_state, card, now_ns)
    created_at = datetime.fromtimestamp(now_ns / 1e9, tz=UTC).isoformat(timespec="seconds")
    full_card = {**card, "model_id": model_id, "created_at": created_at}
    folder = models_dir(root)
    make_dir(root, PRIVATE_DIR_MODE)
    make_dir(folder, PRIVATE_DIR_MODE)
    target = folder / model_id
    if target.exists():
        if _read_json(target / STATE_FILE) == json.loads(canonical_json(wheel_state)):
            return model_id
        raise FileExistsError(f"{target}: a model with this id and other content exists; not overwritten")
    staging = folder / f".{model_id}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    make_dir(staging, PRIVATE_DIR_MODE)
    atomic_write_bytes(staging / STATE_FILE, canonical_json(wheel_state), mode=PRIVATE_FILE_MODE)
    atomic_write_bytes(staging / CARD_FILE, canonical_json(full_card), mode=PRIVATE_FILE_MODE)
    os.rename(staging, target)
    fsync_dir(folder)
    return model_id


def promote(root: Path | str, model_id: str) -> None:
    """Point ``CURRENT`` at ``model_id`` (atomic replace). The model must exist and parse, so a promotion can
    never leave the engine a pointer it cannot load: raises ValueError for a malformed id, FileNotFoundError
    for a missing model, ``StateCorruptError`` for an unreadable one."""
    check_model_id(model_id)
    target = models_dir(root) / model_id
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such model; write it with write_model first")
    _read_model(target)
    write_pointer(models_dir(root) / CURRENT_FILE, model_id)


def current_model_id(root: Path | str) -> str | None:
    """The promoted model's id, or None when nothing was ever promoted; a malformed ``CURRENT`` raises
    ``StateCorruptError`` naming it."""
    return read_pointer(models_dir(root) / CURRENT_FILE, "model", "delete it to start from the prior")


def read_current(root: Path | str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(wheel state, model card) of the promoted model; None when there is no ``CURRENT``.

    Raises ``StateCorruptError`` naming the file when ``CURRENT`` names a missing or unparsable model: the
    caller must decide (fix the file, promote another model), never silently fall back to the prior.
    """
    model_id = current_model_id(root)
    if model_id is None:
        return None
    folder = models_dir(root) / model_id
    if not folder.is_dir():
        raise StateCorruptError(f"{models_dir(root) / CURRENT_FILE}: names model {model_id}, but {folder} is missing")
    return _read_model(folder)


def load_current_wheel(root: Path | str, config: AlgoWheelConfig) -> AlgoWheel | None:
    """The promoted wheel with ``config``'s settings, or None when nothing is promoted (start from the prior).

    Raises ``StateCorruptError`` naming the file for a broken pointer, file or posterior.
    """
    found = read_current(root)
    if found is None:
        return None
    state, card = found
    try:
        return AlgoWheel.from_state(state, config)
    except StateCorruptError as exc:
        path = models_dir(root) / str(card.get("model_id", "?")) / STATE_FILE
        raise StateCorruptError(f"{path}: {exc}") from exc


def _read_model(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return _read_json(folder / STATE_FILE), _read_json(folder / CARD_FILE)


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``StateCorruptError`` naming it when missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorruptError(f"{path}: unreadable model file ({exc})") from exc
    if not isinstance(value, dict):
        raise StateCorruptError(f"{path}: expected a JSON object (got {type(value).__name__})")
    return value


def promoted_wheel_state(config: AppConfig) -> dict[str, Any] | None:
    """The promoted model's wheel state for this config when an enabled strategy trades ``WHEEL``, else None.

    The one place the backtester and the live engine read it, so a backtest decides with the model the engine
    trades. ``StateCorruptError`` (naming the file) for a broken pointer or model: never a silent prior.
    """
    from portfolio.wheel_orders import wheel_strategies

    if not wheel_strategies(config.strategies):
        return None
    current = read_current(Path(config.algo_wheel.models_dir))
    return None if current is None else current[0]
