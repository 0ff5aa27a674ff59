"""The AlgoWheel's first prior, from backtest and ibsim orders that were not chosen by the wheel.

Why: a wheel that starts from ``N(0, prior_sd²)`` pays for its exploration with real orders. The backtester and
ibsim already executed many orders with fixed styles (MOC, LOC, Adaptive, TWAP) whose costs they modelled; a
posterior fitted on them starts the live wheel from those cost models instead of from nothing, and live
decisions then correct it (the nightly trainer fits on logged wheel decisions only).

Each usable order's features are rebuilt with ``context_features`` from its TCA columns: ``adv_participation``
times a nominal ADV (the features use only the ratio), ``vol_20d`` × 100 (the log stores a fraction, the wheel
reads percent), ``spread_bps_at_arrival`` (0 when unknown) and ``minutes_to_close``; the session clock is regular
hours, not a half day, with the auction cut-off 10 minutes before the close. ``algo`` (+ ``adaptivePriority``)
gives the arm. Orders are skipped, and counted by reason, when their algo is no arm (MKT, LMT), a column is
missing, the context is unusable or the order is still working. The orders carry no propensity, so this prior
is never judged off-policy: it is promoted only when nothing is promoted yet (or with ``--force``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.clock import WallClock
from core.config_models import AlgoWheelConfig
from core.events import OrderType, Side
from ml import algowheel_store as store
from ml.algowheel_model_trainer import (
    add_common_arguments,
    load_wheel_config,
    parse_cli,
    read_tca,
    rows_fingerprint,
    wheel_records,
)
from ml.cli_run import run_cli
from portfolio.algo_wheel import (
    ALL_ARMS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    AlgoWheel,
    Arm,
    SessionClock,
    WheelContext,
    WheelDecision,
    context_features,
)
from tca.calculator import order_shortfalls
from tca.logger import TcaFrames

PRIOR_SOURCES = ("backtest", "sim")
NOMINAL_ADV_SHARES = 1_000_000.0  # any positive number: the features use quantity / ADV only
AUCTION_CUTOFF_MINUTES = 10.0  # NYSE: MOC/LOC entry closes 10 minutes before the close
_FIXED_ARMS = {"MOC": Arm.MOC, "LOC": Arm.LOC, "TWAP": Arm.TWAP}
_ADAPTIVE_ARMS = {"Urgent": Arm.ADAPTIVE_URGENT, "Normal": Arm.ADAPTIVE_NORMAL, "Patient": Arm.ADAPTIVE_PATIENT}
_ORDER_TYPE = {Arm.MOC: OrderType.MOC, Arm.LOC: OrderType.LOC}


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapReport:
    """What the bootstrap did: ``model_id`` None on a dry run; ``used`` orders per arm, ``skipped`` per reason."""

    model_id: str | None
    promoted: bool
    reason: str
    used: dict[str, int]
    skipped: dict[str, int]
    card: dict[str, Any]


def arm_of(algo: str, algo_params: Any) -> Arm | None:
    """The wheel arm an order's ``algo`` (and, for ADAPTIVE, its ``adaptivePriority``) stands for; None if none."""
    if algo in _FIXED_ARMS:
        return _FIXED_ARMS[algo]
    if algo == "ADAPTIVE" and isinstance(algo_params, dict):
        return _ADAPTIVE_ARMS.get(str(algo_params.get("adaptivePriority")))
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def row_features(row: dict[str, Any]) -> np.ndarray | None:
    """The wheel's feature vector of one order row (units as in the module doc); None when unusable."""
    participation, vol, minutes = (_number(row.get(k)) for k in ("adv_participation", "vol_20d", "minutes_to_close"))
    if participation is None or vol is None or minutes is None:
        return None
    spread = _number(row.get("spread_bps_at_arrival")) or 0.0
    context = WheelContext(
        side=Side(row["side"]),
        quantity_shares=participation * NOMINAL_ADV_SHARES,
        adv_shares=NOMINAL_ADV_SHARES,
        volatility_20d_pct=vol * 100.0,
        spread_bps=spread,
        reference_price=float(row["decision_price"]),
        collar_pct=1.0,
    )
    session = SessionClock(
        minutes_to_auction_cutoff=minutes - AUCTION_CUTOFF_MINUTES,
        minutes_to_close=minutes,
        regular_hours=True,
        half_day=False,
    )
    return context_features(context, session)


