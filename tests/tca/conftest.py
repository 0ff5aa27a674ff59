"""TCA test fixtures: the record builders live in ``tca_builders.py`` (importable: this folder is on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

_FOLDER = str(Path(__file__).resolve().parent)
if _FOLDER not in sys.path:
    sys.path.insert(0, _FOLDER)
