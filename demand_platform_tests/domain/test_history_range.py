"""The first partition day comes from the bulk of the history: stray or infinite dates are never a bound."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform_tests.conftest import DAYS, START, good_transactions, write_tiny_source

D1 = START + dt.timedelta(days=DAYS - 1)
TODAY = dt.date(2026, 12, 1)


def _with_dates(dates: list[object], fmt: str = "parquet") -> pd.DataFrame:
    """The good lines plus one stray line of SKU A in W1 per given date."""
    lines = good_transactions()
    if fmt == "csv":
        lines[C.TRANSACTION_DATE] = lines[C.TRANSACTION_DATE].dt.strftime("%Y-%m-%d").astype(object)
    stray = lines.iloc[[0] * len(dates)].copy()
    stray[C.TRANSACTION_ID] = [f"stray-{i}" for i in range(len(dates))]
    stray[C.TRANSACTION_DATE] = dates
    return pd.concat([lines, stray], ignore_index=True)


def _range(src: Path, today: dt.date = TODAY) -> tuple[dt.date, dt.date]:
    first, last = source.history_range(src, today=today)
    return first.date(), last.date()


def test_bulk_of_the_history_without_strays(tiny_source: Path) -> None:
    assert _range(tiny_source) == (START, D1)
    assert source.first_continuous_date(tiny_source, today=TODAY).date() == START
    assert source.last_history_date(tiny_source, today=TODAY).date() == D1


@pytest.mark.parametrize(
    "dates",
    [
        [pd.Timestamp("2019-05-01"), pd.Timestamp("2020-02-01")],  # years before
        [pd.Timestamp(D1) + pd.Timedelta(days=400)] * 3,  # 400 days after, still before today
        [pd.Timestamp(D1) + pd.Timedelta(days=40), pd.Timestamp(D1) + pd.Timedelta(days=41)],  # after a gap
        [pd.Timestamp("2019-05-01"), pd.Timestamp(D1) + pd.Timedelta(days=400)],  # both sides
    ],
)
def test_stray_lines_before_or_after_are_not_bounds(tmp_path: Path, dates: list[pd.Timestamp]) -> None:
    src = write_tiny_source(tmp_path / "src", _with_dates(dates))
    assert _range(src) == (START, D1)


def test_lines_after_tomorrow_are_never_a_bound(tmp_path: Path) -> None:
    # More future lines than history lines, but dated after today + 1: still not the history.
    future = [pd.Timestamp(TODAY) + pd.Timedelta(days=2 + i % 3) for i in range(40)]
    src = write_tiny_source(tmp_path / "src", _with_dates(future))
    assert _range(src) == (START, D1)
    # Tomorrow's lines (a time zone ahead) count: they extend the history when contiguous.
    lines = good_transactions()
    shifted = lines.assign(**{C.TRANSACTION_DATE: lines[C.TRANSACTION_DATE] + pd.Timedelta(days=5)})
    src2 = write_tiny_source(tmp_path / "src2", shifted)
    assert _range(src2, today=D1 + dt.timedelta(days=4)) == (
        START + dt.timedelta(days=5),
        D1 + dt.timedelta(days=5),
    )
    assert _range(src2, today=D1 + dt.timedelta(days=2)) == (
        START + dt.timedelta(days=5),
        D1 + dt.timedelta(days=3),
    )


def test_a_history_entirely_after_today_is_still_found(tiny_source: Path) -> None:
    assert _range(tiny_source, today=START - dt.timedelta(days=100)) == (START, D1)


def test_segments_split_at_gaps_and_the_one_with_most_lines_wins(tmp_path: Path) -> None:
    # 30 lines over three days 200 days before the 21-line history: that older segment is the bulk.
    dates = [pd.Timestamp(START) - pd.Timedelta(days=200 + i % 3) for i in range(30)]
    src = write_tiny_source(tmp_path / "src", _with_dates(dates))
    first, last = _range(src)
    assert (first, last) == (START - dt.timedelta(days=202), START - dt.timedelta(days=200))
    # A gap of exactly max_gap_days does not split.
    lines = good_transactions()
    later = lines.assign(**{C.TRANSACTION_DATE: lines[C.TRANSACTION_DATE] + pd.Timedelta(days=DAYS - 1 + 30)})
    src2 = write_tiny_source(tmp_path / "src2", pd.concat([lines, later], ignore_index=True))
    assert _range(src2) == (START, D1 + dt.timedelta(days=DAYS - 1 + 30))


@pytest.mark.parametrize("text", ["infinity", "-infinity", "epoch"])
def test_infinite_dates_are_unparseable_everywhere(tmp_path: Path, text: str) -> None:
    src = write_tiny_source(tmp_path / "src", _with_dates([text] * 30, fmt="csv"), fmt="csv")
    assert _range(src) == (START, D1)
    assert source.transactions_date_range(src) == (pd.Timestamp(START), pd.Timestamp(D1))
    orphans = ingestion.orphan_transactions(src, ["W1", "W2"], START, D1)
    assert list(orphans[C.REASON]) == ["unparseable transaction_date"] * 30
    assert orphans[C.PARTITION_DATE].isna().all()
    # Over every representable day, no slice holds the infinite lines (DuckDB would read 'infinity'
    # as an infinite date, ordered after 9999-12-31 and before 0001-01-01).
    everything = (dt.date(1, 1, 1), dt.date(9999, 12, 31))
    days = ingestion.day_fingerprints(src, ["W1", "W2"], *everything)
    assert days[C.LINES].sum() == len(good_transactions()) and days[C.DATE].max() == pd.Timestamp(D1)
    warehouses = source.load_table(src, C.WAREHOUSES).valid
    no_zero_rows = warehouses.assign(**{C.OPERATIONAL_SINCE: pd.Timestamp("2262-01-01")})
    products = source.load_table(src, C.PRODUCTS).valid
    wide = ingestion.ingest_sales(src, products.iloc[:0], no_zero_rows, *everything)
    assert wide.n_lines == len(good_transactions())
    assert set(wide.quarantine[C.REASON]) == {"unknown sku"}  # no product: every line, none infinite
    assert wide.lines_per_date[C.DATE].max() == pd.Timestamp(D1)


def test_no_parseable_date_is_an_error(tmp_path: Path) -> None:
    src = write_tiny_source(
        tmp_path / "src", _with_dates([]).assign(**{C.TRANSACTION_DATE: "someday"}), fmt="csv"
    )
    with pytest.raises(source.SourceError, match=r"transactions\.csv.*transaction_date.*no parseable date"):
        source.history_range(src)
