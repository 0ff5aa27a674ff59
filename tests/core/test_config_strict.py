"""Strict config (issue 12): a value the operator did not mean is refused, never coerced or silently dropped.

YAML reads ``.inf``, ``true`` and ``"15"`` as a float, a bool and a string; pydantic's lax mode would take them as
an infinite limit (a limit switched off), a capital of 1.0 and the number 15. A repeated key or an empty file would
silently keep the last value or every default. Each of these must stop the program with the key, the value and
what is allowed, and the entry points must exit 2 on it.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from backtester.mandate import load_mandate
from core.config_loader import load_config, validate_config
from core.config_models import AppConfig
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert str(path) in str(info.value)
    return info.value.problems


def nested(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    raw: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        raw = {part: raw}
    return raw


# -- numbers: finite, and never a bool or text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "key", "shown"),
    [
        ("portfolio:\n  initial_capital: .inf\n", "portfolio.initial_capital", "inf"),
        ("portfolio:\n  initial_capital: -.inf\n", "portfolio.initial_capital", "-inf"),
        ("pre_trade:\n  max_order_notional_usd: .nan\n", "pre_trade.max_order_notional_usd", "nan"),
        ("risk_monitor:\n  check_interval_s: .inf\n", "risk_monitor.check_interval_s", "inf"),
        ("portfolio:\n  initial_capital: true\n", "portfolio.initial_capital", "True"),
        ('portfolio:\n  initial_capital: "15"\n', "portfolio.initial_capital", "'15'"),
        ('portfolio:\n  risk:\n    max_positions: "15"\n', "portfolio.risk.max_positions", "'15'"),
        ("portfolio:\n  risk:\n    max_positions: true\n", "portfolio.risk.max_positions", "True"),
        ('portfolio:\n  max_trades_per_month: "12"\n', "portfolio.max_trades_per_month", "'12'"),
        ('portfolio:\n  allow_short: "yes"\n', "portfolio.allow_short", "'yes'"),
        ("portfolio:\n  allow_short: 1\n", "portfolio.allow_short", "1"),
    ],
)
def test_issue_12_non_numbers_and_non_finite_numbers_are_refused(
    tmp_path: Path, yaml_text: str, key: str, shown: str
) -> None:
    problems = problems_of(write(tmp_path, yaml_text))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{key}: ")
    assert f"(got {shown})" in problems[0]


def test_refusals_say_what_is_allowed(tmp_path: Path) -> None:
    text = 'portfolio:\n  initial_capital: .inf\n  risk_per_trade_pct: "0.5"\n  allow_short: "no"\n'
    problems = problems_of(write(tmp_path, text))
    by_key = {p.split(":")[0]: p for p in problems}
    assert "finite" in by_key["portfolio.initial_capital"]
    assert "quotes" in by_key["portfolio.risk_per_trade_pct"]
    assert "true or false" in by_key["portfolio.allow_short"]


def test_an_int_literal_is_a_valid_float(tmp_path: Path) -> None:
    text = "portfolio:\n  initial_capital: 100000\nrisk_monitor:\n  check_interval_s: 1\n"
    config = load_config(write(tmp_path, text))
    assert config.portfolio.initial_capital == 100_000.0
    assert isinstance(config.portfolio.initial_capital, float)
    assert config.risk_monitor.check_interval_s == 1.0


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        members = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
            yield from _numeric_fields(members[0], f"{prefix}{name}.")
        elif len(members) == 1 and members[0] in (int, float, bool):
            yield f"{prefix}{name}", members[0]


NUMERIC_FIELDS = list(_numeric_fields(AppConfig))


def test_the_sweep_below_sees_every_section() -> None:
    names = {path for path, _ in NUMERIC_FIELDS}
    assert len(names) > 100
    assert {"portfolio.initial_capital", "risk_monitor.check_interval_s", "costs.ib_tiered.min_per_order_usd",
            "strategies.momentum.params.roc_period", "backtest.monte_carlo.n_paths"} <= names  # fmt: skip


@pytest.mark.parametrize(("path", "kind"), NUMERIC_FIELDS, ids=[p for p, _ in NUMERIC_FIELDS])
def test_issue_12_every_numeric_field_refuses_bool_text_and_infinity(path: str, kind: type) -> None:
    attacks: list[Any] = [True, "15", "true"] if kind is not bool else [1, "yes", "true", 0.0]
    if kind is not bool:
        attacks += [math.inf, -math.inf, math.nan]
    for value in attacks:
        with pytest.raises(ConfigError) as info:
            validate_config(nested(path, value), "sweep")
        assert any(p.startswith(f"{path}: ") for p in info.value.problems), (path, value, info.value.problems)


def test_only_the_last_commission_tier_may_be_unbounded(tmp_path: Path) -> None:
    tiers = "costs:\n  ib_tiered:\n    tiers:\n      - {up_to_shares_per_month: 1000, per_share_usd: 0.01}\n"
    config = load_config(write(tmp_path, tiers + "      - {up_to_shares_per_month: .inf, per_share_usd: 0.005}\n"))
    assert config.costs.ib_tiered.tiers[-1].up_to_shares_per_month == math.inf
    problems = problems_of(write(tmp_path, tiers + "      - {up_to_shares_per_month: .nan, per_share_usd: 0.005}\n"))
    assert any("costs.ib_tiered.tiers.1.up_to_shares_per_month" in p and "nan" in p for p in problems), problems
    problems = problems_of(write(tmp_path, tiers + "      - {up_to_shares_per_month: 2000, per_share_usd: .inf}\n"))
    assert any(p.startswith("costs.ib_tiered.tiers.1.per_share_usd: ") for p in problems), problems
    assert AppConfig().costs.ib_tiered.tiers[-1].up_to_shares_per_month == math.inf  # the shipped default


def test_grid_values_are_checked_against_their_param(tmp_path: Path) -> None:
    text = 'strategies:\n  momentum:\n    grid:\n      roc_period: [20, "60"]\n      entry_roc_pct: [2.0, .inf]\n'
    problems = problems_of(write(tmp_path, text))
    text_all = "\n".join(problems)
    assert "strategies.momentum.grid" in text_all
    assert "roc_period" in text_all and "'60'" in text_all
    assert "entry_roc_pct" in text_all and "inf" in text_all


def test_a_grid_naming_an_unknown_param_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    """The rule sat after a ``return`` in another function (dead code): a misspelt grid key was swept as nothing."""
    problems = problems_of(write(tmp_path, "strategies:\n  momentum:\n    grid:\n      rocc_period: [5, 10]\n"))
    text_all = "\n".join(problems)
    assert "strategies.momentum" in text_all and "unknown params ['rocc_period']" in text_all
    assert "roc_period" in text_all.split("params are", 1)[1]


# -- the file itself --------------------------------------------------------------------------------------------


def test_issue_12_duplicate_keys_name_the_key_and_both_lines(tmp_path: Path) -> None:
    text = (
        "portfolio:\n"                    # 1
        "  initial_capital: 100000\n"     # 2
        "  account_type: cash\n"          # 3
        "  initial_capital: 5000000\n"    # 4
        "system:\n"                       # 5
        "  log_level: INFO\n"             # 6
        "portfolio:\n"                    # 7
        "  allow_short: false\n"          # 8
    )  # fmt: skip
    problems = problems_of(write(tmp_path, text))
    capital = [p for p in problems if p.startswith("portfolio.initial_capital: ")]
    section = [p for p in problems if p.startswith("portfolio: ")]
    assert len(capital) == 1 and "lines 2 and 4" in capital[0], problems
    assert len(section) == 1 and "lines 1 and 7" in section[0], problems
    assert "duplicate" in capital[0]


def test_duplicate_keys_in_flow_mappings_and_lists(tmp_path: Path) -> None:
    text = "costs:\n  ib_tiered:\n    tiers:\n      - {up_to_shares_per_month: 1, per_share_usd: 0.1, per_share_usd: 0}"
    problems = problems_of(write(tmp_path, text))
    assert any(p.startswith("costs.ib_tiered.tiers.0.per_share_usd: ") and "lines 4 and 4" in p for p in problems)


def test_yaml_aliases_do_not_explode(tmp_path: Path) -> None:
    """A billion-laughs file must be refused quickly, not expanded (the duplicate check walks shared nodes once)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    problems = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert any(p.startswith("a8: unknown key") for p in problems)
    assert all(len(p) < 1000 for p in problems)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_issue_12_an_empty_file_is_refused(tmp_path: Path, text: str) -> None:
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1 and "empty" in problems[0]


