"""``python -m tca.report`` end to end in a real subprocess: exit codes, the printed table, the HTML file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from tca_builders import DECISION_TS, make_execution, make_unfilled

from tca.logger import write_records

REPO = Path(__file__).resolve().parents[2]
DAY_NS = 86_400 * 10**9


def _report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tca.report", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A log with MKT, TWAP and MOC orders (MOC partly filled, rest cancelled) on two days and two sources."""
    path = tmp_path / "tca.duckdb"
    records = []
    for i, (algo, price) in enumerate([("MKT", 10.02), ("MKT", 10.03), ("TWAP", 10.01), ("TWAP", 9.99)]):
        records.append(make_execution(exec_id=f"E{i}", client_order_id=f"O{i}", algo=algo, price=price,
                                      decision_ts=DECISION_TS + i))  # fmt: skip
    records.append(
        make_execution(
            exec_id="E9",
            client_order_id="O9",
            algo="MOC",
            order_quantity=200,
            decision_ts=DECISION_TS + DAY_NS,
            arrival_ts=None,
            fill_ts=DECISION_TS + DAY_NS,
        )
    )
    records.append(make_unfilled(client_order_id="O9", algo="MOC", order_quantity=200, end_price=10.1,
                                 decision_ts=DECISION_TS + DAY_NS))  # fmt: skip
    records.append(make_execution(exec_id="B1", client_order_id="B1", algo="LMT", source="backtest"))
    write_records(records, path)
    return path


def test_prints_the_per_algo_table_and_writes_a_self_contained_html_report(db: Path, tmp_path: Path) -> None:
    html_path = tmp_path / "out" / "tca.html"
    result = _report("--db", db, "--html", html_path)
    assert result.returncode == 0, result.stderr
    header, _rule, *rows = result.stdout.splitlines()[:-1]
    assert header.split()[:3] == ["algo", "count", "mean"]
    assert {row.split()[0]: row.split()[1] for row in rows} == {"LMT": "1", "MKT": "2", "MOC": "1", "TWAP": "2"}
    mkt = next(row for row in rows if row.startswith("MKT"))
    # MKT: fills at 10.02 and 10.03 on decision = arrival 10.00 → 20 and 30 bps, +10 bps fees each (1.00 / 1,000)
    assert mkt.split()[2] == "35.00"
    assert result.stdout.splitlines()[-1] == f"html report: {html_path}"
    page = html_path.read_text(encoding="utf-8")
    for algo in ("MKT", "TWAP", "MOC", "LMT"):
        assert f"<td>{algo}</td>" in page and f"{algo}: total shortfall per order" in page
    assert page.count("<svg") == 4
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_since_and_source_filter_the_orders(db: Path) -> None:
    later = _report("--db", db, "--since", "2024-05-02", "--source", "sim")
    assert later.returncode == 0, later.stderr
    assert [row.split()[0] for row in later.stdout.splitlines()[2:]] == ["MOC"]
    backtest = _report("--db", db, "--source", "backtest")
    assert [row.split()[0] for row in backtest.stdout.splitlines()[2:]] == ["LMT"]


def test_an_empty_log_prints_no_executions(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    write_records([], empty)
    result = _report("--db", empty, "--html", tmp_path / "x.html")
    assert (result.returncode, result.stdout, result.stderr) == (0, "no executions\n", "")
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "May 1st"], "--since: must be a date YYYY-MM-DD"),
        (["--source", "prod"], "--source: invalid choice"),
        (["--resamples", "0"], "--resamples: must be a whole number > 0"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(db: Path, args: list[str], message: str) -> None:
    result = _report("--db", db, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_a_missing_log_is_a_usage_error_and_a_foreign_file_a_failure(tmp_path: Path) -> None:
    missing = _report("--db", tmp_path / "nope.duckdb")
    assert missing.returncode == 2 and "no TCA log there" in missing.stderr
    foreign = tmp_path / "other.duckdb"
    with duckdb.connect(str(foreign)) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    result = _report("--db", foreign)
    assert result.returncode == 1 and "not a TCA log" in result.stderr and len(result.stderr.splitlines()) == 1
