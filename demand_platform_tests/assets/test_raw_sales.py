"""raw_sales and source_audit materialized through Dagster on a temporary DuckDB."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets import ingestion as ingestion_assets
from assets.definitions import build_definitions
from assets.ingestion import AUDIT_CHECK, REJECTED_CHECK
from assets.partitions import range_tags
from demand_platform import columns as C
from demand_platform.settings import PlatformSettings
from demand_platform_tests.conftest import good_transactions, write_tiny_source


def _materialize(settings: PlatformSettings, selection: str, **kwargs) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return dg.materialize(
        [defs.get_assets_def(selection)],
        resources=defs.resources,
        instance=kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def _table(settings: PlatformSettings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _key(day: str, wh: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "warehouse": wh})


def test_single_partition_materializes_its_rows(settings: PlatformSettings) -> None:
    result = _materialize(settings, "raw_sales", partition_key=_key("2024-01-02", "W1"))
    assert result.success
    rows = _table(settings, "SELECT * FROM raw_sales ORDER BY sku")
    assert list(rows[C.SKU]) == ["A", "B"]  # C launches on Jan 3
    assert list(rows[C.QUANTITY]) == [1.0, 0.0]  # 2 sold, 1 returned
    events = result.get_asset_materialization_events()
    event = next(e for e in events if e.asset_key == dg.AssetKey(C.RAW_SALES)).materialization
    assert event.partition == "2024-01-02|W1"
    # the quarantine side table reports its write too (nothing rejected that day)
    quarantine = next(e for e in events if e.asset_key == dg.AssetKey(C.QUARANTINE)).materialization
    assert quarantine.metadata["dagster/row_count"].value == 0
    assert event.metadata["transaction_lines"].value == 2
    assert event.metadata["rejected_lines"].value == 0


def test_rematerializing_a_partition_replaces_it(settings: PlatformSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        assert _materialize(
            settings, "raw_sales", partition_key=_key("2024-01-05", "W2"), instance=instance
        ).success
    rows = _table(settings, "SELECT * FROM raw_sales")
    assert len(rows) == 3 and not rows.duplicated([C.SKU, C.DATE]).any()
    assert rows.set_index(C.SKU).loc["B", C.QUANTITY] == 1.0


def test_range_run_covers_every_day_of_one_warehouse(settings: PlatformSettings) -> None:
    result = _materialize(
        settings, "raw_sales", tags=range_tags(dt.date(2024, 1, 1), dt.date(2024, 1, 10), "W1")
    )
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(C.RAW_SALES)]
    partitions = sorted(e.materialization.partition for e in events)
    assert len(partitions) == 10 and all(p.endswith("|W1") for p in partitions)
    rows = _table(settings, "SELECT date, count(*) AS n FROM raw_sales GROUP BY 1 ORDER BY 1")
    assert list(rows["n"]) == [2, 2] + [3] * 8
    # Each partition carries its own counts (per-partition metadata in a range run).
    by_partition = {
        e.materialization.partition: e.materialization.metadata["transaction_lines"].value for e in events
    }
    assert by_partition["2024-01-02|W1"] == 2 and by_partition["2024-01-03|W1"] == 1


def test_a_run_over_the_metadata_limit_carries_run_totals(
    settings: PlatformSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingestion_assets, "PER_PARTITION_METADATA_MAX", 5)
    result = _materialize(
        settings, "raw_sales", tags=range_tags(dt.date(2024, 1, 1), dt.date(2024, 1, 10), "W1")
    )
    assert result.success
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(C.RAW_SALES)]
    assert len(events) == 10
    for event in events:
        metadata = event.materialization.metadata
        assert "transaction_lines" not in metadata
        assert metadata["run_rows"].value == 28  # the run's totals on every partition
    # The per-day counts stay in the ingest log.
    logged = _table(settings, "SELECT date, lines FROM ingest_log ORDER BY date")
    assert len(logged) == 10 and logged.set_index(C.DATE).loc["2024-01-03", "lines"] == 1


def test_one_day_of_all_warehouses_in_one_run(settings: PlatformSettings) -> None:
    tags = {
        "dagster/asset_partition_range_start": str(_key("2024-01-03", "W1")),
        "dagster/asset_partition_range_end": str(_key("2024-01-03", "W2")),
    }
    assert _materialize(settings, "raw_sales", tags=tags).success
    rows = _table(settings, "SELECT warehouse_id, count(*) AS n FROM raw_sales GROUP BY 1 ORDER BY 1")
    assert list(rows["n"]) == [3, 3]


def test_bad_lines_go_to_quarantine_and_warn_over_5pct(tmp_path: Path, settings: PlatformSettings) -> None:
    lines = good_transactions()
    bad = lines[lines[C.WAREHOUSE_ID] == "W1"].head(1).assign(**{C.SKU: "NOPE", C.TRANSACTION_ID: "bad"})
    write_tiny_source(settings.source, pd.concat([lines, bad], ignore_index=True))
    result = _materialize(settings, "raw_sales", partition_key=_key("2024-01-01", "W1"))
    assert result.success  # valid data still flows
    assert len(_table(settings, "SELECT * FROM raw_sales")) == 2
    quarantine = _table(settings, "SELECT * FROM quarantine")
    assert list(quarantine[C.REASON]) == ["unknown sku"]
    assert list(quarantine[C.DETECTED_BY]) == ["raw_sales"]
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == REJECTED_CHECK
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # 1 of 2 lines = 50%
    # A clean partition passes the check.
    ok = _materialize(settings, "raw_sales", partition_key=_key("2024-01-01", "W2"))
    assert ok.get_asset_check_evaluations()[0].passed


def test_source_audit_quarantines_orphans(tmp_path: Path, settings: PlatformSettings) -> None:
    lines = good_transactions()
    orphan = lines.head(1).assign(**{C.WAREHOUSE_ID: "W99", C.TRANSACTION_ID: "orphan"})
    write_tiny_source(settings.source, pd.concat([lines, orphan], ignore_index=True))
    result = _materialize(settings, "source_audit")
    assert result.success
    summary = _table(settings, "SELECT * FROM source_audit")
    assert summary.to_dict("records") == [
        {C.SOURCE_TABLE: C.TRANSACTIONS, C.REASON: "unknown warehouse_id", "rows": 1}
    ]
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == AUDIT_CHECK and not check.passed


def test_a_day_whose_lines_have_not_landed_is_refused(settings: PlatformSettings, tmp_path: Path) -> None:
    """The day after the source's last line: no zero-demand day is invented, the error says why."""
    late = dt.date(2024, 1, 10) + dt.timedelta(days=1)
    later = PlatformSettings(**{**settings.__dict__, "end_date": late})
    defs = build_definitions(later)
    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=str(dg.MultiPartitionKey({"date": late.isoformat(), "warehouse": "W1"})),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "have not landed" in str(failure.step_failure_data.user_failure_data.description)
