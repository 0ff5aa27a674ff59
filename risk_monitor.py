"""The independent risk monitor: ``python risk_monitor.py [--config config.yaml] [--set KEY.PATH=VALUE] [--port N]``.

A separate process that watches the engine and can stop it even when the engine is frozen, crashed or wrong. It
knows the engine only through files (heartbeat CSV, order log, risk log, kill flags), ZeroMQ (heartbeat and the
authenticated command channel) and the broker (its own IB connection, client id
``risk_monitor.risk_monitor_client_id``). What it checks and how it kills: ``monitor/`` (start at
``monitor/runner.py``). It writes ``flags/KILL.flag`` but never removes a flag: after a kill an operator decides.

Thin on purpose: parse arguments, load and validate the config, set up logging, ``monitor.build_monitor``, run.
Exit codes: 0 stopped by SIGTERM or SIGINT, 1 could not start, 2 invalid configuration. Like the engine's
``main.py`` it imports no engine runtime module (``tests/monitor`` checks this file's imports).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import zmq

from core.config_loader import ArgumentParser, load_config, port_arg
from core.errors import ConfigError

EXIT_START_FAILED = 1
EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="risk_monitor.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="config.yaml", help="the operator config (default: %(default)s)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override one config key (repeatable), validated like the file",
    )
    parser.add_argument("--port", type=port_arg, default=None, help="override ib_connection.port (1-65535)")
    return parser.parse_args(argv)


def stderr_is_file(path: Path) -> bool:
    """True when stderr already goes to ``path`` (run_system.sh redirects it there): no second console copy."""
    try:
        err, target = os.fstat(sys.stderr.fileno()), path.stat()
    except (OSError, ValueError):
        return False
    return (err.st_dev, err.st_ino) == (target.st_dev, target.st_ino)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"risk_monitor.py: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from utils.logger import setup_logging, shutdown_logging  # after validation: log_dir comes from the config

    log_file = Path(config.system.log_dir) / "risk_monitor.log"
    try:
        setup_logging(config.system.log_dir, "risk_monitor", config.system.log_level,
                      console=not stderr_is_file(log_file))  # fmt: skip
    except OSError as exc:  # a log dir that is a file, or not writable: the operator's setting, not a crash
        why = exc if exc.strerror is None else exc.strerror
        print(f"risk_monitor.py: system.log_dir: cannot log to {config.system.log_dir!r}: {why}", file=sys.stderr)
        return EXIT_CONFIG
    logging.getLogger("ibapi").setLevel(logging.WARNING)  # ibapi logs every request and answer at INFO
    log = logging.getLogger("risk_monitor")
    if args.overrides:
        log.info("event=config_overrides overrides=%s", args.overrides)
    from monitor import build_monitor

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())  # only sets a flag: the loop ends its turn
    try:
        monitor = build_monitor(config, port=args.port)
    except (OSError, ValueError, zmq.ZMQError) as exc:
        log.critical("event=monitor_start_failed error=%s", exc)
        print(f"risk_monitor.py: cannot start: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    code = monitor.run(stop)
    shutdown_logging()
    return code


if __name__ == "__main__":
    sys.exit(main())
