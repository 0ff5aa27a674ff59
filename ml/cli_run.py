"""How the model CLIs (``ml.algowheel_model_trainer``, ``ml.bootstrap_algowheel_model``, ``ml.ml_model_trainer``)
turn their work into an exit code: one rule, so the three answer the same way.

0 and the printed report when the work ran (whether or not it promoted anything); 2 for a configuration problem
(the message names the key); 1 for data or a model file that is missing, corrupt, busy or inconsistent. The
message goes to stderr, prefixed with the program's name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from core.errors import ConfigError, TradingSystemError

T = TypeVar("T")


def run_cli(prog: str, work: Callable[[], T], render: Callable[[T], str]) -> int:
    try:
        report = work()
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (OSError, TradingSystemError, ValueError) as exc:  # FileNotFoundError is an OSError
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    return 0
