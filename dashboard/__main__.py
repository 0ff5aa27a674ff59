"""The dashboard process: ``python -m dashboard [--config config.yaml] [--set KEY.PATH=VALUE] [--print-url]``.

Serves the operator's page on ``dashboard.host:dashboard.port`` (loopback only; the config refuses anything else)
until SIGTERM or SIGINT. ``--print-url`` creates the token if needed, prints the page's link and exits (how
``run_system.sh`` shows the ready link). Thin: parse arguments, load the config, set up logging, wire, run.
Exit codes: 0 stopped, 1 could not start (the port is taken), 2 invalid configuration.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from core.config_loader import ArgumentParser, load_config
from core.errors import ConfigError
from dashboard.token import ensure_token

EXIT_START_FAILED = 1
EXIT_CONFIG = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m dashboard", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", default="config.yaml", help="the operator config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override one config key (repeatable), validated like the file")  # fmt: skip
    parser.add_argument("--print-url", action="store_true", help="print the page's link (with the token) and exit")
    return parser.parse_args(argv)


def page_url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    dash = config.dashboard
    token = ensure_token(Path(dash.token_path))
    if args.print_url:
        print(page_url(dash.host, dash.port, token))
        return 0
    import uvicorn

    from dashboard.app import build_app
    from dashboard.collector import Collector
    from dashboard.engine_link import EngineLink
    from dashboard.server import StoppingServer
    from utils.logger import setup_logging, shutdown_logging

    setup_logging(config.system.log_dir, "dashboard", config.system.log_level, console=False)
    log = logging.getLogger("dashboard")
    link = EngineLink(config)
    collector = Collector(config, link)
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), name="dashboard-collector", daemon=True)
    thread.start()
    app = build_app(collector, link, token, command_timeout_s=dash.command_timeout_s, refresh_s=dash.refresh_s,
                    stopping=stop)  # fmt: skip
    server = StoppingServer(uvicorn.Config(app, host=dash.host, port=dash.port, log_level="warning",
                                           access_log=False, lifespan="off", timeout_graceful_shutdown=3), stop)
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn restores these after its run and re-raises the signal
        signal.signal(sig, lambda _signum, _frame: stop.set())  # that stopped it: then it lands here, exit 0
    log.info("event=dashboard_started host=%s port=%d token_path=%s", dash.host, dash.port, dash.token_path)
    try:
        server.run()  # handles SIGTERM/SIGINT itself: finishes open responses, then returns
    finally:
        stop.set()
        thread.join(timeout=5)
        link.close()
    code = 0 if server.started else EXIT_START_FAILED
    if not server.started:
        print(f"dashboard: cannot serve on {dash.host}:{dash.port} (see {config.system.log_dir}/dashboard.log)",
              file=sys.stderr)  # fmt: skip
    log.info("event=dashboard_stopped exit_code=%d", code)
    shutdown_logging()
    return code


if __name__ == "__main__":
    sys.exit(main())
