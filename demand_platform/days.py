"""Days as integers: the one conversion between dates and epoch days the kernels index by.

The vectorised kernels index history matrices by *epoch day* (days since 1970-01-01), so date columns are
converted once, here, and every module agrees on the conversion.
"""

import datetime as dt

import numpy as np
import pandas as pd

NS_PER_DAY = 86_400 * 10**9
"""Nanoseconds in a day (``datetime64[ns]`` values divided by it are epoch days)."""

HORIZON_BANDS: tuple[tuple[int, int], ...] = ((1, 7), (8, 14), (15, 30))
"""Horizon bands, in days ahead of the origin: one LightGBM model each, and the bands accuracy is reported by."""

DateLike = dt.date | str | pd.Timestamp | np.datetime64
"""Anything :class:`pandas.Timestamp` reads as a date."""


def to_day(value: DateLike) -> int:
    """Days since 1970-01-01 of a date-like value (its time of day dropped)."""
    return int(pd.Timestamp(value).normalize().value // NS_PER_DAY)


def to_timestamp(day: int) -> pd.Timestamp:
    """The midnight timestamp of an epoch day."""
    return pd.Timestamp(int(day) * NS_PER_DAY)


def weekday(day: int) -> int:
    """Day of the week of an epoch day, Monday = 0 (1970-01-01 was a Thursday)."""
    return (int(day) + 3) % 7
