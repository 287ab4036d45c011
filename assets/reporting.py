"""Reporting asset: ``accuracy_report`` (report day x warehouse).

It scores the forecasts of the last :data:`EVAL_DAYS` origins against ``raw_sales``, checks drift, replays
the replenishment policies, writes the replenishment recommendations (table ``replenishment_policy``) and
the ranked exceptions (table ``exceptions``), and draws the report's charts under the reports directory.
Like the feature assets, it declares every window it reads as a dependency (lineage and staleness in the
UI: ``forecasts``, ``raw_sales``, ``feature_table`` and ``trained_models``) but reads them with the SQL of
:mod:`demand_platform.store` through the DuckDB resource: ``forecasts`` and ``raw_sales`` are keyed by
different date columns and a window may be partly missing (the first days, a forecast origin not
materialized, a day without training), which the IO manager would not say.

The per-partition metadata keys ``drift``, ``drift_reasons``, ``wmape`` and ``bias`` are read by the drift
sensor (:mod:`assets.operations`). The metadata holds no image: each chart is a ``plot_<name>`` path, and
the markdown entry ``charts`` embeds them by URL under the address the reports directory is served at
(``charts_url``, ``demand-platform ui`` serves it), so Dagster's event log stays small.
"""

import datetime as dt
import math
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pandas as pd
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
from demand_platform import charts, inventory, store
from demand_platform import columns as C
from demand_platform.exceptions import exceptions_markdown
from demand_platform.reporting import (
    FORECAST_POLICY,
    AccuracyReport,
    build_accuracy_report,
    empty_report_frame,
)
from demand_platform.settings import DEFAULT_CHARTS_URL
from resources.source import SourceDataResource

GROUP = "reporting"
ACCURACY_REPORT = C.ACCURACY_REPORT
#: Forecast origins scored by the report of day D: D - EVAL_DAYS .. D (origin D has no due target yet,
#: but it is the latest origin, the one the replenishment recommendations come from).
EVAL_DAYS = 60
#: raw_sales days read: the scored targets plus the MA28 baseline's window before the first origin, and at
#: least the fan chart's history.
ACTUALS_DAYS = max(EVAL_DAYS + inventory.MA_WINDOW - 1, charts.FAN_HISTORY_DAYS - 1)
REPORT_PARTITION_EXPR = {DATE_DIM: C.ORIGIN_DATE, WAREHOUSE_DIM: C.WAREHOUSE_ID}


# --- metadata --------------------------------------------------------------------------------------------------
def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def chart_url(path: Path, reports_dir: Path, charts_url: str) -> str:
    """The URL of a chart file: ``<charts_url>/<its path under reports_dir>`` (each part URL-quoted)."""
    relative = Path(path).resolve().relative_to(Path(reports_dir).resolve())
    return f"{charts_url.rstrip('/')}/" + "/".join(quote(part) for part in relative.parts)


def charts_markdown(plots: dict[str, Path], reports_dir: Path, charts_url: str) -> str:
    """Markdown embedding each chart by URL (no image data in the event log)."""
    return "\n\n".join(
        f"**{name}**\n\n![{name}]({chart_url(path, reports_dir, charts_url)})" for name, path in plots.items()
    )


