"""Purged k-fold with an embargo: no training signal's label window touches its test fold, the sessions after the
fold are embargoed, and nothing else is thrown away (checked against a brute-force reading of the rule)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.purged_cv import PurgedKFold


def random_events(seed: int, n: int = 120, sessions: int = 300, max_len: int = 25) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.integers(0, sessions, n))
    return t0, t0 + rng.integers(0, max_len, n)


def brute_force_train(t0: np.ndarray, t1: np.ndarray, test: np.ndarray, embargo: int) -> np.ndarray:
    """The rule read literally: a signal trains iff it is not tested, its window [t0, t1] overlaps no test
    signal's window hull, and it is not decided within ``embargo`` sessions after the hull's end."""
    lo, hi = t0[test].min(), t1[test].max()
    keep = []
    for i in range(len(t0)):
        overlaps = not (t1[i] < lo or t0[i] > hi)
        embargoed = hi < t0[i] <= hi + embargo
        if i not in set(test.tolist()) and not overlaps and not embargoed:
            keep.append(i)
    return np.array(keep, dtype=int)


@pytest.mark.parametrize("embargo", [0, 3, 10])
def test_no_training_label_window_overlaps_its_test_fold_and_the_embargo_is_applied(embargo: int) -> None:
    t0, t1 = random_events(seed=embargo)
    folds = PurgedKFold(5, embargo).splits(t0, t1)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(t0)))  # the test folds partition the signals
    for train, test in folds:
        assert not set(train.tolist()) & set(test.tolist())
        for i in train:  # no training window overlaps any test window
            assert np.all((t1[i] < t0[test]) | (t0[i] > t1[test])), (i, t0[i], t1[i])
        after = t0[train][t0[train] > t1[test].max()]
        assert np.all(after > t1[test].max() + embargo)  # nothing decided inside the embargo trains
        np.testing.assert_array_equal(train, brute_force_train(t0, t1, test, embargo))


def test_the_embargo_removes_exactly_the_signals_decided_just_after_the_fold() -> None:
    t0 = np.arange(20)  # one signal per session, each label known the same session
    t1 = t0.copy()
    train0, test0 = PurgedKFold(4, embargo=0).splits(t0, t1)[1]
    train3, test3 = PurgedKFold(4, embargo=3).splits(t0, t1)[1]
    np.testing.assert_array_equal(test0, np.arange(5, 10))
    np.testing.assert_array_equal(test0, test3)
    assert sorted(set(train0.tolist()) - set(train3.tolist())) == [10, 11, 12]  # the 3 sessions after the fold


def test_long_labels_before_the_fold_are_purged() -> None:
    t0 = np.arange(10)
    t1 = t0 + np.array([0, 0, 0, 5, 0, 0, 0, 0, 0, 0])  # signal 3's label runs into the fold [6, 9]
    train, test = PurgedKFold(2, embargo=0).splits(t0, t1)[1]
    np.testing.assert_array_equal(test, np.arange(5, 10))
    assert 3 not in train and set(train.tolist()) == {0, 1, 2, 4}  # 4's window [4, 4] is clear; 3's [3, 8] is not


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_splits=st.integers(2, 8), embargo=st.integers(0, 15),
       max_len=st.integers(1, 40))  # fmt: skip
def test_property_purged_splits_match_the_literal_rule(seed: int, n_splits: int, embargo: int, max_len: int) -> None:
    t0, t1 = random_events(seed, n=60, sessions=150, max_len=max_len)
    for train, test in PurgedKFold(n_splits, embargo).splits(t0, t1):
        np.testing.assert_array_equal(train, brute_force_train(t0, t1, test, embargo))


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="n_splits must be at least 2"):
        PurgedKFold(1)
    with pytest.raises(ValueError, match="embargo must be >= 0"):
        PurgedKFold(3, -1)
    with pytest.raises(ValueError, match="cannot end before its decision"):
        PurgedKFold(2).splits(np.array([0, 5]), np.array([1, 4]))
    with pytest.raises(ValueError, match="session indices"):
        PurgedKFold(2).splits(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="at least n_splits=3"):
        PurgedKFold(3).splits(np.array([0, 1]), np.array([0, 1]))
