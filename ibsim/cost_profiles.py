"""Cost profiles of ibsim's close-auction and algo fills (MOC, LOC, Adaptive, TWAP): named, validated, seeded.

One model, two users. ibsim's fills price executions with it (``ibsim.fills``, ``ibsim.orders``), and
``expected_shortfall_bps`` / ``sample_shortfall_bps`` evaluate the very same terms without a socket, so the
AlgoWheel benchmark and the tests can score thousands of decisions in a second.

Shortfall is in bps of the arrival mid, positive = cost, the same for a buy (pays more) and a sell (gets less).
A ``CostContext`` holds what the terms need: participation (order shares / that session's volume), the stock's
annualized 20-day volatility, the quoted spread and the minutes to the close. The terms:

- impact: ``coef_bps × (participation / 0.01) ** exponent``, one curve per arm; a TWAP slice's participation
  is the order's divided by the number of slices (slicing is what makes TWAP cheap for big orders).
- spread: Adaptive pays ``(1 − capture) × half spread`` with ``capture ~ U(capture range of its priority)``;
  TWAP's marketable slices pay the whole half spread (at the touch); MOC and LOC trade in the auction (none).
- drift while the order waits ``w`` minutes: a random walk with the stock's daily volatility
  ``σ_d = vol / √252``, whose sd over ``w`` minutes is ``σ_d × √(w / 390)``. ``DriftModel`` sets the expected
  adverse move (alpha decay, leakage) and the noise, each as a share of that sd. The waits: MOC/LOC to the
  close, Adaptive its priority's typical working time (Patient waits longest: most exposure), TWAP each
  slice's time since the start of its window (slices evenly spaced, the first at once, as ibsim schedules them).
- LOC non-fill: with probability ``min(1, base + at_1pct × (participation / 1 %) ** exponent)`` (a big LOC
  is likelier to sit on the wrong side of the imbalance); the pure functions count a non-fill as
  ``unfilled_cost_bps`` in expectation (the order is redone next session: spread, overnight gap, lost alpha),
  and ``sample_shortfall_bps`` returns None for it.

What ibsim adds to a fill, by where its own clock already provides the market's move:
- MOC/LOC fill at the session's close (the daily bar's close, the print everyone gets) plus the impact against
  the order; the move from submission to the close is the replayed market's own, so no walk is added.
  A LOC whose impacted price breaks its limit, or which loses the non-fill draw, is cancelled at the close.
- Adaptive fills at once in ibsim, so the fill draws its priority's delay drift instead of waiting.
- TWAP slices fill at the touch at their times plus the per-slice impact and the walk at their elapsed time
  (ibsim's intraday path is a smooth interpolation of one daily bar: the volatility-scaled walk comes from here).

Profiles by name (``get_profile``): ``default`` is ibsim's behaviour before profiles existed (Adaptive's capture
ranges, nothing else: MOC/LOC fill exactly at the close, which the live/backtest parity tests rely on);
``realistic`` has plausible magnitudes for US large caps; ``planted`` makes a known arm cheapest in each of the
``PLANTED_REGIONS`` by a clear margin, for the AlgoWheel tests and benchmark. Seeded: the same generator state
gives the same costs, and every draw is taken in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from core.config_models import WheelArm

PARTICIPATION_REF = 0.01  # impact curves read 1.0 at 1 % of the session's volume
SESSION_MINUTES = 390.0
TRADING_DAYS = 252.0
DEFAULT_TWAP_SLICES = 5  # SimConfig.twap_slices' default, for profiles that leave the slicing to ibsim
PRIORITIES = ("URGENT", "NORMAL", "PATIENT")
_ADAPTIVE_ARMS = {
    WheelArm.ADAPTIVE_URGENT: "URGENT",
    WheelArm.ADAPTIVE_NORMAL: "NORMAL",
    WheelArm.ADAPTIVE_PATIENT: "PATIENT",
}


def _check(ok: bool, what: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"cost profile: {what} must be {rule} (got {value!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImpactCurve:
    """``impact_bps = coef_bps × (participation / 0.01) ** exponent``; 0.5 is the square-root law."""

    coef_bps: float = 0.0
    exponent: float = 0.5

    def __post_init__(self) -> None:
        _check(math.isfinite(self.coef_bps) and self.coef_bps >= 0, "impact coef_bps", self.coef_bps, ">= 0")
        _check(0 < self.exponent <= 2, "impact exponent", self.exponent, "in (0, 2]")

    def bps(self, participation: float) -> float:
        if self.coef_bps == 0.0 or not participation > 0:
            return 0.0
        return self.coef_bps * (participation / PARTICIPATION_REF) ** self.exponent


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftModel:
    """Price drift over a wait, as shares of the stock's random-walk sd ``σ_d × √(minutes / 390)``.

    ``adverse_share``: its expected move against the order; ``noise_share``: the sd of the move the shortfall
    carries (1.0 = the stock's whole volatility; a planted profile keeps it small so a bandit can learn).
    """

    adverse_share: float = 0.0
    noise_share: float = 0.0

    def __post_init__(self) -> None:
        _check(0 <= self.adverse_share <= 5, "drift adverse_share", self.adverse_share, "in [0, 5]")
        _check(0 <= self.noise_share <= 5, "drift noise_share", self.noise_share, "in [0, 5]")

    @property
    def is_zero(self) -> bool:
        return self.adverse_share == 0.0 and self.noise_share == 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LocModel:
    """LOC: the auction's impact when it fills, and how likely it does not: ``min(1, base_prob + prob_at_1pct ×
    (participation / 0.01) ** exponent)`` (exponent 1: linear growth; above 1 a big LOC fails much more often)."""

    impact: ImpactCurve = field(default_factory=ImpactCurve)
    non_fill_base_prob: float = 0.0
    non_fill_prob_at_1pct: float = 0.0
    non_fill_exponent: float = 1.0
    unfilled_cost_bps: float = 0.0  # what a non-fill costs in expectation (the order is redone next session)

    def __post_init__(self) -> None:
        _check(0 <= self.non_fill_base_prob <= 1, "loc non_fill_base_prob", self.non_fill_base_prob, "in [0, 1]")
        _check(0 <= self.non_fill_prob_at_1pct <= 1, "loc non_fill_prob_at_1pct", self.non_fill_prob_at_1pct,
               "in [0, 1]")  # fmt: skip
        _check(0 < self.non_fill_exponent <= 4, "loc non_fill_exponent", self.non_fill_exponent, "in (0, 4]")
        _check(self.unfilled_cost_bps >= 0, "loc unfilled_cost_bps", self.unfilled_cost_bps, ">= 0")

    def non_fill_probability(self, participation: float) -> float:
        if self.non_fill_prob_at_1pct == 0.0 or not participation > 0:
            return self.non_fill_base_prob
        growth = self.non_fill_prob_at_1pct * (participation / PARTICIPATION_REF) ** self.non_fill_exponent
        return min(1.0, self.non_fill_base_prob + growth)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptivePriority:
    """One Adaptive priority: the share of the half spread it captures (uniform in the range), how long it works
    the order (its drift exposure) and its impact (a faster order takes more liquidity at once)."""

    capture_min: float
    capture_max: float
    delay_minutes: float = 0.0
    impact: ImpactCurve = field(default_factory=ImpactCurve)

    def __post_init__(self) -> None:
        _check(0 <= self.capture_min <= self.capture_max <= 1, "adaptive capture range",
               (self.capture_min, self.capture_max), "0 <= min <= max <= 1")  # fmt: skip
        _check(0 <= self.delay_minutes <= SESSION_MINUTES, "adaptive delay_minutes", self.delay_minutes,
               f"in [0, {SESSION_MINUTES:g}]")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class TwapModel:
    """TWAP: ``slices`` child orders (None = ``SimConfig.twap_slices``) over at most ``window_minutes`` (ending
    ``end_buffer_minutes`` before the close, as the AlgoWheel renders it); each pays its impact and, being
    marketable, the half spread."""

    impact: ImpactCurve = field(default_factory=ImpactCurve)
    slices: int | None = None
    window_minutes: float = 60.0
    end_buffer_minutes: float = 2.0

    def __post_init__(self) -> None:
        _check(self.slices is None or 1 <= self.slices <= 1000, "twap slices", self.slices, "None or in [1, 1000]")
        _check(0 < self.window_minutes <= SESSION_MINUTES, "twap window_minutes", self.window_minutes,
               f"in (0, {SESSION_MINUTES:g}]")  # fmt: skip
        _check(self.end_buffer_minutes >= 0, "twap end_buffer_minutes", self.end_buffer_minutes, ">= 0")

    def n_slices(self) -> int:
        return self.slices or DEFAULT_TWAP_SLICES

    def window_for(self, minutes_to_close: float) -> float:
        """The window the pure model assumes: the longest allowed that still ends the buffer before the close."""
        return max(1.0, min(self.window_minutes, minutes_to_close - self.end_buffer_minutes))


@dataclass(frozen=True, slots=True, kw_only=True)
class CostProfile:
    """Every arm's cost terms (see the module docstring); frozen and validated on construction."""

    name: str
    description: str
    drift: DriftModel = field(default_factory=DriftModel)
    moc_impact: ImpactCurve = field(default_factory=ImpactCurve)
    loc: LocModel = field(default_factory=LocModel)
    adaptive: Mapping[str, AdaptivePriority] = field(default_factory=dict)
    twap: TwapModel = field(default_factory=TwapModel)

    def __post_init__(self) -> None:
        _check(bool(self.name.strip()), "name", self.name, "non-empty")
        _check(set(self.adaptive) == set(PRIORITIES), "adaptive priorities", sorted(self.adaptive),
               f"exactly {list(PRIORITIES)}")  # fmt: skip
        object.__setattr__(self, "adaptive", MappingProxyType(dict(self.adaptive)))

    @property
    def is_neutral(self) -> bool:
        """True when nothing but Adaptive's spread capture applies (ibsim then skips the cost context)."""
        impacts = [self.moc_impact, self.loc.impact, self.twap.impact, *(p.impact for p in self.adaptive.values())]
        return (
            self.drift.is_zero
            and all(curve.coef_bps == 0 for curve in impacts)
            and self.loc.non_fill_probability(1.0) == 0
        )

    def priority(self, name: str) -> AdaptivePriority:
        """The Adaptive priority ``name`` (any case); unknown names read as Normal, as IB does."""
        return self.adaptive.get(name.upper(), self.adaptive["NORMAL"])


