"""The validation mandate: the rules a parameter set (or a veto model) must pass before the live engine uses it.

Loaded from ``validation_mandate.yaml`` with the same all-problems-at-once errors as the config; every rule is
checked and reported (value, threshold, verdict), so a failure always says which rules failed and by how much.
The ``veto:`` section holds the rules of a signal-veto model (``ml.ml_model_trainer``); without it no veto model
is ever promoted (a missing rule is not a passed rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config_loader import read_yaml_mapping
from core.config_models import Float, Int
from core.errors import ConfigError


class VetoMandate(BaseModel):
    """``veto:``: the walk-forward A/B of a veto model (``backtester.veto_walk_forward``) must pass all of these."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_oos_sharpe_gain: Float
    max_oos_drawdown_increase_pct: Float = Field(ge=0, le=100)
    min_oos_trades: Int = Field(ge=0)
    max_pbo: Float = Field(ge=0, le=1)
    min_dsr: Float = Field(ge=0, le=1)


class Mandate(BaseModel):
    """Strict like the config (``core.config_models``): finite numbers only, no bool or text taken for a number,
    so a rule can never be switched off by ``.inf`` or ``true``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min_oos_sharpe: Float
    max_oos_drawdown_pct: Float = Field(gt=0, le=100)
    min_oos_trades: Int = Field(ge=0)
    max_pbo: Float = Field(ge=0, le=1)
    min_dsr: Float = Field(ge=0, le=1)
    min_walk_forward_efficiency: Float
    min_mc_p5_final_equity_pct: Float = Field(gt=0)
    max_worst_scenario_loss_pct: Float = Field(gt=0, le=100)
    veto: VetoMandate | None = None


# rule name -> (metric key, direction, unit label); "min" passes when value >= threshold
RULES: dict[str, tuple[str, str, str]] = {
    "min_oos_sharpe": ("oos_sharpe", "min", ""),
    "max_oos_drawdown_pct": ("oos_max_drawdown_pct", "max", "%"),
    "min_oos_trades": ("oos_trades", "min", ""),
    "max_pbo": ("pbo", "max", ""),
    "min_dsr": ("dsr", "min", ""),
    "min_walk_forward_efficiency": ("walk_forward_efficiency", "min", ""),
    "min_mc_p5_final_equity_pct": ("mc_p5_final_equity_pct", "min", "%"),
    "max_worst_scenario_loss_pct": ("worst_scenario_loss_pct", "max", "%"),
}
# the ``veto:`` section: rule -> (metric key of VetoWalkForward.mandate_metrics, direction, unit)
VETO_RULES: dict[str, tuple[str, str, str]] = {
    "min_oos_sharpe_gain": ("veto_oos_sharpe_gain", "min", ""),
    "max_oos_drawdown_increase_pct": ("veto_oos_drawdown_increase_pct", "max", " pct points"),
    "min_oos_trades": ("veto_oos_trades", "min", ""),
    "max_pbo": ("veto_pbo", "max", ""),
    "min_dsr": ("veto_dsr", "min", ""),
}


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    rule: str
    metric: str
    threshold: float
    value: float | None
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_mandate(path: str | Path) -> Mandate:
    """The mandate at ``path``: UTF-8, non-empty, a mapping without repeated keys (``read_yaml_mapping``), every
    rule present and valid; raises ConfigError listing every problem."""
    source = str(path)
    raw, problems = read_yaml_mapping(path, "mandate")
    try:
        mandate = Mandate.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            rules = VETO_RULES if err["loc"][:1] == ("veto",) else [*RULES, "veto"]
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown rule (got {err.get('input')!r}); rules are {', '.join(rules)}")
            elif err["type"] == "missing":
                problems.append(f"{key}: required rule is missing")
            else:
                problems.append(f"{key}: {err['msg']} (got {_lookup(raw, err['loc'])!r})")
        raise ConfigError(source, problems) from exc
    if problems:
        raise ConfigError(source, problems)
    return mandate


def check_mandate(mandate: Mandate, metrics: Mapping[str, float | None]) -> list[RuleVerdict]:
    """Every rule's verdict; a missing or NaN metric fails its rule (unknown is not good enough to trade)."""
    return _verdicts(mandate, RULES, metrics)


def check_veto_mandate(mandate: Mandate, metrics: Mapping[str, float | None]) -> list[RuleVerdict]:
    """Every ``veto:`` rule's verdict (rule names prefixed ``veto.``); a mandate without the section gives one
    failed verdict saying so, so nothing is promoted by default."""
    if mandate.veto is None:
        return [RuleVerdict("veto", "veto", 0.0, None, False,
                            "the mandate has no veto: section; add its rules to promote a veto model")]  # fmt: skip
    return [replace(v, rule=f"veto.{v.rule}") for v in _verdicts(mandate.veto, VETO_RULES, metrics)]


def _verdicts(section: BaseModel, rules: Mapping[str, tuple[str, str, str]],
              metrics: Mapping[str, float | None]) -> list[RuleVerdict]:  # fmt: skip
    verdicts = []
    for rule, (metric, direction, unit) in rules.items():
        threshold = float(getattr(section, rule))
        raw = metrics.get(metric)
        value = None if raw is None or (isinstance(raw, float) and math.isnan(raw)) else float(raw)
        if value is None:
            passed, message = False, f"{metric} could not be measured; a rule without a value fails"
        else:
            passed = value >= threshold if direction == "min" else value <= threshold
            relation = ">=" if direction == "min" else "<="
            message = f"{metric} = {value:.4g}{unit} (needs {relation} {threshold:g}{unit})"
        verdicts.append(RuleVerdict(rule, metric, threshold, value, passed, message))
    return verdicts


def _lookup(raw: Mapping[str, Any], loc: tuple[Any, ...]) -> Any:
    node: Any = raw
    for part in loc:
        if not (isinstance(node, Mapping) and part in node):
            return "<missing>"
        node = node[part]
    return node
