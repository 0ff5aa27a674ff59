"""Through Prefect: the CLI's default mode (one flow run, each step a task) against ``prefect_test_harness``'s temporary
server, a failing step marking the flow run failed; ``prefect.yaml``'s deployment loading this very flow on the
``--serve`` schedule; ``--serve`` without a server. Prefect reads its settings when first imported, so the module's
fixture sets the environment (``PREFECT_HOME`` under tmp) before any test imports it."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_builders import CONFIG, END, REPO, START, new_repo

from ml.feature_store import FeatureRepo
from prefect_flows.environment import prefect_environment
from prefect_flows.nightly_feature_pipeline import DEFAULT_CRON, FLOW_NAME, SCHEDULE_TIMEZONE, main, serve_schedule
from prefect_flows.pipeline import STEP_NAMES
from testkit.waiting import free_port


@pytest.fixture(scope="module", autouse=True)
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("prefect_home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.pop("PREFECT_API_URL", None)
    prefect_environment()
    try:
        yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _args(tmp_path: Path, repo: FeatureRepo, *extra: str) -> list[str]:
    return ["--config", str(CONFIG), "--repo", str(repo.repo_path), "--tca-db", str(tmp_path / "tca.duckdb"),
            "--store", str(tmp_path / "store"), "--log-level", "WARNING", *extra]  # fmt: skip


@pytest.mark.e2e
def test_default_mode_runs_one_flow_run_with_a_task_per_step(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    repo = new_repo(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame({"open": [1.0], "high": [0.5], "low": [1.0], "close": [1.0], "volume": [9]},
                 index=pd.Index(["2024-01-02"], name="date")).to_csv(bad / "AAA.csv")  # fmt: skip
    with prefect_test_harness(server_startup_timeout=90):
        assert main(_args(tmp_path, repo, "--data", "synthetic", "--symbols", "AAA,BBB", "--start", START,
                          "--end", END)) == 0  # fmt: skip
        assert main(_args(tmp_path, repo, "--data", str(bad))) == 1  # validate_bars fails: the flow run fails
        with get_client(sync_client=True) as client:
            flow_runs = client.read_flow_runs()
            task_runs = client.read_task_runs()
    assert sorted(run.state.type.value for run in flow_runs) == ["COMPLETED", "FAILED"]
    completed = next(run for run in flow_runs if run.state.is_completed())
    steps_run = sorted(run.name.rsplit("-", 1)[0] for run in task_runs if run.flow_run_id == completed.id)
    assert steps_run == sorted(STEP_NAMES)
    last_close = pd.read_parquet(repo.source_path("daily_bar_features"))["event_timestamp"].max()
    online = FeatureRepo(repo.repo_path).online().get(["AAA", "BBB"], int(last_close.value))
    assert online["AAA"] is not None and online["BBB"] is not None


def test_prefect_yaml_deploys_this_flow_on_the_serve_schedule() -> None:
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
    assert flow.name == FLOW_NAME
    assert set(deployment["parameters"]) <= set(inspect.signature(flow.fn).parameters)
    assert deployment["schedules"] == [{"cron": DEFAULT_CRON, "timezone": SCHEDULE_TIMEZONE, "active": True}]
    schedule = serve_schedule()
    assert (schedule.cron, schedule.timezone) == (DEFAULT_CRON, SCHEDULE_TIMEZONE)


def test_serve_needs_a_server_and_a_valid_cron(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    repo = new_repo(tmp_path)
    assert main(["--serve", *_args(tmp_path, repo)]) == 1
    assert "prefect server start" in capsys.readouterr().err
    assert main(["--serve", *_args(tmp_path, repo), "--cron", "61 * * * *"]) == 2
    assert "--cron" in capsys.readouterr().err