@dataclass(frozen=True, slots=True, kw_only=True)
class CostContext:
    """What the cost terms need about one order (units in the names); ``participation`` is order shares over that
    session's volume, ``volatility_20d_pct`` annualized, ``spread_bps`` of the mid."""

    participation: float
    volatility_20d_pct: float
    spread_bps: float
    minutes_to_close: float

    def __post_init__(self) -> None:
        for name in ("participation", "volatility_20d_pct", "spread_bps"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, f"context {name}", value, "finite and >= 0")
        _check(math.isfinite(self.minutes_to_close), "context minutes_to_close", self.minutes_to_close, "finite")

    @property
    def half_spread_bps(self) -> float:
        return self.spread_bps / 2.0


# -------------------------------------------------------------------------------------------- the cost terms
def walk_sd_bps(volatility_20d_pct: float, minutes: float) -> float:
    """The sd of the stock's random walk over ``minutes`` of trading, in bps (σ_d × √(minutes / 390))."""
    daily_bps = volatility_20d_pct * 100.0 / math.sqrt(TRADING_DAYS)
    return daily_bps * math.sqrt(max(minutes, 0.0) / SESSION_MINUTES)


def drift_bps(profile: CostProfile, ctx: CostContext, minutes: float, rng: np.random.Generator | None) -> float:
    """Drift over one wait: its expected adverse move, plus a normal draw when ``rng`` is given (none if sd 0)."""
    sd = walk_sd_bps(ctx.volatility_20d_pct, minutes)
    mean = profile.drift.adverse_share * sd
    noise = profile.drift.noise_share * sd
    return mean if rng is None or noise == 0.0 else mean + noise * float(rng.standard_normal())


