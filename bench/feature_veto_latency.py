"""Feature fetch + veto scoring latency on the live engine's path, for the universe (8 symbols), and what it costs
to get each close's features into the online store.

Setup (seeded, real Feast in a temporary copy of ``feature_repo/``): ibsim's synthetic market (``--seed``, 8
symbols), its history published as ``run_system.sh`` does (``FeatureRepo.publish``), a veto model fitted on those
features (``--model``: LogisticRegression or HistGradientBoosting, 7 bar features, seeded labels). Then for each of
``--sessions`` replayed closes, as the engine does:

1. **at the close, on the worker thread** (``live.session_features``): ``bar_features`` over the 256-session window
   and ``FeatureRepo.write_online`` of that session's 8 rows - timed as ``close write``;
2. **the decision's read**: ``OnlineVetoScorer.score(universe)`` = ``OnlineFeatures.get`` (8 symbols x the bar
   features the engine reads, ``online_refs``; freshness checked) + ``probabilities`` (one ``predict_proba``) -
   timed ``--repeats`` times per close as ``fetch+score``, with its two parts; the other signals of a close are
   dictionary lookups (``cached``).

For comparison it also times ``FeatureRepo.publish`` of one more session (offline Parquet rewrite + materialize),
which the engine does not use on its path. The model runs with one native thread, as in the engine
(``limit_model_threads``; ``--model-threads`` leaves the pools at their defaults). Goal: fetch+score p99 <= 2 ms.

Usage: ``python bench/feature_veto_latency.py [--sessions 30] [--repeats 50] [--model logistic|hgb] [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.events import SignalDirection, SignalEvent  # noqa: E402
from data.bar_features import BAR_FEATURE_NAMES, bar_features  # noqa: E402
from data.panel import BarPanel  # noqa: E402
from ibsim import SimConfig, build_market  # noqa: E402
from live.session_features import FEATURE_WINDOW_SESSIONS  # noqa: E402
from ml.feature_store import FeatureRepo, copy_definitions  # noqa: E402
from ml.veto_scorer import OnlineVetoScorer, limit_model_threads, online_refs  # noqa: E402

GOAL_P99_MS = 2.0


def fitted_model(history: pd.DataFrame, kind: str, seed: int) -> tuple[Any, dict]:
    """A model on the 7 bar features with seeded labels (what it predicts does not matter here, its cost does)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rows = history.dropna(subset=list(BAR_FEATURE_NAMES))
    x = rows[list(BAR_FEATURE_NAMES)].to_numpy()
    rng = np.random.default_rng(seed)
    y = (x[:, 0] * 50 + rng.normal(size=len(x)) > 0).astype(int)
    estimator = (LogisticRegression(max_iter=500) if kind == "logistic"
                 else HistGradientBoostingClassifier(max_iter=100, random_state=seed)).fit(x, y)  # fmt: skip
    return estimator, {"model_id": f"bench-{kind}", "strategy": "bench", "features": list(BAR_FEATURE_NAMES)}


def window_panel(market: Any, symbols: tuple[str, ...], k: int) -> BarPanel:
    """The engine's window at replayed session ``k``: the last 256 daily bars up to and including it."""
    day = market.sessions[k]
    frames = {s: market.frames[s].loc[: day].tail(FEATURE_WINDOW_SESSIONS) for s in symbols}
    dates = frames[symbols[0]].index
    arrays = {c: np.ascontiguousarray(np.stack([frames[s][c].to_numpy() for s in symbols], axis=1))
              for c in ("open", "high", "low", "close", "volume")}  # fmt: skip
    return BarPanel(symbols, pd.DatetimeIndex(dates, name="date"), market.calendar.session_close_ns(dates), **arrays)


