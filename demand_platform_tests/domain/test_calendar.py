"""Tests of the generated business calendar."""

import datetime as dt

import pandas as pd
import pytest

from demand_platform.calendar import build_calendar
from demand_platform.columns import (
    CALENDAR_COLUMNS,
    DATE,
    DAY_OF_WEEK,
    HOLIDAY_NAME,
    IS_HOLIDAY,
    IS_PAYDAY,
    IS_WEEKEND,
    MONTH,
    QUARTER,
    YEAR,
)


@pytest.fixture(scope="module")
def calendar_2024() -> pd.DataFrame:
    return build_calendar(dt.date(2024, 1, 1), dt.date(2024, 12, 31)).set_index(DATE)


def test_one_row_per_day_with_calendar_columns() -> None:
    calendar = build_calendar("2023-12-30", "2024-01-02")
    assert tuple(calendar.columns) == CALENDAR_COLUMNS
    assert calendar[DATE].tolist() == list(pd.date_range("2023-12-30", "2024-01-02"))
    assert calendar[YEAR].tolist() == [2023, 2023, 2024, 2024]


def test_day_of_week_monday_is_one_and_weekend(calendar_2024: pd.DataFrame) -> None:
    monday = calendar_2024.loc["2024-01-01"]
    saturday = calendar_2024.loc["2024-01-06"]
    sunday = calendar_2024.loc["2024-01-07"]
    assert (monday[DAY_OF_WEEK], saturday[DAY_OF_WEEK], sunday[DAY_OF_WEEK]) == (1, 6, 7)
    assert not monday[IS_WEEKEND]
    assert saturday[IS_WEEKEND]
    assert sunday[IS_WEEKEND]


def test_us_national_holidays(calendar_2024: pd.DataFrame) -> None:
    assert calendar_2024.loc["2024-07-04", IS_HOLIDAY]
    assert calendar_2024.loc["2024-07-04", HOLIDAY_NAME] == "Independence Day"
    assert calendar_2024.loc["2024-12-25", HOLIDAY_NAME] == "Christmas Day"
    assert calendar_2024.loc["2024-11-28", IS_HOLIDAY]  # Thanksgiving
    assert not calendar_2024.loc["2024-07-05", IS_HOLIDAY]
    assert calendar_2024.loc["2024-07-05", HOLIDAY_NAME] is None
    assert calendar_2024[IS_HOLIDAY].sum() == 11


def test_payday_is_15th_and_last_day_of_month(calendar_2024: pd.DataFrame) -> None:
    paydays = calendar_2024.index[calendar_2024[IS_PAYDAY]]
    assert len(paydays) == 24
    assert pd.Timestamp("2024-02-15") in paydays
    assert pd.Timestamp("2024-02-29") in paydays
    assert pd.Timestamp("2024-02-28") not in paydays
    assert pd.Timestamp("2024-04-30") in paydays


def test_month_and_quarter(calendar_2024: pd.DataFrame) -> None:
    row = calendar_2024.loc["2024-08-17"]
    assert (row[MONTH], row[QUARTER], row[YEAR]) == (8, 3, 2024)


def test_end_before_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="before start"):
        build_calendar("2024-02-01", "2024-01-01")