def close_auction_impact_bps(profile: CostProfile, arm: WheelArm, participation: float) -> float:
    """What a MOC or LOC pays over the close for its own size (added against the order by ibsim's auction)."""
    curve = profile.moc_impact if arm is WheelArm.MOC else profile.loc.impact
    return curve.bps(participation)


def adaptive_capture(profile: CostProfile, priority: str, rng: np.random.Generator) -> float:
    """The share of the half spread one Adaptive order captures (one uniform draw of ``rng``)."""
    p = profile.priority(priority)
    return float(rng.uniform(p.capture_min, p.capture_max))


def adaptive_extra_bps(profile: CostProfile, priority: str, ctx: CostContext, rng: np.random.Generator | None) -> float:
    """Adaptive's cost beyond the spread: its impact and the drift over its priority's working time."""
    p = profile.priority(priority)
    return p.impact.bps(ctx.participation) + drift_bps(profile, ctx, p.delay_minutes, rng)


def twap_slice_offsets_bps(
    profile: CostProfile, ctx: CostContext, slices: int, window_minutes: float, rng: np.random.Generator | None
) -> list[float]:
    """Each slice's cost over its touch: the per-slice impact plus the walk at its time since the start.

    With ``rng`` the walk is drawn (one normal per slice after the first, in slice order); without it each slice
    gets the walk's expected adverse move, so the mean of the sampled offsets is the expected one.
    """
    impact = profile.twap.impact.bps(ctx.participation / slices)
    step = window_minutes / slices
    offsets, walk, drift = [], 0.0, profile.drift
    for k in range(slices):
        if k and rng is not None and drift.noise_share > 0:
            walk += drift.noise_share * walk_sd_bps(ctx.volatility_20d_pct, step) * float(rng.standard_normal())
        mean = drift.adverse_share * walk_sd_bps(ctx.volatility_20d_pct, step * k)
        offsets.append(impact + mean + walk)
    return offsets


