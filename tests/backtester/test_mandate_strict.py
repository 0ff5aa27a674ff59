"""The promotion mandate is as strict as the config: no rule can be switched off by ``.inf``, ``true``, text, a
repeated key or an empty file (each a ConfigError naming the rule; ``run_recalibration.py`` exits 2 on it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtester.mandate import load_mandate
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "validation_mandate.yaml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "mandate.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_the_shipped_mandate_loads() -> None:
    assert load_mandate(REPO / "validation_mandate.yaml").max_pbo > 0


@pytest.mark.parametrize(("value", "says"), [
    (".inf", "finite"), (".nan", "finite"), ("true", "true/false"), ("'0.5'", "text"),
])  # fmt: skip
def test_a_rule_cannot_be_switched_off(tmp_path: Path, value: str, says: str) -> None:
    text = "\n".join(f"max_pbo: {value}" if line.startswith("max_pbo:") else line for line in SHIPPED.splitlines())
    with pytest.raises(ConfigError, match=rf"max_pbo: .*{says}"):
        load_mandate(write(tmp_path, text))


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"), (b"min_dsr: 0.5\nmin_dsr: \xe9\n", "UTF-8"), ("- 1\n- 2\n", "mapping"),
])  # fmt: skip
def test_a_broken_file_is_refused_with_a_message(tmp_path: Path, text: str | bytes, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_mandate(write(tmp_path, text))


def test_a_repeated_rule_names_both_lines(tmp_path: Path) -> None:
    line = next(line for line in SHIPPED.splitlines() if line.startswith("min_dsr:"))
    with pytest.raises(ConfigError, match=r"min_dsr: duplicate key on lines \d+ and \d+"):
        load_mandate(write(tmp_path, SHIPPED + "\n" + line + "\n"))
