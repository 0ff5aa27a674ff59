"""Issue 15: a trial the kill switch stopped is flagged and not chosen as best unless the option says so; state
changes read as dates, not nanoseconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester.grid_search import rank, ranked_table
from backtester.sweep import TrialResult, first_halt, state_history_iso


def trial(trial_id: int, sharpe: float, halted_on: str | None = None) -> TrialResult:
    return TrialResult(trial_id=trial_id, params={"p": trial_id}, metrics={"sharpe": sharpe},
                       dates=np.zeros(0, dtype="datetime64[ns]"), equity=np.zeros(0), halted_on=halted_on)  # fmt: skip


def ny_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="America/New_York").tz_convert("UTC").value)


def test_a_halted_trial_is_ranked_after_every_trial_that_kept_trading() -> None:
    trials = [trial(1, 0.4), trial(2, 2.5, halted_on="1999-01-14"), trial(3, 0.9)]
    assert [t.trial_id for t in rank(trials, "sharpe")] == [3, 1, 2]
    assert [t.trial_id for t in rank(trials, "sharpe", halted_eligible=True)] == [2, 3, 1]
    table = ranked_table(trials, "sharpe")
    assert table.loc[table["trial_id"] == 2, "halted_on"].item() == "1999-01-14"
    assert table.loc[table["trial_id"] == 2, "rank"].item() == 3


def test_state_changes_read_as_new_york_dates_and_the_first_halt_is_found() -> None:
    history = [f"{ny_ns('1999-01-04 16:00')}:ACTIVE->REDUCING", f"{ny_ns('1999-01-14 16:00')}:REDUCING->HALTED"]
    assert state_history_iso(history) == [
        {"date": "1999-01-04", "from": "ACTIVE", "to": "REDUCING"},
        {"date": "1999-01-14", "from": "REDUCING", "to": "HALTED"},
    ]
    assert first_halt(history) == "1999-01-14" and first_halt(history[:1]) is None
