"""The nightly feature pipeline: bars -> bad-bar guard -> features -> Feast -> TCA ETL -> drift -> veto retrain.

Three ways to run it (README "The nightly feature pipeline"):

    python -m prefect_flows.nightly_feature_pipeline --plain [--data synthetic|DIR]   # no Prefect at all
    python -m prefect_flows.nightly_feature_pipeline [--data ...]     # one Prefect flow run, temporary server
    python -m prefect_flows.nightly_feature_pipeline --serve          # scheduled, against `prefect server start`

``--serve`` registers the deployment ``nightly-served`` with a cron schedule (``--cron``, default weekdays 17:30
New York, after the 16:00 close) and runs its flow runs in this process until interrupted. ``prefect.yaml``
declares the same schedule as deployment ``nightly`` for a work pool and worker. The steps are
``prefect_flows.steps``; the flow wraps each in a task.

The flow object ``nightly_feature_pipeline`` is built on first access (``build_flow``), so ``--plain`` never imports
``prefect`` and the other modes set Prefect's environment first (``prefect_flows.environment``).
Exit status: 0 every step ran clean; 1 a step failed (named) or left a problem; 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Any

from core.config_loader import ArgumentParser, date_arg, port_arg
from core.errors import ConfigError
from ml.drift import DEFAULT_PSI_THRESHOLD, DEFAULT_RECENT_SESSIONS
from prefect_flows.pipeline import PipelineResult, run_pipeline
from prefect_flows.settings import PipelineOptions, build_settings

log = logging.getLogger(__name__)

FLOW_NAME = "nightly-feature-pipeline"
DEPLOYMENT_NAME = "nightly"  # prefect.yaml's, run by a worker of a work pool
SERVED_DEPLOYMENT_NAME = "nightly-served"  # --serve's: a distinct name, so neither replaces the other
DEFAULT_CRON = "30 17 * * 1-5"  # 17:30 Monday to Friday; a holiday's run finds no new session and changes nothing
SCHEDULE_TIMEZONE = "America/New_York"


class PipelineFailed(Exception):
    """Raised by the flow so that Prefect marks the run failed; carries the result for the CLI."""

    def __init__(self, result: PipelineResult) -> None:
        what = f"step {result.failed_step} failed: {result.error}" if result.failed_step else "; ".join(result.problems)
        super().__init__(what)
        self.result = result


def _list_arg(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list, e.g. AAPL,MSFT (got {text!r})")
    return items


def _threshold_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, e.g. 0.25 (got {text!r})")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m prefect_flows.nightly_feature_pipeline", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="run the steps in this process without Prefect")
    mode.add_argument("--serve", action="store_true", help="serve the scheduled deployment (needs a Prefect server)")
    parser.add_argument("--config", default="config.yaml", help="operator settings file (default: %(default)s)")
    parser.add_argument("--data", default=None, help="'ib' (default: IB, or ibsim in sim mode), 'synthetic', or a "
                        "folder (a bar store or per-symbol CSV files)")  # fmt: skip
    parser.add_argument("--symbols", type=_list_arg, default=None, help="comma-separated (default: config symbols)")
    parser.add_argument("--start", type=date_arg, default=None, help="first session YYYY-MM-DD (synthetic, folder)")
    parser.add_argument("--end", type=date_arg, default=None, help="last session YYYY-MM-DD (synthetic, folder)")
    parser.add_argument("--store", default=None, help="bar store of IB bars (default: <system.state_dir>/bar_store)")
    parser.add_argument("--repo", default=None, help="Feast repository (default: features.repo_path)")
    parser.add_argument("--tca-db", default=None, help="TCA log (default: <system.results_dir>/tca_log.duckdb)")
    parser.add_argument("--strategies", type=_list_arg, default=None,
                        help="strategies whose veto is checked (default: those with veto.enabled)")  # fmt: skip
    parser.add_argument("--models-dir", default=None, help="veto models folder (default: each veto.models_dir)")
    parser.add_argument("--drift-threshold", type=_threshold_arg, default=DEFAULT_PSI_THRESHOLD,
                        help="PSI at which a feature counts as drifted (default: %(default)s)")  # fmt: skip
    parser.add_argument("--recent-sessions", type=int, default=DEFAULT_RECENT_SESSIONS,
                        help="sessions after the training window compared with it (default: %(default)s)")  # fmt: skip
    parser.add_argument("--ib-port", type=port_arg, default=None, help="override ib_connection.port")
    parser.add_argument("--dry-run", action="store_true", help="retrain if needed, but promote nothing")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"--serve schedule, {SCHEDULE_TIMEZONE} time "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> PipelineOptions:
    names = PipelineOptions.__dataclass_fields__
    return PipelineOptions(**{name: getattr(args, name) for name in names})


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    log_format = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=log_format)
    for noisy in ("ibapi", "feast", "httpx"):  # feast logs every registry refresh at INFO, httpx every request
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    options = options_from_args(args)
    try:
        settings = build_settings(options)  # every config or option problem exits 2 before anything starts
    except ConfigError as exc:
        print(f"nightly_feature_pipeline: {exc}", file=sys.stderr)
        return 2
    if args.plain:
        return _report(run_pipeline(settings))
    from prefect_flows.environment import LOCAL_SERVER_API_URL, prefect_environment

    if args.serve:
        os.environ.setdefault("PREFECT_API_URL", LOCAL_SERVER_API_URL)
    log.info("event=prefect_environment %s", prefect_environment())
    if args.serve:
        return serve(options, args.cron)
    return run_once(options)


def _report(result: PipelineResult) -> int:
    for line in result.lines():
        print(line)
    if result.failed_step:
        print(f"nightly_feature_pipeline: step {result.failed_step} failed: {result.error}", file=sys.stderr)
    for problem in result.problems:
        print(f"nightly_feature_pipeline: {problem}", file=sys.stderr)
    return 0 if result.ok else 1


def run_once(options: PipelineOptions) -> int:
    """One flow run (against ``PREFECT_API_URL``, or a temporary server when none is set)."""
    flow = build_flow()
    try:
        result = flow(**options.as_parameters())
    except PipelineFailed as failed:
        return _report(failed.result)
    except Exception as exc:  # Prefect itself failed (server start-up, API): say so, exit 1
        print(f"nightly_feature_pipeline: the Prefect run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return _report(result)


def serve_schedule(cron: str = DEFAULT_CRON) -> Any:
    """The ``--serve`` schedule: ``cron`` in New York time (ValueError for a malformed cron string)."""
    from prefect.schedules import Cron

    return Cron(cron, timezone=SCHEDULE_TIMEZONE)


def serve(options: PipelineOptions, cron: str) -> int:
    """Register the ``nightly-served`` deployment at ``PREFECT_API_URL`` and run its scheduled flow runs here."""
    import httpx

    try:
        schedule = serve_schedule(cron)
    except ValueError as exc:
        print(f"nightly_feature_pipeline: --cron: {exc} (got {cron!r})", file=sys.stderr)
        return 2
    api_url = os.environ["PREFECT_API_URL"].rstrip("/")
    try:
        httpx.get(f"{api_url}/health", timeout=3.0).raise_for_status()
    except httpx.HTTPError as exc:
        print(f"nightly_feature_pipeline: no Prefect server at {api_url} ({exc}); start one with "
              f"`prefect server start` or set PREFECT_API_URL", file=sys.stderr)  # fmt: skip
        return 1
    build_flow().serve(name=SERVED_DEPLOYMENT_NAME, schedules=[schedule], parameters=options.as_parameters())
    return 0


@functools.cache
def build_flow() -> Any:
    """The Prefect flow (imports ``prefect``: set the environment first). Each step runs as a task, uncached."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    def call_as_task(name: str, fn: Any, *args: Any) -> Any:
        return task(fn, name=name, cache_policy=NO_CACHE, persist_result=False)(*args)

    def nightly_feature_pipeline(
        config: str = "config.yaml",
        data: str | None = None,
        symbols: list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        store: str | None = None,
        repo: str | None = None,
        tca_db: str | None = None,
        strategies: list[str] | None = None,
        models_dir: str | None = None,
        drift_threshold: float = DEFAULT_PSI_THRESHOLD,
        recent_sessions: int = DEFAULT_RECENT_SESSIONS,
        ib_port: int | None = None,
        dry_run: bool = False,
    ) -> PipelineResult:
        """bars -> bad-bar guard -> features -> Feast -> TCA ETL -> drift -> veto retrain (prefect_flows.steps)."""
        options = PipelineOptions(**{k: v for k, v in locals().items() if k in PipelineOptions.__dataclass_fields__})
        result = run_pipeline(build_settings(options), call=call_as_task)
        if not result.ok:
            raise PipelineFailed(result)
        return result

    return flow(nightly_feature_pipeline, name=FLOW_NAME, persist_result=False, log_prints=False)


def __getattr__(name: str) -> Any:
    """``nightly_feature_pipeline``, the flow object Prefect loads from ``prefect.yaml``'s entrypoint, built lazily."""
    if name == "nightly_feature_pipeline":
        return build_flow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