def run(args: argparse.Namespace, root: Path) -> dict[str, list[float]]:
    market = build_market(SimConfig(seed=args.seed))
    symbols = tuple(sorted(market.frames))
    first = market.sessions[0]
    history = bar_features({s: f.loc[f.index < first] for s, f in market.frames.items()})
    repo = FeatureRepo(copy_definitions(ROOT / "feature_repo", root / "feature_repo"))
    started = time.perf_counter()
    repo.publish(history)
    first_publish_s = time.perf_counter() - started
    estimator, card = fitted_model(history, args.model, args.seed)
    if not args.model_threads:
        limit_model_threads()  # as the engine does
    writer, online = FeatureRepo(repo.repo_path), repo.online(online_refs(card["features"]))  # as the engine reads
    close_ns = deque([0])
    scorer = OnlineVetoScorer(estimator, card, online, lambda: close_ns[0], universe=symbols)
    times: dict[str, list[float]] = {k: [] for k in ("close_write", "fetch", "score", "fetch_score", "cached")}
    for k in range(args.sessions):
        t0 = time.perf_counter()
        features = bar_features(window_panel(market, symbols, k))
        today = features[features["event_timestamp"] == features["event_timestamp"].max()]
        writer.write_online(today)
        times["close_write"].append((time.perf_counter() - t0) * 1e3)
        close_ns[0] = int(today["event_timestamp"].iloc[0].value)
        for _ in range(args.repeats):
            _time_decision_read(scorer, online, estimator, card, symbols, close_ns[0], times)
    times["publish_one_session"] = [_publish_one_more(repo, market, args.sessions)]
    times["first_publish"] = [first_publish_s * 1e3]
    return times


def _time_decision_read(scorer: OnlineVetoScorer, online: Any, estimator: Any, card: dict,
                        symbols: tuple[str, ...], close_ns: int, times: dict[str, list[float]]) -> None:  # fmt: skip
    from ml.veto_model_store import probabilities

    t0 = time.perf_counter()
    scored = scorer.score(symbols, close_ns)
    times["fetch_score"].append((time.perf_counter() - t0) * 1e3)
    if any(p is None for p in scored.values()):
        raise RuntimeError(f"a symbol had no fresh features at the close it was written for: {scored}")
    t0 = time.perf_counter()
    rows = online.get(list(symbols), close_ns)
    t1 = time.perf_counter()
    probabilities(estimator, card, rows)
    t2 = time.perf_counter()
    times["fetch"].append((t1 - t0) * 1e3)
    times["score"].append((t2 - t1) * 1e3)
    signal = SignalEvent(ts_event_ns=close_ns, ts_init_ns=0, strategy_id="bench", symbol=symbols[0],
                         direction=SignalDirection.LONG, reference_price=1.0)  # fmt: skip
    scorer.probability(signal)  # fills the cache for this close
    t0 = time.perf_counter()
    scorer.probability(signal)
    times["cached"].append((time.perf_counter() - t0) * 1e3)


def _publish_one_more(repo: FeatureRepo, market: Any, k: int) -> float:
    frames = {s: f.loc[: market.sessions[k]] for s, f in market.frames.items()}
    features = bar_features(frames)
    t0 = time.perf_counter()
    repo.publish(features)
    return (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--sessions", type=int, default=30, help="replayed closes (one online write each)")
    parser.add_argument("--repeats", type=int, default=50, help="decision reads timed per close")
    parser.add_argument("--model", choices=["logistic", "hgb"], default="logistic", help="the veto model's kind")
    parser.add_argument("--seed", type=int, default=7, help="ibsim's market seed and the labels' seed")
    parser.add_argument("--model-threads", action="store_true",
                        help="leave the model's native thread pools at their defaults (the engine uses one)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 sessions x 5 reads")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.repeats = 3, 5
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="feature_veto_latency_") as tmp:
        times = run(args, Path(tmp))
    n = len(times["fetch_score"])
    print(f"feature fetch + veto scoring, 8 symbols x {len(BAR_FEATURE_NAMES)} bar features, "
          f"model {args.model} ({'default native threads' if args.model_threads else 'one native thread'}): "
          f"{args.sessions} closes x {args.repeats} reads = {n:,} decision reads")
    for key, label in (("fetch_score", "fetch+score (OnlineVetoScorer.score)"), ("fetch", "  online get"),
                       ("score", "  predict_proba"), ("cached", "per further signal (cached)"),
                       ("close_write", "close write (worker: bar_features + write_online)")):  # fmt: skip
        values = np.asarray(times[key])
        print(f"{label:<52} p50={np.percentile(values, 50):7.3f} ms  p99={np.percentile(values, 99):7.3f} ms  "
              f"max={values.max():7.3f} ms")
    print(f"for comparison: FeatureRepo.publish of one more session {times['publish_one_session'][0]:.0f} ms, "
          f"first publish (apply + materialize) {times['first_publish'][0]:.0f} ms")
    p99 = float(np.percentile(times["fetch_score"], 99))
    print(f"goal fetch+score p99<={GOAL_P99_MS:.0f} ms: {'met' if p99 <= GOAL_P99_MS else 'MISSED'} ({p99:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
