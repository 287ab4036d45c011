"""Reporting asset: ``accuracy_report`` (report day x warehouse).

It scores the forecasts of the last :data:`EVAL_DAYS` origins against ``raw_sales``, checks drift, replays
the replenishment policies and writes the replenishment recommendations (table
:data:`REPLENISHMENT_TABLE`). Like the feature assets, it declares its windows as dependencies
(lineage and staleness in the UI) but reads them with SQL through the DuckDB resource: ``forecasts`` and
``raw_sales`` are keyed by different date columns and a window may be partly missing (the first days, a
forecast origin not materialized), which the IO manager would not say.

The per-partition metadata keys ``drift``, ``drift_reasons``, ``wmape`` and ``bias`` are read by the drift
sensor (:mod:`assets.operations`).
"""

import base64
import datetime as dt
import math
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from assets.partitions import (
    DATE_DIM,
    DUCKDB_POOL,
    TRANSIENT_RETRY,
    WAREHOUSE_DIM,
    partition_box,
    partition_key,
    window_mapping,
)
from assets.types import AccuracyReportType
from demand_platform import columns as C
from demand_platform import inventory
from demand_platform.reporting import (
    FORECAST_POLICY,
    REPLENISHMENT_DTYPES,
    AccuracyReport,
    build_accuracy_report,
    empty_report_frame,
)
from demand_platform.store import load_history, table_exists
from resources.source import SourceDataResource

GROUP = "reporting"
ACCURACY_REPORT = "accuracy_report"
FORECASTS_TABLE = "forecasts"
FEATURE_TABLE = "feature_table"
REPLENISHMENT_TABLE = "replenishment_policy"
#: Forecast origins scored by the report of day D: D - EVAL_DAYS .. D (origin D has no due target yet,
#: but it is the latest origin, the one the replenishment recommendations come from).
EVAL_DAYS = 60
#: raw_sales days read: the scored targets plus the MA28 baseline's window before the first origin.
ACTUALS_DAYS = EVAL_DAYS + inventory.MA_WINDOW - 1
#: Fallback reference origin of the feature drift check (D - this) when the features of the production
#: model's training date are not stored.
FEATURE_DRIFT_REFERENCE_DAYS = 28
TRAINED_MODELS_TABLE = "trained_models"
REPORT_PARTITION_EXPR = {DATE_DIM: C.ORIGIN_DATE, WAREHOUSE_DIM: C.WAREHOUSE_ID}


#: Forecast columns read as SMALLINT (horizons 1..30, tiers 1..3).
_SMALL_INT_COLUMNS = (C.HORIZON, C.TIER)
_SQL_TYPES = {"datetime64[ns]": "TIMESTAMP", "object": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}


