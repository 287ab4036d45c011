"""Settings of a home: nothing saved may make a later day unreachable."""

import datetime as dt
import json
from pathlib import Path

from demand_platform.settings import END_ENV, HOME_ENV, START_ENV, PlatformSettings

D = dt.date


def test_bounds_saved_by_older_versions_are_ignored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # What the previous version wrote after `run --through 2024-03-01`: the day-2 crash.
    (home / "settings.json").write_text(json.dumps({START_ENV: "2026-05-01", END_ENV: "2024-03-01"}))
    settings = PlatformSettings.from_env({HOME_ENV: str(home)})
    assert settings.start_date is None and settings.end_date is None


def test_save_keeps_only_an_explicit_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    derived = PlatformSettings(
        home=home, source=tmp_path / "src", start_date=D(2024, 1, 1), end_date=D(2024, 3, 1)
    )
    derived.save()
    assert PlatformSettings.from_env({HOME_ENV: str(home)}).start_date is None
    derived.save(explicit_start=D(2023, 6, 1))
    derived.save()  # a later save without --start keeps the user's choice
    again = PlatformSettings.from_env({HOME_ENV: str(home)})
    assert again.start_date == D(2023, 6, 1) and again.end_date is None
    assert again.source == (tmp_path / "src").resolve()


def test_covering_reaches_the_requested_day() -> None:
    now = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC)
    open_ended = PlatformSettings(home=Path("/h"), source=Path("/s"))
    assert open_ended.yesterday(now) == D(2024, 3, 9)
    assert open_ended.covering(D(2024, 3, 1), now) == open_ended  # partitions already reach yesterday
    assert open_ended.covering(D(2024, 3, 20), now).end_date == D(2024, 3, 20)  # source dated ahead
    capped = PlatformSettings(home=Path("/h"), source=Path("/s"), end_date=D(2024, 2, 1))
    assert capped.covering(D(2024, 2, 2), now).end_date == D(2024, 2, 2)
    assert capped.covering(D(2024, 1, 2), now).end_date == D(2024, 2, 1)


def test_yesterday_is_in_the_company_timezone() -> None:
    late_evening_utc = dt.datetime(2024, 3, 10, 23, 30, tzinfo=dt.UTC)
    tokyo = PlatformSettings(home=Path("/h"), source=Path("/s"), timezone="Asia/Tokyo")
    assert tokyo.yesterday(late_evening_utc) == D(2024, 3, 10)  # already the 11th in Tokyo
