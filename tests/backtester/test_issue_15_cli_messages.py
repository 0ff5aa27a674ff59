"""Issue 15: every run_backtest error names the flag or file to change, and what a person must know about a
run's inputs (a window shorter than the warm-up, synthetic symbol names) is said on stderr and in the summary.

The CLI runs through ``run_backtest.main([...])`` (the same parse -> config -> run path as the command); one
test runs it as a real subprocess. Usage and config errors exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import run_backtest
from data.calendar import TradingCalendar
from data.synthetic import generate_market

REPO = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(REPO / "config.yaml"), "--no-tca"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``run_backtest.main`` with ``args``: (exit code, stderr); an argparse refusal is exit code 2 too."""
    try:
        code = run_backtest.main([*CONFIG, "--strategy", "momentum", *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def write_csv(folder: Path, name: str, start: str, end: str, seed: int = 1) -> Path:
    """A per-symbol CSV of guard-clean daily bars (the synthetic market's), as a user would have one."""
    folder.mkdir(parents=True, exist_ok=True)
    (frame,) = generate_market(["X"], start, end, seed, TradingCalendar()).values()
    path = folder / name
    frame.rename_axis("date").to_csv(path)
    return path


def test_issue_15_two_files_for_one_symbol_name_both_and_the_flags_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bars"
    write_csv(data, "orcl-2022.csv", "2022-01-03", "2022-12-30")
    write_csv(data, "orcl-2023.csv", "2023-01-03", "2023-12-29")
    write_csv(data, "msft.csv", "2022-01-03", "2023-12-29")
    code, err = run(capsys, "--data", str(data), "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert "orcl-2022.csv" in err and "orcl-2023.csv" in err and "ORCL" in err
    assert f"--data {data / 'orcl-2022.csv'}" in err  # one file as the data
    assert "--symbols MSFT" in err  # or leave the ambiguous symbol out
    assert "files=" not in err  # no Python advice on the command line


def test_issue_15_start_after_the_synthetic_data_names_start_and_the_last_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "--start", "2030-01-01", "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert "--start 2030-01-01" in err and "after the data's last session" in err
    assert "TradingCalendar" not in err  # no Python advice
    code, err = run(capsys, "--start", "2030-01-01", "--end", "2031-06-30", "--out", str(tmp_path / "out"))
    assert code == 2 and "--start 2030-01-01" in err and "--end 2031-06-30" in err and "outside" in err


def test_issue_15_window_outside_csv_data_says_where_the_data_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path, "msft.csv", "2023-01-03", "2024-12-31")
    code, err = run(capsys, "--data", str(csv), "--start", "2025-06-01", "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert "--start 2025-06-01" in err and "2023-01-03..2024-12-31" in err and "last session 2024-12-31" in err
    code, err = run(capsys, "--data", str(csv), "--end", "2020-06-01", "--out", str(tmp_path / "out"))
    assert code == 2 and "--end 2020-06-01" in err and "first session 2023-01-03" in err
    code, err = run(capsys, "--data", str(csv), "--mode", "grid_search", "--start", "2025-06-01",
                    "--out", str(tmp_path / "grid"))  # fmt: skip
    assert code == 2 and "--start 2025-06-01" in err  # refused before any trial runs, not 27 failed trials


@pytest.mark.parametrize("flag", ["--start", "--end"])
def test_issue_15_dates_must_be_iso(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, flag, "01/02/2020", "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"argument {flag}" in err and "YYYY-MM-DD" in err and "01/02/2020" in err


def test_issue_15_unknown_set_key_names_set_and_the_full_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "--set", "roc_period=20", "--out", str(tmp_path / "out"))
    assert code == 2
    assert "--set 'roc_period=20'" in err and "did you mean 'strategies.momentum.params.roc_period'" in err
    code, err = run(capsys, "--set", "portfolio.initial_captial=5000", "--out", str(tmp_path / "out"))
    assert code == 2 and "did you mean 'portfolio.initial_capital'" in err


def test_issue_15_window_shorter_than_the_warm_up_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:  # fmt: skip
    out = tmp_path / "month"
    code, err = run(capsys, "--start", "2024-01-02", "--end", "2024-01-31", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    (warmup,) = [w for w in summary["warnings"] if w.startswith("warm-up")]
    assert "21 sessions" in warmup and "trend_sma_period" in warmup and "--start" in warmup
    assert summary["sharpe"] is None
    assert f"warning: {warmup}" in err

    long_out = tmp_path / "years"
    code, _ = run(capsys, "--start", "2020-01-02", "--end", "2022-12-30", "--out", str(long_out))
    assert code == 0
    assert not [w for w in json.loads((long_out / "summary.json").read_text())["warnings"] if "warm-up" in w]


def test_issue_15_synthetic_symbols_are_called_labels(tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), *CONFIG, "--strategy", "momentum", "--symbols", "AAPL,GOOG",
         "--start", "2022-01-03", "--end", "2023-12-29", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_source"].startswith("synthetic(") and "labels only" in summary["data_source"]
    (note,) = [w for w in summary["warnings"] if w.startswith("synthetic data")]
    assert "AAPL, GOOG are labels on generated prices" in note and "--data" in note
    assert f"run_backtest: warning: {note}" in proc.stderr

    csv = write_csv(tmp_path, "aapl.csv", "2022-01-03", "2023-12-29")
    real = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), *CONFIG, "--strategy", "momentum", "--data", str(csv),
         "--out", str(tmp_path / "real")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert "synthetic" not in real.stderr
    assert json.loads((tmp_path / "real" / "summary.json").read_text())["warnings"] == []
