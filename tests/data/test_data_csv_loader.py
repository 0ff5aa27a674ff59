"""CSV loading of the shared real-data files (counts and sums from shared/data/README.md), header tolerance,
backtrader-compatible adjustment, and corrupt rows that are quarantined instead of crashing the load."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS, BadBarReason
from data.calendar import TradingCalendar
from data.csv_loader import load_csv, load_csv_folder, symbol_from_path

# file name -> (symbol, rows, first date, last date, exact sum of Close) from shared/data/README.md
SHARED_FILES: dict[str, tuple[str, int, str, str, str]] = {
    "yhoo-1996-2015.txt": ("YHOO", 4965, "1996-04-12", "2015-12-31", "116683.763552"),
    "orcl-1995-2014.txt": ("ORCL", 5036, "1995-01-03", "2014-12-31", "91525.511962"),
    "yhoo-2003-2005.txt": ("YHOO", 756, "2003-01-02", "2005-12-30", "20300.210041"),
    "orcl-2003-2005.txt": ("ORCL", 756, "2003-01-02", "2005-12-30", "9363.750000"),
    "orcl-2014.txt": ("ORCL", 252, "2014-01-02", "2014-12-31", "10109.800019"),
}

pytestmark = pytest.mark.shared_data


def raw_file(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="Date", parse_dates=True)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_file_loads_completely(name: str, shared_data_dir: Path, calendar: TradingCalendar) -> None:
    symbol, rows, first, last, close_sum = SHARED_FILES[name]
    result = load_csv(shared_data_dir / name, calendar=calendar)
    assert result.symbol == symbol
    assert result.quarantined.empty
    clean = result.clean
    assert len(clean) == rows
    assert clean.index[0] == pd.Timestamp(first) and clean.index[-1] == pd.Timestamp(last)
    assert list(clean.columns) == list(BAR_COLUMNS)
    assert (clean.dtypes == np.float64).all()
    assert clean.index.name == "date" and clean.index.tz is None
    assert round(clean["close"].sum(), 2) == round(float(close_sum), 2)
    assert clean["close"].sum() == pytest.approx(float(close_sum), abs=1e-6)
    assert sum(Decimal(f"{c:.6f}") for c in clean["close"]) == Decimal(close_sum)
    raw = raw_file(shared_data_dir / name)
    np.testing.assert_array_equal(clean["volume"].to_numpy(), raw["Volume"].to_numpy(dtype=np.float64))


def test_symbol_comes_from_the_file_name() -> None:
    assert symbol_from_path("yhoo-2003-2005.txt") == "YHOO"
    assert symbol_from_path("/x/y/msft.csv") == "MSFT"
    assert symbol_from_path("brk.b-2020.csv") == "BRK"


def test_headers_are_case_and_order_insensitive(shared_data_dir: Path, tmp_path: Path) -> None:
    raw = raw_file(shared_data_dir / "orcl-2014.txt")
    renamed = raw.reset_index().rename(columns={"Close": "CLOSE", "Date": "date", "Low": "low", "Open": "oPeN"})
    shuffled = renamed[["Volume", "CLOSE", "date", "low", "Adj Close", "High", "oPeN"]]
    shuffled.insert(2, "Note", "x")
    copy = tmp_path / "orcl.csv"
    shuffled.to_csv(copy, index=False)
    result = load_csv(copy)
    original = load_csv(shared_data_dir / "orcl-2014.txt")
    pd.testing.assert_frame_equal(result.clean, original.clean)
    assert result.quarantined.empty


def test_own_lower_case_format_without_adj_close(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "abc.csv",
        ["date,open,high,low,close,volume", "2024-01-02,10,11,9,10.5,100", "2024-01-03,10.5,12,10,11,200"],
    )
    result = load_csv(path)
    assert result.symbol == "ABC"
    assert result.clean["close"].tolist() == [10.5, 11.0]
    with pytest.raises(DataError, match="Adj Close"):
        load_csv(path, adjust=True)


def test_missing_column_names_file_missing_and_found_columns(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "abc.csv", ["Date,Open,High,Close,Volume", "2024-01-02,10,11,10.5,100"])
    with pytest.raises(DataError) as info:
        load_csv(path)
    message = str(info.value)
    assert "abc.csv" in message and "'low'" in message and "'Volume'" in message


def test_utf8_bom_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "abc.csv"
    path.write_bytes(b"\xef\xbb\xbfDate,Open,High,Low,Close,Volume\n\n2024-01-02,10,11,9,10.5,100\n\n")
    assert len(load_csv(path).clean) == 1


def test_empty_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        load_csv(write_lines(tmp_path / "abc.csv", []))


def test_adjust_matches_backtrader_definition_for_orcl(shared_data_dir: Path) -> None:
    raw = raw_file(shared_data_dir / "orcl-1995-2014.txt")
    adjusted = load_csv(shared_data_dir / "orcl-1995-2014.txt", adjust=True).clean
    assert len(adjusted) == len(raw)
    np.testing.assert_array_equal(adjusted["close"].to_numpy(), raw["Adj Close"].to_numpy())
    np.testing.assert_allclose(adjusted["open"] / adjusted["close"], raw["Open"] / raw["Close"], rtol=1e-12)
    np.testing.assert_allclose(adjusted["high"] / adjusted["low"], raw["High"] / raw["Low"], rtol=1e-12)
    factor = raw["Close"] / raw["Adj Close"]
    np.testing.assert_array_equal(adjusted["volume"].to_numpy(), np.round(raw["Volume"] * factor).to_numpy())
    assert (adjusted["close"] < raw["Close"]).all()  # ORCL paid dividends: every adjusted close is lower


def test_adjust_is_a_no_op_for_yhoo_which_paid_no_dividends(shared_data_dir: Path) -> None:
    path = shared_data_dir / "yhoo-2003-2005.txt"
    pd.testing.assert_frame_equal(load_csv(path, adjust=True).clean, load_csv(path).clean)


def test_adjust_equals_backtrader_yahoo_feed(shared_data_dir: Path) -> None:
    bt = pytest.importorskip("backtrader")
    path = shared_data_dir / "orcl-2014.txt"
    seen: list[tuple[float, ...]] = []

    class Record(bt.Strategy):
        def next(self) -> None:
            d = self.datas[0]
            seen.append((d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.YahooFinanceCSVData(dataname=str(path), adjclose=True, round=False))
    cerebro.addstrategy(Record)
    cerebro.run()
    expected = np.array(seen)
    ours = load_csv(path, adjust=True).clean.to_numpy()
    assert ours.shape == expected.shape == (252, 5)
    # Identical arithmetic; only highs/lows widened by a float ulp to contain the close may differ.
    np.testing.assert_allclose(ours, expected, rtol=1e-15, atol=0)
    assert (ours[:, [0, 3, 4]] == expected[:, [0, 3, 4]]).all()


def test_corrupt_rows_are_quarantined_and_good_rows_load(shared_data_dir: Path, tmp_path: Path) -> None:
    lines = (shared_data_dir / "orcl-2014.txt").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    damaged = list(rows)
    damaged[10] = "2014-13-45" + rows[10][10:]  # impossible date
    damaged[20] = rows[20].replace(rows[20].split(",")[2], "abc", 1)  # non-numeric high
    damaged[30] = ",".join(rows[30].split(",")[:-1])  # a field missing
    damaged[40] = rows[40].split(",")[0] + ",null,null,null,null,null,null"  # Yahoo's null row
    damaged[50] = rows[50] + ",42"  # a field too many
    damaged[60] = ",".join(f if i != 4 else "" for i, f in enumerate(rows[60].split(",")))  # empty close
    copy = write_lines(tmp_path / "orcl-2014.txt", [header, *damaged])
    result = load_csv(copy)
    bad_rows = [10, 20, 30, 40, 50, 60]
    assert list(result.quarantined["reason"]) == [BadBarReason.PARSE_ERROR.value] * len(bad_rows)
    assert pd.isna(result.quarantined.index[0])  # the impossible date could not be read
    original = load_csv(shared_data_dir / "orcl-2014.txt").clean
    pd.testing.assert_frame_equal(result.clean, original.drop(index=original.index[bad_rows]))


def test_literal_nan_is_a_nan_value_not_a_parse_error(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "abc.csv",
        ["Date,Open,High,Low,Close,Volume", "2024-01-02,10,11,9,NaN,100", "2024-01-03,10,11,9,10,100"],
    )
    result = load_csv(path)
    assert list(result.quarantined["reason"]) == [BadBarReason.NAN_VALUE.value]
    assert len(result.clean) == 1


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda f: [*f[:1], "nan", *f[2:]], BadBarReason.NAN_VALUE),
        (lambda f: [*f[:4], "0", *f[5:]], BadBarReason.NON_POSITIVE_PRICE),
        (lambda f: [*f[:5], "-5", *f[6:]], BadBarReason.NON_POSITIVE_PRICE),  # negative Adj Close
        (lambda f: [*f[:1], f[1], f[3], f[2], *f[4:]], BadBarReason.HIGH_BELOW_LOW),
        (lambda f: [*f[:1], str(float(f[2]) * 1.1), *f[2:]], BadBarReason.OPEN_OUTSIDE_RANGE),
        (lambda f: [*f[:4], str(float(f[3]) * 0.9), *f[5:]], BadBarReason.CLOSE_OUTSIDE_RANGE),
        (lambda f: [*f[:6], "-100"], BadBarReason.NEGATIVE_VOLUME),
    ],
)
def test_bad_bars_injected_into_a_copy_are_quarantined(
    edit: object, reason: BadBarReason, shared_data_dir: Path, tmp_path: Path
) -> None:
    lines = (shared_data_dir / "orcl-2003-2005.txt").read_text().splitlines()
    lines[100] = ",".join(edit(lines[100].split(",")))  # type: ignore[operator]
    result = load_csv(write_lines(tmp_path / "orcl.txt", lines), adjust=True)
    bad_date = pd.Timestamp(lines[100].split(",")[0])
    assert list(result.quarantined["reason"]) == [reason.value]
    assert list(result.quarantined.index) == [bad_date]
    assert bad_date not in result.clean.index
    assert len(result.clean) == 755


def test_duplicate_out_of_order_and_holiday_rows_in_a_copy(
    shared_data_dir: Path, tmp_path: Path, calendar: TradingCalendar
) -> None:
    lines = (shared_data_dir / "yhoo-2003-2005.txt").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    holiday = "2004-07-05" + rows[5][10:]  # Independence Day observed: not a session
    damaged = [*rows[:5], rows[4], *rows[5:8], rows[6], rows[9], rows[8], *rows[10:], holiday]
    result = load_csv(write_lines(tmp_path / "yhoo.txt", [header, *damaged]), calendar=calendar)
    assert list(result.quarantined["reason"]) == [
        BadBarReason.DUPLICATE_TIMESTAMP.value,
        BadBarReason.DUPLICATE_TIMESTAMP.value,
        BadBarReason.OUT_OF_ORDER_TIMESTAMP.value,
        BadBarReason.NOT_A_SESSION.value,
    ]
    original = load_csv(shared_data_dir / "yhoo-2003-2005.txt").clean
    pd.testing.assert_frame_equal(result.clean, original.drop(index=original.index[8]))


def test_folder_with_two_files_for_one_symbol_is_ambiguous(shared_data_dir: Path) -> None:
    with pytest.raises(DataError) as info:
        load_csv_folder(shared_data_dir)
    message = str(info.value)
    assert "orcl-1995-2014.txt" in message and "orcl-2003-2005.txt" in message


def test_folder_with_explicit_files(shared_data_dir: Path) -> None:
    results = load_csv_folder(
        shared_data_dir, files={"YHOO": "yhoo-2003-2005.txt", "ORCL": shared_data_dir / "orcl-2003-2005.txt"}
    )
    assert sorted(results) == ["ORCL", "YHOO"]
    assert results["ORCL"].clean.index.equals(results["YHOO"].clean.index)
    only = load_csv_folder(shared_data_dir, symbols=["ORCL"], files={"ORCL": "orcl-2014.txt", "YHOO": "x.txt"})
    assert list(only) == ["ORCL"] and len(only["ORCL"].clean) == 252


def test_folder_scan_loads_csv_and_txt_and_ignores_other_files(shared_data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "orcl-2014.txt").write_bytes((shared_data_dir / "orcl-2014.txt").read_bytes())
    (tmp_path / "yhoo.CSV").write_bytes((shared_data_dir / "yhoo-2003-2005.txt").read_bytes())
    (tmp_path / "README.md").write_text("not data\n")
    results = load_csv_folder(tmp_path)
    assert {s: len(r.clean) for s, r in results.items()} == {"ORCL": 252, "YHOO": 756}
    with pytest.raises(DataError, match="MSFT"):
        load_csv_folder(tmp_path, symbols=["MSFT"])


def _pandas_style_csv(path, sep: str = ",", drop: str | None = None):  # type: ignore[no-untyped-def]
    """Twelve sessions written the way ``DataFrame.to_csv`` writes them: the date index as an unnamed column."""
    import pandas as pd

    from data.calendar import TradingCalendar

    days = TradingCalendar().sessions("2024-03-01", "2024-03-18")
    frame = pd.DataFrame({"Open": 10.0, "High": 11.0, "Low": 9.5, "Close": 10.5, "Volume": 1000.0}, index=days)
    frame.index.name = None  # what to_csv writes for an unnamed index: an empty first header field
    if drop is not None:
        frame = frame.drop(pd.Timestamp(drop))
    frame.to_csv(path, sep=sep)
    return days


def test_issue_15_a_pandas_to_csv_file_with_an_unnamed_date_column_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from data.csv_loader import load_csv

    days = _pandas_style_csv(tmp_path / "GOOG.csv")
    assert (tmp_path / "GOOG.csv").read_text().startswith(",Open,High")
    result = load_csv(tmp_path / "GOOG.csv")
    assert list(result.clean.index) == list(days) and result.quarantined.empty


def test_issue_15_semicolon_tab_and_bar_separated_files_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from data.csv_loader import load_csv

    for name, sep in (("A.csv", ";"), ("B.txt", "\t"), ("C.csv", "|")):
        days = _pandas_style_csv(tmp_path / name, sep=sep)
        assert len(load_csv(tmp_path / name).clean) == len(days)


def test_issue_15_a_one_field_header_says_to_check_the_separator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from core.errors import DataError
    from data.csv_loader import load_csv

    path = tmp_path / "X.csv"
    path.write_text("date;open;high;low;close;volume,extra\n2024-03-01;1;1;1;1;1,2\n")  # mixed: sniffing says ','
    with pytest.raises(DataError, match="separator"):
        load_csv(path)


def test_issue_15_a_session_missing_from_the_data_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.config_models import SyntheticDataConfig
    from data.calendar import TradingCalendar
    from data.loading import load_panel

    _pandas_style_csv(tmp_path / "GOOG.csv", drop="2024-03-07")
    _pandas_style_csv(tmp_path / "MSFT.csv")
    loaded = load_panel(str(tmp_path), calendar=TradingCalendar(), symbols=None, start=None, end=None, seed=0,
                        synthetic=SyntheticDataConfig())  # fmt: skip
    assert loaded.missing_sessions == {"GOOG": {"count": 1, "first": ["2024-03-07"]}}
