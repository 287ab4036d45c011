"""``reconciled_forecasts``: every warehouse's forecasts of an origin reconciled across the warehouses.

A date-partitioned asset after the ``date x warehouse`` ``forecasts``: its partition D depends on every
warehouse's ``forecasts`` partition of D (``MultiToSingleDimensionPartitionMapping`` on the date), so it runs
once all of them exist. The body reads them and the sales that measure each warehouse's share of a SKU and
calls :func:`demand_platform.forecasting.pooling.reconcile_origin`. How much to pool is picked on the forecasts
of an earlier origin (:func:`demand_platform.store.past_forecast_origin`) against what sold since; the
first month, with none to score, keeps each warehouse's own forecasts.

Who runs it: the CLI's catch-up after its forecast runs (runs of contiguous origins, at most
:data:`WAREHOUSE_DAYS_PER_RUN` warehouse-days each), and on the daemon ``reconcile_sensor`` (:mod:`assets.operations`) once a day's forecasts are complete in every
warehouse. Its reads of ``raw_sales`` (a year of every warehouse, in SQL) and of an earlier origin's
``forecasts`` are not declared as dependencies: they lie inside the windows ``forecasts`` already depends on.
"""

import datetime as dt

import dagster as dg
import duckdb as ddb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.models import GROUP, RETRY_POLICY
from assets.partitions import DATE_DIM, DUCKDB_POOL, date_dimension, partition_key, warehouse_keys
from assets.types import ReconciledForecastsType
from demand_platform import columns as C
from demand_platform import store
from demand_platform.forecasting import pooling
from demand_platform.frames import stack_rows
from demand_platform.tables import SourceTables
from resources.source import SourceDataResource

#: Warehouse-days of forecasts one run reconciles at most (the forecast runs' bound, BOX_PARTITIONS_MAX of
#: :mod:`assets.orchestration`): with 50 warehouses a run is one day; a backfill is split accordingly.
WAREHOUSE_DAYS_PER_RUN = 25


def days_per_run(n_warehouses: int) -> int:
    """Days one reconcile run covers with ``n_warehouses`` warehouses (at least one)."""
    return max(1, WAREHOUSE_DAYS_PER_RUN // max(1, n_warehouses))


class ReconcileConfig(dg.Config):
    """Run configuration of ``reconciled_forecasts``."""

    weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Weight of each warehouse's own forecast (1: no pooling, 0: the SKU's total split by the shares); "
            "None: picked on an earlier origin's forecasts against the sales since."
        ),
    )


def past_forecasts(
    con: ddb.DuckDBPyConnection, day: dt.date, tables: SourceTables | None = None
) -> pooling.PastForecasts | None:
    """The forecasts of the earlier origin the weight is picked on, with the sales since (None: none stored);
    with ``tables``, its rows inside regional campaigns are marked to leave out, as at the origin."""
    origin = store.past_forecast_origin(
        con,
        day,
        pooling.WEIGHT_ORIGIN_LAG,
        pooling.WEIGHT_ORIGIN_MIN_LAG,
        pooling.WEIGHT_ORIGIN_MAX_LAG,
    )
    if origin is None:
        return None
    matured = store.read_matured_forecasts(con, origin, day)
    if matured.empty:
        return None
    forecasts = matured.drop(columns=["actual"])
    return pooling.PastForecasts(
        origin,
        forecasts,
        matured["actual"].to_numpy(),
        store.warehouse_units(con, origin, pooling.SHARE_DAYS),
        None
        if tables is None
        else pooling.regional_campaign_rows(forecasts, tables.campaigns, tables.warehouses),
    )


