"""The mandate's ``veto:`` section: as strict as the parameter rules, every rule judged, and no section means no
veto model is promoted (a rule that is not there is not a rule that passed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backtester.mandate import VETO_RULES, check_mandate, check_veto_mandate, load_mandate
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "validation_mandate.yaml").read_text())
GOOD = {"veto_oos_sharpe_gain": 0.2, "veto_oos_drawdown_increase_pct": -1.0, "veto_oos_trades": 80,
        "veto_pbo": 0.2, "veto_dsr": 0.95}  # fmt: skip


def write(tmp_path: Path, rules: dict) -> Path:
    path = tmp_path / "mandate.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def test_the_shipped_mandate_has_every_veto_rule_and_a_good_ab_passes_them() -> None:
    mandate = load_mandate(REPO / "validation_mandate.yaml")
    assert set(mandate.veto.model_dump()) == set(VETO_RULES)
    verdicts = check_veto_mandate(mandate, GOOD)
    assert [v.rule for v in verdicts] == [f"veto.{r}" for r in VETO_RULES] and all(v.passed for v in verdicts)


@pytest.mark.parametrize(("metric", "value", "rule"), [
    ("veto_oos_sharpe_gain", -0.01, "veto.min_oos_sharpe_gain"),
    ("veto_oos_drawdown_increase_pct", 0.5, "veto.max_oos_drawdown_increase_pct"),
    ("veto_oos_trades", 10, "veto.min_oos_trades"),
    ("veto_pbo", 0.7, "veto.max_pbo"),
    ("veto_dsr", float("nan"), "veto.min_dsr"),
])  # fmt: skip
def test_a_veto_that_makes_things_worse_or_cannot_be_measured_fails_its_rule(metric: str, value: float,
                                                                            rule: str) -> None:  # fmt: skip
    verdicts = {v.rule: v for v in check_veto_mandate(load_mandate(REPO / "validation_mandate.yaml"),
                                                      {**GOOD, metric: value})}  # fmt: skip
    assert [r for r, v in verdicts.items() if not v.passed] == [rule]


def test_without_a_veto_section_nothing_is_promoted_and_the_parameter_rules_are_unchanged(tmp_path: Path) -> None:
    mandate = load_mandate(write(tmp_path, {k: v for k, v in SHIPPED.items() if k != "veto"}))
    [verdict] = check_veto_mandate(mandate, GOOD)
    assert not verdict.passed and "no veto: section" in verdict.message
    assert all(not v.rule.startswith("veto") for v in check_mandate(mandate, {}))


@pytest.mark.parametrize(("veto", "says"), [
    ({**SHIPPED["veto"], "max_pbo": 1.5}, "veto.max_pbo: Input should be less than or equal to 1 (got 1.5)"),
    ({**SHIPPED["veto"], "min_dsr": ".inf"}, "veto.min_dsr: "),
    ({**SHIPPED["veto"], "min_oos_trades": True}, "veto.min_oos_trades: "),
    ({**SHIPPED["veto"], "min_sharpe_gain": 0.0}, "veto.min_sharpe_gain: unknown rule"),
    ({k: v for k, v in SHIPPED["veto"].items() if k != "min_dsr"}, "veto.min_dsr: required rule is missing"),
])  # fmt: skip
def test_a_bad_veto_rule_is_refused_naming_it(tmp_path: Path, veto: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_mandate(write(tmp_path, {**SHIPPED, "veto": veto}))
