"""Which project files (and packages) the live engine passes through on one daily bar's way to ``placeOrder``.

Why it exists: issue 11 asks "From the IB reader thread to placeOrder in at most 12 files without returning to a
package it left". This script measures that path on the real engine, so the goal can be checked (and re-checked
after each refactoring) with numbers instead of by reading the code.

How: the engine ``main.py`` runs (``live.engine.build_engine``, every file under a temporary directory) runs on a
thread of this process against an in-process ibsim (``speed=6000``, ``seed=3``: a session in ~4 s), with the
fast-trading config of the e2e tests (sma_crossover with very short periods on all of ibsim's symbols, so almost
every session trades). A profile hook (``sys.setprofile``, per thread) is installed only inside four windows, so
the engine runs at its normal speed everywhere else:

1. reader thread: ``_Wrapper.historicalData`` (``core/ib_wrapper.py``) for the decision bar, up to the ``put``;
2. dispatcher thread: ``EventQueue.dispatch_one`` of that ``IbBar`` (the daily-bar feed stores it in its batch);
3. reader thread: ``_Wrapper.historicalDataEnd`` of the batch's last request, up to the ``put``;
4. dispatcher thread: ``dispatch_one`` of that ``IbHistoricalEnd``: the batch is complete, the feed hands the
   session's bar on (``SessionStep.on_close``), and the path ends at the first call of ibapi's
   ``EClient.placeOrder``.

A daily bar becomes a decision only when its batch's last ``IbHistoricalEnd`` is dispatched, so windows 3 and 4
are part of the bar's path; the dispatcher's unrelated work between them (5-s bars, timers, commands) is not.
Only the first batch whose end dispatch actually called ``placeOrder`` counts; the bar measured is that batch's
bar for the ordered symbol on the decision date. Nothing is recorded during the warm-up batch (it never decides).
Windows are installed by wrapping ``_Wrapper.historicalData``, ``_Wrapper.historicalDataEnd`` and the engine
queue's ``dispatch_one`` at run time (no engine file is changed).

Counted: Python ``call`` events of code whose file is in this repository, outside ``.venv``, ``tests/``, ``ibsim/``
(the broker) and ``bench/``. Calls made inside the ``logging`` module (handlers, formatters) are ignored;
code generated at run time (dataclass ``__init__``) has no file and is not counted.

Usage: ``python bench/live_path_files.py [--timeout-s 90] [--calls]``; exit 0 when a bar's path was measured,
1 when no bar led to an order within the timeout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from ibapi.client import EClient  # noqa: E402

from core.clock import WallClock  # noqa: E402
from core.config_loader import validate_config  # noqa: E402
from core.ib_messages import IbBar, IbHistoricalEnd  # noqa: E402
from core.ib_wrapper import IbConnection, _Wrapper  # noqa: E402
from ibsim import IbSim, SimConfig  # noqa: E402
from live.engine import Engine  # noqa: E402
from live.ports import EngineFiles, EnginePorts  # noqa: E402
from live.wiring import build_engine  # noqa: E402
from testkit.crash_cycles import fast_trading_config  # noqa: E402
from testkit.waiting import free_port  # noqa: E402
from utils.logger import setup_logging  # noqa: E402

SIM_SPEED = 6000.0
SIM_SEED = 3
ISSUE_MAX_FILES = 12  # issue 11's goal
EXCLUDED_DIRS = (".venv", "tests", "ibsim", "bench")
LOGGING_DIR = str(Path(logging.__file__).resolve().parent)
PLACE_ORDER_CODE = EClient.placeOrder.__code__
RETURN_MARK = "*"
LOG_TAIL_LINES = 15  # printed when no bar led to an order

Key = tuple[Any, ...]  # ("bar", req_id, time) or ("end", req_id)


@dataclass(frozen=True, slots=True)
class Call:
    path: str  # relative to the repository
    qualname: str
    line: int
    reentry: bool = False  # its package is already on the call stack, below a frame of another package

    @property
    def package(self) -> str:
        first, *rest = Path(self.path).parts
        return first if rest else Path(first).stem


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order_id: int
    symbol: str
    action: str
    quantity: float
    order_type: str


_project_cache: dict[str, str | None] = {}


def project_path(filename: str) -> str | None:
    """``filename`` relative to the repository when it is one of the counted project files, else None."""
    try:
        return _project_cache[filename]
    except KeyError:
        pass
    rel: str | None = None
    relative: Path | None = None
    if Path(filename).is_absolute():  # "<string>", "<frozen os>": generated or frozen code, no project file
        try:
            relative = Path(filename).resolve().relative_to(ROOT)
        except ValueError:
            relative = None
    if relative is not None and relative.parts and relative.parts[0] not in EXCLUDED_DIRS:
        rel = relative.as_posix()
    _project_cache[filename] = rel
    return rel


@dataclass(slots=True)
class Window:
    """The calls one thread made inside one window; ``hook`` is its ``sys.setprofile`` function."""

    name: str
    thread: str = ""
    calls: list[Call] = field(default_factory=list)
    placed: PlacedOrder | None = None
    started_ns: int = 0
    ended_ns: int = 0
    _logging_frame: FrameType | None = None
    _stack: list[tuple[FrameType, str]] = field(default_factory=list)  # the project frames on the call stack

    def hook(self, frame: FrameType, event: str, _arg: Any) -> None:
        if self.placed is not None:
            return
        if event == "return":
            if frame is self._logging_frame:
                self._logging_frame = None
            elif self._stack and frame is self._stack[-1][0]:
                self._stack.pop()
            return
        if event != "call" or self._logging_frame is not None:
            return
        code = frame.f_code
        if code is PLACE_ORDER_CODE:
            order, contract = frame.f_locals["order"], frame.f_locals["contract"]
            self.placed = PlacedOrder(int(frame.f_locals["orderId"]), str(contract.symbol), str(order.action),
                                      float(order.totalQuantity), str(order.orderType))  # fmt: skip
            return
        if code.co_filename.startswith(LOGGING_DIR):
            self._logging_frame = frame  # everything until it returns is logging's business
            return
        path = project_path(code.co_filename)
        if path is not None:
            call = Call(path, code.co_qualname, code.co_firstlineno)
            stack = self._stack
            if stack and stack[-1][1] != call.package and any(package == call.package for _, package in stack):
                call = Call(path, code.co_qualname, code.co_firstlineno, reentry=True)
            stack.append((frame, call.package))
            self.calls.append(call)

    def run(self, body: Callable[[], Any]) -> Any:
        """Run ``body`` with this window's hook on the calling thread (the previous profile function restored)."""
        self.thread = threading.current_thread().name
        previous = sys.getprofile()
        self.started_ns = time.perf_counter_ns()
        sys.setprofile(self.hook)
        try:
            return body()
        finally:
            sys.setprofile(previous)
            self.ended_ns = time.perf_counter_ns()


