"""``python -m ibsim --port PORT [--data synthetic|DIR] [--seed N] [--speed X] [--host 127.0.0.1]``.

Risk-test faults: ``--price-shock SECONDS:PCT`` moves every price by PCT percent from SECONDS of wall time after
start (``--price-shock 5:-40``: a 40 % fall after 5 s); ``--price-shock-signal PCT`` applies that move each time
the process receives SIGUSR1, so a test can shock at the moment it chooses. ``--cash-usd`` sets the account's cash.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ibsim.config import SimConfig
from ibsim.cost_profiles import PROFILES
from ibsim.server import IbSim


def check_shock_pct(pct: float) -> float:
    """``pct`` if it keeps prices positive (> -100), else ``ValueError`` saying so."""
    if pct <= -100.0:
        raise ValueError(f"a price shock must be above -100 percent (got {pct})")
    return pct


def parse_price_shock(text: str) -> tuple[float, float]:
    """``"SECONDS:PCT"`` -> (seconds, pct); ``ValueError`` naming the expected form otherwise."""
    seconds_text, sep, pct_text = text.partition(":")
    try:
        if not sep:
            raise ValueError
        seconds, pct = float(seconds_text), float(pct_text)
    except ValueError:
        raise ValueError(f"--price-shock must be SECONDS:PCT, e.g. 5:-40 (got {text!r})") from None
    if seconds < 0:
        raise ValueError(f"--price-shock SECONDS must be >= 0 (got {seconds})")
    return seconds, check_shock_pct(pct)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibsim", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--port", type=int, default=4002, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a bar store folder")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic market and fill models")
    parser.add_argument("--speed", type=float, default=60.0, help="sim seconds per wall second")
    parser.add_argument("--cost-profile", default="default", choices=sorted(PROFILES),
                        help="what MOC/LOC/Adaptive/TWAP cost (ibsim.cost_profiles)")
    parser.add_argument("--tick-interval-s", type=float, default=SimConfig().tick_interval_s,
                        help="wall seconds between market data ticks of each subscription")  # fmt: skip
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--cash-usd", type=float, default=SimConfig().cash_usd, help="the account's starting cash")
    parser.add_argument("--price-shock", default=None, metavar="SECONDS:PCT",
                        help="move every price by PCT percent from SECONDS of wall time after start")  # fmt: skip
    parser.add_argument("--price-shock-signal", type=float, default=None, metavar="PCT",
                        help="move every price by PCT percent on each SIGUSR1")  # fmt: skip
    parser.add_argument("--master-client-id", type=int, default=None,
                        help="TWS's Master API client ID: also gets every other client's executions")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.speed <= 0:
        print(f"ibsim: --speed must be > 0 (got {args.speed})", file=sys.stderr)
        return 2
    if args.tick_interval_s <= 0:
        print(f"ibsim: --tick-interval-s must be > 0 (got {args.tick_interval_s})", file=sys.stderr)
        return 2
    if args.cash_usd <= 0:
        print(f"ibsim: --cash-usd must be > 0 (got {args.cash_usd})", file=sys.stderr)
        return 2
    try:
        shock = None if args.price_shock is None else parse_price_shock(args.price_shock)
        if args.price_shock_signal is not None:
            check_shock_pct(args.price_shock_signal)
    except ValueError as exc:
        print(f"ibsim: {exc}", file=sys.stderr)
        return 2
    cfg = SimConfig(host=args.host, port=args.port, data=args.data, seed=args.seed, speed=args.speed,
                    cash_usd=args.cash_usd, price_shock=shock, master_client_id=args.master_client_id,
                    cost_profile=args.cost_profile, tick_interval_s=args.tick_interval_s)  # fmt: skip
    try:
        sim = IbSim(cfg)
        port = sim.start()
    except (OSError, ValueError) as exc:
        print(f"ibsim: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.price_shock_signal is not None:
        pct = args.price_shock_signal
        # the handler runs on the main thread between bytecodes; the shock itself takes the server lock there
        signal.signal(signal.SIGUSR1, lambda *_: sim.price_shock(pct))
    logging.getLogger("ibsim").info("event=listening host=%s port=%d", args.host, port)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
