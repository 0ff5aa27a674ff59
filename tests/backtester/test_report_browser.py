"""The reports as a person opens them: real headless Chromium renders report.html from a results folder (file://,
no network), every chart draws without a JavaScript error, and the screenshots are kept for a person to look at
under results/test_artifacts/ (git-ignored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testkit.browser import headless_page, require_chromium
from testkit.report_runs import run_halting

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "results" / "test_artifacts"
ALL_DRAWN = """() => {
  const divs = [...document.querySelectorAll('.chart .plotly-graph-div')];
  return divs.length > 0 && divs.every(d => d.classList.contains('js-plotly-plot') && d._fullLayout);
}"""

pytestmark = pytest.mark.browser


def _open(page: Any, path: Path) -> list[str]:
    """Open the page, wait until plotly has drawn every chart; the page's errors (uncaught, console.error)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("request", lambda req: errors.append(f"fetched: {req.url}") if not req.url.startswith(("file:", "data:"))
            else None)  # fmt: skip
    page.goto(path.resolve().as_uri())
    page.wait_for_function(ALL_DRAWN, timeout=30_000)
    return errors


def _texts(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


def test_backtest_report_renders_benchmark_trades_and_the_halt(tmp_path: Path) -> None:
    require_chromium()
    output = run_halting(ARTIFACTS / "backtest_report")
    with headless_page(1400, 900) as page:
        errors = _open(page, output.out_dir / "report.html")
        drawn = page.eval_on_selector_all(".js-plotly-plot", "nodes => nodes.map(n => n.id)")
        assert {"equity-chart", "drawdown-chart", "exposure-chart", "rolling-sharpe-chart", "price-chart",
                "trade-pnl-chart"} <= set(drawn)
        legend = _texts(page, "#equity-chart .legendtext")
        assert "Benchmark: buy-and-hold, equal weight" in legend and "Strategy" in legend
        assert "HALTED (trading state)" in legend
        assert "HALTED" in _texts(page, "#equity-chart .annotation-text")
        price_legend = _texts(page, "#price-chart .legendtext")
        assert "Entries" in price_legend and "Exits" in price_legend
        assert page.locator("#attention").is_visible()
        page.screenshot(path=str(ARTIFACTS / "backtest_report.png"), full_page=True)
        first = price_legend[0]
        page.locator("#price-chart .updatemenu-header-group").click()
        page.locator("#price-chart .updatemenu-dropdown-button").nth(1).click()
        page.wait_for_function(f"() => document.querySelector('#price-chart .legendtext').textContent !== "
                               f"{first!r}")
        assert _texts(page, "#price-chart .legendtext")[0].endswith(" close")
        page.locator("#trades-on-price").screenshot(path=str(ARTIFACTS / "backtest_report_second_symbol.png"))
    assert errors == []


def test_grid_search_report_renders_its_heatmaps(tmp_path: Path) -> None:
    require_chromium()
    out = ARTIFACTS / "grid_report"
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), "--config", str(REPO / "config.yaml"), "--strategy",
         "momentum", "--mode", "grid_search", "--out", str(out), "--symbols", "AAA,BBB,CCC,DDD", "--start",
         "2016-01-04", "--end", "2020-12-31", "--seed", "4", "--serial", "--grid", "roc_period=20,60,120",
         "--grid", "entry_roc_pct=2,5", "--grid", "trend_sma_period=50,100"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    with headless_page(1400, 900) as page:
        errors = _open(page, out / "report.html")
        drawn = page.eval_on_selector_all(".js-plotly-plot", "nodes => nodes.map(n => n.id)")
        assert "heatmap-param_entry_roc_pct-param_roc_period" in drawn and "pbo-logits" in drawn
        assert page.locator("#heatmap-param_entry_roc_pct-param_roc_period .hm, "
                            "#heatmap-param_entry_roc_pct-param_roc_period image").count() >= 1
        assert page.locator("#grid-trials tbody tr").count() == 12
        page.screenshot(path=str(ARTIFACTS / "grid_report.png"), full_page=True)
    assert errors == []
