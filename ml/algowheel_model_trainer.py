"""Nightly AlgoWheel retraining: fit a candidate on the logged wheel decisions, judge it off-policy, maybe promote.

Data: every order in the TCA log (``results/tca_log.duckdb``) whose rows carry a ``wheel_decision`` (the first
non-null one per ``client_order_id``, executions before order ends), with its implementation shortfall from
``tca.calculator.order_shortfalls``. Orders still working (shares neither filled nor ended) are left out: their
cost is not known yet. The reward is ``-shortfall_bps`` clipped at ``algo_wheel.reward_clip_bps``, exactly what
``AlgoWheel.update`` learns from, so the evaluation scores the objective the wheel optimises.

Candidate: a fresh ``AlgoWheel(config, config.seed)`` updated with every logged decision (the posterior is a sum,
so the order does not matter). Incumbent: the promoted model (``ml.algowheel_store``), or a fresh prior wheel
when none is promoted. Both are target policies ``wheel.policy_probabilities(features, eligible, seed)``.

Honest evaluation: neither policy is scored on a decision whose reward it learned from.
- The evaluation set is the decisions made after the incumbent's last training decision (its card's
  ``data.last_decision_ts``; every decision when the incumbent is the fresh prior or the bootstrap prior, which
  never saw a wheel decision). Scoring yesterday's model on the decisions it was fitted on would flatter it.
- The candidate's probabilities at an evaluated decision come from a wheel fitted on every decision except that
  decision's fold (``CV_FOLDS``-fold cross-fitting over the evaluation set, seeded); the model that is written
  and maybe promoted is fitted on all decisions.
IPS, SNIPS and DR (``ml.off_policy``) with percentile bootstrap intervals are reported for both policies.

Promotion rule (``PROMOTION_RULE``): with at least ``MIN_DECISIONS`` decisions in the evaluation set, compute per
decision the DR term of the candidate minus that of the incumbent (one shared cross-fitted ridge reward model,
so the two terms are paired), bootstrap the mean of these differences (``n_boot`` resamples of decisions,
seeded) and promote only when the lower end of its two-sided ``CONFIDENCE`` percentile interval is above 0 bps,
i.e. the candidate saves cost per order beyond the sampling noise. Fewer decisions: never promote, and the card
says so. Every run that is not a dry run writes the candidate and its card, promoted or not (the audit trail).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.clock import WallClock
from core.config_models import AlgoWheelConfig
from core.errors import StateCorruptError
from ml import algowheel_store as store
from ml.cli_run import run_cli
from ml.off_policy import Estimate, LoggedDecision, RidgeRewardModel, TargetPolicy, evaluate
from portfolio.algo_wheel import ALL_ARMS, FEATURE_NAMES, FEATURE_VERSION, AlgoWheel, Arm, WheelDecision
from tca.calculator import order_shortfalls
from tca.logger import DEFAULT_DB_PATH, SESSION_TZ, TcaFrames, read_frames

MIN_DECISIONS = 30
CV_FOLDS = 5
CONFIDENCE = 0.95
DEFAULT_N_BOOT = 1000
PROMOTION_RULE = (
    f"promote iff n >= {MIN_DECISIONS} logged decisions made after the incumbent's last training decision and the "
    f"lower end of the two-sided {CONFIDENCE:.0%} paired percentile bootstrap interval of "
    "mean(DR_candidate - DR_incumbent) per decision over them is > 0 bps (reward = -shortfall; candidate "
    f"probabilities {CV_FOLDS}-fold cross-fitted; one shared 2-fold cross-fitted ridge reward model)"
)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """The logged wheel decisions of the TCA log, in decision order, with what was left out and why."""

    order_ids: list[str]
    decisions: list[WheelDecision]
    shortfall_bps: list[float]  # the order's total shortfall, positive = cost (unclipped; update clips)
    logs: list[LoggedDecision]  # reward = -clipped shortfall
    sources: list[str]
    decision_ts: list[int]  # the order's decision time, UTC epoch ns
    fingerprint: str
    row_counts: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingReport:
    """What one training run found and did. ``model_id`` is None on a dry run; estimates are empty below
    ``MIN_DECISIONS``; ``difference`` is (point, low, high) of the paired DR difference in bps per order."""

    promoted: bool
    reason: str
    model_id: str | None
    incumbent_model_id: str | None
    n_decisions: int
    candidate: dict[str, Estimate]
    incumbent: dict[str, Estimate]
    difference: tuple[float, float, float] | None
    card: dict[str, Any]


def since_ns_of(since: date | None) -> int | None:
    """The first instant (UTC epoch ns) of New York date ``since``: the log's session dates are New York dates."""
    return None if since is None else int(pd.Timestamp(since.isoformat(), tz=SESSION_TZ).value)


