"""accuracy_report materialized through Dagster on a temporary DuckDB holding raw_sales and forecasts."""

import datetime as dt
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from assets.partitions import build_partitions, range_tags, window_mapping
from assets.reporting import ACCURACY_REPORT, build_reporting_assets
from demand_platform import columns as C
from demand_platform.accuracy import BY_TIER, OVERALL
from demand_platform.reporting import FORECAST_ORIGIN_DATE, GROUP, PLOT_NAMES, TABLE
from demand_platform.settings import PlatformSettings
from demand_platform.store import FEATURE_DRIFT_REFERENCE_DAYS, read_forecast_window
from demand_platform_tests.conftest import query_database
from resources.source import SourceDataResource

DAY = "2024-01-10"
LEVELS = {"A": 10.0, "B": 4.0, "C": 2.0}
TIERS = {"A": 1, "B": 2, "C": 3}
DAYS = pd.date_range("2024-01-01", "2024-01-10")
CHARTS_URL = "http://charts.test:8080"


def raw_sales() -> pd.DataFrame:
    """Constant daily demand per SKU in both warehouses over the 10 days."""
    rows = [
        (sku, wh, day, level, level, 1)
        for wh in ("W1", "W2")
        for sku, level in LEVELS.items()
        for day in DAYS
    ]
    frame = pd.DataFrame(rows, columns=list(C.RAW_SALES_COLUMNS))
    frame[C.DATE] = frame[C.DATE].astype("datetime64[ns]")
    frame[C.N_ORDERS] = frame[C.N_ORDERS].astype(np.int64)
    return frame


def forecasts(factor: float, warehouses: tuple[str, ...] = ("W1",)) -> pd.DataFrame:
    """Forecasts (the forecasts asset's columns) of every origin, D+1..D+30, at ``factor`` x the demand."""
    h = np.arange(1, 31)
    parts = []
    for wh in warehouses:
        for sku, level in LEVELS.items():
            for origin in DAYS:
                point = np.full(h.size, factor * level)
                parts.append(
                    pd.DataFrame(
                        {
                            C.SKU: sku,
                            C.WAREHOUSE_ID: wh,
                            C.ORIGIN_DATE: origin,
                            C.TARGET_DATE: origin + pd.to_timedelta(h, unit="D"),
                            C.HORIZON: h,
                            C.FORECAST: point,
                            C.P50: point,
                            C.P90: 2 * point + 5,
                            C.P95: 3 * point + 10,
                            C.TIER: TIERS[sku],
                            C.MODEL: "lgbm",
                            "forecast_unadjusted": point,
                            "p50_unadjusted": point,
                            "p90_unadjusted": 2 * point + 5,
                            "p95_unadjusted": 3 * point + 10,
                            "override_applied": False,
                            "override_author": None,
                            "override_reason": None,
                            C.MODEL_VERSION: "1",
                        }
                    )
                )
    frame = pd.concat(parts, ignore_index=True)
    for column in (C.ORIGIN_DATE, C.TARGET_DATE):
        frame[column] = frame[column].astype("datetime64[ns]")
    return frame


def write_table(database: Path, table: str, frame: pd.DataFrame) -> None:
    con = duckdb.connect(str(database))
    try:
        con.register("_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _frame")
    finally:
        con.close()


class Env:
    """The accuracy_report asset on a temporary DuckDB, with one ephemeral instance."""

    def __init__(self, settings: PlatformSettings, tmp_path: Path) -> None:
        self.database = tmp_path / "warehouse.duckdb"
        self.reports = tmp_path / "reports"
        (self.asset,) = build_reporting_assets(build_partitions(settings), self.reports, CHARTS_URL)
        self.resources = {
            "io_manager": DuckDBPandasIOManager(database=str(self.database), schema="main"),
            "duckdb": DuckDBResource(database=str(self.database)),
            "source": SourceDataResource(path=str(settings.source)),
        }
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, day: str, wh: str) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            [self.asset],
            partition_key=dg.MultiPartitionKey({"date": day, "warehouse": wh}),
            resources=self.resources,
            instance=self.instance,
        )
        assert result.success
        return result

    def metadata(self, result: dg.ExecuteInProcessResult) -> dict:
        events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
        # The report and its side tables, replenishment_policy and exceptions, each report a materialization.
        assert set(events) == {ACCURACY_REPORT, C.REPLENISHMENT_POLICY, C.EXCEPTIONS}
        for side_table, rows in ((C.REPLENISHMENT_POLICY, self.policy), (C.EXCEPTIONS, self.exceptions)):
            event = events[side_table].materialization
            assert event.partition == events[ACCURACY_REPORT].materialization.partition
            assert event.metadata["dagster/row_count"].value == len(self.rows_of(rows(), event.partition))
        return {k: v.value for k, v in events[ACCURACY_REPORT].materialization.metadata.items()}

    @staticmethod
    def rows_of(frame: pd.DataFrame, partition: str | None) -> pd.DataFrame:
        day, wh = str(partition).split("|")
        dates = pd.to_datetime(frame[C.ORIGIN_DATE]).dt.date.astype(str)
        return frame[(dates == day) & (frame[C.WAREHOUSE_ID] == wh)]

    def exceptions(self) -> pd.DataFrame:
        return query_database(self.database, f"SELECT * FROM {C.EXCEPTIONS} ORDER BY {C.ORIGIN_DATE}, rank")

    def report(self) -> pd.DataFrame:
        return query_database(self.database, f"SELECT * FROM {ACCURACY_REPORT}")

    def policy(self) -> pd.DataFrame:
        return query_database(
            self.database, f"SELECT * FROM {C.REPLENISHMENT_POLICY} ORDER BY {C.ORIGIN_DATE}, {C.SKU}"
        )