def test_an_explicit_empty_mapping_means_every_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "{}\n")) == AppConfig()


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("hello\n", "str"), ("42\n", "int")])
def test_issue_12_a_non_mapping_file_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1 and "mapping" in problems[0] and f"got {kind}" in problems[0]


def test_issue_12_a_non_utf8_file_is_a_clear_message(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, b"portfolio:\n  account_type: cash\n# caf\xe9\n"))
    assert len(problems) == 1
    assert "UTF-8" in problems[0] and "line 3" in problems[0] and "0xe9" in problems[0]


# -- rules between keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heartbeat", "command"),
    [
        ("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5556"),
        ("tcp://127.0.0.1:5556", "tcp://localhost:5556"),
        ("tcp://*:5556", "tcp://127.0.0.1:5556"),
        ("ipc:///tmp/engine", "ipc:///tmp/engine"),
    ],
)
def test_issue_12_command_and_heartbeat_endpoints_must_differ(tmp_path: Path, heartbeat: str, command: str) -> None:
    text = f"operational_risk:\n  heartbeat_endpoint: '{heartbeat}'\n  command_endpoint: '{command}'\n"
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1 and problems[0].startswith("operational_risk.command_endpoint: "), problems
    assert "heartbeat_endpoint" in problems[0] and command in problems[0]


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:*", "ipc://"])
def test_endpoints_need_a_usable_address(tmp_path: Path, endpoint: str) -> None:
    problems = problems_of(write(tmp_path, f"operational_risk:\n  command_endpoint: '{endpoint}'\n"))
    assert len(problems) == 1 and problems[0].startswith("operational_risk.command_endpoint: "), problems