# -------------------------------------------------------------------------------------------- per arm
def _wait_to_close(ctx: CostContext) -> float:
    return max(ctx.minutes_to_close, 0.0)


def expected_shortfall_bps(arm: WheelArm, context: CostContext, profile: CostProfile | str = "default") -> float:
    """The arm's expected shortfall (bps) in ``context``: the oracle of the AlgoWheel benchmark and tests.

    A LOC counts its non-fills at the profile's ``unfilled_cost_bps``.
    """
    prof = get_profile(profile)
    ctx = context
    if arm is WheelArm.MOC or arm is WheelArm.LOC:
        impact = close_auction_impact_bps(prof, arm, ctx.participation)
        filled = impact + drift_bps(prof, ctx, _wait_to_close(ctx), None)
        if arm is WheelArm.MOC:
            return filled
        q = prof.loc.non_fill_probability(ctx.participation)
        return (1.0 - q) * filled + q * prof.loc.unfilled_cost_bps
    if arm is WheelArm.TWAP:
        n = prof.twap.n_slices()
        offsets = twap_slice_offsets_bps(prof, ctx, n, prof.twap.window_for(ctx.minutes_to_close), None)
        return ctx.half_spread_bps + sum(offsets) / n
    priority = _ADAPTIVE_ARMS[arm]
    p = prof.priority(priority)
    capture = (p.capture_min + p.capture_max) / 2.0
    return (1.0 - capture) * ctx.half_spread_bps + adaptive_extra_bps(prof, priority, ctx, None)


def sample_shortfall_bps(
    arm: WheelArm, context: CostContext, rng: np.random.Generator, profile: CostProfile | str = "default"
) -> float | None:
    """One seeded draw of the arm's shortfall (bps) in ``context``; None when a LOC does not fill.

    Draws, in order: LOC its fill lottery (always one uniform) then the drift to the close; MOC the drift;
    Adaptive its capture then its drift; TWAP its walk slice by slice. Same generator state, same cost.
    """
    prof = get_profile(profile)
    ctx = context
    if arm is WheelArm.MOC or arm is WheelArm.LOC:
        if arm is WheelArm.LOC and float(rng.random()) < prof.loc.non_fill_probability(ctx.participation):
            return None
        impact = close_auction_impact_bps(prof, arm, ctx.participation)
        return impact + drift_bps(prof, ctx, _wait_to_close(ctx), rng)
    if arm is WheelArm.TWAP:
        n = prof.twap.n_slices()
        offsets = twap_slice_offsets_bps(prof, ctx, n, prof.twap.window_for(ctx.minutes_to_close), rng)
        return ctx.half_spread_bps + sum(offsets) / n
    priority = _ADAPTIVE_ARMS[arm]
    capture = adaptive_capture(prof, priority, rng)
    return (1.0 - capture) * ctx.half_spread_bps + adaptive_extra_bps(prof, priority, ctx, rng)