@pytest.fixture
def env(settings: PlatformSettings, tmp_path: Path) -> Env:
    return Env(settings, tmp_path)


def test_report_metadata_policy_drift_and_idempotence(env: Env) -> None:
    write_table(env.database, "raw_sales", raw_sales())
    write_table(env.database, "forecasts", forecasts(1.0, ("W1", "W2")))

    meta = env.metadata(env.run(DAY, "W1"))
    report = env.report()
    assert set(report[C.WAREHOUSE_ID]) == {"W1"}
    assert set(report[C.ORIGIN_DATE]) == {pd.Timestamp(DAY)}
    tiers = report.loc[report[TABLE] == BY_TIER].set_index(GROUP)
    assert sorted(tiers.index) == ["1", "2", "3"]
    overall = report.loc[report[TABLE] == OVERALL].iloc[0]
    assert overall["wmape"] == pytest.approx(0.0) and overall["n_obs"] == 3 * sum(range(1, 10))
    assert meta["drift"] is False and meta["drift_reasons"] == []
    assert meta["wmape"] == pytest.approx(0.0) and meta["bias"] == pytest.approx(0.0)
    assert meta["n_scored"] == 3 * 45  # origins Jan 1-9: 9 + 8 + ... + 1 due targets per SKU
    # Charts are files under the reports directory, linked by URL: no image data in the event log.
    for name in PLOT_NAMES:
        assert Path(meta[f"plot_{name}"]).is_file()
        assert Path(meta[f"plot_{name}"]).parent == env.reports / f"{DAY}_W1"
        assert f"![{name}]({CHARTS_URL}/{DAY}_W1/{name}.png)" in meta["charts"]
    assert "base64" not in meta["charts"] and "plots_md" not in meta
    assert "No exception" in meta["exceptions"] and meta["n_exceptions"] == 0  # forecasts equal the demand
    assert "| overall |" in meta["summary"]
    assert 0.0 <= meta["service_level_forecast"] <= 1.0 and "avg_on_hand_ma28" in meta

    policy = env.policy()
    assert policy[C.SKU].tolist() == ["A", "B", "C"]
    assert set(policy[C.ORIGIN_DATE]) == {pd.Timestamp(DAY)} and set(policy[C.WAREHOUSE_ID]) == {"W1"}
    assert set(policy[FORECAST_ORIGIN_DATE]) == {pd.Timestamp(DAY)}
    assert policy.set_index(C.SKU).loc["A", "expected_lead_time_demand"] == pytest.approx(70.0)

    # re-materializing replaces the partition's rows in both tables
    env.run(DAY, "W1")
    pd.testing.assert_frame_equal(env.report(), report)
    pd.testing.assert_frame_equal(env.policy(), policy)

    # forecasts at 3x the demand: drift, and the rows of the partition are replaced
    write_table(env.database, "forecasts", forecasts(3.0, ("W1", "W2")))
    meta = env.metadata(env.run(DAY, "W1"))
    assert meta["drift"] is True
    assert any("bias +2.000" in reason for reason in meta["drift_reasons"])
    assert meta["bias"] == pytest.approx(2.0)
    again = env.report()
    assert len(again) == len(report)
    assert again.loc[again[TABLE] == OVERALL, "wmape"].iloc[0] == pytest.approx(2.0)
    assert len(env.policy()) == 3
    # every SKU is 200% over-forecast: a bias exception each, 2 x its daily demand over 30 days (the
    # source's products do not price A, B or C, so they rank by units)
    exceptions = env.exceptions()
    assert exceptions[C.SKU].tolist() == ["A", "B", "C"] and exceptions["rank"].tolist() == [1, 2, 3]
    assert set(exceptions["exception"]) == {"bias"}
    assert exceptions["units_at_risk"].tolist() == pytest.approx([2 * 10.0 * 30, 2 * 4.0 * 30, 2 * 2.0 * 30])
    assert meta["n_exceptions"] == 3 and "| 1 | A | bias |" in meta["exceptions"]

    # a range run (a multi-run backfill's chunk) adds its partitions next to the first, each with metadata
    ranged = dg.materialize(
        [env.asset],
        resources=env.resources,
        instance=env.instance,
        tags=range_tags(dt.date(2024, 1, 8), dt.date(2024, 1, 9), "W2"),
    )
    assert ranged.success
    events = {
        e.materialization.partition: e.materialization for e in ranged.get_asset_materialization_events()
    }
    assert set(events) == {"2024-01-08|W2", "2024-01-09|W2"}
    assert all(m.metadata["drift"].value is True for m in events.values())
    both = env.report()
    assert set(zip(both[C.ORIGIN_DATE].dt.strftime("%Y-%m-%d"), both[C.WAREHOUSE_ID], strict=True)) == {
        (DAY, "W1"),
        ("2024-01-08", "W2"),
        ("2024-01-09", "W2"),
    }
    assert len(env.policy()) == 9