def read_tca(db_path: Path | str, since: date | None = None) -> TcaFrames:
    """The log's rows decided on or after ``since``; FileNotFoundError for a missing log (none is created),
    ``StateCorruptError`` for a file that is not a TCA log."""
    return read_frames(db_path, since_ns=since_ns_of(since))


def _json_safe(value: Any) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | date):
        return value.isoformat()
    return value


def rows_fingerprint(frames: TcaFrames, order_ids: set[str]) -> str:
    """SHA-256 of the sorted canonical JSON lines of every execution and unfilled row of ``order_ids``: two runs
    on the same rows give the same fingerprint, whatever order DuckDB returned them in."""
    lines = []
    for table, frame in (("executions", frames.executions), ("unfilled", frames.unfilled)):
        if frame.empty:
            continue
        used = frame[frame["client_order_id"].isin(order_ids)]
        for row in used.to_dict(orient="records"):
            content = {key: _json_safe(value) for key, value in row.items()}
            lines.append(table + "\t" + json.dumps(content, sort_keys=True, separators=(",", ":")))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def wheel_records(frames: TcaFrames) -> dict[str, dict[str, Any]]:
    """Per ``client_order_id`` the first non-null ``wheel_decision`` (executions first, then order ends).

    Raises ``StateCorruptError`` for a decision that is not JSON: the logger writes canonical JSON only.
    """
    found: dict[str, dict[str, Any]] = {}
    for frame in (frames.executions, frames.unfilled):
        if frame.empty or "wheel_decision" not in frame.columns:
            continue
        for order_id, text in zip(frame["client_order_id"], frame["wheel_decision"], strict=True):
            if order_id in found or _json_safe(text) is None:
                continue
            try:
                found[order_id] = json.loads(text) if isinstance(text, str) else dict(text)
            except (TypeError, ValueError) as exc:
                raise StateCorruptError(f"order {order_id}: wheel_decision is not JSON ({exc})") from exc
    return found


def _usable(record: Mapping[str, Any], row: Any) -> tuple[WheelDecision | None, str | None]:
    """The decision of one order, or None and why it cannot be learned from."""
    if record.get("arm") is None:
        return None, "decision without an arm"
    if row.unaccounted_quantity > 0:
        return None, "order still working"
    if not math.isfinite(row.total_bps):
        return None, "non-finite shortfall"
    try:
        decision = WheelDecision.from_record(record)
    except (KeyError, TypeError, ValueError):
        return None, "malformed wheel decision"
    if len(decision.features) != len(FEATURE_NAMES):
        return None, "features of another feature version"
    if decision.arm not in decision.eligible or not 0.0 < decision.propensity <= 1.0:
        return None, "arm not eligible or propensity outside (0, 1]"
    return decision, None


