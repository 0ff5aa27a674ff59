"""The costs panel (``dashboard.costs``) reads a real TCA log (DuckDB) written through ``tca.logger``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tca"))

from tca_builders import make_execution

from dashboard.costs import read_costs
from tca.logger import TcaStore


def test_no_log_yet_says_where_it_will_be(tmp_path: Path) -> None:
    costs = read_costs(tmp_path / "tca_log.duckdb")
    assert not costs["available"] and "no TCA log yet" in costs["detail"]


def test_a_log_gives_shortfall_per_algo_and_per_symbol(tmp_path: Path) -> None:
    db = tmp_path / "tca_log.duckdb"
    TcaStore(db).write_records([make_execution(exec_id=f"E{i}", client_order_id=f"O{i}", price=10.0 + i / 100)
                                for i in range(3)])  # fmt: skip
    costs = read_costs(db)
    assert costs["available"], costs
    assert [r["count"] for r in costs["by_algo"]] == [3]
    assert sum(r["count"] for r in costs["by_symbol"]) == 3
    assert isinstance(costs["by_algo"][0]["mean_total_bps"], float)
