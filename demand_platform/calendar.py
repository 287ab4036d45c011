"""A generated business calendar, for sources that ship no ``calendar`` table.

The frame has exactly the columns of the source ``calendar`` table (``columns.CALENDAR_COLUMNS``), so the
feature code cannot tell a generated calendar from a delivered one.
"""

import datetime as dt
import functools

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


#: Days relative to a holiday that get an event key of their own: two before to four after (Black Friday is
#: Thanksgiving + 1, Cyber Monday Thanksgiving + 4).
HOLIDAY_OFFSETS = (-2, 4)
NO_EVENT = ""


@functools.lru_cache(maxsize=32)
def national_holidays(first_year: int, last_year: int, country: str = "US") -> tuple[np.ndarray, np.ndarray]:
    """Epoch days (sorted) and names of the national holidays of ``first_year .. last_year`` (cached)."""
    found = sorted(holidays.country_holidays(country, years=range(first_year, last_year + 1)).items())
    days = np.array([(day - dt.date(1970, 1, 1)).days for day, _ in found], dtype=np.int64)
    names = np.array([name for _, name in found], dtype=object)
    return days, names


def holiday_keys(
    holiday_days: np.ndarray, holiday_names: np.ndarray, first_day: int, n_days: int
) -> np.ndarray:
    """Event key of each epoch day ``first_day .. first_day + n_days - 1``.

    The key is ``"<holiday> <offset>"`` of the nearest holiday within ``HOLIDAY_OFFSETS`` (``"<holiday> +0"``
    on the day; a tie goes to the earlier holiday), ``NO_EVENT`` for a day near no holiday. Black Friday is
    ``"Thanksgiving Day +1"`` in the US calendar, which has no holiday of that name.

    Args:
        holiday_days: Sorted epoch days of the holidays.
        holiday_names: Their names.
        first_day: First epoch day.
        n_days: Number of days.
    """
    days = first_day + np.arange(n_days)
    keys = np.full(n_days, NO_EVENT, dtype=object)
    if len(holiday_days) == 0:
        return keys
    before, after = HOLIDAY_OFFSETS
    last = len(holiday_days) - 1
    nxt = np.searchsorted(holiday_days, days, side="left")  # first holiday on or after the day
    has_next, has_prev = nxt <= last, nxt >= 1
    off_next = np.where(has_next, days - holiday_days[np.clip(nxt, 0, last)], -(10**6))  # <= 0
    off_prev = np.where(has_prev, days - holiday_days[np.clip(nxt - 1, 0, last)], 10**6)  # > 0
    next_ok = has_next & (off_next >= before)
    prev_ok = has_prev & (off_prev <= after)
    use_next = next_ok & ((off_next == 0) | ~prev_ok | (-off_next < off_prev))
    use_prev = prev_ok & ~use_next
    for mask, index, offset in ((use_next, nxt, off_next), (use_prev, nxt - 1, off_prev)):
        if mask.any():
            names = holiday_names[index[mask]]
            keys[mask] = [f"{name} {off:+d}" for name, off in zip(names, offset[mask], strict=True)]
    return keys
