"""The only reader of ``config.yaml``: validate once, report every problem at once.

``load_config`` returns a frozen ``AppConfig``; any problem raises ``ConfigError`` whose lines read
``section.key: rule (got value)``, with "did you mean …?" for unknown keys. ``--set KEY.PATH=VALUE`` overrides
are applied to the raw mapping *before* validation, so they are checked exactly like the file. The file must be
UTF-8, non-empty, a mapping, and without repeated keys (``read_yaml_mapping``, which other YAML settings files
can share). The entry points' own arguments are checked here too (``ArgumentParser``, ``port_arg``...), so a
bad ``--port`` fails like a bad ``ib_connection.port``: one line naming it, exit 2.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import functools
import hashlib
import json
import math
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from core.config_models import AppConfig, iso_date
from core.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings, so ``start: 2020-01-02`` is validated like any other text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple = 2, 6, 6, 6
    short.maxstring = short.maxother = 100
    return short


_SHORT = _short_repr()


def _got(value: Any) -> str:
    """A "got" value on one short line, even for a whole section or a YAML alias bomb (repr would expand it)."""
    text = _SHORT.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def read_yaml_mapping(path: str | Path, what: str = "config") -> tuple[dict[str, Any], list[str]]:
    """The top-level mapping of the YAML file ``path`` and the duplicate-key problems found in it.

    Raises ConfigError when the file cannot be read, is not UTF-8, is not YAML, is empty (a truncated or wrong
    file must not start the system on defaults; ``{}`` says "every default" on purpose) or is not a mapping.
    Duplicate keys are returned rather than raised, so they are reported together with the values' problems.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the {what} file: {exc.strerror} (path {source!r})"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, [
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} (offset {exc.start}) cannot be decoded; "
            f"save the {what} file as UTF-8"
        ]) from exc  # fmt: skip
    raw, duplicates = _parse_yaml(text, source)
    if raw is None:
        raise ConfigError(source, [
            f"the {what} file is empty (no settings at all); it is refused so that a truncated or wrong file cannot "
            "start on defaults; write {} to mean every default"
        ])  # fmt: skip
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"top level must be a mapping of section: settings (got {type(raw).__name__})"])
    return raw, duplicates


def _parse_yaml(text: str, source: str) -> tuple[Any, list[str]]:
    """The document in ``text`` and one problem per repeated key (plain YAML keeps the last one silently)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node) if node is not None else []
        return (loader.construct_document(node) if node is not None else None), duplicates
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    finally:
        loader.dispose()


def _duplicate_keys(root: yaml.Node) -> list[str]:
    """``path.key: duplicate key on lines A and B`` for every repeat, walking each node once (aliases share)."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[str]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += [(child, [*path, str(i)]) for i, child in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                line = key_node.start_mark.line + 1
                if key is not None and key in first_line:
                    problems.append(
                        f"{'.'.join([*path, key])}: duplicate key on lines {first_line[key]} and {line}; YAML would "
                        "silently keep the last one, so keep only the one you mean"
                    )
                elif key is not None:
                    first_line[key] = line
                stack.append((value_node, [*path, key if key is not None else "?"]))
    return sorted(problems)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> AppConfig:
    """Read, override and validate ``path``; raises ConfigError listing every problem."""
    raw, problems = read_yaml_mapping(path)
    raw = apply_overrides(raw, overrides, problems)
    return validate_config(raw, str(path), problems)


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
    """Return a copy of ``raw`` with each ``KEY.PATH=VALUE`` applied (VALUE parsed as YAML, so ``5`` is a number and
    ``'5'`` text, exactly as in the file). A deep copy, not a JSON round trip: that would expand YAML aliases."""
    result: dict[str, Any] = copy.deepcopy(raw) if raw else {}
    for item in overrides:
        key_path, sep, value_text = item.partition("=")
        if not sep or not key_path.strip():
            problems.append(f"--set {item!r}: expected KEY.PATH=VALUE (e.g. portfolio.initial_capital=50000)")
            continue
        unknown = unknown_override_key(key_path.strip())
        if unknown:
            problems.append(f"--set {item!r}: {unknown}")
            continue
        value = _override_value(item, value_text, problems)
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


