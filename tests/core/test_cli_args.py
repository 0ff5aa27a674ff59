"""Entry-point arguments are held to the rules of the config keys they stand for (issue 12).

``main.py --port 99999`` used to pass argparse (``type=int``) and then fail every connect attempt with
OverflowError, forever. Every bad argument must instead stop the program before it does anything: exit 2 and one
line on stderr naming the argument, from each of the four entry points. Real subprocesses, as an operator runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESEARCH = [["run_backtest.py", "--strategy", "momentum"], ["run_recalibration.py", "--strategy", "momentum"]]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


def assert_refused(proc: subprocess.CompletedProcess[str], argument: str, *shown: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"argument {argument}" in lines[0]
    assert all(text in lines[0] for text in shown), lines[0]


@pytest.mark.parametrize(
    ("args", "argument", "shown"),
    [
        (["--port", "99999"], "--port", "'99999'"),
        (["--port", "0"], "--port", "'0'"),
        (["--port", "-1"], "--port", "'-1'"),
        (["--port", "4002.5"], "--port", "'4002.5'"),
        (["--port", "abc"], "--port", "'abc'"),
        (["--duration", "inf"], "--duration", "'inf'"),
        (["--duration", "nan"], "--duration", "'nan'"),
        (["--duration", "0"], "--duration", "'0'"),
        (["--duration", "-5"], "--duration", "'-5'"),
        (["--duration", "ten"], "--duration", "'ten'"),
        (["--duration"], "--duration", "expected one argument"),
    ],
)
def test_issue_12_main_refuses_bad_arguments_before_connecting(
    tmp_path: Path, args: list[str], argument: str, shown: str
) -> None:
    assert_refused(run("main.py", "--config", str(REPO / "config.yaml"), *args, cwd=tmp_path), argument, shown)


def test_main_refuses_an_unknown_argument_on_one_line(tmp_path: Path) -> None:
    proc = run("main.py", "--prot", "4002", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--prot" in proc.stderr and "--help" in proc.stderr


@pytest.mark.parametrize("port", ["70000", "0", "x"])
def test_issue_12_risk_monitor_refuses_a_bad_port(tmp_path: Path, port: str) -> None:
    assert_refused(run("risk_monitor.py", "--port", port, cwd=tmp_path), "--port", f"'{port}'")


@pytest.mark.parametrize("entry", RESEARCH, ids=lambda e: e[0])
@pytest.mark.parametrize(
    ("args", "argument", "shown"),
    [
        (["--seed", "-1"], "--seed", "'-1'"),
        (["--seed", "1.5"], "--seed", "'1.5'"),
        (["--workers", "0"], "--workers", "'0'"),
        (["--start", "2020-13-01"], "--start", "'2020-13-01'"),
        (["--end", "yesterday"], "--end", "'yesterday'"),
        (["--start", "2021-01-04", "--end", "2020-01-02"], "--end", "2021-01-04"),
        (["--symbols", "AAPL,MS FT"], "--symbols", "'AAPL,MS FT'"),
        (["--symbols", "AAPL,aapl"], "--symbols", "'AAPL,aapl'"),
        (["--symbols", ","], "--symbols", "','"),
        (["--scheduler", "localhost"], "--scheduler", "'localhost'"),
        (["--scheduler", "tcp://127.0.0.1:99999"], "--scheduler", "'tcp://127.0.0.1:99999'"),
        (["--log-level", "LOUD"], "--log-level", "'LOUD'"),
    ],
)
def test_issue_12_research_entry_points_refuse_bad_arguments(
    tmp_path: Path, entry: list[str], args: list[str], argument: str, shown: str
) -> None:
    assert_refused(run(*entry, *args, cwd=tmp_path), argument, shown)


def test_good_arguments_still_parse(tmp_path: Path) -> None:
    """The same rules let a valid command line through (here to the config check, which then stops it)."""
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("portfolio:\n  initial_capital: .inf\n")
    research = [*RESEARCH[0], "--seed", "0", "--workers", "2", "--start", "2020-01-02", "--end", "2020-01-02",
                "--symbols", "aapl, msft", "--scheduler", "tcp://127.0.0.1:8786"]  # fmt: skip
    for script, *args in (
        ["main.py", "--port", "4002", "--duration", "0.5"],
        ["risk_monitor.py", "--port", "1"],
        research,
    ):
        proc = run(script, *args, "--config", str(bad_config), cwd=tmp_path)
        assert proc.returncode == 2 and "portfolio.initial_capital" in proc.stderr, (script, proc.stderr)
        assert "argument --" not in proc.stderr


@pytest.mark.parametrize("script", ["main.py", "risk_monitor.py"])
def test_a_log_dir_that_is_a_file_exits_2_naming_the_key(tmp_path: Path, script: str) -> None:
    (tmp_path / "logs").write_text("not a folder")
    proc = run(script, "--config", str(REPO / "config.yaml"), "--set", f"system.log_dir={tmp_path / 'logs'}",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "system.log_dir" in proc.stderr and "is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr and (tmp_path / "logs").read_text() == "not a folder"
