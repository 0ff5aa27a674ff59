"""The AlgoWheel: which execution style (MOC, LOC, Adaptive at three urgencies, TWAP) to use for one order.

A contextual bandit learns, from the implementation shortfall of its own past orders, which arm is cheapest for
an order of this size relative to the stock's ADV, in this volatility, at this spread and this close to the close.
It is a pure object: facts in, a decision out, no clock, calendar, broker or file. The caller (the portfolio
manager) turns a decision into an ``OrderEvent`` plus ``algo``/``algo_params`` for ``execution.ib_translate``,
logs ``decision.to_record()`` with the order's TCA record, and calls ``update`` once the shortfall is known.

Policy: linear Thompson sampling with an exploration floor, one Bayesian linear model of the reward per arm.
- Reward = minus the implementation shortfall in bps (clipped at ``reward_clip_bps``: one broken fill must not
  own the posterior). Model ``reward = x·θ_arm + noise``, noise sd ``noise_sd_bps`` (set it from TCA residuals),
  prior ``θ ~ N(0, prior_sd_bps² I)``; the posterior precision is ``A = λI + Σ x xᵀ`` with
  ``λ = (noise_sd / prior_sd)²`` and mean ``A⁻¹ Σ r x``.
- Guard rails run BEFORE the bandit: an ineligible arm has probability zero, never a low score.
- Propensity: each decision draws ``propensity_draws`` seeded posterior samples of every eligible arm's score
  (the scalar ``x·θ`` is normal, so it is sampled directly: one normal per arm and draw), counts how often each
  arm wins, and mixes that with the uniform floor: ``π = (1 − ε)·wins/M + ε/|eligible|``. The arm is then
  **drawn from π**, so the logged propensity ``π[arm]`` is exactly the probability with which the arm was chosen
  given the context and the decision's own draws (which are independent of any reward): inverse-propensity
  estimates from these logs are unbiased, and every eligible arm has ``π ≥ ε/|eligible|``. This is Thompson
  sampling whose win probability is estimated by Monte Carlo instead of taken from one draw.

Decision time: one (M × 6) normal draw, an argmax, a bincount and a few 6×6 products, about a dozen numpy calls
(``bench/algo_wheel_regret.py`` measures it: a p50 of 60-110 µs on the 2-core CI machine, most of it numpy's
per-call overhead and the 768 normals of the default M = 128).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from core.config_models import AlgoWheelConfig, WheelArm
from core.errors import StateCorruptError
from core.events import OrderType, Side

Arm = WheelArm  # the arms, in the posterior's row order (defined with the config, which lists them)
ALL_ARMS: tuple[Arm, ...] = tuple(Arm)
_AUCTION_ARMS = frozenset({Arm.MOC, Arm.LOC})
_ADAPTIVE_PRIORITY = {Arm.ADAPTIVE_URGENT: "Urgent", Arm.ADAPTIVE_NORMAL: "Normal", Arm.ADAPTIVE_PATIENT: "Patient"}

# Feature scaling. Changing any of these changes what a stored posterior means, hence FEATURE_VERSION in state().
FEATURE_VERSION = 1
FEATURE_NAMES = ("intercept", "sqrt_participation", "volatility", "spread", "time_to_close", "impact")
_PARTICIPATION_REF = 0.01  # 1 % of ADV reads 1.0; the square root follows the square-root law of market impact
_PARTICIPATION_CAP = 0.25  # beyond a quarter of ADV the model would only extrapolate (pre-trade caps it anyway)
_VOL_REF_PCT = 25.0  # annualized 20-day volatility of a typical large cap
_VOL_CAP_PCT = 200.0
_SPREAD_REF_BPS = 10.0
_SPREAD_CAP_BPS = 200.0
_SESSION_MINUTES = 390.0  # a full regular session; earlier than that (pre-market) reads as a whole session left
_STATE_FORMAT = "algo_wheel/1"
_IB_TZ = {"UTC": ZoneInfo("UTC"), "US/Eastern": ZoneInfo("America/New_York")}


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelContext:
    """The order and its stock, as the portfolio manager knows them when it has sized the order.

    ``volatility_20d_pct`` is annualized (std of 20 daily close-to-close returns × √252, in percent);
    ``spread_bps`` is the quoted spread over the mid; ``reference_price`` is the order's reference price and
    ``collar_pct`` the pre-trade price collar (``pre_trade.price_collar_pct``) that a LOC limit must respect.
    """

    side: Side
    quantity_shares: float
    adv_shares: float
    volatility_20d_pct: float
    spread_bps: float
    reference_price: float
    collar_pct: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionClock:
    """Session facts at decision time, from the exchange calendar (the wheel imports no calendar).

    Minutes are signed: negative means the cut-off (or the close) has passed. Before the open, minutes to close
    count from now, so they exceed a session's length.
    """

    minutes_to_auction_cutoff: float
    minutes_to_close: float
    regular_hours: bool
    half_day: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelDecision:
    """What to send, and what to log for learning and off-policy evaluation.

    ``arm`` is None when no arm was eligible or the context was unusable: ``reason`` says why and the caller
    falls back to its configured order type. ``order_type``/``limit_price`` go on the ``OrderEvent``;
    ``algo``/``algo_params`` go to ``ib_translate.to_ib_order``. ``probabilities`` holds every eligible arm's
    probability under the policy (``propensity`` is the chosen one's); ``sampled_scores`` the posterior mean
    score (expected reward, −bps) of each eligible arm that the draws were centred on. Mappings are read-only.
    """

    arm: Arm | None
    order_type: OrderType | None
    limit_price: float | None
    algo: str | None
    algo_params: Mapping[str, str]
    eligible: tuple[Arm, ...]
    propensity: float
    probabilities: Mapping[Arm, float]
    sampled_scores: Mapping[Arm, float]
    features: tuple[float, ...]
    policy_id: str
    ts_decision_ns: int
    reason: str

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe row for the TCA staging record; ``ml.off_policy.LoggedDecision`` reads it back."""
        return {
            "arm": None if self.arm is None else self.arm.value,
            "order_type": None if self.order_type is None else self.order_type.value,
            "limit_price": self.limit_price,
            "algo": self.algo,
            "algo_params": dict(self.algo_params),
            "eligible": [a.value for a in self.eligible],
            "propensity": self.propensity,
            "probabilities": {a.value: p for a, p in self.probabilities.items()},
            "sampled_scores": {a.value: s for a, s in self.sampled_scores.items()},
            "features": list(self.features),
            "policy_id": self.policy_id,
            "ts_decision_ns": self.ts_decision_ns,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> WheelDecision:
        """Back from ``to_record()``: lets ``update`` learn from a TCA row after a restart."""
        arm = record["arm"]
        return cls(
            arm=None if arm is None else Arm(arm),
            order_type=None if record["order_type"] is None else OrderType(record["order_type"]),
            limit_price=record["limit_price"],
            algo=record["algo"],
            algo_params=dict(record["algo_params"]),
            eligible=tuple(Arm(a) for a in record["eligible"]),
            propensity=float(record["propensity"]),
            probabilities={Arm(a): float(p) for a, p in record["probabilities"].items()},
            sampled_scores={Arm(a): float(v) for a, v in record["sampled_scores"].items()},
            features=tuple(float(v) for v in record["features"]),
            policy_id=str(record["policy_id"]),
            ts_decision_ns=int(record["ts_decision_ns"]),
            reason=str(record["reason"]),
        )


def context_features(context: WheelContext, session: SessionClock) -> np.ndarray | None:
    """The model's input vector (see FEATURE_NAMES), each term near 1 for a typical order; None if unusable.

    ``impact`` = volatility × √participation is the square-root-law cost term, so a linear model can price it.
    """
    if not (context.quantity_shares > 0 and context.adv_shares > 0):
        return None
    participation = min(context.quantity_shares / context.adv_shares, _PARTICIPATION_CAP)
    sqrt_part = math.sqrt(participation / _PARTICIPATION_REF)
    vol = min(context.volatility_20d_pct, _VOL_CAP_PCT) / _VOL_REF_PCT
    spread = min(context.spread_bps, _SPREAD_CAP_BPS) / _SPREAD_REF_BPS
    time_left = min(max(session.minutes_to_close, 0.0), _SESSION_MINUTES) / _SESSION_MINUTES
    if not (vol >= 0.0 and spread >= 0.0 and math.isfinite(vol + spread + session.minutes_to_close)):
        return None
    return np.array([1.0, sqrt_part, vol, spread, time_left, vol * sqrt_part])


def loc_limit_price(side: Side, reference_price: float, collar_pct: float, offset_bps: float) -> float | None:
    """LOC limit: the reference price moved ``offset_bps`` against us, capped by the collar; None if unusable.

    Rounded to the tick (0.01, or 0.0001 below $1) toward the reference, so the limit never leaves the collar
    that ``pre_trade.PriceCollar`` enforces.
    """
    if not (math.isfinite(reference_price) and reference_price > 0 and math.isfinite(collar_pct) and collar_pct > 0):
        return None
    offset = min(offset_bps / 1e4, collar_pct / 100.0)
    tick = 0.01 if reference_price >= 1.0 else 0.0001
    if side is Side.BUY:
        ticks = math.floor(reference_price * (1.0 + offset) / tick + 1e-9)
    else:
        ticks = math.ceil(reference_price * (1.0 - offset) / tick - 1e-9)
    limit = round(ticks * tick, 4)
    return limit if limit > 0 else None


def eligible_arms(
    context: WheelContext, session: SessionClock, config: AlgoWheelConfig
) -> tuple[tuple[Arm, ...], dict[Arm, str]]:
    """The configured arms allowed now (in ``config.arms`` order), and why each other one is not.

    - MOC/LOC: only more than ``auction_cutoff_margin_minutes`` before the exchange's auction cut-off (and on
      half days only if ``auction_on_half_days``); LOC also needs a limit price (``loc_limit_price``).
    - Adaptive: only in regular hours with at least ``adaptive_min_minutes`` to the close.
    - TWAP: only in regular hours with at least ``twap_min_minutes`` to the close.
    NaN facts compare False, so they make an arm ineligible rather than eligible.
    """
    auction = None
    if not session.minutes_to_auction_cutoff > config.auction_cutoff_margin_minutes:
        auction = (
            f"needs > {config.auction_cutoff_margin_minutes:g} min to the auction cut-off "
            f"(got {session.minutes_to_auction_cutoff:g})"
        )
    elif session.half_day and not config.auction_on_half_days:
        auction = "is off on half days (algo_wheel.auction_on_half_days)"
    loc = auction
    if loc is None and loc_limit_price(context.side, context.reference_price, context.collar_pct, 1.0) is None:
        loc = f"needs a positive reference price and collar (got {context.reference_price:g}, {context.collar_pct:g}%)"
    rth = None if session.regular_hours else "runs only in regular trading hours"
    adaptive, twap = rth, rth
    if rth is None and not session.minutes_to_close >= config.adaptive_min_minutes:
        adaptive = f"needs >= {config.adaptive_min_minutes:g} min to the close (got {session.minutes_to_close:g})"
    if rth is None and not session.minutes_to_close >= config.twap_min_minutes:
        twap = f"needs >= {config.twap_min_minutes:g} min to the close (got {session.minutes_to_close:g})"
    why = {Arm.MOC: auction, Arm.LOC: loc, Arm.TWAP: twap}
    allowed: list[Arm] = []
    refused: dict[Arm, str] = {}
    for arm in config.arms:
        reason = why.get(arm, adaptive)
        if reason is None:
            allowed.append(arm)
        else:
            refused[arm] = f"{arm.value} {reason}"
    return tuple(allowed), refused


def _ib_time(ts_ns: int, zone: str) -> str:
    """IB's algo time text: ``YYYYMMDD-HH:MM:SS`` is UTC; otherwise ``YYYYMMDD HH:MM:SS US/Eastern``.

    ``US/Eastern`` is the default because it is also what ``ibsim`` reads (it takes any time as New York).
    """
    moment = datetime.fromtimestamp(ts_ns / 1e9, tz=_IB_TZ[zone])
    return moment.strftime("%Y%m%d-%H:%M:%S") if zone == "UTC" else moment.strftime("%Y%m%d %H:%M:%S US/Eastern")


def _posterior(precision: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm covariance factor ``A⁻¹`` and posterior mean ``A⁻¹ b`` (A is symmetric positive definite)."""
    a_inv = np.linalg.inv(precision)
    return a_inv, np.einsum("kij,kj->ki", a_inv, b)


class AlgoWheel:
    """The bandit: ``decide`` (hot path, advances only the random stream), ``update`` (learns), ``state``.

    Single-threaded: the dispatcher's thread owns it. Deterministic for a seed and a sequence of calls, including
    across ``state()``/``from_state()`` (the random stream is persisted too).
    """

    def __init__(self, config: AlgoWheelConfig, rng_seed: int) -> None:
        self.config = config
        self._rng = np.random.default_rng(rng_seed)
        n_arms, dim = len(ALL_ARMS), len(FEATURE_NAMES)
        ridge = (config.noise_sd_bps / config.prior_sd_bps) ** 2
        self._precision = np.repeat(np.eye(dim)[None] * ridge, n_arms, axis=0)
        self._b = np.zeros((n_arms, dim))
        self._counts = np.zeros(n_arms, dtype=np.int64)
        self._n_updates = 0
        self._a_inv, self._mu = _posterior(self._precision, self._b)
        self._config_hash = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:8]
        self._policy_id = self._make_policy_id()
        self._index = {arm: i for i, arm in enumerate(ALL_ARMS)}
        # per eligible set (at most 2**6, built on first use): its posterior rows and a 0/−inf mask over all arms
        self._rows: dict[tuple[Arm, ...], list[int]] = {}
        self._masks: dict[tuple[Arm, ...], np.ndarray] = {}

    @property
    def policy_id(self) -> str:
        """``name/config-hash/u<updates>``: which posterior made a decision (off-policy logs group by it)."""
        return self._policy_id

    def _make_policy_id(self) -> str:
        return f"{self.config.policy_name}/{self._config_hash}/u{self._n_updates}"

    def eligible_arms(self, context: WheelContext, session: SessionClock) -> tuple[tuple[Arm, ...], dict[Arm, str]]:
        """``eligible_arms`` under this wheel's config."""
        return eligible_arms(context, session, self.config)

    def decide(self, context: WheelContext, now_ns: int, session: SessionClock) -> WheelDecision:
        """Choose an arm for one order (UTC epoch ns ``now_ns``); never an ineligible one, never raises on data."""
        x = context_features(context, session)
        eligible, refused = self.eligible_arms(context, session)
        if x is None:
            return self._no_arm(
                eligible,
                now_ns,
                "unusable context: quantity and ADV must be > 0, volatility, "
                "spread and minutes to close finite and >= 0",
            )
        if not eligible:
            return self._no_arm(eligible, now_ns, "no eligible arm: " + "; ".join(refused.values()), x)
        probs, scores = self._probabilities(x, eligible)
        threshold = self._rng.random() * sum(probs)
        pick, cumulative = len(probs) - 1, 0.0
        for i, p in enumerate(probs):
            cumulative += p
            if threshold < cumulative:
                pick = i
                break
        return self._render(eligible[pick], context, session, now_ns, eligible, probs, scores, x)

    def reseed(self, seed: int) -> None:
        """Restart the draws from ``seed`` (the posterior is kept): a restored model in a seeded backtest."""
        self._rng = np.random.default_rng(seed)

    def policy_probabilities(self, features: np.ndarray, eligible: tuple[Arm, ...], seed: int = 0) -> dict[Arm, float]:
        """π(arm | features) over ``eligible`` as ``decide`` computes it, from draws of a generator seeded with
        ``seed`` (the wheel's own generator is untouched): what off-policy evaluation of this wheel as a target
        policy needs. Empty when nothing is eligible."""
        if not eligible:
            return {}
        probs, _ = self._probabilities(np.asarray(features, dtype=float), eligible, np.random.default_rng(seed))
        return dict(zip(eligible, probs, strict=True))

    def _probabilities(
        self, x: np.ndarray, eligible: tuple[Arm, ...], rng: np.random.Generator | None = None
    ) -> tuple[list[float], list[float]]:
        """π over ``eligible`` (Monte Carlo Thompson win rates mixed with the ε floor), and each one's posterior
        mean reward. Every arm is drawn and the ineligible ones are pushed to −inf, which costs fewer numpy calls
        than selecting rows; the results are Python lists because with six arms floats beat numpy calls."""
        rows = self._rows.get(eligible)
        if rows is None:
            rows = self._rows[eligible] = [self._index[a] for a in eligible]
            self._masks[eligible] = np.array([0.0 if i in rows else -np.inf for i in range(len(ALL_ARMS))])
        mean = self._mu @ x
        sd = self.config.noise_sd_bps * np.sqrt(np.maximum((self._a_inv @ x) @ x, 0.0))
        draws = (rng or self._rng).standard_normal((self.config.propensity_draws, len(ALL_ARMS)))
        draws *= sd
        draws += mean + self._masks[eligible]
        wins = np.bincount(draws.argmax(axis=1), minlength=len(ALL_ARMS)).tolist()
        eps = self.config.epsilon
        scale, floor = (1.0 - eps) / self.config.propensity_draws, eps / len(rows)
        means = mean.tolist()
        return [wins[i] * scale + floor for i in rows], [means[i] for i in rows]

    def _render(
        self,
        arm: Arm,
        context: WheelContext,
        session: SessionClock,
        now_ns: int,
        eligible: tuple[Arm, ...],
        probs: list[float],
        scores: list[float],
        x: np.ndarray,
    ) -> WheelDecision:
        """The chosen arm in IB's terms: MOC/LOC are order types, Adaptive and TWAP are algos on a MKT order."""
        order_type, limit, algo, params = OrderType.MKT, None, None, {}
        if arm is Arm.MOC:
            order_type = OrderType.MOC
        elif arm is Arm.LOC:
            order_type = OrderType.LOC
            limit = loc_limit_price(
                context.side, context.reference_price, context.collar_pct, self.config.loc_offset_bps
            )
        elif arm is Arm.TWAP:
            cfg = self.config
            window_min = min(cfg.twap_max_minutes, session.minutes_to_close - cfg.twap_end_buffer_minutes)
            end_ns = now_ns + int(window_min * 60e9)
            algo = "Twap"
            params = {
                "strategyType": "Marketable",
                "startTime": _ib_time(now_ns, cfg.twap_time_zone),
                "endTime": _ib_time(end_ns, cfg.twap_time_zone),
                "allowPastEndTime": "1",
            }
        else:
            algo, params = "Adaptive", {"adaptivePriority": _ADAPTIVE_PRIORITY[arm]}
        chosen = eligible.index(arm)
        return WheelDecision(
            arm=arm,
            order_type=order_type,
            limit_price=limit,
            algo=algo,
            algo_params=params,
            eligible=eligible,
            propensity=float(probs[chosen]),
            probabilities=dict(zip(eligible, probs, strict=True)),
            sampled_scores=dict(zip(eligible, scores, strict=True)),
            features=tuple(x.tolist()),
            policy_id=self._policy_id,
            ts_decision_ns=now_ns,
            reason="thompson",
        )

    def _no_arm(
        self, eligible: tuple[Arm, ...], now_ns: int, reason: str, x: np.ndarray | None = None
    ) -> WheelDecision:
        return WheelDecision(
            arm=None,
            order_type=None,
            limit_price=None,
            algo=None,
            algo_params={},
            eligible=eligible,
            propensity=0.0,
            probabilities={},
            sampled_scores={},
            features=() if x is None else tuple(x.tolist()),
            policy_id=self._policy_id,
            ts_decision_ns=now_ns,
            reason=reason,
        )

    def update(self, decision: WheelDecision, shortfall_bps: float) -> None:
        """Learn from one executed decision: its implementation shortfall in bps (positive = cost).

        Order of updates does not matter (the posterior is a sum), so MOC results that arrive after the close
        and Adaptive results that arrive within seconds can be fed as they come. Raises ValueError for a decision
        without an arm or a non-finite shortfall: both are caller bugs, and learning from them would corrupt
        the posterior.
        """
        if decision.arm is None:
            raise ValueError(f"cannot learn from a decision without an arm (reason: {decision.reason})")
        if not math.isfinite(shortfall_bps):
            raise ValueError(f"shortfall_bps must be finite (got {shortfall_bps}) for arm {decision.arm.value}")
        if len(decision.features) != len(FEATURE_NAMES):
            raise ValueError(f"decision has {len(decision.features)} features, the model {len(FEATURE_NAMES)}")
        clip = self.config.reward_clip_bps
        reward = -min(max(shortfall_bps, -clip), clip)
        k = self._index[decision.arm]
        x = np.asarray(decision.features, dtype=float)
        self._precision[k] += np.outer(x, x)
        self._b[k] += reward * x
        # the same routine as from_state, so a restored wheel continues bit for bit
        self._a_inv[k : k + 1], self._mu[k : k + 1] = _posterior(self._precision[k : k + 1], self._b[k : k + 1])
        self._counts[k] += 1
        self._n_updates += 1
        self._policy_id = self._make_policy_id()

    def posterior_mean_reward(self, features: np.ndarray) -> dict[Arm, float]:
        """Expected reward (−bps) of every arm at ``features`` (no draw, no guard rails): for reports and tests."""
        return dict(zip(ALL_ARMS, (self._mu @ np.asarray(features, dtype=float)).tolist(), strict=True))

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this wheel is, JSON-safe (integers of the RNG as text)."""
        rng = self._rng.bit_generator.state
        return {
            "format": _STATE_FORMAT,
            "feature_version": FEATURE_VERSION,
            "features": list(FEATURE_NAMES),
            "arms": [a.value for a in ALL_ARMS],
            "config": self.config.model_dump(mode="json"),
            "precision": self._precision.tolist(),
            "b": self._b.tolist(),
            "counts": self._counts.tolist(),
            "n_updates": self._n_updates,
            "rng": {
                "bit_generator": rng["bit_generator"],
                "state": {key: str(value) for key, value in rng["state"].items()},  # 128-bit integers
                "has_uint32": int(rng["has_uint32"]),
                "uinteger": int(rng["uinteger"]),
            },
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: AlgoWheelConfig | None = None) -> AlgoWheel:
        """Restore a wheel from ``state()``; ``config`` may change settings (ε, arms, guard rails), not the model.

        Raises ``StateCorruptError`` naming the problem when the state is of another format, feature set or arm
        set, or its arrays are malformed: a wrong posterior is worse than starting from the prior.
        """
        try:
            return cls._restore(state, config)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorruptError(
                f"algo wheel state unusable: {exc!r}; start from the prior or fix the file"
            ) from exc

    @classmethod
    def _restore(cls, state: Mapping[str, Any], config: AlgoWheelConfig | None) -> AlgoWheel:
        expected = (_STATE_FORMAT, FEATURE_VERSION, list(FEATURE_NAMES), [a.value for a in ALL_ARMS])
        found = (state["format"], state["feature_version"], state["features"], state["arms"])
        if found != expected:
            raise ValueError(f"format/feature_version/features/arms {found} != {expected}")
        wheel = cls(config or AlgoWheelConfig.model_validate(state["config"]), rng_seed=0)
        precision = np.asarray(state["precision"], dtype=float)
        b = np.asarray(state["b"], dtype=float)
        counts = np.asarray(state["counts"], dtype=np.int64)
        if precision.shape != wheel._precision.shape or b.shape != wheel._b.shape or counts.shape != (len(ALL_ARMS),):
            raise ValueError(f"array shapes {precision.shape}, {b.shape}, {counts.shape} do not fit the model")
        if not (np.isfinite(precision).all() and np.isfinite(b).all()):
            raise ValueError("posterior arrays hold non-finite numbers")
        wheel._precision, wheel._b, wheel._counts = precision, b, counts
        wheel._n_updates = int(state["n_updates"])
        wheel._a_inv, wheel._mu = _posterior(precision, b)
        rng = state["rng"]
        inner = {key: int(value) for key, value in rng["state"].items()}
        wheel._rng.bit_generator.state = {
            **rng,
            "state": inner,
            "has_uint32": int(rng["has_uint32"]),
            "uinteger": int(rng["uinteger"]),
        }
        wheel._policy_id = wheel._make_policy_id()
        return wheel
