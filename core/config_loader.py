"""The only reader of ``config.yaml``: validate once, report every problem at once.

``load_config`` returns a frozen ``AppConfig``; any problem raises ``ConfigError`` whose lines read
``section.key: rule (got value)``, with "did you mean …?" for unknown keys. ``--set KEY.PATH=VALUE`` overrides
are applied to the raw mapping *before* validation, so they are checked exactly like the file.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from core.config_models import AppConfig
from core.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings, so ``start: 2020-01-02`` is validated like any other text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> AppConfig:
    """Read, override and validate ``path``; raises ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the config file: {exc.strerror} (path {source!r})"]) from exc
    try:
        raw = _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"top level must be a mapping of sections (got {type(raw).__name__})"])
    problems: list[str] = []
    raw = apply_overrides(raw, overrides, problems)
    return validate_config(raw, source, problems)


def validate_config(raw: Mapping[str, Any], source: str = "<config>", problems: list[str] | None = None) -> AppConfig:
    problems = list(problems or [])
    config: AppConfig | None = None
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_format_errors(exc, raw))
    problems.extend(_cross_section_problems(raw))
    if problems:
        raise ConfigError(source, problems)
    assert config is not None  # no problems means validation succeeded
    return config


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str], problems: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``KEY.PATH=VALUE`` applied (VALUE parsed as YAML)."""
    result: dict[str, Any] = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in overrides:
        key_path, sep, value_text = item.partition("=")
        if not sep or not key_path.strip():
            problems.append(f"--set {item!r}: expected KEY.PATH=VALUE (e.g. portfolio.initial_capital=50000)")
            continue
        try:
            value = _parse_yaml(value_text) if value_text.strip() else value_text
        except yaml.YAMLError:
            value = value_text
        node = result
        parts = key_path.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                problems.append(f"--set {item!r}: {part} is a value, not a section")
                break
            node = child
        else:
            node[parts[-1]] = value
    return result


def config_id(config: AppConfig) -> str:
    """SHA-256 of the effective config, recorded with every result so a run can be traced to its settings."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _format_errors(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(_unknown_key_message(loc, err.get("input")))
            continue
        message = err["msg"].removeprefix("Value error, ")
        if "(got " in message:  # cross-field rules already name the values involved
            lines.append(f"{path}: {message}")
        else:
            lines.append(f"{path}: {message} (got {_lookup(raw, err['loc'])!r})")
    return lines


def _unknown_key_message(loc: list[str], value: Any) -> str:
    path = ".".join(loc)
    allowed = _allowed_keys(loc[:-1])
    hint = ""
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean {'.'.join([*loc[:-1], close[0]])!r}?"
    return f"{path}: unknown key (got {value!r}); allowed here: {', '.join(sorted(allowed))}{hint}"


def _allowed_keys(parent: list[str]) -> list[str]:
    model: type[BaseModel] = AppConfig
    for part in parent:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _lookup(raw: Any, loc: tuple[Any, ...]) -> Any:
    node = raw
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list | tuple) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return "<missing>" if node is raw else node
    return node


def _cross_section_problems(raw: Mapping[str, Any]) -> list[str]:
    """Rules spanning fields of different models; checked on the raw mapping so they are reported even when a
    nested section has its own errors (pydantic skips a parent's validator when a child fails)."""
    defaults = AppConfig()
    problems = []
    ib = raw.get("ib_connection") if isinstance(raw.get("ib_connection"), Mapping) else {}
    rm = raw.get("risk_monitor") if isinstance(raw.get("risk_monitor"), Mapping) else {}
    main_id = ib.get("main_client_id", defaults.ib_connection.main_client_id)
    monitor_id = rm.get("risk_monitor_client_id", defaults.risk_monitor.risk_monitor_client_id)
    if main_id == monitor_id:
        problems.append(
            "risk_monitor.risk_monitor_client_id: must differ from ib_connection.main_client_id so the monitor has "
            f"its own IB connection (got {monitor_id!r} for both)"
        )
    portfolio = raw.get("portfolio") if isinstance(raw.get("portfolio"), Mapping) else {}
    account_type = portfolio.get("account_type", defaults.portfolio.account_type)
    if portfolio.get("allow_short") is True and account_type == "cash":
        problems.append(
            "portfolio.allow_short: true needs portfolio.account_type: margin, a cash account cannot sell short "
            f"(got account_type {account_type!r})"
        )
    return problems