@dataclass(slots=True)
class PathRecorder:
    """The four kinds of windows (module docstring), keyed by the message they carry; stops at the first order."""

    engine: Engine
    reader: dict[Key, Window] = field(default_factory=dict)
    dispatched: dict[Key, Window] = field(default_factory=dict)
    found: threading.Event = field(default_factory=threading.Event)
    decision_end: Key | None = None
    decision_date: pd.Timestamp | None = None
    _originals: dict[str, Any] = field(default_factory=dict)

    def watching(self) -> bool:
        """Record windows once the warm-up batch is handed on (it never decides) until the first order."""
        return self.engine.parts.daily_bars.last_date is not None and not self.found.is_set()

    def install(self) -> None:
        recorder = self
        bar_callback, end_callback = _Wrapper.historicalData, _Wrapper.historicalDataEnd
        self._originals = {"historicalData": bar_callback, "historicalDataEnd": end_callback}

        def historical_data(wrapper: _Wrapper, reqId: int, bar: Any) -> None:  # noqa: N803 - ibapi names
            if not recorder.watching():
                bar_callback(wrapper, reqId, bar)
                return
            window = recorder.reader[("bar", reqId, str(bar.date))] = Window("reader: historicalData")
            window.run(lambda: bar_callback(wrapper, reqId, bar))

        def historical_data_end(wrapper: _Wrapper, reqId: int, start: str, end: str) -> None:  # noqa: N803
            if not recorder.watching():
                end_callback(wrapper, reqId, start, end)
                return
            window = recorder.reader[("end", reqId)] = Window("reader: historicalDataEnd")
            window.run(lambda: end_callback(wrapper, reqId, start, end))

        _Wrapper.historicalData = historical_data  # type: ignore[method-assign]
        _Wrapper.historicalDataEnd = historical_data_end  # type: ignore[method-assign]

        queue = self.engine.queue
        dispatch_one = queue.dispatch_one  # the bound original; only the dispatcher thread pops, so peeking is safe

        def dispatch_watched() -> bool:
            if not recorder.watching() or not queue._queue:
                return dispatch_one()
            message = queue._queue[0]
            if isinstance(message, IbBar) and message.historical:
                key: Key = ("bar", message.req_id, message.time)
                name = "dispatcher: IbBar"
            elif isinstance(message, IbHistoricalEnd):
                key, name = ("end", message.req_id), "dispatcher: IbHistoricalEnd"
            else:
                return dispatch_one()
            window = recorder.dispatched[key] = Window(name)
            result = window.run(dispatch_one)
            if window.placed is not None:
                recorder.decision_end = key
                recorder.decision_date = recorder.engine.parts.daily_bars.last_date
                recorder.found.set()
            return bool(result)

        queue.dispatch_one = dispatch_watched  # type: ignore[method-assign]

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(_Wrapper, name, original)

    def path_windows(self) -> tuple[list[Window], PlacedOrder]:
        """The decision bar's four windows in path order (a missing one is left out and reported)."""
        assert self.decision_end is not None and self.decision_date is not None
        end_window = self.dispatched[self.decision_end]
        placed = end_window.placed
        assert placed is not None
        end_req_id = int(self.decision_end[1])
        symbols = self.engine.parts.daily_bars.symbols
        base = end_req_id - (end_req_id - self.engine.parts.daily_bars._req_id_base) % 1000
        bar_key: Key = ("bar", base + symbols.index(placed.symbol), self.decision_date.strftime("%Y%m%d"))
        windows = [self.reader.get(bar_key), self.dispatched.get(bar_key), self.reader.get(self.decision_end),
                   end_window]  # fmt: skip
        names = ("reader bar", "dispatched bar", "reader end", "dispatched end")
        missing = [name for name, window in zip(names, windows, strict=True) if window is None]
        if missing:
            print(f"warning: no window recorded for {', '.join(missing)} (bar key {bar_key})")
        return [w for w in windows if w is not None], placed


