"""The validation mandate: the rules a parameter set must pass before the live engine may trade it.

Loaded from ``validation_mandate.yaml`` with the same all-problems-at-once errors as the config; every rule is
checked and reported (value, threshold, verdict), so a failure always says which rules failed and by how much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config_loader import read_yaml_mapping
from core.config_models import Float, Int
from core.errors import ConfigError


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
            if err["type"] == "extra_forbidden":
                problems.append(f"{key}: unknown rule (got {err.get('input')!r}); rules are {', '.join(RULES)}")
            elif err["type"] == "missing":
                problems.append(f"{key}: required rule is missing")
            else:
                problems.append(f"{key}: {err['msg']} (got {raw.get(key, '<missing>')!r})")
        raise ConfigError(source, problems) from exc
    if problems:
        raise ConfigError(source, problems)
    return mandate


def check_mandate(mandate: Mandate, metrics: Mapping[str, float | None]) -> list[RuleVerdict]:
    """Every rule's verdict; a missing or NaN metric fails its rule (unknown is not good enough to trade)."""
    verdicts = []
    for rule, (metric, direction, unit) in RULES.items():
        threshold = float(getattr(mandate, rule))
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
