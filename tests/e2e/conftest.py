"""E2E fixtures: the real-process harness lives in ``engine_harness.py`` (importable: this folder is on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_harness import engine_dir, ibsim_port  # noqa: F401  (fixtures registered for every e2e module)
