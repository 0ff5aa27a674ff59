"""Research-report plotly charts: what each draws (read back from the page JSON), and calm about empty or NaN input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtester.research_charts import bar_chart, fan_chart, heatmap_chart, histogram_chart, parameter_path_chart
from testkit.plotly_page import plotly_figures


def _figure(chart_html: str, div_id: str) -> tuple[list[dict], dict]:
    return plotly_figures(chart_html)[div_id]


def _fan_frame(n_days: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = 1e6 * np.cumprod(1 + rng.normal(0.0003, 0.01, (500, n_days)), axis=1)
    table = np.percentile(paths, [5, 25, 50, 75, 95], axis=0).T
    return pd.DataFrame(table, columns=["p5", "p25", "p50", "p75", "p95"], index=pd.RangeIndex(n_days, name="day"))


# --- fan chart ------------------------------------------------------------------------------------------------------


def test_fan_chart_draws_two_bands_a_median_and_the_backtest_on_dates() -> None:
    frame = _fan_frame(50)
    frame.index = pd.bdate_range("2021-01-04", periods=50)
    actual = pd.Series(np.linspace(1e6, 1.1e6, 50), index=frame.index)
    traces, layout = _figure(fan_chart(frame, div_id="mc-fan", title="Block bootstrap", actual=actual), "mc-fan")
    names = [t["name"] for t in traces]
    assert names == ["p95", "5–95 % of paths", "p75", "25–75 % of paths", "median path", "the backtest"]
    assert [t.get("fill") for t in traces[:4]] == [None, "tonexty", None, "tonexty"]  # bands fill to their top
    upper, lower, median = np.array(traces[0]["y"]), np.array(traces[1]["y"]), np.array(traces[4]["y"])
    assert np.all(upper >= median) and np.all(median >= lower)
    assert traces[4]["x"][0].startswith("2021-01-04")  # dated, not step numbers
    assert layout["title"]["text"] == "Block bootstrap"


def test_fan_chart_drops_rows_with_nan_and_says_no_data_when_nothing_is_left() -> None:
    assert "No data" in fan_chart(pd.DataFrame(columns=["p5", "p25", "p50", "p75", "p95"]), div_id="e", title="t")
    assert "No data" in fan_chart(_fan_frame(5) * np.nan, div_id="n", title="t")
    partly = _fan_frame(10)
    partly.iloc[3, 2] = np.nan
    traces, _ = _figure(fan_chart(partly, div_id="p", title="t"), "p")
    assert len(traces[4]["y"]) == 9


def test_fan_chart_without_percentile_columns_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="missing"):
        fan_chart(pd.DataFrame({"p5": [1.0], "p50": [2.0]}), div_id="x", title="t")


# --- heatmap --------------------------------------------------------------------------------------------------------


def _sweep_table() -> pd.DataFrame:
    return pd.DataFrame([[1.25, -0.5, 0.0], [np.nan, 0.3, -1.0]], index=pd.Index([10, 20], name="lookback"),
                        columns=pd.Index([0.5, 1.0, 1.5], name="z entry"))


def test_heatmap_has_a_labelled_cell_per_value_on_a_scale_centred_at_zero() -> None:
    traces, layout = _figure(heatmap_chart(_sweep_table(), div_id="sweep", title="Sweep", metric_label="Sharpe"),
                             "sweep")
    [heat] = traces
    assert heat["type"] == "heatmap" and heat["zmid"] == 0 and heat["zmin"] == -1.25 and heat["zmax"] == 1.25
    z = np.array(heat["z"], dtype=float)
    assert z.shape == (2, 3) and z[0, 0] == 1.25 and np.isnan(z[1, 0])
    assert heat["x"] == ["0.5", "1.0", "1.5"] and heat["y"] == ["10", "20"]
    assert heat["texttemplate"] == "%{z:.2f}"  # every cell prints its value
    assert layout["xaxis"]["title"]["text"] == "z entry" and layout["yaxis"]["title"]["text"] == "lookback"
    percent = heatmap_chart(_sweep_table() / 10, div_id="pct", title="t", metric_label="CAGR", percent=True)
    assert _figure(percent, "pct")[0][0]["texttemplate"] == "%{z:.1%}"


def test_heatmap_of_empty_or_all_nan_tables_says_no_data() -> None:
    assert "No data" in heatmap_chart(pd.DataFrame(), div_id="h", title="t", metric_label="m")
    assert "No data" in heatmap_chart(pd.DataFrame(np.full((2, 2), np.nan)), div_id="h2", title="t", metric_label="m")


# --- histogram ------------------------------------------------------------------------------------------------------


def test_histogram_counts_every_finite_value_and_marks_the_observation() -> None:
    values = np.concatenate([np.random.default_rng(1).normal(0.0, 1.0, 1000), [np.nan, np.inf]])
    traces, layout = _figure(histogram_chart(values, div_id="hist", title="t", marker=4.0, marker_label="seen"),
                             "hist")
    assert len(traces[0]["x"]) == 1000
    [line] = layout["shapes"]
    assert line["x0"] == line["x1"] == 4.0
    assert [a["text"] for a in layout["annotations"]] == ["seen"]


def test_histogram_of_nothing_says_no_data() -> None:
    assert "No data" in histogram_chart(np.array([]), div_id="e", title="t")
    assert "No data" in histogram_chart(np.array([np.nan]), div_id="n", title="t", marker=1.0)


# --- bar chart ------------------------------------------------------------------------------------------------------


def test_bar_chart_draws_a_bar_per_value_colours_losses_and_keeps_nan_rows() -> None:
    traces, _ = _figure(bar_chart(["momentum", "mean<rev>", "broken"], [1.5, -0.5, float("nan")], div_id="bars",
                                  title="Sharpe by strategy", value_suffix="%"), "bars")
    [bars] = traces
    assert bars["y"] == ["momentum", "mean<rev>", "broken"]
    assert bars["marker"]["color"] == ["#1f4e9c", "#c0392b", "#1f4e9c"]
    assert bars["text"] == ["1.50%", "-0.50%", "—"]


def test_bar_chart_of_nothing_says_no_data_and_mismatched_lengths_raise() -> None:
    assert "No data" in bar_chart([], [], div_id="b", title="t")
    assert "No data" in bar_chart(["a"], [np.nan], div_id="b2", title="t")
    with pytest.raises(ValueError, match="same length"):
        bar_chart(["a", "b"], [1.0], div_id="b3", title="t")


# --- walk-forward, escaping -----------------------------------------------------------------------------------------


def test_parameter_path_has_one_panel_per_param_over_the_test_windows() -> None:
    windows = pd.DataFrame({"window": [0, 1, 2], "test_start": ["2020-01-02", "2020-04-01", "2020-07-01"],
                            "param_roc_period": [20, 60, 60], "param_entry_roc_pct": [2.0, 2.0, 5.0]})
    traces, layout = _figure(parameter_path_chart(windows), "wf-param-path")
    assert [t["y"] for t in traces] == [[20, 60, 60], [2.0, 2.0, 5.0]]
    assert [a["text"] for a in layout["annotations"]] == ["roc_period", "entry_roc_pct"]


def test_caller_text_cannot_break_out_of_the_script_and_ids_must_be_plain() -> None:
    chart = bar_chart(["</script><script>alert(1)</script>"], [1.0], div_id="b", title="<b>&")
    assert "</script><script>alert" not in chart
    with pytest.raises(ValueError, match="chart id"):
        bar_chart(["a"], [1.0], div_id='x" onload="alert(1)', title="t")