def training_data(frames: TcaFrames, config: AlgoWheelConfig) -> TrainingData:
    """The logged decisions of ``frames`` with their shortfalls; orders without a wheel decision are counted."""
    shortfalls = order_shortfalls(frames.executions, frames.unfilled)
    records = wheel_records(frames)
    ids: list[str] = []
    decisions: list[WheelDecision] = []
    costs: list[float] = []
    logs: list[LoggedDecision] = []
    sources: list[str] = []
    stamps: list[int] = []
    skipped: Counter[str] = Counter()
    clip = config.reward_clip_bps
    for row in shortfalls.itertuples(index=False):
        record = records.get(row.client_order_id)
        if record is None:
            skipped["no wheel decision"] += 1
            continue
        decision, why = _usable(record, row)
        if decision is None:
            skipped[str(why)] += 1
            continue
        ids.append(row.client_order_id)
        decisions.append(decision)
        costs.append(float(row.total_bps))
        logs.append(LoggedDecision.from_record(record, reward=-min(max(float(row.total_bps), -clip), clip)))
        sources.append(str(row.source))
        stamps.append(int(row.decision_ts))
    counts = {
        "execution_rows": len(frames.executions),
        "unfilled_rows": len(frames.unfilled),
        "orders": len(shortfalls),
        "decisions": len(logs),
    }
    fingerprint = rows_fingerprint(frames, set(ids))
    skips = dict(sorted(skipped.items()))
    return TrainingData(ids, decisions, costs, logs, sources, stamps, fingerprint, counts, skips)


def fit_wheel(config: AlgoWheelConfig, decisions: Sequence[WheelDecision], shortfall_bps: Sequence[float]) -> AlgoWheel:
    """A fresh wheel (seeded with ``config.seed``) that has learned from every (decision, shortfall)."""
    wheel = AlgoWheel(config, rng_seed=config.seed)
    for decision, cost in zip(decisions, shortfall_bps, strict=True):
        wheel.update(decision, cost)
    return wheel


def policy_of(wheel: AlgoWheel, log: LoggedDecision, seed: int) -> dict[str, float]:
    """The wheel's π over the decision's eligible arms, with arm names as the logs spell them."""
    probs = wheel.policy_probabilities(np.asarray(log.features), tuple(Arm(a) for a in log.eligible), seed)
    return {arm.value: float(p) for arm, p in probs.items()}


def crossfit_probabilities(
    config: AlgoWheelConfig, data: TrainingData, evaluated: Sequence[int], *, folds: int, seed: int
) -> list[dict[str, float]]:
    """The candidate's π at each ``evaluated`` decision (indices into ``data``), from a wheel fitted on every
    decision except that decision's fold (folds are a seeded split of ``evaluated``; the other decisions are
    always in training)."""
    fold = dict(zip(evaluated, np.random.default_rng([seed, 1]).permutation(len(evaluated)) % folds, strict=True))
    probs: dict[int, dict[str, float]] = {}
    for f in range(folds):
        train = [i for i in range(len(data.logs)) if fold.get(i) != f]
        wheel = fit_wheel(config, [data.decisions[i] for i in train], [data.shortfall_bps[i] for i in train])
        for i in (i for i in evaluated if fold[i] == f):
            probs[i] = policy_of(wheel, data.logs[i], seed)
    return [probs[i] for i in evaluated]


def table_policy(logs: Sequence[LoggedDecision], probs: Sequence[Mapping[str, float]]) -> TargetPolicy:
    """A target policy that answers each logged decision with its precomputed π (``ml.off_policy`` asks by
    features and eligible arms). Decisions with identical features and eligible arms get the mean of their π,
    itself a probability distribution, so the lookup is always defined."""
    sums: dict[tuple[tuple[float, ...], tuple[str, ...]], Counter[str]] = {}
    counts: Counter[tuple[tuple[float, ...], tuple[str, ...]]] = Counter()
    for log, p in zip(logs, probs, strict=True):
        key = (tuple(log.features), tuple(log.eligible))
        sums.setdefault(key, Counter()).update(p)
        counts[key] += 1
    table = {key: {arm: v / counts[key] for arm, v in total.items()} for key, total in sums.items()}

    def policy(features: np.ndarray, eligible: tuple[str, ...]) -> Mapping[str, float]:
        return table[(tuple(float(v) for v in features), tuple(eligible))]

    return policy


