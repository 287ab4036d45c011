"""The one conversion between dates and epoch days."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from demand_platform import days


@pytest.mark.parametrize(
    "value",
    [
        dt.date(2024, 2, 29),
        "2024-02-29",
        pd.Timestamp("2024-02-29 17:45"),
        np.datetime64("2024-02-29T23:59:59"),
    ],
)
def test_to_day_and_back_is_the_calendar_day(value: days.DateLike) -> None:
    day = days.to_day(value)
    assert day == (dt.date(2024, 2, 29) - dt.date(1970, 1, 1)).days
    assert days.to_timestamp(day) == pd.Timestamp("2024-02-29")
    assert days.to_timestamp(np.int64(day)) == pd.Timestamp("2024-02-29")


def test_weekday_matches_the_calendar() -> None:
    for offset in range(14):
        date = dt.date(2024, 1, 1) + dt.timedelta(days=offset)
        assert days.weekday(days.to_day(date)) == date.weekday()


def test_days_before_the_epoch_are_negative() -> None:
    assert days.to_day("1969-12-31") == -1
    assert days.to_timestamp(-1) == pd.Timestamp("1969-12-31")
