"""The live trading engine: ``python main.py --config config.yaml [--duration SECONDS] [--port PORT]``.

Thin on purpose: parse arguments, load and validate the config, set up logging, ``live.wiring.build_engine``,
``Engine.run``. Exit codes (``live.exit_codes.ExitCode``): 0 a stop somebody ordered (signal, ``--duration``, a
kill that ended flat), 1 corrupt state (the message names the file, which is left untouched), 2 invalid
configuration, 3 a kill that did not end flat within its timeout, 4 a crash (an exception nothing expected; the
last heartbeat says ``stopping: crash`` and the risk monitor kills and flattens).
"""

from __future__ import annotations

import argparse
import sys

from core.config_loader import ArgumentParser, load_config, port_arg, positive_seconds_arg
from core.errors import ConfigError, StateCorruptError
from live.exit_codes import ExitCode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="main.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="the operator config (validated at start-up)")
    parser.add_argument("--duration", type=positive_seconds_arg, default=None, help="stop after this many seconds")
    parser.add_argument("--port", type=port_arg, default=None, help="override ib_connection.port (1-65535)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override one config key (repeatable), validated like the file")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"main.py: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    from utils.logger import setup_logging  # after validation: log_dir comes from the config

    try:
        setup_logging(config.system.log_dir, "engine", config.system.log_level)
    except OSError as exc:  # a log dir that is a file, or not writable: the operator's setting, not a crash
        why = exc if exc.strerror is None else exc.strerror
        print(f"main.py: system.log_dir: cannot log to {config.system.log_dir!r}: {why}", file=sys.stderr)
        return ExitCode.CONFIG
    import logging

    from live.wiring import build_engine  # heavy imports only once the config is known to be good

    logging.getLogger("ibapi").setLevel(logging.WARNING)  # ibapi logs every request and answer at INFO
    log = logging.getLogger("main")
    try:
        engine = build_engine(config, port=args.port)
    except StateCorruptError as exc:
        log.critical("event=state_corrupt action=refuse_start message=%s", exc)
        print(f"main.py: corrupt state, engine not started: {exc}", file=sys.stderr)
        return ExitCode.STATE_CORRUPT
    except ConfigError as exc:
        print(f"main.py: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except Exception:
        log.critical("event=engine_crashed phase=build action=exit_crash", exc_info=True)
        print("main.py: the engine crashed while starting (see the log); nothing was sent", file=sys.stderr)
        return ExitCode.CRASH
    return engine.run(duration_s=args.duration)


if __name__ == "__main__":
    sys.exit(main())
