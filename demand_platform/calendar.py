"""A generated business calendar, for sources that ship no ``calendar`` table.

The frame has exactly the columns of the source ``calendar`` table (``columns.CALENDAR_COLUMNS``), so the
feature code cannot tell a generated calendar from a delivered one.
"""

import datetime as dt

import holidays
import numpy as np
import pandas as pd

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

PAYDAY_DAY_OF_MONTH = 15


def build_calendar(
    start: dt.date | str | pd.Timestamp,
    end: dt.date | str | pd.Timestamp,
    country: str = "US",
) -> pd.DataFrame:
    """Builds one calendar row per day from ``start`` to ``end`` (both inclusive).

    Holidays are the national holidays of ``country`` from the ``holidays`` package, including the
    "(observed)" days the package adds when a holiday falls on a weekend. Days with two holidays get the
    package's joined name ("A; B").

    Args:
        start: First date of the calendar.
        end: Last date of the calendar (inclusive); may lie in the future.
        country: ISO 3166 country code understood by ``holidays.country_holidays``.

    Returns:
        A frame with ``columns.CALENDAR_COLUMNS``: ``date`` (datetime64[ns], midnight), ``day_of_week``
        (1-7, Monday = 1), ``is_weekend``, ``is_holiday``, ``holiday_name`` (None when no holiday),
        ``is_payday`` (the 15th or the last day of the month), ``month``, ``quarter`` and ``year``.

    Raises:
        ValueError: If ``end`` is before ``start``.
    """
    start_ts = pd.Timestamp(start).normalize()
    end_ts = pd.Timestamp(end).normalize()
    if end_ts < start_ts:
        raise ValueError(f"calendar end {end_ts.date()} is before start {start_ts.date()}")
    dates = pd.date_range(start_ts, end_ts, freq="D")
    country_holidays = holidays.country_holidays(country, years=range(start_ts.year, end_ts.year + 1))
    names = np.array([country_holidays.get(day) for day in dates.date], dtype=object)
    day_of_week = dates.dayofweek.to_numpy() + 1
    frame = pd.DataFrame(
        {
            DATE: dates.to_numpy(),
            DAY_OF_WEEK: day_of_week.astype(np.int64),
            IS_WEEKEND: day_of_week >= 6,
            IS_HOLIDAY: np.array([name is not None for name in names], dtype=bool),
            HOLIDAY_NAME: names,
            IS_PAYDAY: (dates.day.to_numpy() == PAYDAY_DAY_OF_MONTH) | dates.is_month_end,
            MONTH: dates.month.to_numpy().astype(np.int64),
            QUARTER: dates.quarter.to_numpy().astype(np.int64),
            YEAR: dates.year.to_numpy().astype(np.int64),
        }
    )
    return frame.loc[:, list(CALENDAR_COLUMNS)]
