"""``live.session_features``: the engine's features of each close, computed with ``data.bar_features`` from its own
window of daily bars and written to the online store (real Feast, a temporary copy of ``feature_repo/``) before the
decision on that close runs; a late or failed write lets the decision run without them (stale: vetoed).

The market starts two years before the decision, so the engine's 256-session window and a full-history computation
must agree (TA-Lib's RSI/ATR smoothing has forgotten its seed): one feature function, the same numbers.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.clock import WallClock
from core.events import MarketEvent
from data.bar_features import BAR_FEATURE_NAMES, bar_features
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from live.session_features import FEATURE_WINDOW_SESSIONS, SessionFeatures, SessionFeaturesWritten
from ml.feature_store import FeatureRepo, copy_definitions
from testkit.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAA", "BBB", "CCC")


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    calendar = TradingCalendar()
    frames = generate_market(list(SYMBOLS), "2022-01-03", "2024-03-28", seed=9, calendar=calendar)
    return BarPanel.from_frames(frames, calendar)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, panel: BarPanel) -> FeatureRepo:
    """Published up to the session before the last one (as ``run_system.sh`` publishes ibsim's history)."""
    repo = FeatureRepo(copy_definitions(REPO / "feature_repo", tmp_path_factory.mktemp("sf") / "feature_repo"))
    repo.publish(bar_features(panel.truncate(len(panel.dates) - 1)))
    return repo


def event(panel: BarPanel, t: int) -> MarketEvent:
    return MarketEvent(ts_event_ns=int(panel.ts_event_ns[t]), ts_init_ns=0, bar_index=t, symbols=panel.symbols,
                       open=panel.open[t], high=panel.high[t], low=panel.low[t], close=panel.close[t],
                       volume=panel.volume[t])  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.reports: list[SessionFeaturesWritten] = []
        self.decided: list[int] = []


def fed(panel: BarPanel, writer: object, recorder: Recorder, wait_s: float = 2.0,
        clock: WallClock | None = None) -> SessionFeatures:  # fmt: skip
    """History up to the session before the last one, as the engine's warm-up hands it over."""
    features = SessionFeatures(panel.symbols, writer, clock or WallClock(), recorder.reports.append,  # type: ignore[arg-type]
                               lambda e: recorder.decided.append(e.ts_event_ns), wait_s=wait_s)  # fmt: skip
    last = len(panel.dates) - 1
    for t in range(last - FEATURE_WINDOW_SESSIONS, last):
        features.on_history(event(panel, t))
    return features


def test_a_close_is_decided_after_its_features_are_online_and_they_match_the_full_history(
    panel: BarPanel, repo: FeatureRepo
) -> None:
    online = repo.online()
    last = len(panel.dates) - 1
    close_ns = int(panel.ts_event_ns[last])
    assert all(v is None for v in online.get(SYMBOLS, close_ns).values())  # not online yet: stale
    recorder = Recorder()
    features = fed(panel, FeatureRepo(repo.repo_path), recorder)
    try:
        features.on_close(event(panel, last))
        assert features.last_close_ns == close_ns
        [report] = eventually(lambda: recorder.reports, 10, "the worker's report")
        assert recorder.decided == []  # the decision waits for the report, which comes through the queue
        features.on_written(report)
    finally:
        features.close()
    assert recorder.decided == [close_ns]
    assert report.error is None and report.rows == len(SYMBOLS)
    got = online.get(SYMBOLS, close_ns)
    full = bar_features(panel)  # the whole two years
    today = full[full["event_timestamp"] == pd.Timestamp(close_ns, tz="UTC")].set_index("symbol")
    for symbol in SYMBOLS:
        values = got[symbol]
        assert values is not None
        expected = today.loc[symbol, list(BAR_FEATURE_NAMES)].to_numpy(dtype=float)
        np.testing.assert_allclose([values[n] for n in BAR_FEATURE_NAMES], expected, rtol=1e-6)
    assert features.status()["sessions_written"] == 1


class BlockedWriter:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def write_online(self, frame: pd.DataFrame) -> int:
        self.started.set()
        self.release.wait(10)
        return len(frame)


def test_a_late_write_lets_the_decision_run_once_without_waiting_longer(panel: BarPanel) -> None:
    recorder, writer, clock = Recorder(), BlockedWriter(), WallClock()
    features = fed(panel, writer, recorder, wait_s=0.05, clock=clock)
    try:
        features.on_close(event(panel, len(panel.dates) - 1))
        assert writer.started.wait(10)
        eventually(lambda: clock.fire_due() or recorder.decided, 5, "the wait bound's timer")
        assert len(recorder.decided) == 1 and features.late == 1
        writer.release.set()
        [report] = eventually(lambda: recorder.reports, 10, "the late report")
        features.on_written(report)
    finally:
        writer.release.set()
        features.close()
    assert len(recorder.decided) == 1  # not twice
    assert features.written == 1


class FailingWriter:
    def write_online(self, frame: pd.DataFrame) -> int:
        raise OSError("database is locked")


def test_a_failed_write_is_reported_and_the_decision_still_runs(panel: BarPanel) -> None:
    recorder = Recorder()
    features = fed(panel, FailingWriter(), recorder)
    try:
        features.on_close(event(panel, len(panel.dates) - 1))
        [report] = eventually(lambda: recorder.reports, 10, "the worker's report")
        features.on_written(report)
    finally:
        features.close()
    assert report.error is not None and "database is locked" in report.error
    assert len(recorder.decided) == 1 and features.failed == 1