def prior_decision(arm: Arm, features: np.ndarray, source: str, decision_ts: int) -> WheelDecision:
    """A stand-in ``WheelDecision`` for a fixed-style order: ``AlgoWheel.update`` reads its arm and features."""
    return WheelDecision(
        arm=arm,
        order_type=_ORDER_TYPE.get(arm, OrderType.MKT),
        limit_price=None,
        algo=None,
        algo_params={},
        eligible=(arm,),
        propensity=1.0,
        probabilities={arm: 1.0},
        sampled_scores={},
        features=tuple(float(v) for v in features),
        policy_id=f"bootstrap/{source}",
        ts_decision_ns=int(decision_ts),
        reason="bootstrap prior from a fixed-style order",
    )


def _order_rows(frames: TcaFrames) -> pd.DataFrame:
    """One row per order: its shortfall with the execution-only context (vol, spread, algo params) joined."""
    orders = order_shortfalls(frames.executions, frames.unfilled)
    extra = ["vol_20d", "spread_bps_at_arrival", "algo_params"]
    if frames.executions.empty:
        return orders.assign(**{name: None for name in extra})
    first = frames.executions.groupby("client_order_id", sort=False)[extra].first()
    return orders.join(first, on="client_order_id")


def _skip_reason(row: dict[str, Any], has_decision: bool) -> str | None:
    if row["source"] not in PRIOR_SOURCES:
        return f"source {row['source']} (the prior uses {', '.join(PRIOR_SOURCES)})"
    if has_decision:
        return "has a wheel decision (the trainer learns from it)"
    if row["algo"] in ("MKT", "LMT"):
        return f"algo {row['algo']} is not an arm"
    if row["unaccounted_quantity"] > 0:
        return "order still working"
    if not math.isfinite(row["total_bps"]):
        return "non-finite shortfall"
    return None


def _usable(row: dict[str, Any], has_decision: bool) -> tuple[Arm, np.ndarray] | str:
    """The order's arm and features, or why it cannot feed the prior."""
    reason = _skip_reason(row, has_decision)
    if reason is not None:
        return reason
    params = row.get("algo_params")
    arm = arm_of(row["algo"], json.loads(params) if isinstance(params, str) else params)
    if arm is None:
        return "ADAPTIVE without a known adaptivePriority" if row["algo"] == "ADAPTIVE" else "no execution row"
    features = row_features(row)
    if features is None:
        return "missing or unusable adv_participation, vol_20d or minutes_to_close"
    return arm, features


def prior_updates(frames: TcaFrames) -> tuple[list[WheelDecision], list[float], set[str], dict[str, int]]:
    """The (decision, shortfall) pairs of every usable order, the ids of those orders, and the skips by reason."""
    decided = set(wheel_records(frames))
    decisions: list[WheelDecision] = []
    costs: list[float] = []
    used: set[str] = set()
    skipped: Counter[str] = Counter()
    for row in _order_rows(frames).to_dict(orient="records"):
        usable = _usable(row, row["client_order_id"] in decided)
        if isinstance(usable, str):
            skipped[usable] += 1
            continue
        arm, features = usable
        decisions.append(prior_decision(arm, features, row["source"], row["decision_ts"]))
        costs.append(float(row["total_bps"]))
        used.add(row["client_order_id"])
    return decisions, costs, used, dict(sorted(skipped.items()))


