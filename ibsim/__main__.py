"""``python -m ibsim --port PORT [--data synthetic|DIR] [--seed N] [--speed X] [--host 127.0.0.1]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ibsim.config import SimConfig
from ibsim.server import IbSim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibsim", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--port", type=int, default=4002, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a bar store folder")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic market and fill models")
    parser.add_argument("--speed", type=float, default=60.0, help="sim seconds per wall second")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.speed <= 0:
        print(f"ibsim: --speed must be > 0 (got {args.speed})", file=sys.stderr)
        return 2
    cfg = SimConfig(host=args.host, port=args.port, data=args.data, seed=args.seed, speed=args.speed)
    try:
        sim = IbSim(cfg)
        port = sim.start()
    except (OSError, ValueError) as exc:
        print(f"ibsim: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("ibsim").info("event=listening host=%s port=%d", args.host, port)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
