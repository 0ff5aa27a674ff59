"""Implementation shortfall after Perold (1988), per order, and its aggregation with bootstrap intervals.

The benchmark is the paper portfolio: the whole order (``order_quantity``) traded at the decision price the moment
the strategy decided. What the real order cost against it, in basis points of the decision notional
``order_quantity × decision_price``, signed so that a cost is positive for buys and sells alike (``s`` = +1 for a
buy, −1 for a sell; ``Q`` filled shares at prices ``p_i``; ``U`` shares that ended unfilled; ``D`` the notional):

- delay       = s · Q · (arrival − decision) / D: the price moved between the decision and sending the order;
- execution   = s · (Σ qᵢ·pᵢ − Q · arrival) / D: the fills against the price when the order arrived;
- opportunity = s · U · (end − decision) / D: what the shares never bought or sold would have cost (``end``: the
  price when the order was cancelled or expired);
- fees        = Σ commission / D; total = delay + execution + opportunity + fees (× 10,000 for bps).

Several executions of one order are volume-weighted by construction (Σ qᵢ·pᵢ). Without an arrival price the delay
is None and the execution cost is measured from the decision price instead (``execution_benchmark`` says which),
so the total still holds. Shares neither filled nor recorded as ended (an order still working) cost nothing here
and are counted in ``unaccounted_quantity``.

One implementation over DataFrames (``order_shortfalls``; the columns of ``tca.logger.TABLES``, as DuckDB gives
them), so the records path (``shortfall_for_order``) and the report cannot disagree. Pure: no I/O, no clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tca.records import ExecutionRecord, UnfilledRecord, to_json_dict

BPS = 10_000.0
UNKNOWN_BUCKET = "unknown"
# Lower edge inclusive: 0.01 of ADV is "1-5%", 10 minutes to the close is "10-30 min".
SIZE_BUCKETS: tuple[tuple[float, str], ...] = ((0.0, "<1%"), (0.01, "1-5%"), (0.05, "5-10%"), (0.10, ">=10%"))
MINUTES_TO_CLOSE_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.0, "<10 min"), (10.0, "10-30 min"), (30.0, "30-120 min"), (120.0, ">=120 min"),
)  # fmt: skip

ORDER_CONTEXT = ("symbol", "side", "strategy_id", "order_quantity", "decision_ts", "decision_price", "algo",
                 "source", "run_id")  # fmt: skip
_EXEC_ONLY_CONTEXT = ("arrival_price", "adv_participation", "minutes_to_close")


@dataclass(frozen=True, slots=True)
class OrderShortfall:
    """One order's implementation shortfall; every ``*_bps`` is in basis points of ``decision_notional``."""

    client_order_id: str
    symbol: str
    side: str
    algo: str
    strategy_id: str
    source: str
    run_id: str
    decision_ts: int
    order_quantity: int
    filled_quantity: int
    unfilled_quantity: int
    unaccounted_quantity: int
    decision_price: float
    decision_notional: float
    avg_fill_price: float | None
    arrival_price: float | None
    delay_bps: float | None
    execution_bps: float
    opportunity_bps: float
    fees_bps: float
    total_bps: float
    execution_benchmark: str  # "arrival", or "decision" when the arrival price was not known
    adv_participation: float | None
    minutes_to_close: float | None
    size_bucket: str
    minutes_to_close_bucket: str


SHORTFALL_COLUMNS: tuple[str, ...] = tuple(OrderShortfall.__dataclass_fields__)


def shortfall_for_order(
    executions: Sequence[ExecutionRecord], unfilled: UnfilledRecord | None = None
) -> OrderShortfall:
    """The shortfall of one order from its executions (any order) and its unfilled end, if any.

    Raises ValueError when nothing is given, the records belong to several orders or disagree on the order's
    context, or more shares are filled and unfilled than were ordered.
    """
    if not executions and unfilled is None:
        raise ValueError("shortfall_for_order needs at least one execution or an unfilled record")
    ids = {e.client_order_id for e in executions} | ({unfilled.client_order_id} if unfilled else set())
    if len(ids) != 1:
        raise ValueError(f"records of one order expected, got client order ids {sorted(ids)}")
    frame = order_shortfalls(records_frame(executions), records_frame([unfilled] if unfilled else []))
    row = frame.iloc[0].to_dict()
    return OrderShortfall(**{name: _plain(row[name]) for name in SHORTFALL_COLUMNS})


def records_frame(records: Sequence[ExecutionRecord | UnfilledRecord]) -> pd.DataFrame:
    """Records as the DataFrame ``order_shortfalls`` reads (the DuckDB log's column names)."""
    return pd.DataFrame([to_json_dict(r) for r in records])


