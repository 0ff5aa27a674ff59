"""Fetch daily bars from IB (``reqHistoricalData``) into the bar store, one symbol at a time.

Why sequential: IB paces historical requests; one outstanding request at a time is slow but never trips the
pacing rules, and a failing symbol (error 162 no data/pacing, 200 unknown contract) is reported while the
others continue. Every bar goes through ``BarStore.write``, i.e. the bad-bar guard.

Threads: the caller's thread drives everything; ``IbConnection``'s threads only ``put`` messages on a
``queue.Queue`` that this module drains.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
from collections.abc import Callable, Sequence

import pandas as pd

from core.clock import NS_PER_SECOND, WallClock
from core.config_loader import load_config
from core.config_models import IbConnectionConfig
from core.errors import BrokerTemporaryError, ConfigError
from core.ib_messages import IbBar, IbConnected, IbError, IbHistoricalEnd
from core.ib_wrapper import IbConnection
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.ib_daily_bars import daily_bars_frame, request_daily_history

log = logging.getLogger(__name__)

HISTORY_REQ_ID_BASE = 70_000
DEFAULT_CLIENT_ID = 11  # distinct from the engine (1) and the monitor (2) defaults
_REQUEST_FAILED_CODES = (162, 200, 166, 354)


def fetch_daily_bars(
    connection_cfg: IbConnectionConfig,
    symbols: Sequence[str],
    duration: str = "1 Y",
    *,
    store: BarStore,
    client_id: int = DEFAULT_CLIENT_ID,
    timeout_s: float = 30.0,
    port: int | None = None,
    clock: WallClock | None = None,
) -> dict[str, int]:
    """Fetch ``duration`` of daily TRADES bars per symbol; returns accepted bar counts (0 = failed/no data).

    Raises ``BrokerTemporaryError`` if no session is ready within ``connection_cfg.connect_timeout_s``.
    """
    clock = clock or WallClock()
    inbox: queue.Queue[object] = queue.Queue()
    connection = IbConnection(connection_cfg, client_id, inbox.put, clock, port=port)
    connection.start()
    try:
        if _wait_for(inbox, clock, connection_cfg.connect_timeout_s, lambda m: isinstance(m, IbConnected)) is None:
            raise BrokerTemporaryError(
                f"no IB session on {connection_cfg.host}:{port or connection_cfg.port} client_id={client_id} within "
                f"{connection_cfg.connect_timeout_s} s: is the gateway (or ibsim) running and the API enabled?"
            )
        counts: dict[str, int] = {}
        for i, symbol in enumerate(symbols):
            frame = _fetch_one(connection, inbox, clock, HISTORY_REQ_ID_BASE + i, symbol, duration, timeout_s)
            counts[symbol] = 0 if frame is None else len(store.write(symbol, frame).clean)
            log.info("event=daily_bars_fetched symbol=%s accepted=%d", symbol, counts[symbol])
        return counts
    finally:
        connection.stop()


def _fetch_one(
    connection: IbConnection,
    inbox: queue.Queue[object],
    clock: WallClock,
    req_id: int,
    symbol: str,
    duration: str,
    timeout_s: float,
) -> pd.DataFrame | None:
    """One request; the bar frame, or None after an error for this request or a timeout (logged)."""
    if not request_daily_history(connection, req_id, symbol, duration):
        log.error("event=daily_bars_failed symbol=%s reason=not_sent", symbol)
        return None
    rows: list[IbBar] = []

    def done(msg: object) -> bool:
        if isinstance(msg, IbBar) and msg.req_id == req_id:
            rows.append(msg)
        return isinstance(msg, IbHistoricalEnd | IbError) and msg.req_id == req_id

    end = _wait_for(inbox, clock, timeout_s, done)
    if end is None:
        log.error("event=daily_bars_failed symbol=%s reason=timeout timeout_s=%s", symbol, timeout_s)
        connection.send(lambda c: c.cancelHistoricalData(req_id), what="cancelHistoricalData")
        return None
    if isinstance(end, IbError):
        level = logging.ERROR if end.code in _REQUEST_FAILED_CODES else logging.WARNING
        log.log(level, "event=daily_bars_failed symbol=%s code=%d message=%r", symbol, end.code, end.message)
        return None
    return daily_bars_frame(rows)


def _wait_for(
    inbox: queue.Queue[object], clock: WallClock, timeout_s: float, match: Callable[[object], bool]
) -> object | None:
    """Drain ``inbox`` until ``match(msg)`` is true (returns that message) or ``timeout_s`` passes (None)."""
    deadline_ns = clock.now_ns() + int(timeout_s * NS_PER_SECOND)
    while (left_ns := deadline_ns - clock.now_ns()) > 0:
        try:
            msg = inbox.get(timeout=min(0.2, left_ns / NS_PER_SECOND))
        except queue.Empty:
            continue
        if match(msg):
            return msg
    return None


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--config config.yaml --store DIR [--duration "1 Y"]``; exit 0 ok, 1 a symbol failed, 2 config error."""
    parser = argparse.ArgumentParser(
        prog="python -m etl.fetch_daily_bars",
        description="Fetch daily bars from IB into the bar store.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", default="config.yaml", help="config file (ib_connection and symbols)")
    parser.add_argument("--store", required=True, help="bar store root folder")
    parser.add_argument("--duration", default="1 Y", help="IB duration string, e.g. '1 Y', '6 M', '30 D'")
    parser.add_argument("--client-id", type=int, default=DEFAULT_CLIENT_ID, help="IB client id for this job")
    parser.add_argument("--symbols", nargs="*", default=None, help="symbols (default: the config's symbols)")
    parser.add_argument("--port", type=int, default=None, help="override ib_connection.port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("ibapi").setLevel(logging.WARNING)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    symbols = args.symbols or list(cfg.symbols)
    if not symbols:
        sys.stderr.write(f"{args.config}: no symbols configured and none given with --symbols\n")
        return 2
    store = BarStore(args.store, TradingCalendar())
    try:
        counts = fetch_daily_bars(
            cfg.ib_connection, symbols, args.duration, store=store, client_id=args.client_id, port=args.port
        )
    except Exception as exc:
        sys.stderr.write(f"fetch failed: {exc}\n")
        return 1
    failed = sorted(s for s, n in counts.items() if n == 0)
    sys.stderr.write(f"fetched {sum(counts.values())} bars for {len(counts) - len(failed)} symbols; failed: {failed}\n")
    sys.stdout.write(f"{store.root}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