def report_metadata(
    report: AccuracyReport, out_dir: Path, reports_dir: Path, charts_url: str = DEFAULT_CHARTS_URL
) -> dict[str, object]:
    """Per-partition metadata of one report (NaN metrics are left out; charts linked, not inlined)."""
    metadata: dict[str, object] = {
        "drift": report.drift,
        "drift_reasons": dg.MetadataValue.json(list(report.drift_reasons)),
        "n_scored": report.n_scored,
        "n_recommendations": len(report.recommendations),
        "n_exceptions": len(report.exceptions),
        "exceptions": dg.MetadataValue.md(exceptions_markdown(report.exceptions)),
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
        metadata["charts"] = dg.MetadataValue.md(charts_markdown(report.plots, reports_dir, charts_url))
    return metadata


# --- the asset -------------------------------------------------------------------------------------------------
def build_reporting_assets(
    partitions_def: dg.MultiPartitionsDefinition, reports_dir: Path, charts_url: str = DEFAULT_CHARTS_URL
) -> list[dg.AssetsDefinition]:
    """The reporting assets for the platform's partitions.

    Args:
        partitions_def: The ``date x warehouse`` partitions.
        reports_dir: Directory of the report files (one sub-directory ``<day>_<warehouse>`` per partition).
        charts_url: URL at which ``reports_dir`` is served (``PlatformSettings.charts_url``): the report's
            ``charts`` metadata embeds the chart files from there.

    Returns:
        ``[accuracy_report]``.
    """

    @dg.asset(
        name=ACCURACY_REPORT,
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep(C.FORECASTS, partition_mapping=window_mapping(EVAL_DAYS)),
            dg.AssetDep(C.RAW_SALES, partition_mapping=window_mapping(ACTUALS_DAYS)),
            # The drift check: features at D against those of the production model's training date (read
            # from the trained_models record), else D - 28.
            dg.AssetDep(
                C.FEATURE_TABLE, partition_mapping=window_mapping(store.FEATURE_DRIFT_REFERENCE_DAYS)
            ),
            dg.AssetDep(
                C.TRAINED_MODELS, partition_mapping=window_mapping(store.FEATURE_DRIFT_REFERENCE_DAYS)
            ),
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
        """Forecast accuracy of a warehouse as of day D, drift, the replenishment replay, exceptions and charts.

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
        table. The `exceptions` table lists, per SKU, what needs a planner's attention, ranked by money
        at risk (units x the product's price): projected stock-outs within the lead time (the replay's
        stock at D plus orders in transit minus the P50 forecast), strong recent bias, 30-day forecasts
        that jumped since yesterday's origin and planner overrides ending within 7 days; the top 20 are
        in the metadata (`exceptions`). Charts (PNG files under the reports directory, linked in the
        metadata as `plot_<name>` and shown in `charts`): the forecast fan at D of the top SKUs (those
        of the first exceptions, then the largest 30-day forecast revenue: 90 days of history, forecast,
        P50, P90/P95 bands, overrides marked, campaigns shaded), projected on hand vs reorder point of
        the SKUs most at risk, WMAPE and P90/P95 coverage by horizon day, WMAPE by tier over origins,
        and service level vs inventory of the replayed policies.
        """
        box = partition_box(context)
        parsed = [partitions_def.get_partition_key_from_str(key) for key in box.keys]
        keys = sorted(
            (dt.date.fromisoformat(k.keys_by_dimension[DATE_DIM]), k.keys_by_dimension[WAREHOUSE_DIM])
            for k in parsed
        )
        tables = source.tables()
        products = tables.products
        states = (
            tables.warehouses.set_index(tables.warehouses[C.WAREHOUSE_ID].astype(str))[C.LOCATION_STATE]
            if C.LOCATION_STATE in tables.warehouses.columns
            else None
        )
        frames = []
        n_drift = 0
        for day, wh in keys:
            with duckdb.get_connection() as con:
                forecasts = store.read_forecast_window(con, wh, day - dt.timedelta(days=EVAL_DAYS), day)
                actuals = store.load_history(con, [wh], day - dt.timedelta(days=ACTUALS_DAYS), day)
                features_now = store.read_features(con, wh, day)
                features_ref = store.drift_reference(con, wh, day)
                overridden = store.read_overridden_forecasts(con, wh, day)
            state = states.get(wh) if states is not None else None
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
                campaigns=tables.campaigns,
                warehouse_state=str(state) if state is not None and not pd.isna(state) else None,
                overridden=overridden,
                overrides=tables.overrides,
            )
            with duckdb.get_connection() as con:
                store.write_recommendations(con, report.recommendations, day, wh)
                store.write_exceptions(con, report.exceptions, day, wh)
            for side_table, rows in (
                (C.REPLENISHMENT_POLICY, len(report.recommendations)),
                (C.EXCEPTIONS, len(report.exceptions)),
            ):
                context.log_event(
                    dg.AssetMaterialization(
                        asset_key=side_table,
                        partition=str(partition_key(day, wh)),
                        metadata={"dagster/row_count": rows},
                    )
                )
            with duckdb.get_connection() as con:
                if report.frame.empty:
                    store.clear_partition(con, ACCURACY_REPORT, day, wh)
            context.add_asset_metadata(
                report_metadata(report, out_dir, reports_dir, charts_url),
                partition_key=str(partition_key(day, wh)),
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
