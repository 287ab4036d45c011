"""feature_table and tier_assignments materialized through Dagster on a temporary DuckDB."""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets import features as features_assets
from assets.definitions import build_definitions
from assets.features import HISTORY_CHECK
from assets.partitions import range_tags
from demand_platform import columns as C
from demand_platform import dbfile, features, tiering
from demand_platform.settings import PlatformSettings


def _run(settings: PlatformSettings, asset: str, instance: dg.DagsterInstance, **kwargs):
    defs = build_definitions(settings)
    return dg.materialize([defs.get_assets_def(asset)], resources=defs.resources, instance=instance, **kwargs)


def _ingest(settings: PlatformSettings, instance: dg.DagsterInstance, start: dt.date, end: dt.date) -> None:
    for wh in ("W1", "W2"):
        assert _run(settings, "raw_sales", instance, tags=range_tags(start, end, wh)).success


def _key(day: str, wh: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "warehouse": wh})


def _read(settings: PlatformSettings, table: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table}").df()
    finally:
        con.close()


def test_feature_table_for_one_origin(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    result = _run(settings, "feature_table", instance, partition_key=_key("2024-01-10", "W1"))
    assert result.success
    table = _read(settings, "feature_table")
    assert sorted(table[C.SKU]) == ["A", "B", "C"]
    a = table.set_index(C.SKU).loc["A"]
    assert a["demand_lag_1"] == 2.0  # A sells 2 every day in W1
    assert a[features.MISSING_HISTORY_DAYS] == 0
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == HISTORY_CHECK and check.passed


def test_history_holes_fail_the_check_until_filled(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 4))
    _ingest(settings, instance, dt.date(2024, 1, 6), dt.date(2024, 1, 10))
    result = _run(
        settings, "feature_table", instance, partition_key=_key("2024-01-10", "W1"), raise_on_error=False
    )
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    # Blocking: the step fails, so nothing downstream in the same run is built on the hole.
    assert not result.success
    assert check.metadata["first_missing_days"].value == {"2024-01-10|W1": ["2024-01-05"]}
    assert _read(settings, "feature_table")[features.MISSING_HISTORY_DAYS].tolist() == [1, 1, 1]
    _ingest(settings, instance, dt.date(2024, 1, 5), dt.date(2024, 1, 5))
    again = _run(settings, "feature_table", instance, partition_key=_key("2024-01-10", "W1"))
    assert again.get_asset_check_evaluations()[0].passed
    assert _read(settings, "feature_table")[features.MISSING_HISTORY_DAYS].tolist() == [0, 0, 0]


def test_feature_table_ignores_sales_after_the_origin(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 6))
    _run(settings, "feature_table", instance, partition_key=_key("2024-01-06", "W1"))
    before = _read(settings, "feature_table")
    _ingest(settings, instance, dt.date(2024, 1, 7), dt.date(2024, 1, 10))  # later days land
    _run(settings, "feature_table", instance, partition_key=_key("2024-01-06", "W1"))
    pd.testing.assert_frame_equal(before, _read(settings, "feature_table"))


def test_range_run_builds_every_origin_of_the_box(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    result = _run(
        settings, "feature_table", instance, tags=range_tags(dt.date(2024, 1, 8), dt.date(2024, 1, 10), "W2")
    )
    assert result.success
    table = _read(settings, "feature_table")
    assert table.groupby(features.ORIGIN_DATE).size().tolist() == [3, 3, 3]
    assert set(table[C.WAREHOUSE_ID]) == {"W2"}


def test_tier_assignments(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    result = _run(settings, "tier_assignments", instance, partition_key=_key("2024-01-10", "W1"))
    assert result.success
    tiers = _read(settings, "tier_assignments").set_index(C.SKU)
    assert tiers.loc["A", C.TIER] == 1  # the only SKU with revenue in W1
    assert tiers.loc["C", "route"] == "cold_start"  # launched on Jan 3
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(C.TIER_ASSIGNMENTS)
    )
    assert "tier_summary" in event.materialization.metadata


def test_a_text_column_null_in_the_first_partition_takes_values_later(settings: PlatformSettings) -> None:
    # Jan 2 has no holiday (origin_holiday_name all null) and creates the table; Jan 1 is New Year's Day.
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert _run(settings, "feature_table", instance, partition_key=_key("2024-01-02", "W1")).success
    assert _run(settings, "feature_table", instance, partition_key=_key("2024-01-01", "W1")).success
    names = _read(settings, "feature_table").groupby(features.ORIGIN_DATE)["origin_holiday_name"].first()
    assert names.isna().tolist() == [False, True] and "New Year" in names.iloc[0]


def test_the_database_lock_is_not_held_while_computing(
    settings: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two runs of the duckdb pool overlap only if each holds the file's lock for its reads and
    # writes, not for the computation in between.
    held: list[tuple[str, bool]] = []

    def spy(name: str, module: object, function: Callable) -> None:
        def wrapped(*args, **kwargs):
            held.append((name, dbfile.holds_lock(settings.duckdb_path)))
            return function(*args, **kwargs)

        monkeypatch.setattr(module, function.__name__, wrapped)

    spy("features_and_tiers", features_assets.tiering, tiering.features_and_tiers)
    instance = dg.DagsterInstance.ephemeral()
    _ingest(settings, instance, dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    box = {
        "dagster/asset_partition_range_start": str(_key("2024-01-10", "W1")),
        "dagster/asset_partition_range_end": str(_key("2024-01-10", "W2")),
    }
    assert _run(settings, "feature_table", instance, tags=box).success
    assert held == [("features_and_tiers", False)] * 2  # one call per warehouse