def bootstrap_card(
    config: AlgoWheelConfig, decisions: list[WheelDecision], fingerprint: str, skipped: dict[str, int], **extra: Any
) -> dict[str, Any]:
    """The prior's model card (``model_id``/``created_at`` added by the store)."""
    by_arm = Counter(d.arm.value for d in decisions if d.arm is not None)
    by_source = Counter(d.policy_id.removeprefix("bootstrap/") for d in decisions)
    return {
        "kind": "bootstrap_prior",
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURE_NAMES),
        "arms": [a.value for a in ALL_ARMS],
        "config": config.model_dump(mode="json"),
        "data": {
            "fingerprint": fingerprint,
            "sources": list(PRIOR_SOURCES),
            "counts": {
                "orders_used": len(decisions),
                "by_arm": dict(sorted(by_arm.items())),
                "by_source": dict(sorted(by_source.items())),
                "skipped": skipped,
            },
        },
        "assumptions": {
            "nominal_adv_shares": NOMINAL_ADV_SHARES,
            "auction_cutoff_minutes": AUCTION_CUTOFF_MINUTES,
            "regular_hours": True,
            "half_day": False,
            "missing_spread_bps": 0.0,
        },
        **extra,
    }


def bootstrap_prior(
    db_path: Path | str,
    models_root: Path | str,
    config: AlgoWheelConfig,
    *,
    since: date | None = None,
    force: bool = False,
    dry_run: bool = False,
    now_ns: int | None = None,
) -> BootstrapReport:
    """Fit a fresh wheel on the backtest/ibsim orders, write it with its card (unless ``dry_run``), and promote
    it when nothing is promoted yet or ``force``. Raises as ``train_and_maybe_promote`` does."""
    frames = read_tca(db_path, since)
    decisions, costs, used, skipped = prior_updates(frames)
    wheel = AlgoWheel(config, rng_seed=config.seed)
    for decision, cost in zip(decisions, costs, strict=True):
        wheel.update(decision, cost)
    incumbent = store.current_model_id(models_root)
    promote = bool(decisions) and (incumbent is None or force)
    if not decisions:
        reason = "no usable backtest/sim order: nothing to learn a prior from"
    elif promote:
        reason = "promoted: " + ("--force" if incumbent is not None else "no model was promoted yet")
    else:
        reason = f"not promoted: model {incumbent} is promoted (use --force to replace it)"
    card = bootstrap_card(
        config,
        decisions,
        rows_fingerprint(frames, used),
        skipped,
        since=None if since is None else since.isoformat(),
        incumbent_model_id=incumbent,
        decision={"promote": promote, "reason": reason, "force": force},
    )
    model_id = None
    if not dry_run and decisions:
        model_id = store.write_model(models_root, wheel.state(), card, now_ns=now_ns)
        if promote:
            store.promote(models_root, model_id)
    used_by_arm = card["data"]["counts"]["by_arm"]
    return BootstrapReport(
        model_id=model_id,
        promoted=promote and not dry_run,
        reason=reason + (" (dry run: nothing written)" if dry_run else ""),
        used=used_by_arm,
        skipped=skipped,
        card=card,
    )


def format_report(report: BootstrapReport) -> str:
    """The CLI's summary: orders used per arm, skips per reason, the model and the decision."""
    lines = [f"{'arm':<20}{'orders':>8}"]
    lines += [f"{arm:<20}{n:>8}" for arm, n in report.used.items()]
    lines += [f"skipped {n}: {why}" for why, n in report.skipped.items()]
    lines.append(f"model: {report.model_id or '-'}   promoted: {'yes' if report.promoted else 'no'}")
    lines.append(f"reason: {report.reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 when it ran, 1 when the log or a model is missing/corrupt/busy, 2 for usage or config."""
    from core.config_loader import ArgumentParser

    parser = ArgumentParser(
        prog="python -m ml.bootstrap_algowheel_model",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_arguments(parser, seed=False)
    parser.add_argument("--force", action="store_true", help="promote even if a model is already promoted")
    args = parse_cli(parser, argv)
    if isinstance(args, int):
        return args
    def work() -> BootstrapReport:
        config = load_wheel_config(args.config)
        since = None if args.since is None else date.fromisoformat(args.since)
        return bootstrap_prior(args.db, args.models or Path(config.models_dir), config, since=since,
                               force=args.force, dry_run=args.dry_run, now_ns=WallClock().now_ns())  # fmt: skip

    return run_cli(parser.prog, work, format_report)


if __name__ == "__main__":
    sys.exit(main())
