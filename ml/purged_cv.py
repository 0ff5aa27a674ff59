"""Purged k-fold cross-validation with an embargo, for labels that span time (López de Prado 2018, ch. 7).

A signal's label is decided over a window: from its decision session ``t0`` to the session ``t1`` where the
trade's outcome was known (a barrier touched, or the horizon). Ordinary k-fold puts a signal in the test fold and
its neighbours, whose windows overlap it, in the training fold: the model then learns the test labels from their
near-copies and scores far better than it ever will live. Here:

- test folds are ``n_splits`` contiguous blocks of the signals in decision order;
- **purge**: a signal trains only if its window ``[t0, t1]`` does not overlap the test fold's span
  ``[min t0, max t1]`` (both ends inclusive: a label known at the close a test decision is made on is too late);
- **embargo**: signals decided within ``embargo`` sessions after the span's end are dropped too, since features
  built on trailing windows (``ret_20d``, ``vol_20d``) still carry the test fold's returns then.

Times are session indices (integers), so the embargo is in sessions whatever the calendar does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PurgedKFold:
    n_splits: int = 5
    embargo: int = 0  # sessions

    def __post_init__(self) -> None:
        if self.n_splits < 2:
            raise ValueError(f"n_splits must be at least 2 (got {self.n_splits})")
        if self.embargo < 0:
            raise ValueError(f"embargo must be >= 0 sessions (got {self.embargo})")

    def split(self, t0: np.ndarray, t1: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(train, test) index arrays per fold, in fold order; ``t0``/``t1`` are each signal's decision and label
        end session (``t1 >= t0``). Raises ValueError for mismatched shapes, ``t1 < t0`` or too few signals."""
        start, end = _as_windows(t0, t1)
        if len(start) < self.n_splits:
            raise ValueError(f"need at least n_splits={self.n_splits} signals to split (got {len(start)})")
        order = np.argsort(start, kind="stable")
        for test in np.array_split(order, self.n_splits):
            yield purged_train_indices(start, end, test, self.embargo), np.sort(test)

    def splits(self, t0: np.ndarray, t1: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``split`` as a list (what scikit-learn's ``cv=`` takes)."""
        return list(self.split(t0, t1))


def purged_train_indices(t0: np.ndarray, t1: np.ndarray, test: np.ndarray, embargo: int) -> np.ndarray:
    """Indices (ascending) of the signals that may train for ``test``: outside it, their window disjoint from the
    test span, and not decided within ``embargo`` sessions after the span's end."""
    span_start, span_end = int(t0[test].min()), int(t1[test].max())
    keep = (t1 < span_start) | (t0 > span_end + embargo)
    keep[test] = False
    return np.flatnonzero(keep)


def _as_windows(t0: np.ndarray, t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    start, end = np.asarray(t0), np.asarray(t1)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(f"t0 and t1 must be 1-D of one length (got shapes {start.shape} and {end.shape})")
    if not (np.issubdtype(start.dtype, np.integer) and np.issubdtype(end.dtype, np.integer)):
        raise ValueError(f"t0 and t1 must be session indices (integers) (got {start.dtype} and {end.dtype})")
    if np.any(end < start):
        first = int(np.flatnonzero(end < start)[0])
        raise ValueError(f"a label cannot end before its decision (signal {first}: t0={start[first]}, t1={end[first]})")
    return start, end
