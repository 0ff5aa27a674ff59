"""Research-report SVG charts: well-formed, identified, escaped, and calm about empty or nan input."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from backtester.research_charts import svg_bar_chart, svg_fan_chart, svg_heatmap, svg_histogram

_NS = {"svg": "http://www.w3.org/2000/svg"}


def _parse(svg: str, chart_id: str) -> ET.Element:
    """Well-formed XML, an <svg> root with the id and a <title>, nothing scripted or fetched."""
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("id") == chart_id
    assert root.find("svg:title", _NS) is not None
    assert "<script" not in svg and "href" not in svg
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def _fan_frame(n_days: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = 1e6 * np.cumprod(1 + rng.normal(0.0003, 0.01, (500, n_days)), axis=1)
    table = np.percentile(paths, [5, 25, 50, 75, 95], axis=0).T
    return pd.DataFrame(table, columns=["p5", "p25", "p50", "p75", "p95"], index=pd.RangeIndex(n_days, name="day"))


# --- fan chart ------------------------------------------------------------------------------------------------------


def test_fan_chart_draws_two_shaded_bands_a_median_and_ticks() -> None:
    root = _parse(svg_fan_chart(_fan_frame(), chart_id="mc-fan", title="Equity fan"), "mc-fan")
    polygons = root.findall(".//svg:polygon", _NS)
    assert len(polygons) == 2
    assert [float(p.get("fill-opacity")) for p in polygons] == sorted(float(p.get("fill-opacity")) for p in polygons)
    assert len(root.findall(".//svg:polyline", _NS)) == 1
    labels = _texts(root)
    assert "median" in labels and "100" in labels and "200" in labels  # day ticks
    assert any(label.endswith("M") for label in labels)  # equity ticks in millions


def test_fan_chart_bands_enclose_the_median() -> None:
    frame = _fan_frame(50)
    root = _parse(svg_fan_chart(frame, chart_id="fan", title="t"), "fan")
    outer = [tuple(map(float, pt.split(","))) for pt in root.findall(".//svg:polygon", _NS)[0].get("points").split()]
    median = [tuple(map(float, pt.split(","))) for pt in root.find(".//svg:polyline", _NS).get("points").split()]
    upper, lower = outer[:50], outer[50:][::-1]
    for (_, y_hi), (_, y_mid), (_, y_lo) in zip(upper, median, lower, strict=True):
        assert y_hi <= y_mid <= y_lo  # SVG y grows downwards


def test_fan_chart_accepts_a_date_index_and_thins_long_frames() -> None:
    frame = _fan_frame(5000)
    frame.index = pd.bdate_range("2010-01-04", periods=5000)
    svg = svg_fan_chart(frame, chart_id="fan-dates", title="t")
    root = _parse(svg, "fan-dates")
    assert "2012" in _texts(root)
    assert len(root.find(".//svg:polyline", _NS).get("points").split()) <= 2000


def test_fan_chart_with_no_usable_rows_says_no_data() -> None:
    assert "No data" in _texts(_parse(svg_fan_chart(pd.DataFrame(), chart_id="e", title="t"), "e"))
    nan_frame = _fan_frame(5) * np.nan
    assert "No data" in _texts(_parse(svg_fan_chart(nan_frame, chart_id="n", title="t"), "n"))
    partly = _fan_frame(10)
    partly.iloc[3, 2] = np.nan
    root = _parse(svg_fan_chart(partly, chart_id="p", title="t"), "p")
    assert len(root.find(".//svg:polyline", _NS).get("points").split()) == 9


def test_fan_chart_without_percentile_columns_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="missing"):
        svg_fan_chart(pd.DataFrame({"p5": [1.0], "p50": [2.0]}), chart_id="x", title="t")


# --- heatmap --------------------------------------------------------------------------------------------------------


def _sweep_table() -> pd.DataFrame:
    return pd.DataFrame([[1.25, -0.5, 0.0], [np.nan, 0.3, -1.0]],
                        index=pd.Index([10, 20], name="lookback<A&B>"),
                        columns=pd.Index([0.5, 1.0, 1.5], name="z_entry"))


def test_heatmap_has_a_cell_per_value_with_diverging_colours_and_labels() -> None:
    svg = svg_heatmap(_sweep_table(), chart_id="sweep", title="Sweep", metric_name="Sharpe")
    root = _parse(svg, "sweep")
    children = list(root)
    by_text = {children[i + 1].text: child for i, child in enumerate(children) if child.tag.endswith("rect")}
    assert len(by_text) == 6  # one cell per value, each followed by its printed value
    assert by_text["1.25"].get("fill") == "rgb(22,140,72)"  # positive: green
    assert by_text["-1.00"].get("fill") == "rgb(200,40,40)"  # negative: red
    assert float(by_text["-1.00"].get("fill-opacity")) < float(by_text["1.25"].get("fill-opacity"))
    assert by_text["0.00"].get("fill") == by_text["—"].get("fill") == "#f1f3f6"  # zero and nan: neutral
    labels = _texts(root)
    assert {"lookback<A&B>", "z_entry", "10", "20", "0.5", "1", "1.5"} <= set(labels)
    assert any("Sharpe" in label for label in labels)
    assert "lookback&lt;A&amp;B&gt;" in svg  # escaped in the markup


def test_heatmap_of_empty_or_all_nan_tables_does_not_raise() -> None:
    assert "No data" in _texts(_parse(svg_heatmap(pd.DataFrame(), chart_id="h", title="t", metric_name="m"), "h"))
    all_nan = pd.DataFrame(np.full((2, 2), np.nan))
    root = _parse(svg_heatmap(all_nan, chart_id="h2", title="t", metric_name="m"), "h2")
    assert _texts(root).count("—") == 4


# --- histogram ------------------------------------------------------------------------------------------------------


def test_histogram_bars_count_every_finite_value_and_mark_the_observation() -> None:
    values = np.concatenate([np.random.default_rng(1).normal(0.0, 1.0, 1000), [np.nan, np.inf]])
    svg = svg_histogram(values, chart_id="hist", title="Resampled Sharpe", bins=20, marker=4.0)
    root = _parse(svg, "hist")
    bars = root.findall(".//svg:rect", _NS)
    assert 0 < len(bars) <= 20
    marker = [line for line in root.findall(".//svg:line", _NS) if line.get("stroke-dasharray")]
    assert len(marker) == 1
    assert max(float(b.get("x")) + float(b.get("width")) for b in bars) <= float(marker[0].get("x1")) + 1
    assert "4" in _texts(root)
    heights = np.array([float(b.get("height")) for b in bars])
    counts = np.histogram(values[np.isfinite(values)], bins=20, range=(float(np.nanmin(values[:-1])), 4.0))[0]
    np.testing.assert_allclose(heights / heights.max(), counts[counts > 0] / counts.max(), atol=0.01)


def test_histogram_of_nothing_or_one_repeated_value_does_not_raise() -> None:
    assert "No data" in _texts(_parse(svg_histogram(np.array([]), chart_id="e", title="t"), "e"))
    assert "No data" in _texts(_parse(svg_histogram(np.array([np.nan]), chart_id="n", title="t", marker=1.0), "n"))
    root = _parse(svg_histogram(np.full(10, 0.25), chart_id="c", title="t"), "c")
    assert len(root.findall(".//svg:rect", _NS)) == 1


# --- bar chart ------------------------------------------------------------------------------------------------------


def test_bar_chart_draws_a_bar_per_finite_value_and_colours_losses() -> None:
    svg = svg_bar_chart(["momentum", "mean<rev>", "broken"], [1.5, -0.5, float("nan")], chart_id="bars",
                        title="Sharpe by strategy")
    root = _parse(svg, "bars")
    bars = root.findall(".//svg:rect", _NS)
    assert [b.get("fill") for b in bars] == ["#1f4e9c", "#c0392b"]
    assert float(bars[0].get("width")) == pytest.approx(3 * float(bars[1].get("width")), rel=0.01)
    labels = _texts(root)
    assert {"momentum", "mean<rev>", "broken", "—", "1.5", "-0.5"} <= set(labels)
    assert "mean&lt;rev&gt;" in svg


def test_bar_chart_of_nothing_does_not_raise_and_mismatched_lengths_do() -> None:
    assert "No data" in _texts(_parse(svg_bar_chart([], [], chart_id="b", title="t"), "b"))
    assert "No data" in _texts(_parse(svg_bar_chart(["a"], [np.nan], chart_id="b2", title="t"), "b2"))
    with pytest.raises(ValueError, match="same length"):
        svg_bar_chart(["a", "b"], [1.0], chart_id="b3", title="t")


def test_chart_id_and_title_are_escaped() -> None:
    svg = svg_bar_chart(["a"], [1.0], chart_id='x" onload="alert(1)', title="<b>&")
    assert 'onload="alert' not in svg
    root = ET.fromstring(svg)
    assert root.get("id") == 'x" onload="alert(1)' and root.find("svg:title", _NS).text == "<b>&"