def paired_dr_difference(
    logs: Sequence[LoggedDecision],
    candidate: Sequence[Mapping[str, float]],
    incumbent: Sequence[Mapping[str, float]],
    *,
    n_boot: int,
    seed: int,
) -> tuple[float, float, float]:
    """Mean per-decision DR(candidate) − DR(incumbent) in reward units (bps saved per order), and its two-sided
    ``CONFIDENCE`` percentile bootstrap interval; both DR terms share one 2-fold cross-fitted ridge ``q̂``."""
    arms = tuple(dict.fromkeys(a for log in logs for a in (*log.eligible, log.action)))
    index = {a: i for i, a in enumerate(arms)}
    n = len(logs)
    features = np.array([log.features for log in logs], dtype=float)
    action = np.array([index[log.action] for log in logs])
    reward = np.array([log.reward for log in logs])
    propensity = np.array([log.propensity for log in logs])
    rng = np.random.default_rng([seed, 2])
    fold = rng.permutation(n) % 2
    predicted = np.empty((n, len(arms)))
    for f in range(2):
        model = RidgeRewardModel(len(arms)).fit(features[fold != f], action[fold != f], reward[fold != f])
        predicted[fold == f] = model.predict(features[fold == f])
    residual = reward - predicted[np.arange(n), action]

    def dr_terms(probs: Sequence[Mapping[str, float]]) -> np.ndarray:
        target = np.zeros((n, len(arms)))
        for row, p in enumerate(probs):
            for arm, value in p.items():
                target[row, index[arm]] = value
        return (target * predicted).sum(axis=1) + target[np.arange(n), action] / propensity * residual

    diff = dr_terms(candidate) - dr_terms(incumbent)
    boot = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(diff.mean()), float(low), float(high)


def estimate_dict(estimate: Estimate) -> dict[str, Any]:
    """An estimate as the card stores it (reward units: −bps per order)."""
    return {
        "point": estimate.value,
        "low": estimate.ci_low,
        "high": estimate.ci_high,
        "n": estimate.n,
        "confidence": estimate.confidence,
        "effective_sample_size": estimate.effective_sample_size,
    }


@dataclass(frozen=True, slots=True)
class _Evaluation:
    candidate: dict[str, Estimate]
    incumbent: dict[str, Estimate]
    difference: tuple[float, float, float] | None
    promote: bool
    reason: str


def judge(
    config: AlgoWheelConfig,
    data: TrainingData,
    incumbent: AlgoWheel,
    *,
    seen_until_ns: int | None,
    seed: int,
    n_boot: int,
) -> _Evaluation:
    """Off-policy estimates of both policies and the promotion decision (see ``PROMOTION_RULE``), on the
    decisions made after ``seen_until_ns`` (the incumbent's last training decision; None: all of them)."""
    evaluated = [i for i, ts in enumerate(data.decision_ts) if seen_until_ns is None or ts > seen_until_ns]
    n = len(evaluated)
    if n < MIN_DECISIONS:
        unseen = "" if seen_until_ns is None else " the incumbent was not trained on"
        return _Evaluation(
            {}, {}, None, False, f"only {n} logged decisions{unseen}; at least {MIN_DECISIONS} are needed"
        )
    logs = [data.logs[i] for i in evaluated]
    cand = crossfit_probabilities(config, data, evaluated, folds=CV_FOLDS, seed=seed)
    inc = [policy_of(incumbent, log, seed) for log in logs]
    kwargs: dict[str, Any] = {"n_boot": n_boot, "confidence": CONFIDENCE, "seed": seed}
    cand_est = evaluate(logs, table_policy(logs, cand), **kwargs)
    inc_est = evaluate(logs, table_policy(logs, inc), **kwargs)
    point, low, high = paired_dr_difference(logs, cand, inc, n_boot=n_boot, seed=seed)
    verdict = "beats" if low > 0.0 else "does not beat"
    reason = (
        f"candidate {verdict} the incumbent on {n} decisions: DR difference {point:+.2f} bps/order, "
        f"{CONFIDENCE:.0%} interval [{low:+.2f}, {high:+.2f}] (promote needs the lower end > 0)"
    )
    return _Evaluation(cand_est, inc_est, (point, low, high), low > 0.0, reason)