# --- reading and writing DuckDB ------------------------------------------------------------------------------
def read_forecasts(
    con: duckdb.DuckDBPyConnection, warehouse_id: str, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Forecast rows (the columns accuracy needs) of one warehouse with origins in ``[start, end]``.

    Args:
        con: DuckDB connection.
        warehouse_id: Warehouse.
        start: First origin.
        end: Last origin.

    Returns:
        :data:`demand_platform.columns.FORECAST_COLUMNS` (``sku``, ``warehouse_id`` and ``model`` as
        categoricals, ``horizon`` and ``tier`` as int16); empty when the table does not exist yet.
    """
    columns = list(C.FORECAST_COLUMNS)
    if not table_exists(con, FORECASTS_TABLE):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    # Arrow with the strings as categoricals and small integers: 60 origins x 30 horizons x 10,000 SKUs
    # are 18 M rows, ~1 GB this way against ~5 GB with DuckDB's .df() (one Python string per value).
    selected = [f"CAST({c} AS SMALLINT) AS {c}" if c in _SMALL_INT_COLUMNS else c for c in columns]
    # sql(), not execute(): DuckDB 2 copies the rows once more for Arrow output of a DB-API result. On a
    # cursor, because a relation refuses a connection with an unconsumed execute() result.
    with con.cursor() as cursor:
        table = cursor.sql(
            f"""
            SELECT {", ".join(selected)} FROM {FORECASTS_TABLE}
            WHERE {C.WAREHOUSE_ID} = $w
              AND {C.ORIGIN_DATE} >= CAST($d0 AS TIMESTAMP) AND {C.ORIGIN_DATE} <= CAST($d1 AS TIMESTAMP)
            """,
            params={"w": warehouse_id, "d0": start, "d1": end},
        ).to_arrow_table()
    assert table is not None  # a SELECT always has a result
    frame = table.to_pandas(strings_to_categorical=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    for column in (C.ORIGIN_DATE, C.TARGET_DATE):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def read_features(con: duckdb.DuckDBPyConnection, warehouse_id: str, origin: dt.date) -> pd.DataFrame | None:
    """``feature_table`` rows of one origin and warehouse (None when there are none)."""
    if not table_exists(con, FEATURE_TABLE):
        return None
    frame = con.execute(
        f"SELECT * FROM {FEATURE_TABLE} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
        {"w": warehouse_id, "d": origin},
    ).df()
    return None if frame.empty else frame


def training_day(con: duckdb.DuckDBPyConnection, warehouse_id: str, day: dt.date) -> dt.date | None:
    """Training date of the warehouse's latest promoted model trained on or before ``day``."""
    if not table_exists(con, TRAINED_MODELS_TABLE):
        return None
    row = con.execute(
        f"SELECT max(CAST({C.ORIGIN_DATE} AS DATE)) FROM {TRAINED_MODELS_TABLE} "
        f"WHERE {C.WAREHOUSE_ID} = $w AND promoted AND CAST({C.ORIGIN_DATE} AS DATE) <= $d",
        {"w": warehouse_id, "d": day},
    ).fetchone()
    return None if row is None or row[0] is None else row[0]


def drift_reference(con: duckdb.DuckDBPyConnection, warehouse_id: str, day: dt.date) -> pd.DataFrame | None:
    """Features the drift check compares against: those of the production model's training date
    (the training window's end), else those of ``day - FEATURE_DRIFT_REFERENCE_DAYS``."""
    trained = training_day(con, warehouse_id, day)
    reference = read_features(con, warehouse_id, trained) if trained is not None and trained < day else None
    if reference is None:
        reference = read_features(con, warehouse_id, day - dt.timedelta(days=FEATURE_DRIFT_REFERENCE_DAYS))
    return reference


def write_recommendations(
    con: duckdb.DuckDBPyConnection, recommendations: pd.DataFrame, day: dt.date, warehouse_id: str
) -> None:
    """Replace the ``(day, warehouse)`` rows of :data:`REPLENISHMENT_TABLE` (created when missing).

    Args:
        con: DuckDB connection (a writer).
        recommendations: Rows of :data:`demand_platform.reporting.REPLENISHMENT_DTYPES`.
        day: Report day (``origin_date`` of the rows).
        warehouse_id: Warehouse.
    """
    ddl = ", ".join(f"{name} {_SQL_TYPES[dtype]}" for name, dtype in REPLENISHMENT_DTYPES.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {REPLENISHMENT_TABLE} ({ddl})")
    con.register("_recommendations", recommendations[list(REPLENISHMENT_DTYPES)])
    try:
        con.begin()
        con.execute(
            f"DELETE FROM {REPLENISHMENT_TABLE} WHERE {C.WAREHOUSE_ID} = $w "
            f"AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
            {"w": warehouse_id, "d": day},
        )
        con.execute(f"INSERT INTO {REPLENISHMENT_TABLE} BY NAME SELECT * FROM _recommendations")
        con.commit()
    except Exception:
        con.rollback()
        raise
    finally:
        con.unregister("_recommendations")


def clear_partition(con: duckdb.DuckDBPyConnection, table: str, day: dt.date, warehouse_id: str) -> None:
    """Delete the ``(day, warehouse)`` rows of a table keyed by ``origin_date`` (no-op when it is missing).

    The DuckDB IO manager skips an empty output altogether, without deleting the partition's earlier rows;
    a report that becomes empty on re-materialization clears them with this.
    """
    if table_exists(con, table):
        con.execute(
            f"DELETE FROM {table} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
            {"w": warehouse_id, "d": day},
        )


# --- metadata --------------------------------------------------------------------------------------------------
def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def plots_markdown(plots: dict[str, Path]) -> str:
    """Markdown embedding each PNG as a base64 data URI (viewable straight from the asset's metadata)."""
    parts = []
    for name, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"**{name}**\n\n![{name}](data:image/png;base64,{data})")
    return "\n\n".join(parts)


def report_metadata(report: AccuracyReport, out_dir: Path) -> dict[str, object]:
    """Per-partition metadata of one report (NaN metrics are left out)."""
    metadata: dict[str, object] = {
        "drift": report.drift,
        "drift_reasons": dg.MetadataValue.json(list(report.drift_reasons)),
        "n_scored": report.n_scored,
        "n_recommendations": len(report.recommendations),
        "summary": dg.MetadataValue.md(report.summary_md),
        "report_dir": dg.MetadataValue.path(str(out_dir)),
    }
    values = {
        "wmape": report.wmape,
        "bias": report.bias,
        "lead_time_wmape": report.lead_time_wmape,
        "service_level_forecast": report.policy_metric(FORECAST_POLICY, inventory.CYCLE_SERVICE_LEVEL),
        "service_level_ma28": report.policy_metric(inventory.POLICY_MA, inventory.CYCLE_SERVICE_LEVEL),
        "fill_rate_forecast": report.policy_metric(FORECAST_POLICY, inventory.FILL_RATE),
        "fill_rate_ma28": report.policy_metric(inventory.POLICY_MA, inventory.FILL_RATE),
        "avg_on_hand_forecast": report.policy_metric(FORECAST_POLICY, inventory.AVG_ON_HAND),
        "avg_on_hand_ma28": report.policy_metric(inventory.POLICY_MA, inventory.AVG_ON_HAND),
    }
    metadata.update({k: v for k, v in values.items() if _finite(v) is not None})
    for name, path in report.plots.items():
        metadata[f"plot_{name}"] = dg.MetadataValue.path(str(path))
    if report.plots:
        metadata["plots_md"] = dg.MetadataValue.md(plots_markdown(report.plots))
    return metadata


# --- the asset -------------------------------------------------------------------------------------------------
def build_reporting_assets(
    partitions_def: dg.MultiPartitionsDefinition, reports_dir: Path
) -> list[dg.AssetsDefinition]:
    """The reporting assets for the platform's partitions.

    Args:
        partitions_def: The ``date x warehouse`` partitions.
        reports_dir: Directory of the report files (one sub-directory ``<day>_<warehouse>`` per partition).

    Returns:
        ``[accuracy_report]``.
    """

    @dg.asset(
        name=ACCURACY_REPORT,
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep(FORECASTS_TABLE, partition_mapping=window_mapping(EVAL_DAYS)),
            dg.AssetDep("raw_sales", partition_mapping=window_mapping(ACTUALS_DAYS)),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=50),
        pool=DUCKDB_POOL,
        retry_policy=TRANSIENT_RETRY,
        dagster_type=AccuracyReportType,
        metadata={"partition_expr": REPORT_PARTITION_EXPR},
        group_name=GROUP,
        kinds={"duckdb", "pandas"},
    )
    def accuracy_report(
        context: dg.AssetExecutionContext, source: SourceDataResource, duckdb: DuckDBResource
    ) -> dg.Output[pd.DataFrame]:
        """Forecast accuracy of a warehouse as of day D, drift, and the replenishment replay.

        Scores every forecast of the origins D-60..D whose target day is on or before D against the
        realised demand (raw_sales, returns clipped): WMAPE, MAE, RMSE, bias and P90/P95 coverage overall,
        by tier, category, horizon band (1-7, 8-14, 15-30), model and tier x origin, and WMAPE of 7-day
        lead-time demand and of weekly totals. Drift (metadata `drift`, read by the drift sensor, which
        requests a retrain): lead-time WMAPE above 25% or absolute bias above 10% (overall or per tier),
        quantile coverage too low, or a key feature's PSI above 0.2 (features at D against those
        of the production model's training date, else D-28). The inventory simulation
        replays a daily order-up-to policy with lost sales and a 7-day lead time on the realised demand:
        forecast-driven (sum of daily P90 or P95 over the protection period, or the 95% quantile of
        the lead-time demand from the point forecasts and their spread) against the MA28 baseline, and
        reports cycle service level, fill rate, average on hand and stock-out days per tier and overall.
        Safety stock and reorder point per SKU from the latest origin go to the `replenishment_policy`
        table. Plots (forecast vs actual, WMAPE by tier over origins, service vs inventory) are in the
        metadata.
        """
        box = partition_box(context)
        parsed = [partitions_def.get_partition_key_from_str(key) for key in box.keys]
        keys = sorted(
            (dt.date.fromisoformat(k.keys_by_dimension[DATE_DIM]), k.keys_by_dimension[WAREHOUSE_DIM])
            for k in parsed
        )
        products = source.required(C.PRODUCTS)
        frames = []
        n_drift = 0
        for day, wh in keys:
            with duckdb.get_connection() as con:
                forecasts = read_forecasts(con, wh, day - dt.timedelta(days=EVAL_DAYS), day)
                actuals = load_history(con, [wh], day - dt.timedelta(days=ACTUALS_DAYS), day)
                features_now = read_features(con, wh, day)
                features_ref = drift_reference(con, wh, day)
            out_dir = reports_dir / f"{day.isoformat()}_{wh}"
            report = build_accuracy_report(
                forecasts,
                actuals,
                products,
                day,
                wh,
                out_dir=out_dir,
                features_now=features_now,
                features_ref=features_ref,
            )
            with duckdb.get_connection() as con:
                write_recommendations(con, report.recommendations, day, wh)
                if report.frame.empty:
                    clear_partition(con, ACCURACY_REPORT, day, wh)
            context.add_asset_metadata(
                report_metadata(report, out_dir), partition_key=str(partition_key(day, wh))
            )
            n_drift += report.drift
            frames.append(report.frame)
        scored = [frame for frame in frames if len(frame)]
        table = pd.concat(scored, ignore_index=True) if scored else empty_report_frame()
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "partitions": len(keys),
                "drifting_partitions": n_drift,
            },
        )

    return [accuracy_report]
