"""The CLI's catch-up logic: which runs bring the platform up to date."""

import datetime as dt
from pathlib import Path

import duckdb

from assets.orchestration import day_boxes, missing_ranges, run_platform
from demand_platform.settings import PlatformSettings

D = dt.date


def test_missing_ranges_are_contiguous_per_warehouse() -> None:
    done = {"2024-01-02|W1", "2024-01-03|W1", "2024-01-01|W2", "2024-01-02|W2", "2024-01-03|W2"}
    assert missing_ranges(done, ["W1", "W2"], D(2024, 1, 1), D(2024, 1, 5)) == [
        ("W1", D(2024, 1, 1), D(2024, 1, 1)),
        ("W1", D(2024, 1, 4), D(2024, 1, 5)),
        ("W2", D(2024, 1, 4), D(2024, 1, 5)),
    ]
    assert missing_ranges(done, ["W2"], D(2024, 1, 1), D(2024, 1, 3)) == []


def test_day_boxes_split_on_gaps() -> None:
    boxes = day_boxes(D(2024, 1, 1), ["W1", "W2", "W4"], ["W1", "W2", "W3", "W4"])
    assert [
        (b["dagster/asset_partition_range_start"], b["dagster/asset_partition_range_end"]) for b in boxes
    ] == [
        ("2024-01-01|W1", "2024-01-01|W2"),
        ("2024-01-01|W4", "2024-01-01|W4"),
    ]


def test_run_platform_is_incremental(settings: PlatformSettings, tmp_path: Path) -> None:
    first = run_platform(settings, D(2024, 1, 5))
    assert not first.failed and first.tables["raw_sales"] == 2 * (2 * 5 + 3)
    second = run_platform(settings, D(2024, 1, 10))
    assert not second.failed
    # Only the 5 new days of each warehouse were ingested: one run per warehouse, plus audit and features.
    assert second.runs == 1 + 2 + 1
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    days = con.execute("SELECT count(DISTINCT date) FROM raw_sales").fetchone()
    origins = con.execute(
        "SELECT DISTINCT CAST(origin_date AS DATE) FROM feature_table ORDER BY 1"
    ).fetchall()
    con.close()
    assert days == (10,)
    assert [o[0] for o in origins] == [D(2024, 1, 5), D(2024, 1, 10)]
