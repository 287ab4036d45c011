"""Per-day fingerprints: a late, changed or deleted line changes its day's fingerprint and no other."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform_tests.conftest import DAYS, START, good_transactions, write_tiny_source

D1 = START + dt.timedelta(days=DAYS - 1)
WAREHOUSES = ["W1", "W2"]


def _lines() -> pd.DataFrame:
    """The good lines plus one line of an unknown SKU (rejected, still part of its day)."""
    lines = good_transactions()
    bad = lines.iloc[[2]].assign(**{C.TRANSACTION_ID: "bad", C.SKU: "NOPE"})
    return pd.concat([lines, bad], ignore_index=True)


def _days(src: Path, start: dt.date = START, end: dt.date = D1) -> pd.DataFrame:
    return ingestion.day_fingerprints(src, WAREHOUSES, start, end).set_index([C.WAREHOUSE_ID, C.DATE])


def _changed(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple[str, pd.Timestamp]]:
    joined = before.join(after, how="outer", lsuffix="_a", rsuffix="_b")
    differs = (joined["fingerprint_a"] != joined["fingerprint_b"]) | (joined["lines_a"] != joined["lines_b"])
    return set(joined.index[differs])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_fingerprints_equal_the_ingested_ones(tmp_path: Path, fmt: str) -> None:
    src = write_tiny_source(tmp_path / "src", _lines(), fmt=fmt)
    products = source.load_table(src, C.PRODUCTS).valid
    warehouses = source.load_table(src, C.WAREHOUSES).valid
    sales = ingestion.ingest_sales(src, products, warehouses, START, D1)
    assert sales.n_rejected == 1
    days = ingestion.day_fingerprints(src, WAREHOUSES, START, D1)
    assert list(days.columns) == [C.WAREHOUSE_ID, C.DATE, C.LINES, C.FINGERPRINT]
    assert days.dtypes.astype(str).tolist() == ["object", "datetime64[ns]", "int64", "int64"]
    pd.testing.assert_frame_equal(days, sales.lines_per_date.drop(columns=[C.REJECTED]))
    assert (days[C.FINGERPRINT] >= 0).all() and days[C.FINGERPRINT].is_unique
    # W2 sells every other day: its days without lines are absent, not zero.
    assert len(days) == DAYS + DAYS // 2
    # A narrower slice gives the same values for its days (one warehouse, a few days).
    part = ingestion.day_fingerprints(src, ["W2"], START + dt.timedelta(days=2), START + dt.timedelta(days=4))
    expected = days[(days[C.WAREHOUSE_ID] == "W2") & days[C.DATE].between("2024-01-03", "2024-01-05")]
    pd.testing.assert_frame_equal(part, expected.reset_index(drop=True))


def test_row_order_does_not_matter(tmp_path: Path) -> None:
    lines = _lines()
    a = write_tiny_source(tmp_path / "a", lines)
    b = write_tiny_source(tmp_path / "b", lines.sample(frac=1.0, random_state=3).reset_index(drop=True))
    pd.testing.assert_frame_equal(_days(a), _days(b))


def test_a_late_changed_or_deleted_line_changes_only_its_day(tmp_path: Path) -> None:
    lines = _lines()
    before = _days(write_tiny_source(tmp_path / "before", lines))
    day3, day6 = pd.Timestamp(START) + pd.Timedelta(days=3), pd.Timestamp(START) + pd.Timedelta(days=6)

    late = lines.iloc[[3]].assign(**{C.TRANSACTION_ID: "late-1", C.TRANSACTION_DATE: day3})
    added = _days(write_tiny_source(tmp_path / "late", pd.concat([lines, late], ignore_index=True)))
    assert _changed(before, added) == {("W1", day3)}
    assert added.loc[("W1", day3), C.LINES] == before.loc[("W1", day3), C.LINES] + 1

    changed_lines = lines.copy()
    row = changed_lines.index[
        (changed_lines[C.WAREHOUSE_ID] == "W2") & (changed_lines[C.TRANSACTION_DATE] == day6)
    ]
    changed_lines.loc[row, C.QUANTITY] = 7
    changed = _days(write_tiny_source(tmp_path / "changed", changed_lines))
    assert _changed(before, changed) == {("W2", day6)}
    assert changed.loc[("W2", day6), C.LINES] == before.loc[("W2", day6), C.LINES]

    deleted = _days(write_tiny_source(tmp_path / "deleted", lines.drop(index=row)))
    assert _changed(before, deleted) == {("W2", day6)}  # the day is gone: its only line was deleted
    assert ("W2", day6) not in deleted.index

    # A second, identical copy of a line (same id: a duplicate) changes the day too.
    twice = _days(
        write_tiny_source(tmp_path / "twice", pd.concat([lines, lines.iloc[[0]]], ignore_index=True))
    )
    first_day = pd.Timestamp(lines.iloc[0][C.TRANSACTION_DATE])
    assert _changed(before, twice) == {("W1", first_day)}


def test_a_line_moved_to_another_day_changes_both_days(tmp_path: Path) -> None:
    lines = _lines()
    before = _days(write_tiny_source(tmp_path / "before", lines))
    moved = lines.copy()
    moved.loc[0, C.TRANSACTION_DATE] = pd.Timestamp(START) + pd.Timedelta(days=5)
    after = _days(write_tiny_source(tmp_path / "after", moved))
    assert _changed(before, after) == {
        ("W1", pd.Timestamp(START)),
        ("W1", pd.Timestamp(START) + pd.Timedelta(days=5)),
    }


def test_no_warehouse_no_line(tiny_source: Path) -> None:
    empty = ingestion.day_fingerprints(tiny_source, [], START, D1)
    assert empty.empty and list(empty.columns) == [C.WAREHOUSE_ID, C.DATE, C.LINES, C.FINGERPRINT]
    assert empty.dtypes.astype(str).tolist() == ["object", "datetime64[ns]", "int64", "int64"]


def test_the_same_lines_exported_with_other_column_types_keep_their_fingerprints(tmp_path: Path) -> None:
    lines = _lines()
    as_int = write_tiny_source(tmp_path / "int", lines)
    # The next day's export has a float quantity (pandas after one NaN), a timestamp date and the csv format.
    floats = lines.assign(**{C.QUANTITY: lines[C.QUANTITY].astype(float)})
    floats[C.TRANSACTION_DATE] = pd.to_datetime(floats[C.TRANSACTION_DATE]) + pd.Timedelta(hours=10)
    as_float = write_tiny_source(tmp_path / "float", floats)
    as_csv = write_tiny_source(tmp_path / "csv", lines, fmt="csv")
    pd.testing.assert_frame_equal(_days(as_int), _days(as_float))
    pd.testing.assert_frame_equal(_days(as_int), _days(as_csv))