def order_shortfalls(executions: pd.DataFrame, unfilled: pd.DataFrame) -> pd.DataFrame:
    """One row per order (columns ``SHORTFALL_COLUMNS``) from execution rows and unfilled rows, by decision time.

    Either frame may be empty. Raises ValueError when an order's rows disagree on its context (decision price,
    side, quantity, arrival price...) or its filled and unfilled shares exceed the order.
    """
    orders = _orders(_numeric(executions), _numeric(unfilled))
    if orders.empty:
        return pd.DataFrame(columns=list(SHORTFALL_COLUMNS))
    sign = np.where(orders["side"] == "BUY", 1.0, -1.0)
    notional = orders["order_quantity"] * orders["decision_price"]
    filled, unfilled_qty = orders["filled_quantity"], orders["unfilled_quantity"]
    arrival = orders["arrival_price"]
    benchmark = arrival.where(arrival.notna(), orders["decision_price"])
    delay = pd.Series(np.where(arrival.notna(), sign * filled * (arrival - orders["decision_price"]), np.nan))
    delay = delay.where(filled > 0, 0.0).to_numpy() / notional.to_numpy() * BPS
    execution = sign * (orders["fill_value"] - filled * benchmark) / notional * BPS
    missed = sign * unfilled_qty * (orders["end_price"] - orders["decision_price"])
    opportunity = np.where(unfilled_qty > 0, missed, 0.0)
    out = orders.assign(
        decision_notional=notional,
        avg_fill_price=(orders["fill_value"] / filled).where(filled > 0),
        delay_bps=delay,
        execution_bps=execution,
        opportunity_bps=opportunity / notional * BPS,
        fees_bps=orders["commission"] / notional * BPS,
        execution_benchmark=np.where(arrival.notna(), "arrival", "decision"),
        size_bucket=_bucket(orders["adv_participation"], SIZE_BUCKETS),
        minutes_to_close_bucket=_bucket(orders["minutes_to_close"], MINUTES_TO_CLOSE_BUCKETS),
    )
    out["total_bps"] = out["delay_bps"].fillna(0.0) + out["execution_bps"] + out["opportunity_bps"] + out["fees_bps"]
    return out.sort_values(["decision_ts", "client_order_id"], kind="stable").reset_index(drop=True)[
        list(SHORTFALL_COLUMNS)
    ]


def _orders(executions: pd.DataFrame, unfilled: pd.DataFrame) -> pd.DataFrame:
    """Per order: its context, filled shares, Σ qᵢ·pᵢ, commission, unfilled shares and end price."""
    context = list(ORDER_CONTEXT)
    parts = []
    if not executions.empty:
        ex = executions.assign(fill_value=executions["quantity"] * executions["price"])
        _check_consistent(ex, [*context, "arrival_price"])
        grouped = ex.groupby("client_order_id", sort=False)
        per_order = grouped[[*context, *_EXEC_ONLY_CONTEXT]].first()
        per_order["arrival_price"] = grouped["arrival_price"].first()  # NaN when unknown (first skips NaN)
        totals = grouped.agg(filled_quantity=("quantity", "sum"), fill_value=("fill_value", "sum"),
                             commission=("commission", "sum"))  # fmt: skip
        parts.append(per_order.join(totals))
    ends = pd.DataFrame()
    if not unfilled.empty:
        _check_consistent(unfilled, ["client_order_id"])  # one end per order
        ends = unfilled.set_index("client_order_id")
        parts.append(ends[[*context, "adv_participation", "minutes_to_close"]])
    if not parts:
        return pd.DataFrame()
    merged = parts[0] if len(parts) == 1 else parts[0].combine_first(parts[1])
    if len(parts) == 2:
        shared = parts[0].index.intersection(ends.index)
        _check_same_context(parts[0].loc[shared, context], ends.loc[shared, context])
    merged = merged.reindex(columns=[*context, *_EXEC_ONLY_CONTEXT, "filled_quantity", "fill_value", "commission"])
    for column in ("filled_quantity", "fill_value", "commission"):
        merged[column] = merged[column].fillna(0.0)
    merged["unfilled_quantity"] = ends["unfilled_quantity"].reindex(merged.index).fillna(0) if len(ends) else 0
    merged["end_price"] = ends["end_price"].reindex(merged.index) if len(ends) else np.nan
    merged["unaccounted_quantity"] = merged["order_quantity"] - merged["filled_quantity"] - merged["unfilled_quantity"]
    over = merged[merged["unaccounted_quantity"] < 0]
    if not over.empty:
        raise ValueError(f"orders {list(over.index)}: filled plus unfilled shares exceed order_quantity")
    for column in ("order_quantity", "filled_quantity", "unfilled_quantity", "unaccounted_quantity", "decision_ts"):
        merged[column] = merged[column].astype("int64")
    return merged.rename_axis("client_order_id").reset_index()