def test_distinct_endpoints_are_fine(tmp_path: Path) -> None:
    text = "operational_risk:\n  heartbeat_endpoint: tcp://127.0.0.1:6001\n  command_endpoint: ipc:///tmp/cmd\n"
    assert load_config(write(tmp_path, text)).operational_risk.command_endpoint == "ipc:///tmp/cmd"


def test_issue_12_the_risk_monitor_is_always_authorized(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "operational_risk:\n  command_authorized_clients: [operator]\n"))
    assert len(problems) == 1
    assert problems[0].startswith("operational_risk.command_authorized_clients: ")
    assert "'risk_monitor'" in problems[0] and "['operator']" in problems[0]


@pytest.mark.parametrize("clients", ["[risk_monitor, risk_monitor]", "[risk_monitor, ../evil]", "[risk_monitor, '']"])
def test_client_names_are_safe_file_names_and_unique(tmp_path: Path, clients: str) -> None:
    problems = problems_of(write(tmp_path, f"operational_risk:\n  command_authorized_clients: {clients}\n"))
    assert len(problems) == 1 and problems[0].startswith("operational_risk.command_authorized_clients: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("backtest:\n  seed: -1\n", "backtest.seed"),
        ("backtest:\n  monte_carlo:\n    seed: -3\n", "backtest.monte_carlo.seed"),
        ("backtest:\n  start: '2021-01-04'\n  end: '2020-01-02'\n", "backtest.end"),
        ("backtest:\n  synthetic:\n    start: 2015-13-01\n", "backtest.synthetic.start"),
        ("backtest:\n  synthetic:\n    start: '2020-01-02'\n    end: '2019-01-02'\n", "backtest.synthetic.end"),
        ("backtest:\n  distributed:\n    scheduler: localhost\n", "backtest.distributed.scheduler"),
        ("backtest:\n  distributed:\n    scheduler: tcp://127.0.0.1:99999\n", "backtest.distributed.scheduler"),
    ],
)
def test_seeds_dates_and_scheduler_are_checked(tmp_path: Path, text: str, key: str) -> None:
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1 and problems[0].startswith(f"{key}: "), problems