def build_reconciliation_asset(
    partitions_def: dg.MultiPartitionsDefinition, timezone: str, retry_policy: dg.RetryPolicy = RETRY_POLICY
) -> dg.AssetsDefinition:
    """``reconciled_forecasts`` on the daily dimension of the platform's partitions.

    Args:
        partitions_def: The platform's ``date x warehouse`` partitions.
        timezone: The company timezone (the 08:00 deadline).
        retry_policy: The retry policy (tests shorten the delays).
    """
    warehouses = warehouse_keys(partitions_def)

    @dg.asset(
        name=C.RECONCILED_FORECASTS,
        partitions_def=date_dimension(partitions_def),
        deps=[
            dg.AssetDep(
                C.FORECASTS,
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                    partition_dimension_name=DATE_DIM
                ),
            )
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=days_per_run(len(warehouses))),
        pool=DUCKDB_POOL,
        dagster_type=ReconciledForecastsType,
        metadata={"partition_expr": C.ORIGIN_DATE},
        freshness_policy=dg.FreshnessPolicy.cron(
            deadline_cron="0 8 * * *", lower_bound_delta=dt.timedelta(hours=2), timezone=timezone
        ),
        retry_policy=retry_policy,
        group_name=GROUP,
        kinds={"duckdb"},
    )
    def reconciled_forecasts(
        context: dg.AssetExecutionContext,
        config: ReconcileConfig,
        source: SourceDataResource,
        duckdb: DuckDBResource,
    ) -> dg.Output[pd.DataFrame]:
        """Every warehouse's forecasts of origin D, reconciled across the warehouses: what replenishment reads.

        A SKU's forecast summed over the warehouses is split by each warehouse's share of its units over the
        365 days up to D, and blended with the warehouse's own forecast at the weight that had the lowest
        WMAPE on the forecasts of an earlier origin (the latest at least 30 days before D, else at least 7)
        against what sold since; 1 (own forecasts kept) while there is none to score. The model's output
        is pooled; the planners' overrides are applied again on top. Days inside a regional campaign
        (`target_region`) keep their warehouse's own forecast and stay out of the pooling. Quantiles move with the point forecast
        (rounded to counts); `pooling_ratio` says how much each row moved. Needs every warehouse's
        `forecasts` of D; due by 08:00 (company timezone) like them.
        """
        days = [dt.date.fromisoformat(key) for key in context.partition_keys]
        done = context.instance.get_materialized_partitions(dg.AssetKey(C.FORECASTS))
        tables = source.tables()
        frames, choices = [], {}
        for day in days:
            missing = [wh for wh in warehouses if str(partition_key(day, wh)) not in done]
            if missing:
                # Reconciling without a warehouse would pool the others' forecasts into shares that leave it out.
                raise dg.Failure(
                    description=(
                        f"forecasts of {day} missing in {len(missing)} warehouse(s): {', '.join(missing)}. "
                        "Materialize those forecasts partitions first."
                    ),
                    allow_retries=False,
                )
            with duckdb.get_connection() as con:
                forecasts = store.read_forecasts(con, day)
                shares = store.warehouse_units(con, day, pooling.SHARE_DAYS)
                past = None if config.weight is not None else past_forecasts(con, day, tables)
            reconciled, choice = pooling.reconcile_origin(
                forecasts, shares, tables.overrides, past, config.weight, tables.campaigns, tables.warehouses
            )
            context.log.info(f"{day}: {choice.reason}")
            frames.append(reconciled)
            choices[day.isoformat()] = choice
        table = stack_rows(frames)
        moved = table[C.POOLING_RATIO] != 1.0
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "warehouses": int(table[C.WAREHOUSE_ID].nunique()),
                "rows_moved": int(moved.sum()),
                "pooling_weight": dg.MetadataValue.json({day: c.weight for day, c in choices.items()}),
                "weight_picked_on": dg.MetadataValue.json(
                    {day: None if c.origin is None else c.origin.isoformat() for day, c in choices.items()}
                ),
                "weight_reason": dg.MetadataValue.md(
                    "\n".join(f"- {d}: {c.reason}" for d, c in choices.items())
                ),
            },
        )

    return reconciled_forecasts