# -------------------------------------------------------------------------------------------- the profiles
def _adaptive(
    captures: tuple[tuple[float, float], ...],
    delays_minutes: tuple[float, ...] = (0.0, 0.0, 0.0),
    impact_coefs_bps: tuple[float, ...] = (0.0, 0.0, 0.0),
    exponent: float = 0.5,
) -> dict[str, AdaptivePriority]:
    """The three priorities (Urgent, Normal, Patient) from per-priority tuples."""
    return {
        name: AdaptivePriority(
            capture_min=lo, capture_max=hi, delay_minutes=delay, impact=ImpactCurve(coef_bps=coef, exponent=exponent)
        )
        for name, (lo, hi), delay, coef in zip(PRIORITIES, captures, delays_minutes, impact_coefs_bps, strict=True)
    }


_TODAY_CAPTURES = ((0.0, 0.3), (0.2, 0.6), (0.4, 0.9))  # ibsim's Adaptive before profiles: share of the half spread

DEFAULT = CostProfile(
    name="default",
    description="ibsim as before profiles: MOC/LOC fill exactly at the close, Adaptive only captures spread",
    adaptive=_adaptive(_TODAY_CAPTURES),
)

# Magnitudes for liquid US large caps: the square-root law (impact ≈ 0.5 σ_d √(Q/V), about 8 bps at 1 % of the
# volume for σ_d ≈ 1.6 %); the closing auction is deeper (half that); a TWAP of 10 slices; 5 % of the walk's sd
# lost to adverse drift while waiting, and the whole walk as noise (what TCA really sees).
REALISTIC = CostProfile(
    name="realistic",
    description="plausible large-cap magnitudes: square-root impact, auction depth, LOC non-fills, full drift",
    drift=DriftModel(adverse_share=0.05, noise_share=1.0),
    moc_impact=ImpactCurve(coef_bps=4.0, exponent=0.5),
    loc=LocModel(
        impact=ImpactCurve(coef_bps=4.0, exponent=0.5),
        non_fill_base_prob=0.05,
        non_fill_prob_at_1pct=0.02,
        unfilled_cost_bps=25.0,
    ),
    adaptive=_adaptive(_TODAY_CAPTURES, delays_minutes=(1.0, 5.0, 15.0), impact_coefs_bps=(8.0, 7.0, 6.0)),
    twap=TwapModel(impact=ImpactCurve(coef_bps=8.0, exponent=0.5), slices=10, window_minutes=60.0),
)

# Planted: each of PLANTED_REGIONS has one arm cheaper than every other arm the AlgoWheel allows there by >= 3 bps
# (tests/ibsim/test_cost_profiles.py checks it). How the margins arise (bps of a 1 % order unless said):
# - the auction is where size is absorbed: MOC impact 12 × (p/1 %)^0.3 grows slowly, LOC's 2 × √(p/1 %) when it
#   fills, but a LOC fails with 0.5 % + 10 % × (p/1 %)² (certain from 3.2 % of the volume) and a non-fill costs 60;
# - Adaptive pays impact 22 / 20 / 16 × √(p/1 %) (Urgent / Normal / Patient), captures 0-20 / 20-40 / 60-90 % of
#   the half spread and works 1 / 5 / 10 minutes; TWAP pays the full half spread and 16 × √(p/20/1 %) per slice;
# - every wait costs 25 % of the stock's random-walk sd over it (alpha decays while the order waits), and 3 % of
#   that sd is noise, so a bandit's estimates settle within a few hundred orders.
# Hence: small orders mid-day with wide spreads -> Patient (the close is hours away, the spread is worth waiting
# for); big orders with time -> TWAP (slicing); big orders near the close -> MOC; small ones there -> LOC;
# small orders in a fast (high-volatility, tight-spread) market -> Urgent; after the auction cut-off -> Patient.
PLANTED = CostProfile(
    name="planted",
    description="a known cheapest arm per region of PLANTED_REGIONS, by >= 3 bps (AlgoWheel tests and benchmark)",
    drift=DriftModel(adverse_share=0.25, noise_share=0.03),
    moc_impact=ImpactCurve(coef_bps=12.0, exponent=0.3),
    loc=LocModel(
        impact=ImpactCurve(coef_bps=2.0, exponent=0.5),
        non_fill_base_prob=0.005,
        non_fill_prob_at_1pct=0.1,
        non_fill_exponent=2.0,
        unfilled_cost_bps=60.0,
    ),
    adaptive=_adaptive(
        ((0.0, 0.2), (0.2, 0.4), (0.6, 0.9)), delays_minutes=(1.0, 5.0, 10.0), impact_coefs_bps=(22.0, 20.0, 16.0)
    ),
    twap=TwapModel(impact=ImpactCurve(coef_bps=16.0, exponent=0.5), slices=20, window_minutes=60.0),
)

