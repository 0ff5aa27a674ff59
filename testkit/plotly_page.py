"""Read the charts back out of a written report page: the traces and layout each ``Plotly.newPlot`` call draws.

Tests assert on what a chart shows (trace names, points, shapes) rather than on HTML details: the JSON plotly is
handed is parsed as the browser receives it, and plotly's typed arrays (``{"dtype": "f8", "bdata": base64}``, how
plotly >= 6 sends numpy arrays) are decoded back to lists.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

_CALL = re.compile(r'Plotly\.newPlot\(\s*"([^"]+)",\s*')


def plotly_figures(page: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """div id -> (traces, layout) for every chart on the page."""
    decoder = json.JSONDecoder()
    figures = {}
    for match in _CALL.finditer(page):
        traces, end = decoder.raw_decode(page, match.end())
        rest = re.match(r",\s*", page[end:])
        layout, _ = decoder.raw_decode(page, end + (rest.end() if rest else 0))
        figures[match.group(1)] = (_decoded(traces), _decoded(layout))
    return figures


def _decoded(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if "shape" in value:
                array = array.reshape([int(n) for n in str(value["shape"]).split(",")])
            return array.tolist()
        return {k: _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def trace_names(page: str, div_id: str) -> list[str]:
    traces, _ = plotly_figures(page)[div_id]
    return [str(t.get("name")) for t in traces]
