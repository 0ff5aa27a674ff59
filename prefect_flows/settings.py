"""What one run of the nightly pipeline needs: the options a person (or a Prefect deployment) gives, resolved once
against the typed config into ``PipelineSettings``, with every problem reported at once as a ``ConfigError``.

``PipelineOptions`` holds only plain values (strings, numbers, lists) because it is also the Prefect flow's
parameters (a deployment stores them as JSON). ``build_settings`` is the only place that reads the config file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config_loader import load_config
from core.config_models import AppConfig
from core.errors import ConfigError, DataError
from ml.drift import DEFAULT_MIN_RECENT_SESSIONS, DEFAULT_PSI_THRESHOLD, DEFAULT_RECENT_SESSIONS
from ml.feature_store import FeatureRepo

IB = "ib"
SYNTHETIC = "synthetic"
DEFAULT_MODELS_DIR = "state/models"  # the veto config's default (strategies.<name>.veto.models_dir)
HISTORY_DURATION = "10 Y"  # first fetch of a symbol the bar store does not have yet
UPDATE_DURATION = "1 M"  # nightly top-up of a symbol it has (a month covers missed nights and late corrections)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineOptions:
    """The pipeline's knobs as plain values; ``None`` means "from the config" (see ``build_settings``)."""

    config: str = "config.yaml"
    data: str | None = None  # "ib" (None), "synthetic", or a folder: a bar store or per-symbol CSV files
    symbols: Sequence[str] | None = None
    start: str | None = None
    end: str | None = None
    store: str | None = None
    repo: str | None = None
    tca_db: str | None = None
    strategies: Sequence[str] | None = None
    models_dir: str | None = None
    drift_threshold: float = DEFAULT_PSI_THRESHOLD
    recent_sessions: int = DEFAULT_RECENT_SESSIONS
    ib_port: int | None = None
    dry_run: bool = False

    def as_parameters(self) -> dict[str, Any]:
        """JSON-friendly values for a Prefect flow run or deployment."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("symbols", "strategies"):
            values[name] = None if values[name] is None else list(values[name])
        return values


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    """A resolved run. ``store_dir`` accumulates IB bars night after night (data ``ib`` only); ``symbols`` empty
    means every symbol a folder holds."""

    config: AppConfig
    data: str
    symbols: tuple[str, ...]
    repo_path: Path
    store_dir: Path
    tca_db: Path
    strategies: tuple[str, ...] = ()
    models_dirs: Mapping[str, Path] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    drift_threshold: float = DEFAULT_PSI_THRESHOLD
    recent_sessions: int = DEFAULT_RECENT_SESSIONS
    min_recent_sessions: int = DEFAULT_MIN_RECENT_SESSIONS
    ib_port: int | None = None
    history_duration: str = HISTORY_DURATION
    update_duration: str = UPDATE_DURATION
    dry_run: bool = False
    created_ns: int | None = None  # created_timestamp of the features; None: the wall clock at compute time

    @property
    def trainer_data(self) -> str:
        """The data spec the veto trainer reads: the bar store for IB bars, else the pipeline's own source."""
        return str(self.store_dir) if self.data == IB else self.data


def veto_section(config: AppConfig, strategy: str) -> Any | None:
    """``strategies.<strategy>.veto`` when the config has one (``None`` before the veto config exists)."""
    return getattr(getattr(config.strategies, strategy, None), "veto", None)


def strategy_names(config: AppConfig) -> tuple[str, ...]:
    return tuple(type(config.strategies).model_fields)


def build_settings(options: PipelineOptions, config: AppConfig | None = None) -> PipelineSettings:
    """Resolve ``options`` against the config (read from ``options.config`` unless given).

    Raises ``ConfigError`` listing every problem, each naming the option or config key and the value.
    """
    config = config if config is not None else load_config(options.config)
    problems: list[str] = []
    data = _data_spec(options.data, problems)
    repo_path = _repo_path(options.repo, config, problems)
    strategies = _strategies(options.strategies, config, problems)
    if not options.drift_threshold > 0:
        problems.append(f"--drift-threshold: must be > 0 (got {options.drift_threshold})")
    if options.recent_sessions < DEFAULT_MIN_RECENT_SESSIONS:
        problems.append(f"--recent-sessions: must be at least {DEFAULT_MIN_RECENT_SESSIONS} "
                        f"(got {options.recent_sessions})")  # fmt: skip
    if options.start and options.end and options.end < options.start:
        problems.append(f"--end: must not be before --start (got {options.end!r} < {options.start!r})")
    symbols = tuple(options.symbols) if options.symbols else (() if data not in (IB, SYNTHETIC) else config.symbols)
    if data == IB and not symbols:
        problems.append("symbols: none configured and none given with --symbols (IB needs to know what to fetch)")
    if problems:
        raise ConfigError(options.config, problems)
    models_dirs = {s: Path(options.models_dir or getattr(veto_section(config, s), "models_dir", DEFAULT_MODELS_DIR))
                   for s in strategies}  # fmt: skip
    return PipelineSettings(
        config=config,
        data=data,
        symbols=symbols,
        repo_path=repo_path,
        store_dir=Path(options.store) if options.store else Path(config.system.state_dir) / "bar_store",
        tca_db=Path(options.tca_db) if options.tca_db else Path(config.system.results_dir) / "tca_log.duckdb",
        strategies=strategies,
        models_dirs=models_dirs,
        start=options.start,
        end=options.end,
        drift_threshold=options.drift_threshold,
        recent_sessions=options.recent_sessions,
        ib_port=options.ib_port,
        dry_run=options.dry_run,
    )


def _data_spec(data: str | None, problems: list[str]) -> str:
    if data is None or data == IB:
        return IB
    if data == SYNTHETIC:
        return SYNTHETIC
    if not Path(data).is_dir():
        problems.append(f"--data: must be 'ib', 'synthetic' or an existing folder (a bar store or per-symbol CSV "
                        f"files) (got {data!r})")  # fmt: skip
    return data


def _repo_path(repo: str | None, config: AppConfig, problems: list[str]) -> Path:
    key = "--repo" if repo else "features.repo_path"
    value = repo or config.features.repo_path
    try:
        return FeatureRepo(value).repo_path
    except DataError as exc:
        problems.append(f"{key}: {exc} (got {value!r})")
        return Path(value)


def _strategies(names: Sequence[str] | None, config: AppConfig, problems: list[str]) -> tuple[str, ...]:
    known = strategy_names(config)
    if names is None:
        return tuple(s for s in known if getattr(veto_section(config, s), "enabled", False))
    unknown = [s for s in names if s not in known]
    if unknown:
        problems.append(f"--strategies: unknown {unknown}; known: {list(known)}")
    return tuple(dict.fromkeys(s for s in names if s in known))