PROFILES: Mapping[str, CostProfile] = MappingProxyType({p.name: p for p in (DEFAULT, REALISTIC, PLANTED)})


def get_profile(profile: CostProfile | str) -> CostProfile:
    """The profile named ``profile`` (or ``profile`` itself); ValueError naming the allowed names otherwise."""
    if isinstance(profile, CostProfile):
        return profile
    found = PROFILES.get(profile)
    if found is None:
        raise ValueError(f"unknown cost profile {profile!r}: allowed are {sorted(PROFILES)}")
    return found


# -------------------------------------------------------------------------------------------- planted regions
_ALL = frozenset(WheelArm)
_NO_TWAP = _ALL - {WheelArm.TWAP}
_ADAPTIVE_ONLY = frozenset(_ADAPTIVE_ARMS)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlantedRegion:
    """A kind of order whose cheapest allowed arm under ``PLANTED`` is ``cheapest``.

    ``eligible`` is what the AlgoWheel's default guard rails allow there with the NYSE's 10-minute auction
    cut-off (TWAP needs 30 minutes, MOC/LOC more than 11); draws are log-uniform in participation and spread,
    uniform in volatility and minutes to the close.
    """

    name: str
    cheapest: WheelArm
    eligible: frozenset[WheelArm]
    participation: tuple[float, float]
    volatility_20d_pct: tuple[float, float]
    spread_bps: tuple[float, float]
    minutes_to_close: tuple[float, float]

    def draw(self, rng: np.random.Generator) -> CostContext:
        """One context of this region (four draws of ``rng``, in field order)."""
        return CostContext(
            participation=_log_uniform(rng, self.participation),
            volatility_20d_pct=float(rng.uniform(*self.volatility_20d_pct)),
            spread_bps=_log_uniform(rng, self.spread_bps),
            minutes_to_close=float(rng.uniform(*self.minutes_to_close)),
        )


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


PLANTED_REGIONS: tuple[PlantedRegion, ...] = (
    PlantedRegion(name="small_midday", cheapest=WheelArm.ADAPTIVE_PATIENT, eligible=_ALL, participation=(0.001, 0.003),
                  volatility_20d_pct=(18, 28), spread_bps=(24, 50), minutes_to_close=(240, 370)),
    PlantedRegion(name="large_with_time", cheapest=WheelArm.TWAP, eligible=_ALL, participation=(0.04, 0.15),
                  volatility_20d_pct=(15, 40), spread_bps=(1, 5), minutes_to_close=(90, 370)),
    PlantedRegion(name="large_near_close", cheapest=WheelArm.MOC, eligible=_NO_TWAP, participation=(0.035, 0.15),
                  volatility_20d_pct=(20, 50), spread_bps=(3, 12), minutes_to_close=(12, 28)),
    PlantedRegion(name="small_near_close", cheapest=WheelArm.LOC, eligible=_NO_TWAP, participation=(0.0015, 0.004),
                  volatility_20d_pct=(12, 25), spread_bps=(6, 20), minutes_to_close=(12, 20)),
    PlantedRegion(name="fast_market", cheapest=WheelArm.ADAPTIVE_URGENT, eligible=_ALL, participation=(0.001, 0.004),
                  volatility_20d_pct=(55, 90), spread_bps=(1, 3), minutes_to_close=(60, 370)),
    PlantedRegion(name="after_cutoff", cheapest=WheelArm.ADAPTIVE_PATIENT, eligible=_ADAPTIVE_ONLY,
                  participation=(0.001, 0.003), volatility_20d_pct=(18, 28), spread_bps=(24, 50),
                  minutes_to_close=(2, 9)),
)  # fmt: skip
