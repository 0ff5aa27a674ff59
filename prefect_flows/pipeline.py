"""The order of the nightly steps, shared by the plain run and the Prefect flow (no Prefect import here).

``run_pipeline(settings, call)`` runs the steps of ``prefect_flows.steps`` in order through ``call(name, fn, *args)``:
``plain_call`` calls the function, the flow passes a caller that runs it as a Prefect task. The first step that
raises stops the run; the result names it. Problems that do not stop the run (a symbol the source had no bars for,
a veto that needs retraining without a trainer) are collected in ``PipelineResult.problems``: the run then ends
with exit status 1 too, so cron mails it and Prefect marks it failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect_flows import steps
from prefect_flows.settings import PipelineSettings

log = logging.getLogger(__name__)

STEP_NAMES = (
    "fetch_bars",
    "validate_bars",
    "compute_features",
    "publish_features",
    "tca_etl",
    "check_drift",
    "retrain_veto",
)
R = TypeVar("R")
StepCaller = Callable[..., Any]  # (name, fn, *args) -> fn(*args)'s report


def plain_call(name: str, fn: Callable[..., R], *args: Any) -> R:
    return fn(*args)


class StepFailed(Exception):
    """A step raised; ``step`` names it, the cause is chained."""

    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"step {step} failed: {type(error).__name__}: {error}")
        self.step = step
        self.error = error


@dataclass(slots=True)
class PipelineResult:
    reports: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed_step: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed_step is None and not self.problems

    def lines(self) -> list[str]:
        """One line per step (its time and summary, or why it did not run), then the problems."""
        out = []
        for name in STEP_NAMES:
            if name in self.reports:
                out.append(f"{name:<17} {self.seconds[name]:7.2f} s  {self.reports[name].summary()}")
            elif name == self.failed_step:
                out.append(f"{name:<17} {self.seconds.get(name, 0.0):7.2f} s  FAILED: {self.error}")
            else:
                out.append(f"{name:<17}      --    not run")
        return out + [f"problem: {p}" for p in self.problems]

    def summary(self) -> dict[str, str]:
        """JSON-friendly: step -> summary line (the Prefect flow's return value)."""
        return {name: self.reports[name].summary() for name in STEP_NAMES if name in self.reports}


def _problems(reports: dict[str, Any]) -> list[str]:
    problems = []
    fetched = reports.get("fetch_bars")
    if fetched is not None and fetched.failed:
        problems.append(f"fetch_bars: no bars for {list(fetched.failed)} from {fetched.source}")
    retrained = reports.get("retrain_veto")
    if retrained is not None and retrained.status == steps.TRAINER_NOT_AVAILABLE:
        problems.append(f"retrain_veto: {list(retrained.wanted)} need a veto model, but the trainer is not available "
                        f"(ml.ml_model_trainer could not be imported)")  # fmt: skip
    return problems


def run_pipeline(settings: PipelineSettings, call: StepCaller = plain_call) -> PipelineResult:
    """Run every step in order; never raises for a failing step (see ``PipelineResult.failed_step``)."""
    result = PipelineResult()

    def step(name: str, fn: Callable[..., R], *args: Any) -> R:
        started = time.perf_counter()
        try:
            report = call(name, fn, *args)
        except Exception as exc:
            result.seconds[name] = time.perf_counter() - started
            raise StepFailed(name, exc) from exc
        result.seconds[name] = time.perf_counter() - started
        result.reports[name] = report
        return report

    try:
        fetched = step("fetch_bars", steps.fetch_bars, settings)
        validated = step("validate_bars", steps.validate_bars, settings, fetched)
        computed = step("compute_features", steps.compute_features, settings, validated)
        step("publish_features", steps.publish_features, settings, computed)
        tca = step("tca_etl", steps.run_tca_etl, settings)
        drifted = step("check_drift", steps.check_drift, settings, computed, tca)
        step("retrain_veto", steps.retrain_veto, settings, drifted)
    except StepFailed as failure:
        result.failed_step, result.error = failure.step, f"{type(failure.error).__name__}: {failure.error}"
        log.error("event=pipeline_step_failed step=%s error=%r", failure.step, result.error, exc_info=failure.error)
    result.problems = _problems(result.reports)
    for problem in result.problems:
        log.warning("event=pipeline_problem %s", problem)
    return result