def _per(values: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def model_card(
    config: AlgoWheelConfig,
    data: TrainingData,
    evaluation: _Evaluation,
    *,
    since: date | None,
    seed: int,
    n_boot: int,
    incumbent_id: str | None,
    seen_until_ns: int | None,
) -> dict[str, Any]:
    """The JSON card written next to the candidate (``model_id``/``created_at`` are added by the store)."""
    estimates: dict[str, Any] = {
        "candidate": {k: estimate_dict(v) for k, v in evaluation.candidate.items()},
        "incumbent": {k: estimate_dict(v) for k, v in evaluation.incumbent.items()},
        "units": "reward = -implementation shortfall, bps per order (higher is cheaper)",
    }
    if evaluation.difference is not None:
        point, low, high = evaluation.difference
        n = next(iter(evaluation.candidate.values())).n
        estimates["dr_difference"] = {"point": point, "low": low, "high": high, "n": n}
    return {
        "kind": "trained",
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURE_NAMES),
        "arms": [a.value for a in ALL_ARMS],
        "config": config.model_dump(mode="json"),
        "data": {
            "fingerprint": data.fingerprint,
            "since": None if since is None else since.isoformat(),
            "last_decision_ts": max(data.decision_ts, default=None),
            "evaluated_after_ts": seen_until_ns,
            "counts": {
                **data.row_counts,
                "by_source": _per(data.sources),
                "by_arm": _per([d.arm.value for d in data.decisions if d.arm is not None]),
                "skipped": data.skipped,
            },
        },
        "training": {
            "seed": seed,
            "wheel_seed": config.seed,
            "n_boot": n_boot,
            "cv_folds": CV_FOLDS,
            "min_decisions": MIN_DECISIONS,
        },
        "estimates": estimates,
        "decision": {"rule": PROMOTION_RULE, "promote": evaluation.promote, "reason": evaluation.reason},
        "incumbent_model_id": incumbent_id,
    }


def load_incumbent(models_root: Path | str, config: AlgoWheelConfig) -> tuple[str | None, AlgoWheel, int | None]:
    """(id, wheel, last decision it was trained on) of the promoted model; (None, fresh prior, None) when none.

    A trained card's ``last_decision_ts`` bounds what the incumbent has seen; a bootstrap prior saw no wheel
    decision (None). Raises ``StateCorruptError`` for a broken promoted model.
    """
    model_id = store.current_model_id(models_root)
    wheel = store.load_current_wheel(models_root, config)
    found = store.read_current(models_root)
    if model_id is None or wheel is None or found is None:
        return None, AlgoWheel(config, rng_seed=config.seed), None
    card = found[1]
    seen = card.get("data", {}).get("last_decision_ts") if card.get("kind") == "trained" else None
    return model_id, wheel, None if seen is None else int(seen)


def train_and_maybe_promote(
    db_path: Path | str,
    models_root: Path | str,
    config: AlgoWheelConfig,
    *,
    since: date | None = None,
    seed: int = 0,
    n_boot: int = DEFAULT_N_BOOT,
    dry_run: bool = False,
    now_ns: int | None = None,
) -> TrainingReport:
    """Train a candidate on the TCA log's wheel decisions, judge it against the incumbent, and write it with its
    card and promote it when ``PROMOTION_RULE`` says so (never with ``dry_run``). A candidate that is not promoted
    is not written: the report says why, and a nightly run does not pile up models nobody trades.

    Raises FileNotFoundError (no log), ``StateCorruptError`` (log or promoted model unreadable),
    ``TcaDatabaseBusy`` (log held by another process), ValueError (log rows inconsistent).
    """
    data = training_data(read_tca(db_path, since), config)
    incumbent_id, incumbent, seen_until_ns = load_incumbent(models_root, config)
    evaluation = judge(config, data, incumbent, seen_until_ns=seen_until_ns, seed=seed, n_boot=n_boot)
    card = model_card(
        config,
        data,
        evaluation,
        since=since,
        seed=seed,
        n_boot=n_boot,
        incumbent_id=incumbent_id,
        seen_until_ns=seen_until_ns,
    )
    model_id = None
    if evaluation.promote and not dry_run:
        candidate = fit_wheel(config, data.decisions, data.shortfall_bps)
        model_id = store.write_model(models_root, candidate.state(), card, now_ns=now_ns)
        store.promote(models_root, model_id)
    return TrainingReport(
        promoted=evaluation.promote and not dry_run,
        reason=evaluation.reason + (" (dry run: nothing written)" if dry_run else ""),
        model_id=model_id,
        incumbent_model_id=incumbent_id,
        n_decisions=len(data.logs),
        candidate=evaluation.candidate,
        incumbent=evaluation.incumbent,
        difference=evaluation.difference,
        card=card,
    )