# -- --set goes through the same rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("portfolio.initial_capital=.inf", "portfolio.initial_capital"),
        ("portfolio.initial_capital=true", "portfolio.initial_capital"),
        ("portfolio.initial_capital='15'", "portfolio.initial_capital"),
        ("portfolio.initial_capital=", "portfolio.initial_capital"),
        ("risk_monitor.check_interval_s=.nan", "risk_monitor.check_interval_s"),
        ("operational_risk.command_endpoint=ipc://state/run/heartbeat.sock", "operational_risk.command_endpoint"),
        ("operational_risk.command_authorized_clients=[operator]", "operational_risk.command_authorized_clients"),
    ],
)
def test_issue_12_set_overrides_are_as_strict_as_the_file(tmp_path: Path, override: str, key: str) -> None:
    problems = problems_of(write(tmp_path, "{}\n"), (override,))
    assert len(problems) == 1 and problems[0].startswith(f"{key}: "), problems


def test_a_good_override_still_works(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "{}\n"), ("portfolio.initial_capital=50000", "portfolio.allow_short=true",
                                                   "portfolio.account_type=margin"))  # fmt: skip
    assert (config.portfolio.initial_capital, config.portfolio.allow_short) == (50000.0, True)


# -- the shipped files still load -------------------------------------------------------------------------------


def test_shipped_config_and_mandate_still_load() -> None:
    assert load_config(REPO / "config.yaml").portfolio.initial_capital == 100_000.0
    assert load_mandate(REPO / "validation_mandate.yaml").min_oos_trades == 30


# -- entry points exit 2 ----------------------------------------------------------------------------------------

ENTRY_POINTS = [
    ["main.py"],
    ["risk_monitor.py"],
    ["run_backtest.py", "--strategy", "momentum"],
    ["run_recalibration.py", "--strategy", "momentum", "--dry-run"],
]
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "inf": (b"portfolio:\n  initial_capital: .inf\n", "portfolio.initial_capital"),
    "duplicate": (b"system:\n  log_level: INFO\n  log_level: DEBUG\n", "system.log_level"),
    "empty": (b"", "empty"),
    "not_utf8": (b"system:\n  log_dir: caf\xe9\n", "UTF-8"),
    "endpoints": (b"operational_risk:\n  command_endpoint: ipc://state/run/heartbeat.sock",
                  "operational_risk.command_endpoint"),
}


def run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    script, *rest = args
    return subprocess.run([sys.executable, str(REPO / script), *rest], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize("attack", sorted(BAD_FILES))
def test_issue_12_main_exits_2_on_each_bad_file(tmp_path: Path, attack: str) -> None:
    content, named = BAD_FILES[attack]
    proc = run(["main.py", "--config", str(write(tmp_path, content))])
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("entry", ENTRY_POINTS[1:], ids=lambda e: e[0])
def test_issue_12_every_entry_point_exits_2_on_a_bad_file(tmp_path: Path, entry: list[str]) -> None:
    for attack in ("inf", "not_utf8"):
        content, named = BAD_FILES[attack]
        proc = run([*entry, "--config", str(write(tmp_path, content))], cwd=tmp_path)
        assert proc.returncode == 2, (attack, proc.stderr)
        assert named in proc.stderr and "Traceback" not in proc.stderr