def unknown_override_key(key_path: str) -> str | None:
    """Why ``key_path`` names no setting, with the closest real keys; None when it does (or leads into a
    free-form mapping such as a strategy's ``grid``, whose keys the field's own rule judges)."""
    model: type[BaseModel] = AppConfig
    parts = key_path.split(".")
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = ".".join(parts[:depth]) or "the top level"
            close = _closest_keys(key_path, part)
            if close:
                return f"unknown key {part!r} in {where}; did you mean {' or '.join(repr(c) for c in close)}?"
            return (f"unknown key {part!r} in {where}; allowed there: {', '.join(sorted(model.model_fields))} "
                    "(KEY.PATH is the full path from the top, e.g. portfolio.initial_capital)")  # fmt: skip
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return None


@functools.cache
def all_key_paths() -> tuple[str, ...]:
    """Every setting's full dotted path (``strategies.momentum.params.roc_period``...), for "did you mean"."""
    paths: list[str] = []
    stack: list[tuple[type[BaseModel], str]] = [(AppConfig, "")]
    while stack:
        model, prefix = stack.pop()
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                stack.append((annotation, f"{path}."))
            else:
                paths.append(path)
    return tuple(sorted(paths))


def _closest_keys(key_path: str, part: str, n: int = 3) -> list[str]:
    """Settings whose last name is ``part`` (``roc_period`` -> ``strategies.momentum.params.roc_period``), else
    whose last name or full path is close to it (difflib)."""
    paths = all_key_paths()
    exact = [p for p in paths if p.rsplit(".", 1)[-1] == part]
    if exact:
        return exact[:n]
    by_leaf = {p.rsplit(".", 1)[-1]: p for p in paths}
    close = [by_leaf[leaf] for leaf in difflib.get_close_matches(part, list(by_leaf), n=n, cutoff=0.75)]
    return close or difflib.get_close_matches(key_path, paths, n=n, cutoff=0.6)


def _override_value(item: str, value_text: str, problems: list[str]) -> Any:
    if not value_text.strip():
        return value_text
    try:
        value, duplicates = _parse_yaml(value_text, f"--set {item!r}")
    except ConfigError:
        return value_text  # not YAML: taken as text, which the field's rule then judges
    problems.extend(f"--set {item!r}: {line}" for line in duplicates)
    return value


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
        message = _RULE_TEXT.get(err["type"], err["msg"].removeprefix("Value error, "))
        if "(got " in message:  # cross-field rules already name the values involved
            lines.append(f"{path}: {message}")
        else:
            lines.append(f"{path}: {message} (got {_got(_lookup(raw, err['loc']))})")
    return lines


_RULE_TEXT = {  # pydantic's wording where it does not say what is allowed
    "finite_number": "must be a finite number; .inf and .nan are not allowed",
}


def _unknown_key_message(loc: list[str], value: Any) -> str:
    path = ".".join(loc)
    allowed = _allowed_keys(loc[:-1])
    hint = ""
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean {'.'.join([*loc[:-1], close[0]])!r}?"
    elif elsewhere := _closest_keys(path, loc[-1]):  # a setting put in the wrong section
        hint = f"; did you mean {' or '.join(repr(c) for c in elsewhere)}?"
    return f"{path}: unknown key (got {_got(value)}); allowed here: {', '.join(sorted(allowed))}{hint}"


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


# -- command-line values, held to the same rules as the file ----------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the entry points: a bad argument is one line on stderr naming it, and exit 2 (the house CLI
    rule); argparse's default prints the whole usage first, which buries the reason."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def port_arg(text: str) -> int:
    """argparse type: a TCP port 1-65535 (``--port 99999`` would otherwise make every connect attempt fail)."""
    value = _int_arg(text, "a whole number from 1 to 65535")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 65535 (got {text!r})")
    return value


def positive_seconds_arg(text: str) -> float:
    """argparse type: a finite number of seconds > 0 (``inf`` and ``nan`` parse as floats but mean nothing)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, e.g. 60 (got {text!r})")
    return value


def positive_int_arg(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = _int_arg(text, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


def non_negative_int_arg(text: str) -> int:
    """argparse type: a whole number >= 0 (seeds: numpy refuses negative ones)."""
    value = _int_arg(text, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0 (got {text!r})")
    return value


def date_arg(text: str) -> str:
    """argparse type: a date ``YYYY-MM-DD``, kept as text like the config's dates."""
    try:
        return str(iso_date(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _int_arg(text: str, allowed: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {allowed} (got {text!r})") from None
