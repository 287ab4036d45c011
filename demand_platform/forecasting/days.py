"""Epoch days (days since 1970-01-01), the integer days the forecasting arrays are indexed by."""

import pandas as pd

from demand_platform.features import DateLike

NS_PER_DAY = 86_400 * 10**9


def to_day(value: DateLike) -> int:
    """Days since 1970-01-01 of a date-like value (its time of day dropped)."""
    return int(pd.Timestamp(value).normalize().value // NS_PER_DAY)


def weekday(day: int) -> int:
    """Weekday (Monday = 0) of an epoch day (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def to_timestamp(day: int) -> pd.Timestamp:
    """The midnight timestamp of an epoch day."""
    return pd.Timestamp(int(day) * NS_PER_DAY)
