"""Feature assets: ``feature_table`` and ``tier_assignments`` (origin date x warehouse), one step.

Both read a window of ``raw_sales`` history ending at the origin. The dependency is declared with a
multi-partition mapping (a time window on ``date``, identity on ``warehouse``) so lineage and
staleness are right in the UI, but the history is read with SQL through the DuckDB resource, not the
IO manager, because the IO manager silently loads a partial window when upstream partitions are
missing. Holes are found and reported by the ``history_complete`` check instead.
"""

import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from assets.partitions import (
    DUCKDB_POOL,
    TRANSIENT_RETRY,
    WAREHOUSE_DIM,
    date_dimension,
    partition_box,
    partition_key,
    window_mapping,
)
from assets.types import FeatureTableType, TierAssignmentsType
from demand_platform import columns as C
from demand_platform import features, tiering
from demand_platform.frames import stack_rows
from demand_platform.store import load_history
from resources.source import SourceDataResource

GROUP = "features"
LOOKBACK = features.FEATURE_LOOKBACK_DAYS
HISTORY_CHECK = "history_complete"
# A backfill run builds at most this many partitions: one warehouse's month of origins is ~310,000
# feature rows at full size (~200 MB), where a 2-year single run would hold ~5 GB.
FEATURE_RUN_PARTITIONS = 31
FEATURE_PARTITION_EXPR = {"date": features.ORIGIN_DATE, WAREHOUSE_DIM: C.WAREHOUSE_ID}
FEATURE_TABLE_DESCRIPTION = """Features known at the end of origin day D for every SKU active in warehouse W.

Lags (1, 7, 14, 28, 364), rolling and expanding statistics, zero share, days since last sale, calendar and
holiday distances, planned promotions over the horizon, price, product, warehouse and weather attributes,
interactions and intermittency (ADI, CV^2). Only data observable by D is used (calendar and planned
campaigns run ahead by design)."""
TIER_ASSIGNMENTS_DESCRIPTION = """Demand tier, intermittency class, cold-start flag and modelling route per SKU at origin D.

Tier 1 = top 20% of SKUs by trailing 90-day revenue, tier 2 = next 30%, tier 3 = the rest; Syntetos-Boylan
class by ADI (1.32) and CV^2 (0.49); cold start when launched within 56 days or with fewer than 8 non-zero
days. Routes: global ML (tiers 1-2), statistical (tier 3), cold-start fallback."""


def _table_out(dagster_type: dg.DagsterType, description: str) -> dg.AssetOut:
    """An output of the feature step: a DuckDB table partitioned by origin and warehouse."""
    return dg.AssetOut(
        dagster_type=dagster_type,
        metadata={"partition_expr": FEATURE_PARTITION_EXPR},
        group_name=GROUP,
        kinds={"duckdb", "pandas"},
        description=description,
    )


def build_feature_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The feature assets for the platform's partitions."""
    first_day = dt.date.fromisoformat(date_dimension(partitions_def).get_first_partition_key() or "")
    history_dep = dg.AssetDep("raw_sales", partition_mapping=window_mapping(LOOKBACK))

    @dg.multi_asset(
        name="features_and_tiers",
        outs={
            C.FEATURE_TABLE: _table_out(FeatureTableType, FEATURE_TABLE_DESCRIPTION),
            C.TIER_ASSIGNMENTS: _table_out(TierAssignmentsType, TIER_ASSIGNMENTS_DESCRIPTION),
        },
        partitions_def=partitions_def,
        deps=[history_dep],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=FEATURE_RUN_PARTITIONS),
        pool=DUCKDB_POOL,
        retry_policy=TRANSIENT_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                HISTORY_CHECK,
                asset=C.FEATURE_TABLE,
                description=(
                    "Fails when raw_sales days are missing in the feature window of an origin; blocking: "
                    "in the same run, nothing downstream is built on a history with holes."
                ),
                blocking=True,
            )
        ],
    )
    def features_and_tiers(
        context: dg.AssetExecutionContext, source: SourceDataResource, duckdb: DuckDBResource
    ):
        """``feature_table`` and ``tier_assignments`` of a box of partitions, in one step.

        Both are built from the same window of a warehouse's ``raw_sales``, read once and scattered
        once into a sales panel (``tiering.features_and_tiers``): reading and scattering it for each
        asset cost 1.1 s a warehouse of the daily run.
        """
        box = partition_box(context)
        tables = source.tables()
        origins = list(pd.date_range(box.start, box.end, freq="D").date)
        feature_frames, tier_frames, holes = [], [], {}
        for wh in box.warehouse_ids:  # one vectorised pass per warehouse, all its SKUs at once
            # The database file's lock is held for the read only, not the computation, so that
            # another run of the pool reads and writes meanwhile.
            with duckdb.get_connection() as con:
                history = load_history(con, [wh], box.start - dt.timedelta(days=LOOKBACK), box.end)
            rows, tiers = tiering.features_and_tiers(history, tables, origins, wh)
            feature_frames.append(rows)
            tier_frames.append(tiers)
            since = features.history_start(first_day, tables.warehouses, tables.products, wh)
            for origin in origins:
                missing = features.missing_days(history, origin, LOOKBACK, since=since)
                holes[(wh, origin)] = missing
        table = stack_rows(feature_frames)
        rows_per_partition = table.groupby([C.WAREHOUSE_ID, features.ORIGIN_DATE]).size()
        for (wh, origin), missing in holes.items():
            context.add_asset_metadata(
                {
                    "rows": int(rows_per_partition.get((wh, pd.Timestamp(origin)), 0)),
                    "missing_history_days": len(missing),
                },
                asset_key=C.FEATURE_TABLE,
                partition_key=str(partition_key(origin, wh)),
            )
        incomplete = {f"{origin}|{wh}": [str(d) for d in m[:10]] for (wh, origin), m in holes.items() if m}
        yield dg.Output(table, output_name=C.FEATURE_TABLE, metadata={"dagster/row_count": len(table)})
        tiers = stack_rows(tier_frames)
        summary = tiering.tier_summary(tiers)
        yield dg.Output(
            tiers,
            output_name=C.TIER_ASSIGNMENTS,
            metadata={
                "dagster/row_count": len(tiers),
                "tier_summary": dg.MetadataValue.md(summary.to_markdown(index=False)),
                "skus_per_tier": dg.MetadataValue.json(
                    {str(k): int(v) for k, v in tiers[C.TIER].value_counts().sort_index().items()}
                ),
            },
        )
        yield dg.AssetCheckResult(
            asset_key=C.FEATURE_TABLE,
            check_name=HISTORY_CHECK,
            passed=not incomplete,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "partitions_with_holes": len(incomplete),
                "first_missing_days": dg.MetadataValue.json(dict(list(incomplete.items())[:20])),
            },
        )

    return [features_and_tiers]
