"""The research CLI as a user runs it: files written, summary keys documented, modes not yet built refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtester.job import SUMMARY_KEYS

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), "--config", str(REPO / "config.yaml"), *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )


def test_synthetic_backtest_writes_every_artifact_with_documented_summary_keys(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("--strategy", "mean_reversion", "--symbols", "AAA,BBB,CCC", "--start", "2019-01-02",
               "--end", "2022-12-30", "--seed", "3", "--out", str(out),
               "--set", "portfolio.initial_capital=50000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(f"results: {out}")
    summary = json.loads((out / "summary.json").read_text())
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing
    assert summary["symbols"] == ["AAA", "BBB", "CCC"]
    assert summary["initial_capital"] == 50000
    assert summary["overrides"] == ["portfolio.initial_capital=50000"]
    assert summary["start"] >= "2019-01-02" and summary["end"] <= "2022-12-30"
    equity = pd.read_csv(out / "equity.csv")
    assert equity["equity"].iloc[-1] == pytest.approx(summary["final_equity"])
    trades = pd.read_csv(out / "trades.csv")
    assert len(trades) == summary["n_trades"]
    html = (out / "report.html").read_text()
    assert "equity-chart" in html and "drawdown-chart" in html and "monthly-returns" in html


def test_same_seed_same_result_and_fingerprint(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert cli("--strategy", "momentum", "--seed", "5", "--out", str(out), cwd=tmp_path).returncode == 0
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["data_fingerprint"] == sb["data_fingerprint"]
    assert sa["final_equity"] == sb["final_equity"] and sa["config_id"] == sb["config_id"]
    c = tmp_path / "c"
    assert cli("--strategy", "momentum", "--seed", "6", "--out", str(c), cwd=tmp_path).returncode == 0
    assert json.loads((c / "summary.json").read_text())["data_fingerprint"] != sa["data_fingerprint"]


def test_missing_data_folder_is_a_clear_failure(tmp_path: Path) -> None:
    proc = cli("--strategy", "momentum", "--data", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "nowhere" in proc.stderr


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (real market data; CI has it)")
def test_real_csv_file_backtest(tmp_path: Path) -> None:
    out = tmp_path / "yhoo"
    proc = cli("--strategy", "sma_crossover", "--data", str(SHARED / "yhoo-2003-2005.txt"), "--out", str(out),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["symbols"] == ["YHOO"]
    assert summary["bars_processed"] == 756
    assert summary["start"] == "2003-01-02" and summary["end"] == "2005-12-30"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data (real market data; CI has it)")
def test_damaged_csv_bars_are_quarantined_and_never_traded(tmp_path: Path) -> None:
    lines = (SHARED / "yhoo-2003-2005.txt").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    damaged = list(rows)
    damaged[100] = ",".join([rows[100].split(",")[0], "nan", *rows[100].split(",")[2:]])  # NaN open
    cols = rows[200].split(",")
    damaged[200] = ",".join([cols[0], cols[1], cols[2], cols[3], "-1.0", *cols[5:]])  # negative close
    damaged.insert(301, rows[300])  # duplicate date
    cols = rows[400].split(",")
    damaged[401] = ",".join([cols[0], cols[1], cols[3], cols[2], *cols[4:]])  # high < low (swapped)
    damaged[501] = rows[500].replace(",", ";", 2)  # unparsable row (index shifted by the duplicate)
    folder = tmp_path / "bars"
    folder.mkdir()
    (folder / "yhoo.csv").write_text("\n".join([header, *damaged]) + "\n")
    bad_dates = {rows[i].split(",")[0] for i in (100, 200, 400, 500)}
    out = tmp_path / "out"
    proc = cli("--strategy", "sma_crossover", "--data", str(folder), "--out", str(out),
               "--log-level", "WARNING", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quarantined_bars"] == 5
    assert summary["bars_processed"] == 756 - 4
    assert proc.stderr.count("event=bar_quarantined") >= 5
    fills = pd.read_csv(out / "fills.csv")
    assert not set(fills["date"].str[:10]) & bad_dates


def test_backtest_from_a_parquet_bar_store_matches_the_csv_folder(tmp_path: Path) -> None:
    from data.bar_store import BarStore
    from data.calendar import TradingCalendar
    from data.synthetic import generate_market

    calendar = TradingCalendar()
    frames = generate_market(["AAA", "BBB"], "2019-01-02", "2021-12-31", 9, calendar)
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    store = BarStore(tmp_path / "store", calendar)
    for symbol, frame in frames.items():
        frame.rename_axis("date").to_csv(csv_dir / f"{symbol}.csv")
        store.write(symbol, frame)
    results = {}
    for name, data in (("csv", csv_dir), ("store", tmp_path / "store")):
        out = tmp_path / f"out-{name}"
        proc = cli("--strategy", "momentum", "--data", str(data), "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        results[name] = json.loads((out / "summary.json").read_text())
    assert results["store"]["data_source"].startswith("bar_store(")
    assert results["store"]["data_fingerprint"] == results["csv"]["data_fingerprint"]
    assert results["store"]["final_equity"] == results["csv"]["final_equity"]
    assert results["store"]["n_trades"] == results["csv"]["n_trades"] > 0


def test_issue_15_a_missing_session_and_refusals_are_in_the_console_and_the_summary(tmp_path: Path) -> None:
    """A day removed from a file is counted per symbol (summary.json and the console), and orders refused by a
    check are listed in the console table, not only in summary.json."""
    import numpy as np
    import pandas as pd

    from data.calendar import TradingCalendar

    days = TradingCalendar().sessions("2021-01-04", "2022-12-30")
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    for symbol in ("AAA", "BBB"):
        close = 50 * np.cumprod(1 + rng.normal(0.0004, 0.02, len(days)))
        frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                              "volume": 1e6}, index=days)  # fmt: skip
        if symbol == "AAA":
            frame = frame.drop(days[100])
        frame.index.name = None
        frame.to_csv(data / f"{symbol}.csv")
    out = tmp_path / "out"
    proc = cli("--strategy", "sma_crossover", "--data", str(data), "--out", str(out),
               "--set", "portfolio.risk.max_position_weight_pct=1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing_sessions"] == {"AAA": {"count": 1, "first": [str(days[100].date())]}}
    assert summary["missing_sessions_total"] == 1
    assert "sessions missing" in proc.stdout and str(days[100].date()) in proc.stdout
    if summary["rejections"]:
        assert "orders refused" in proc.stdout
