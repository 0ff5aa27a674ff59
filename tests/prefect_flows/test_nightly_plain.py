"""The plain pipeline end to end through its CLI (``--plain``: no Prefect), and the exit statuses: 0 clean, 1 a step
failed or left a problem (named), 2 bad arguments or config (naming the option or key)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from pipeline_builders import CONFIG, END, START, TCA_LAST_SESSION, new_repo, write_tca_log

from data.bar_features import BAR_FEATURE_NAMES, bar_features
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.synthetic import generate_market
from ml.feature_store import FeatureRepo
from prefect_flows.environment import PREFECT_HOME, prefect_environment
from prefect_flows.nightly_feature_pipeline import main

UNIVERSE = ("AAA", "BBB", "CCC", "DDD")


def _args(tmp_path: Path, repo: FeatureRepo, *extra: str) -> list[str]:
    return ["--plain", "--config", str(CONFIG), "--repo", str(repo.repo_path), "--tca-db", str(tmp_path / "tca.duckdb"),
            "--models-dir", str(tmp_path / "models"), "--store", str(tmp_path / "store"), "--log-level", "WARNING",
            *extra]  # fmt: skip


def test_plain_pipeline_publishes_the_last_close_and_trains_a_missing_veto(
    tmp_path: Path, stand_in_trainer, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = stand_in_trainer({"start": START, "end": "2024-03-28"})
    repo = new_repo(tmp_path)
    write_tca_log(tmp_path / "tca.duckdb", [("AAA", f"{TCA_LAST_SESSION} 15:59", 4.0),
                                            ("AAA", f"{TCA_LAST_SESSION} 15:59", 8.0)])  # fmt: skip
    args = _args(tmp_path, repo, "--data", "synthetic", "--symbols", ",".join(UNIVERSE), "--start", START, "--end",
                 END, "--strategies", "momentum")  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "momentum: no model: train" in first
    assert [(c["strategy"], c["data"], c["models_root"]) for c in trainer.calls] == [
        ("momentum", "synthetic", tmp_path / "models")
    ]

    calendar = TradingCalendar()
    expected = bar_features(generate_market(list(UNIVERSE), START, END, 42, calendar), calendar)  # backtest.seed 42
    last_close = expected["event_timestamp"].max()
    last = expected[expected["event_timestamp"] == last_close].set_index("symbol")
    online = FeatureRepo(repo.repo_path).online().get(list(UNIVERSE), int(last_close.value))
    for symbol in UNIVERSE:
        assert {name: online[symbol][name] for name in BAR_FEATURE_NAMES} == pytest.approx(
            last.loc[symbol, list(BAR_FEATURE_NAMES)].to_dict(), rel=1e-12, nan_ok=True
        )
    assert online["AAA"]["tca_orders_20d"] == 2 and online["AAA"]["tca_shortfall_20d_bps_moc"] == pytest.approx(6.0)

    assert main(args) == 0  # the model the stand-in promoted is now judged, not retrained
    second = capsys.readouterr().out
    assert "momentum: no drift" in second and len(trainer.calls) == 1


def test_a_failed_step_is_named_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = pd.DataFrame({"open": [10.0, 11.0], "high": [9.0, 9.0], "low": [10.0, 10.0], "close": [10.0, 10.0],
                         "volume": [100, 100]}, index=pd.Index(["2024-01-02", "2024-01-03"], name="date"))  # fmt: skip
    rows.to_csv(folder / "AAA.csv")  # every bar's high is below its low
    assert main(_args(tmp_path, new_repo(tmp_path), "--data", str(folder))) == 1
    captured = capsys.readouterr()
    assert "step validate_bars failed" in captured.err
    assert "publish_features" in captured.out and "not run" in captured.out


def test_a_symbol_without_bars_is_a_problem_the_others_are_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BarStore(tmp_path / "source", TradingCalendar())
    store.write("AAA", generate_market(["AAA"], "2024-01-02", "2024-03-28", 5, TradingCalendar())["AAA"])
    repo = new_repo(tmp_path)
    assert main(_args(tmp_path, repo, "--data", str(store.root), "--symbols", "AAA,ZZZ")) == 1
    assert "fetch_bars: no bars for ['ZZZ']" in capsys.readouterr().err
    assert set(pd.read_parquet(repo.source_path("daily_bar_features"))["symbol"]) == {"AAA"}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--drift-threshold", "0"], "--drift-threshold"),
        (["--strategies", "momentum,nope"], "--strategies: unknown ['nope']"),
        (["--data", "/nonexistent/folder"], "--data"),
        (["--symbols", ","], "--symbols"),
        (["--start", "2024-02-30"], "--start"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    assert main(["--plain", "--config", str(CONFIG), "--repo", str(tmp_path), *extra]) == 2
    assert named in capsys.readouterr().err


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.read_text().replace("  repo_path: feature_repo", "  repo_pth: feature_repo"))
    assert main(["--plain", "--config", str(config), "--data", "synthetic"]) == 2
    assert "features.repo_pth" in capsys.readouterr().err
    config.write_text(CONFIG.read_text().replace("  repo_path: feature_repo", f"  repo_path: {tmp_path / 'none'}"))
    assert main(["--plain", "--config", str(config), "--data", "synthetic"]) == 2
    assert "features.repo_path" in capsys.readouterr().err


def test_prefect_environment_defaults_and_what_the_user_set() -> None:
    env: dict[str, str] = {"PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    applied = prefect_environment(env)
    assert applied["PREFECT_HOME"] == str(PREFECT_HOME) and PREFECT_HOME.name == ".prefect"
    assert applied["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert int(applied["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) > 20
    assert applied["PREFECT_SERVER_EPHEMERAL_ENABLED"] == "true"
    mine = {"PREFECT_HOME": "/elsewhere", "PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    applied = prefect_environment(mine)
    assert applied["PREFECT_HOME"] == "/elsewhere" and "PREFECT_SERVER_EPHEMERAL_ENABLED" not in applied


def test_the_cli_module_imports_no_prefect(tmp_path: Path) -> None:
    """Importing the CLI (and a run that stops at its arguments) leaves prefect unimported: --plain never pays for
    it; the steps themselves are kept prefect-free by an import-linter contract."""
    import subprocess

    code = ("import sys; from prefect_flows.nightly_feature_pipeline import main; "
            f"rc = main(['--plain', '--config', {str(CONFIG)!r}, '--repo', {str(tmp_path)!r}, '--drift-threshold', "
            "'-1']); print(rc, 'prefect' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["2", "False"]


def test_the_readme_commands_and_crontab_line_parse() -> None:
    import re
    import shlex

    from prefect_flows.nightly_feature_pipeline import DEFAULT_CRON, parse_args

    section = (CONFIG.parent / "README.md").read_text().split("## The nightly feature pipeline", 1)[1]
    section = section.split("\n## ", 1)[0]
    commands = [line for line in section.splitlines() if "-m prefect_flows.nightly_feature_pipeline" in line]
    modes = set()
    for line in commands:
        words = shlex.split(re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0].split(">>", 1)[0]))
        args = parse_args(words[words.index("prefect_flows.nightly_feature_pipeline") + 1 :])
        modes.add("plain" if args.plain else "serve" if args.serve else "ephemeral")
    assert modes == {"plain", "ephemeral", "serve"}
    (cron_line,) = [line.strip() for line in commands if "cd " in line]
    assert cron_line.split()[:5] == DEFAULT_CRON.split() and "--plain" in cron_line