def test_no_forecasts_yet_then_forecasts_gone(env: Env) -> None:
    """No forecasts table: an empty report without drift; a report that becomes empty clears its rows."""
    write_table(env.database, "raw_sales", raw_sales())
    meta = env.metadata(env.run(DAY, "W1"))
    assert meta["drift"] is False and meta["n_scored"] == 0 and "wmape" not in meta
    assert "No matured forecast yet" in meta["summary"]
    assert env.policy().empty  # the table exists, with no row

    write_table(env.database, "forecasts", forecasts(1.0, ("W1",)))
    env.run(DAY, "W1")
    assert len(env.report()) > 0 and len(env.policy()) == 3
    write_table(env.database, "forecasts", forecasts(1.0, ("W2",)))  # W1's forecasts are gone
    meta = env.metadata(env.run(DAY, "W1"))
    assert meta["n_scored"] == 0
    assert env.report().empty and env.policy().empty


def test_feature_drift_reference_is_the_training_date() -> None:
    import datetime as dt

    import duckdb

    from demand_platform.store import drift_reference

    con = duckdb.connect()
    feats = pd.DataFrame(
        {
            "origin_date": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-01-08"]),
            "warehouse_id": ["W1", "W1", "W1"],
            "marker": [1, 5, 8],
        }
    )
    con.register("f", feats)
    con.execute("CREATE TABLE feature_table AS SELECT * FROM f")
    # No model yet: the fallback, 28 days before (none stored here) -> None.
    assert drift_reference(con, "W1", dt.date(2024, 1, 10)) is None
    models = pd.DataFrame(
        {
            "origin_date": pd.to_datetime(["2024-01-05", "2024-01-08"]),
            "warehouse_id": ["W1", "W1"],
            "promoted": [True, False],
        }
    )
    con.register("m", models)
    con.execute("CREATE TABLE trained_models AS SELECT * FROM m")
    # The latest *promoted* model was trained on Jan 5: its features are the reference.
    reference = drift_reference(con, "W1", dt.date(2024, 1, 10))
    assert reference is not None and list(reference["marker"]) == [5]
    # Falls back to D - 28 when the training date's features are missing.
    con.execute("DELETE FROM feature_table WHERE marker = 5")
    fallback = drift_reference(con, "W1", dt.date(2024, 1, 29))
    assert fallback is not None and list(fallback["marker"]) == [1]


def test_read_forecasts_selects_the_warehouse_and_origins_without_an_extra_arrow_copy(tmp_path: Path) -> None:
    """One warehouse's origins in [start, end], categoricals and int16 as documented, read through a
    relation: DuckDB 2 warns (and copies every row once more) when Arrow output comes from execute()."""
    database = tmp_path / "warehouse.duckdb"
    write_table(database, "forecasts", forecasts(1.0, warehouses=("W1", "W2")))
    con = duckdb.connect(str(database), read_only=True)
    try:
        con.execute("SELECT 1").fetchone()  # an execute() result left open, as table_exists leaves one
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            frame = read_forecast_window(con, "W2", dt.date(2024, 1, 3), dt.date(2024, 1, 5))
    finally:
        con.close()
    assert set(frame[C.WAREHOUSE_ID]) == {"W2"}
    assert sorted(frame[C.ORIGIN_DATE].unique()) == list(pd.date_range("2024-01-03", "2024-01-05"))
    assert len(frame) == 3 * len(LEVELS) * 30
    assert isinstance(frame[C.SKU].dtype, pd.CategoricalDtype)
    assert frame[C.HORIZON].dtype == np.int16 and frame[C.TIER].dtype == np.int16


def test_the_report_declares_every_table_it_reads(env: Env) -> None:
    # The UI's lineage and staleness are only true if every read is a declared dependency.
    spec = next(iter(env.asset.specs))
    upstream = {dep.asset_key.to_user_string() for dep in spec.deps}
    assert upstream == {C.FORECASTS, C.RAW_SALES, C.FEATURE_TABLE, C.TRAINED_MODELS}
    mappings = {dep.asset_key.to_user_string(): dep.partition_mapping for dep in spec.deps}
    # features at D and at the reference origin (the production model's training date, else D - 28)
    assert mappings[C.FEATURE_TABLE] == window_mapping(FEATURE_DRIFT_REFERENCE_DAYS)
    assert mappings[C.TRAINED_MODELS] == window_mapping(FEATURE_DRIFT_REFERENCE_DAYS)