def format_report(report: TrainingReport) -> str:
    """The CLI's short table: each estimator for both policies (−bps per order), then the decision."""
    lines = [f"decisions: {report.n_decisions}   incumbent: {report.incumbent_model_id or 'prior (none promoted)'}"]
    if report.candidate:
        lines.append(f"{'estimator':<10}{'candidate':>28}{'incumbent':>28}")
        for name, cand in report.candidate.items():
            inc = report.incumbent[name]
            lines.append(f"{name:<10}{_cell(cand):>28}{_cell(inc):>28}")
    if report.difference is not None:
        point, low, high = report.difference
        lines.append(f"{'dr diff':<10}{point:>+9.2f} [{low:+.2f}, {high:+.2f}] bps/order")
    lines.append(f"model: {report.model_id or '-'}   promoted: {'yes' if report.promoted else 'no'}")
    lines.append(f"reason: {report.reason}")
    return "\n".join(lines)


def _cell(estimate: Estimate) -> str:
    return f"{estimate.value:+.2f} [{estimate.ci_low:+.2f}, {estimate.ci_high:+.2f}]"


def add_common_arguments(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """The arguments the trainer and the bootstrap share (``--db``, ``--models``, ``--since``, ``--config``...)."""
    from core.config_loader import date_arg, non_negative_int_arg

    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH, help="the TCA log")
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="models root (default: the config's algo_wheel.models_dir, state/models)",
    )
    parser.add_argument("--since", type=date_arg, default=None, help="only orders decided on or after YYYY-MM-DD")
    if seed:
        parser.add_argument("--seed", type=non_negative_int_arg, default=0, help="seed of the resampling")
    parser.add_argument("--config", type=Path, default=None, help="config file (default: AlgoWheelConfig())")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and print, write nothing")


def parse_cli(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parsed arguments, or the exit code argparse chose (2 for a bad argument, naming it; 0 for --help)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def load_wheel_config(path: Path | None) -> AlgoWheelConfig:
    """``algo_wheel`` of ``path`` through the one config loader, or the defaults; raises ``ConfigError``."""
    if path is None:
        return AlgoWheelConfig()
    from core.config_loader import load_config

    return load_config(path).algo_wheel


def _n_boot_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 100:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 100 (got {text!r})")
    return value


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 when it ran (promoted or not), 1 when the log or a model is missing/corrupt/busy, 2 usage."""
    from core.config_loader import ArgumentParser

    parser = ArgumentParser(
        prog="python -m ml.algowheel_model_trainer",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument("--n-boot", type=_n_boot_arg, default=DEFAULT_N_BOOT, help="bootstrap resamples")
    args = parse_cli(parser, argv)
    if isinstance(args, int):
        return args
    def work() -> TrainingReport:
        config = load_wheel_config(args.config)
        since = None if args.since is None else date.fromisoformat(args.since)
        return train_and_maybe_promote(args.db, args.models or Path(config.models_dir), config, since=since,
                                       seed=args.seed, n_boot=args.n_boot, dry_run=args.dry_run,
                                       now_ns=WallClock().now_ns())  # fmt: skip

    return run_cli(parser.prog, work, format_report)


if __name__ == "__main__":
    sys.exit(main())
