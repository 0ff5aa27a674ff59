"""The Parquet bar store: round trip, merge, quarantine, atomic replacement and a stable data fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from data.bar_guard import BadBarReason
from data.bar_store import BarStore
from data.csv_loader import load_csv
from testkit.bars import make_bar_frame

CLOSES = [10.0, 10.5, 10.25, 11.0, 11.5, 11.25, 12.0, 12.5, 12.0, 13.0]


def leftover_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".parquet"))


def test_round_trip_and_date_selection(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    frame = make_bar_frame(CLOSES)
    result = store.write("AAA", frame)
    assert result.quarantined.empty
    pd.testing.assert_frame_equal(store.read("AAA"), frame, check_freq=False)
    assert store.symbols() == ["AAA"]
    window = store.read("AAA", start="2024-01-04", end="2024-01-09")
    assert list(window.index) == list(frame.index[2:6])
    assert (tmp_path / "bars" / "AAA.parquet").is_file()


def test_new_rows_win_on_equal_dates(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    first = make_bar_frame(CLOSES)
    store.write("AAA", first)
    second = make_bar_frame([20.0, 21.0, 22.0, 23.0], start=str(first.index[8].date()))
    store.write("AAA", second)
    stored = store.read("AAA")
    assert stored.index.is_unique and stored.index.is_monotonic_increasing
    assert len(stored) == 8 + 4
    pd.testing.assert_frame_equal(stored.iloc[:8], first.iloc[:8], check_freq=False)
    pd.testing.assert_frame_equal(stored.iloc[8:], second, check_freq=False)


def test_bad_rows_go_to_quarantine_once(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    frame = make_bar_frame(CLOSES)
    frame.iloc[3, frame.columns.get_loc("close")] = np.nan
    frame.iloc[5, frame.columns.get_loc("high")] = 1.0
    for _ in range(2):
        store.write("AAA", frame)
    assert len(store.read("AAA")) == len(CLOSES) - 2
    quarantine = store.read_quarantine("AAA")
    assert list(quarantine["reason"]) == [BadBarReason.NAN_VALUE.value, BadBarReason.HIGH_BELOW_LOW.value]
    assert list(quarantine.index) == [frame.index[3], frame.index[5]]
    assert store.read_quarantine("BBB").empty


def test_guard_result_with_parse_errors_keeps_its_quarantine(tmp_path: Path) -> None:
    csv = tmp_path / "abc.csv"
    csv.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,100\nbad-date,1,1,1,1,1\n")
    store = BarStore(tmp_path / "store")
    store.write("ABC", load_csv(csv))
    assert len(store.read("ABC")) == 1
    quarantine = store.read_quarantine("ABC")
    assert list(quarantine["reason"]) == [BadBarReason.PARSE_ERROR.value]
    assert pd.isna(quarantine.index[0])


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    frame = make_bar_frame(CLOSES)
    frame.iloc[2, frame.columns.get_loc("volume")] = -1.0
    for symbol in ("AAA", "BBB"):
        store.write(symbol, frame)
        store.write(symbol, frame.iloc[5:])
    assert leftover_files(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir()) == ["AAA.parquet", "BBB.parquet"]


def test_failed_replace_cleans_up_and_keeps_other_files(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    store.write("AAA", make_bar_frame(CLOSES))
    before = (tmp_path / "bars" / "AAA.parquet").read_bytes()
    (tmp_path / "bars" / "BBB.parquet").mkdir()  # os.replace onto a directory fails
    with pytest.raises(OSError):
        store.write("BBB", make_bar_frame(CLOSES))
    assert leftover_files(tmp_path) == []
    assert (tmp_path / "bars" / "AAA.parquet").read_bytes() == before
    assert store.symbols() == ["AAA"]


def test_fingerprint_is_stable_and_tracks_the_data(tmp_path: Path) -> None:
    frame = make_bar_frame(CLOSES)
    one, two = BarStore(tmp_path / "one"), BarStore(tmp_path / "two")
    one.write("AAA", frame)
    two.write("AAA", frame.iloc[:6])
    two.write("AAA", frame.iloc[4:])  # same data, written in two pieces
    assert one.fingerprint() == two.fingerprint() == one.fingerprint(["AAA"])
    # Pinned: the fingerprint must not change between runs, machines or library versions.
    assert one.fingerprint() == "06f8c81a00cfd08a56c3f7d950375dc624d81789a59f990d726d59b903cc906f"
    window = one.fingerprint(["AAA"], start="2024-01-03", end="2024-01-08")
    assert window != one.fingerprint()
    changed = frame.copy()
    changed.iloc[7, changed.columns.get_loc("volume")] += 1
    two.write("AAA", changed)
    assert two.fingerprint() != one.fingerprint()
    assert two.fingerprint(["AAA"], start="2024-01-03", end="2024-01-08") == window
    one.write("BBB", frame)
    assert one.fingerprint() != one.fingerprint(["AAA"])


@pytest.mark.shared_data
def test_import_csv_folder(shared_data_dir: Path, tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    results = store.import_csv_folder(
        shared_data_dir, adjust=True, files={"ORCL": "orcl-2003-2005.txt", "YHOO": "yhoo-2003-2005.txt"}
    )
    assert sorted(results) == store.symbols() == ["ORCL", "YHOO"]
    assert len(store.read("ORCL")) == len(store.read("YHOO")) == 756
    pd.testing.assert_frame_equal(store.read("ORCL"), results["ORCL"].clean)


def test_unknown_symbol_and_bad_names(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    with pytest.raises(DataError, match="no bars stored"):
        store.read("AAA")
    with pytest.raises(ValueError, match="invalid symbol"):
        store.write("../evil", make_bar_frame(CLOSES))
    assert store.symbols() == []


def test_corrupt_parquet_file_raises_data_error(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    store.write("AAA", make_bar_frame(CLOSES))
    (tmp_path / "bars" / "AAA.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"AAA\.parquet"):
        store.read("AAA")
