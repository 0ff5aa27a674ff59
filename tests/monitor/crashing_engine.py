"""``main.py`` with one injected fault, for the crash test: ``python crashing_engine.py --config FILE``.

The real engine, built by the real ``build_engine``, with one handler added after the others on ``MarketEvent``
(the intraday bars): it raises ``RuntimeError`` once a file ``CRASH_NOW`` exists in the working folder. Nothing
expects a RuntimeError, so the dispatcher's error policy must treat it as a crash (exit 4, last heartbeat
``stopping: crash``). The test decides the moment by creating the file; nothing in the engine knows about it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import live.wiring as engine_module  # noqa: E402
import main  # noqa: E402
from core.events import MarketEvent  # noqa: E402

TRIGGER = Path("CRASH_NOW")
real_build_engine = engine_module.build_engine


def crash_when_asked(_event: MarketEvent) -> None:
    if TRIGGER.exists():
        raise RuntimeError("injected fault: CRASH_NOW present")


def build_with_fault(config, **kwargs):  # type: ignore[no-untyped-def]
    engine = real_build_engine(config, **kwargs)
    engine.queue.route(MarketEvent, [*engine.queue.handlers(MarketEvent), crash_when_asked])
    return engine


engine_module.build_engine = build_with_fault

if __name__ == "__main__":
    sys.exit(main.main(sys.argv[1:]))