# ==================================================================================================== engine
def engine_config(ib_port: int) -> Any:
    """The e2e config: fast sma_crossover on all of ibsim's symbols, 5 shares, fresh tcp endpoints."""
    raw = fast_trading_config(ib_port, f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    return validate_config(raw, "bench live_path_files")


def in_process(root: Path, config: Any, sim: IbSim) -> Engine:
    """The engine ``main.py`` runs, with every file under ``root`` and a connection to the in-process ibsim."""
    files = EngineFiles.from_config(config)
    under_root = {name: root / path for name, path in asdict(files).items()}
    ib = config.ib_connection

    def connect(put: Callable[[object], None], clock: WallClock) -> IbConnection:
        return IbConnection(ib, ib.main_client_id, put, clock, port=sim.port)

    return build_engine(config, EnginePorts(EngineFiles(**under_root), WallClock(), connect))


def measure(root: Path, timeout_s: float) -> tuple[PathRecorder, float] | None:
    """Run the engine until a bar's path reached ``placeOrder`` (or ``timeout_s``); the recorder and the wall
    seconds it took, None on timeout."""
    sim = IbSim(SimConfig(speed=SIM_SPEED, seed=SIM_SEED))
    sim.start()
    recorder: PathRecorder | None = None
    try:
        config = engine_config(sim.port)
        setup_logging(root / "logs", "engine", config.system.log_level, console=False)
        logging.getLogger("ibapi").setLevel(logging.WARNING)  # as main.py does
        engine = in_process(root, config, sim)
        recorder = PathRecorder(engine)
        recorder.install()
        exit_codes: list[int] = []
        thread = threading.Thread(
            target=lambda: exit_codes.append(engine.run(duration_s=timeout_s + 30, install_signals=False)),
            name="engine-dispatcher", daemon=True,
        )  # fmt: skip
        started = time.monotonic()
        thread.start()
        deadline = started + timeout_s
        while not recorder.found.is_set() and thread.is_alive() and time.monotonic() < deadline:
            recorder.found.wait(0.05)
        took_s = time.monotonic() - started
        stopped_first = not thread.is_alive()
        engine.request_stop("bench done")
        thread.join(60)
        if thread.is_alive():
            print("warning: the engine did not stop within 60 s", file=sys.stderr)
        if not recorder.found.is_set():
            why = f"the engine stopped first (exit code {exit_codes})" if stopped_first else f"not within {timeout_s} s"
            print(f"no daily bar led to placeOrder: {why}; the engine log's last lines:")
            log_file = root / "logs" / "engine.log"
            for line in (log_file.read_text().splitlines() if log_file.exists() else [])[-LOG_TAIL_LINES:]:
                print(f"  {line}")
            return None
        return recorder, took_s
    finally:
        if recorder is not None:
            recorder.uninstall()
        sim.stop()


# ==================================================================================================== report
def first_seen(calls: list[Call]) -> dict[str, Call]:
    files: dict[str, Call] = {}
    for call in calls:
        files.setdefault(call.path, call)
    return files


def package_runs(calls: list[Call]) -> list[tuple[str, bool]]:
    """Consecutive calls in one package collapsed; True marks a return to a package the path had left."""
    runs: list[tuple[str, bool]] = []
    left: set[str] = set()
    for call in calls:
        if runs and runs[-1][0] == call.package:
            continue
        if runs:
            left.add(runs[-1][0])
        runs.append((call.package, call.package in left))
    return runs


def file_runs(calls: list[Call]) -> list[Call]:
    """Consecutive calls in one file collapsed (the first call of each run kept)."""
    runs: list[Call] = []
    for call in calls:
        if not runs or runs[-1].path != call.path:
            runs.append(call)
    return runs


def runs_text(runs: list[tuple[str, bool]]) -> str:
    return " -> ".join(f"{RETURN_MARK}{package}" if back else package for package, back in runs)


def report(recorder: PathRecorder, took_s: float, show_calls: bool) -> None:
    windows, placed = recorder.path_windows()
    calls = [call for window in windows for call in window.calls]
    files = first_seen(calls)
    runs = package_runs(calls)
    returns = [package for package, back in runs if back]
    date = recorder.decision_date.date() if recorder.decision_date is not None else "?"
    print(f"live path of one daily bar: IB reader thread -> placeOrder (ibsim speed={SIM_SPEED:g} seed={SIM_SEED})")
    print(f"bar: {placed.symbol} session {date}; order: {placed.action} {placed.quantity:g} {placed.symbol} "
          f"{placed.order_type} (IB order id {placed.order_id}); found after {took_s:.1f} s")  # fmt: skip
    print()
    print("windows (in path order):")
    for i, window in enumerate(windows, 1):
        own = first_seen(window.calls)
        print(f"  {i}. {window.name} [thread {window.thread}]: {len(window.calls)} calls, {len(own)} files, "
              f"{(window.ended_ns - window.started_ns) / 1e6:.2f} ms (profiled)")  # fmt: skip
        print(f"     packages: {runs_text(package_runs(window.calls))}")
    print()
    print("distinct project files, first-seen order (first function seen):")
    width = max(len(path) for path in files)
    for i, (path, call) in enumerate(files.items(), 1):
        print(f"  {i:2d}. {path:<{width}}  {call.qualname}")
    print()
    print(f"package sequence ({RETURN_MARK} = returns to a package the path had left):")
    print(f"  {runs_text(runs)}")
    print()
    if show_calls:
        print("file sequence (consecutive calls in one file collapsed):")
        for window in windows:
            print(f"  -- {window.name}")
            for call in file_runs(window.calls):
                print(f"     {call.path}:{call.line} {call.qualname}")
        print()
    verdict = "meets" if len(files) <= ISSUE_MAX_FILES and not returns else "does not meet"
    packages = list(dict.fromkeys(call.package for call in calls))
    returns_by_package = Counter(returns)
    print(f"returns by package: {', '.join(f'{p} {n}' for p, n in returns_by_package.most_common()) or 'none'}")
    print(f"total: {len(files)} distinct files in {len(packages)} packages, {len(runs)} package runs, "
          f"{len(returns)} returns, {len(calls)} calls recorded")  # fmt: skip
    reentries = Counter(f"{call.path} {call.qualname}" for call in calls if call.reentry)
    by_package = Counter(call.package for call in calls if call.reentry)
    print(
        f"call-stack re-entries (a call into a package already on the stack below another package): "
        f"{sum(reentries.values())} ({', '.join(f'{p} {n}' for p, n in by_package.most_common()) or 'none'})"
    )
    for target, count in reentries.most_common():
        print(f"  {count:3d} x {target}")
    print(f"issue 11 (at most {ISSUE_MAX_FILES} files, no return to a package it left): {verdict}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout-s", type=float, default=90.0, help="give up when no bar led to an order by then")
    parser.add_argument("--calls", action="store_true", help="also print the file sequence of every window")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="live_path_files_") as tmp:
        measured = measure(Path(tmp), args.timeout_s)
        if measured is None:
            return 1
        report(*measured, show_calls=args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
