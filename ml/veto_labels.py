"""Label a strategy's historical entry signals by what their trade did: the targets of the veto model.

Every entry signal (LONG; SHORT too when the portfolio may short) at session ``t0`` is one event, entered at the
close it was decided on (``reference_price``) with the strategy's stop distance (ATR x multiple). Two rules
(``strategies.<name>.veto.training.label``):

- ``triple_barrier``: scanning sessions ``t0+1 .. t0+horizon``, the first whose range reaches the stop barrier
  (``stop_multiple`` x stop distance against the trade) gives 0, the profit barrier (``profit_take_multiple`` x it
  in favour) gives 1; both in one bar counts as the stop (a daily bar cannot say which came first, so the
  conservative reading). Neither by the horizon: 1 if the trade is up at the horizon's close. A signal without a
  stop distance cannot be labelled this way and is dropped.
- ``fixed_horizon``: 1 if the trade is up at the close ``horizon`` sessions later.

``t1`` is the session the label became known (the barrier's bar or the horizon), so ``[t0, t1]`` is what purged
cross-validation must keep apart. Signals whose outcome the data does not reach are dropped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config_models import VetoTrainingConfig
from data.panel import BarPanel

log = logging.getLogger(__name__)

LONG_CODE, SHORT_CODE = 1, -1  # strategy.base signal codes of the entries
EVENT_COLUMNS = ("symbol", "t0", "t1", "decision_ns", "label_end_ns", "direction", "entry_price", "stop_distance",
                 "label", "outcome", "trade_return")  # fmt: skip


@dataclass(frozen=True, slots=True)
class LabelledEvents:
    """One row per labelled entry signal (``EVENT_COLUMNS``, in decision order) and what was left out, by reason."""

    events: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)


def label_rule(cfg: VetoTrainingConfig) -> dict[str, object]:
    """The rule as the model card records it."""
    rule: dict[str, object] = {"kind": cfg.label, "horizon_bars": cfg.horizon_bars, "entry": "signal close"}
    if cfg.label == "triple_barrier":
        rule.update(profit_take_multiple=cfg.profit_take_multiple, stop_multiple=cfg.stop_multiple,
                    barrier_unit="signal stop_distance (strategy ATR x atr_stop_multiple)",
                    same_bar="stop first")  # fmt: skip
    return rule


def label_signals(
    panel: BarPanel, codes: np.ndarray, stop_distance: np.ndarray, cfg: VetoTrainingConfig, *, allow_short: bool
) -> LabelledEvents:
    """Label every entry signal of ``codes`` (strategy signal codes, shape of the panel) on ``panel``'s bars."""
    entries = codes == LONG_CODE
    if allow_short:
        entries |= codes == SHORT_CODE
    rows, dropped = [], {"no_stop_distance": 0, "outcome_after_data_end": 0, "no_price": 0}
    for t0, j in sorted(zip(*np.nonzero(entries), strict=True)):
        direction = 1 if codes[t0, j] == LONG_CODE else -1
        entry, stop = float(panel.close[t0, j]), float(stop_distance[t0, j])
        if not np.isfinite(entry):
            dropped["no_price"] += 1
            continue
        if cfg.label == "triple_barrier" and not (np.isfinite(stop) and stop > 0):
            dropped["no_stop_distance"] += 1
            continue
        outcome = _outcome(panel, int(t0), int(j), direction, entry, stop, cfg)
        if outcome is None:
            dropped["outcome_after_data_end"] += 1
            continue
        t1, label, kind, ret = outcome
        rows.append((panel.symbols[j], int(t0), t1, int(panel.ts_event_ns[t0]), int(panel.ts_event_ns[t1]),
                     direction, entry, stop, label, kind, ret))  # fmt: skip
    events = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    events = events.sort_values(["t0", "symbol"], kind="stable").reset_index(drop=True)
    log.info("event=signals_labelled rule=%s events=%d dropped=%s", cfg.label, len(events), dropped)
    return LabelledEvents(events, {k: v for k, v in dropped.items() if v})


def _outcome(
    panel: BarPanel, t0: int, j: int, direction: int, entry: float, stop: float, cfg: VetoTrainingConfig
) -> tuple[int, int, str, float] | None:
    """(t1, label, outcome, trade return) of one signal, None when the data ends before its outcome is known."""
    horizon_end = t0 + cfg.horizon_bars
    last = min(horizon_end, len(panel.dates) - 1)
    if cfg.label == "triple_barrier":
        profit = entry + direction * cfg.profit_take_multiple * stop
        loss = entry - direction * cfg.stop_multiple * stop
        for s in range(t0 + 1, last + 1):
            high, low = panel.high[s, j], panel.low[s, j]
            if not (np.isfinite(high) and np.isfinite(low)):
                continue
            stopped = low <= loss if direction > 0 else high >= loss
            if stopped:
                return s, 0, "stop", direction * (loss / entry - 1.0)
            if (high >= profit) if direction > 0 else (low <= profit):
                return s, 1, "profit_take", direction * (profit / entry - 1.0)
    if horizon_end > len(panel.dates) - 1:
        return None
    closes = panel.close[t0 + 1 : horizon_end + 1, j]
    valid = closes[np.isfinite(closes)]
    if not len(valid):
        return None
    ret = direction * (float(valid[-1]) / entry - 1.0)
    return horizon_end, int(ret > 0), "horizon", ret