_NUMERIC = ("quantity", "price", "commission", "order_quantity", "decision_price", "arrival_price", "unfilled_quantity",
            "end_price", "adv_participation", "minutes_to_close")  # fmt: skip


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64 (None from records or NULL from DuckDB as NaN), so arithmetic never meets None."""
    present = [c for c in _NUMERIC if c in frame.columns]
    return frame.astype({c: "float64" for c in present}) if present else frame


def _check_consistent(frame: pd.DataFrame, columns: list[str]) -> None:
    if columns == ["client_order_id"]:
        repeated = frame["client_order_id"][frame["client_order_id"].duplicated()]
        if not repeated.empty:
            raise ValueError(f"orders {sorted(set(repeated))}: more than one unfilled record")
        return
    counts = frame.groupby("client_order_id", sort=False)[columns].nunique(dropna=False)
    bad = counts[(counts > 1).any(axis=1)]
    if not bad.empty:
        order = bad.index[0]
        fields = [c for c in columns if bad.loc[order, c] > 1]
        raise ValueError(f"order {order}: its executions disagree on {fields}")


def _check_same_context(executed: pd.DataFrame, ended: pd.DataFrame) -> None:
    for column in executed.columns:
        differs = executed[column] != ended.loc[executed.index, column]
        if differs.any():
            order = differs[differs].index[0]
            raise ValueError(f"order {order}: its executions and its unfilled record disagree on {column}")


def _bucket(values: pd.Series, edges: tuple[tuple[float, str], ...]) -> np.ndarray:
    bins = [edge for edge, _ in edges] + [np.inf]
    labels = [label for _, label in edges]
    cut = pd.cut(values.astype("float64"), bins=bins, labels=labels, right=False)
    return cut.astype(object).where(cut.notna(), UNKNOWN_BUCKET).to_numpy()


def _plain(value: object) -> object:
    """numpy scalars as Python ones and NaN as None, for the OrderShortfall dataclass."""
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def bootstrap_mean_ci(
    values: np.ndarray, rng: np.random.Generator, *, n_resamples: int = 2000, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; (nan, nan) for fewer than two values (no spread to resample).

    Resamples in chunks so memory stays near four million draws whatever the sample size.
    """
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    chunk = max(1, min(n_resamples, 4_000_000 // n))
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


AGGREGATE_COLUMNS = ("count", "mean_total_bps", "ci_low_bps", "ci_high_bps", "mean_delay_bps", "mean_execution_bps",
                     "mean_opportunity_bps", "mean_fees_bps", "weighted_total_bps", "notional")  # fmt: skip
_BUCKET_ORDER = {
    "size_bucket": [label for _, label in SIZE_BUCKETS] + [UNKNOWN_BUCKET],
    "minutes_to_close_bucket": [label for _, label in MINUTES_TO_CLOSE_BUCKETS] + [UNKNOWN_BUCKET],
}


def aggregate(
    shortfalls: pd.DataFrame, by: str = "algo", *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Per value of ``by`` (``algo``, ``symbol``, ``size_bucket``, ``minutes_to_close_bucket`` or any column of
    ``order_shortfalls``): order count, mean total bps with its bootstrap interval, mean components and the
    notional-weighted total. Buckets come in their natural order, other keys sorted.

    Each group's interval uses its own Generator seeded with (``seed``, CRC-32 of the group's name), so a group's
    interval does not change when other groups are filtered out. ``mean_delay_bps`` averages only the orders whose
    arrival price was known.
    """
    if by not in shortfalls.columns:
        raise ValueError(f"by: must be a column of the shortfall table, e.g. algo or size_bucket (got {by!r})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0, 1) (got {confidence!r})")
    rows = []
    for key, group in shortfalls.groupby(by, sort=True):
        rng = np.random.default_rng([seed, zlib.crc32(str(key).encode())])
        total = group["total_bps"].to_numpy(dtype=float)
        low, high = bootstrap_mean_ci(total, rng, n_resamples=n_resamples, confidence=confidence)
        notional = group["decision_notional"].to_numpy(dtype=float)
        rows.append({
            by: key, "count": len(group), "mean_total_bps": float(total.mean()), "ci_low_bps": low,
            "ci_high_bps": high, "mean_delay_bps": float(pd.to_numeric(group["delay_bps"]).mean()),
            "mean_execution_bps": float(group["execution_bps"].mean()),
            "mean_opportunity_bps": float(group["opportunity_bps"].mean()),
            "mean_fees_bps": float(group["fees_bps"].mean()),
            "weighted_total_bps": float((total * notional).sum() / notional.sum()), "notional": float(notional.sum()),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=[by, *AGGREGATE_COLUMNS])
    if by in _BUCKET_ORDER:
        table = table.sort_values(by, key=lambda s: s.map(_BUCKET_ORDER[by].index), kind="stable")
    return table.reset_index(drop=True)
