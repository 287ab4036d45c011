"""Ingestion assets: ``raw_sales`` (date x warehouse) and the unpartitioned ``source_audit``."""

import datetime as dt

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from assets.partitions import (
    DUCKDB_POOL,
    PARTITION_EXPR,
    TRANSIENT_RETRY,
    date_dimension,
    partition_box,
    partition_key,
    warehouse_keys,
)
from assets.types import RawSalesType
from demand_platform import columns as C
from demand_platform import ingest_log
from demand_platform.quarantine import replace_quarantine
from resources.source import SourceDataResource

GROUP = "ingestion"
# A partition whose rejected share of transaction lines exceeds this raises a warning.
MAX_REJECTED_SHARE = 0.05
REJECTED_CHECK = "rejected_share_at_most_5pct"
AUDIT_CHECK = "source_rows_all_valid"
#: Runs covering at most this many partitions attach each partition's own counts to its materialization.
#: Dagster checks every ``add_asset_metadata(partition_key=...)`` against the run's whole partition
#: range, so a run of N partitions pays O(N^2): 5.4 s of a 52 s run of 730 days (cold start). Larger
#: runs (backfills) attach the run's totals; the per-day counts are in ``ingest_log`` either way.
PER_PARTITION_METADATA_MAX = 100


def rejected_by_partition(lines_per_date: pd.DataFrame, box_index: pd.MultiIndex) -> pd.DataFrame:
    """Lines and rejected lines per (warehouse, day) of a run, zero for days without lines."""
    counts = lines_per_date.set_index([C.WAREHOUSE_ID, C.DATE])[["lines", "rejected"]]
    counts = counts.reindex(box_index, fill_value=0)
    counts["rejected_share"] = (counts["rejected"] / counts["lines"].where(counts["lines"] > 0)).fillna(0.0)
    return counts


def quarantine_written(
    rows: int,
    writer: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    warehouse_ids: list[str] | None = None,
) -> dg.AssetMaterialization:
    """The materialization event of the ``quarantine`` side table for one writer's scope."""
    metadata: dict[str, dg.RawMetadataValue] = {"dagster/row_count": rows, "detected_by": writer}
    if start is not None and end is not None:
        metadata["days"] = f"{start} .. {end}"
    if warehouse_ids is not None:
        metadata["warehouses"] = len(warehouse_ids)
    return dg.AssetMaterialization(
        asset_key=C.QUARANTINE,
        description=f"{rows} rows kept aside by {writer}",
        metadata=metadata,
    )


def build_ingestion_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The ingestion assets for the platform's partitions."""

    @dg.asset(
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=DUCKDB_POOL,
        retry_policy=TRANSIENT_RETRY,
        dagster_type=RawSalesType,
        metadata={"partition_expr": PARTITION_EXPR},
        check_specs=[
            dg.AssetCheckSpec(
                REJECTED_CHECK,
                asset="raw_sales",
                description="Warns when more than 5% of a partition's transaction lines are rejected.",
            )
        ],
        group_name=GROUP,
        kinds={"duckdb", "pandas"},
    )
    def raw_sales(context: dg.AssetExecutionContext, source: SourceDataResource, duckdb: DuckDBResource):
        """Net daily demand per SKU active in a warehouse: one row per (sku, day), zeros included.

        Reads the day's transaction lines of the warehouse from the source, validates them
        (rejected lines go to the ``quarantine`` table with their reason and original row), nets
        returns against sales, and adds a zero row for every launched SKU without sales. A run may
        cover a range of days of one warehouse (backfill) or one day of many warehouses. Each day's
        line count and fingerprint go to the ``ingest_log`` table, so late or corrected lines and
        partitions lost to a crash are found and ingested again by the catch-up. Each partition's
        materialization carries its own row and line counts in runs of up to 100 partitions (the daily
        runs), the run's totals in larger backfill runs. A day whose lines
        have not landed at all (no line of any warehouse that day or the week after) fails instead of
        becoming a day of zero demand.
        """
        box = partition_box(context)
        if not source.has_landed(box.end):
            raise dg.Failure(
                description=(
                    f"raw_sales {box.end}: the source has no transaction line dated {box.end} or within "
                    "the week after it, so that day's sales have not landed; it is not ingested as a day "
                    "of zero demand. Run again once they have."
                ),
                allow_retries=False,
            )
        sales = source.ingest_sales(box.warehouse_ids, box.start, box.end)
        entries = ingest_log.log_entries(
            sales.lines_per_date, sales.raw_sales, box.warehouse_ids, box.start, box.end, context.run_id
        )
        with duckdb.get_connection() as con:
            n_quarantined = replace_quarantine(
                con, sales.quarantine, "raw_sales", box.warehouse_ids, box.start, box.end
            )
            # Written before the rows (the IO manager commits them after this body): a run killed in
            # between leaves a log whose row counts differ from the table's, which the catch-up repairs.
            ingest_log.replace_log(con, entries, box.warehouse_ids, box.start, box.end)
        index = pd.MultiIndex.from_product(
            [box.warehouse_ids, pd.date_range(box.start, box.end, freq="D")], names=[C.WAREHOUSE_ID, C.DATE]
        )
        counts = rejected_by_partition(sales.lines_per_date, index)
        if len(index) <= PER_PARTITION_METADATA_MAX:
            rows = sales.raw_sales.groupby([C.WAREHOUSE_ID, C.DATE]).size().reindex(index, fill_value=0)
            per_partition = zip(
                index,
                rows.to_numpy(),
                *(counts[c].to_numpy() for c in ("lines", "rejected", "rejected_share")),
                strict=True,
            )
            for (wh, day), n_rows, lines, rejected, share in per_partition:  # one entry per partition
                context.add_asset_metadata(
                    {
                        "rows": int(n_rows),
                        "transaction_lines": int(lines),
                        "rejected_lines": int(rejected),
                        "rejected_share": float(share),
                    },
                    partition_key=str(partition_key(day.date(), wh)),
                )
        context.log_event(
            quarantine_written(n_quarantined, "raw_sales", box.start, box.end, box.warehouse_ids)
        )
        over = counts[counts["rejected_share"] > MAX_REJECTED_SHARE]
        yield dg.Output(
            ingest_log.stamp_source(sales.raw_sales, sales.lines_per_date),
            metadata={
                "run_rows": len(sales.raw_sales),
                "run_transaction_lines": sales.n_lines,
                "run_rejected_lines": sales.n_rejected,
                "dagster/row_count": len(sales.raw_sales),
            },
        )
        yield dg.AssetCheckResult(
            check_name=REJECTED_CHECK,
            passed=over.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "partitions_checked": len(counts),
                "partitions_over_5pct": len(over),
                "worst": dg.MetadataValue.md(
                    over.sort_values("rejected_share", ascending=False).head(20).to_markdown()
                    if len(over)
                    else "none"
                ),
            },
        )

    date_def = date_dimension(partitions_def)

    @dg.asset(
        pool=DUCKDB_POOL,
        retry_policy=TRANSIENT_RETRY,
        check_specs=[dg.AssetCheckSpec(AUDIT_CHECK, asset="source_audit")],
        group_name=GROUP,
        kinds={"duckdb", "pandas"},
    )
    def source_audit(context: dg.AssetExecutionContext, source: SourceDataResource, duckdb: DuckDBResource):
        """Validation of the whole source: rows rejected per table and reason.

        Checks every small table (products, warehouses, campaigns, calendar, weather) against its
        contract and finds transaction lines that belong to no partition (unknown or null warehouse,
        unparseable date, date outside the partitioned range or after the bulk of the history). Rejected
        rows go to ``quarantine``.
        """
        frames = []
        for table in (C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS, C.CALENDAR, C.WEATHER):
            split = source.table(table)
            if split is not None:
                frames.append(split.rejected)
        keys = date_def.get_partition_keys()
        # Lines after the bulk of the history (a typo'd year) are strays even where a partition exists
        # for their day: they never reach raw_sales through a catch-up of the history.
        last = min(pd.Timestamp(keys[-1]).date(), source.history_last_day())
        orphans = source.orphan_transactions(
            warehouse_keys(partitions_def), pd.Timestamp(keys[0]).date(), last
        )
        frames.append(orphans)
        rejected = pd.concat(frames, ignore_index=True)
        with duckdb.get_connection() as con:
            n_quarantined = replace_quarantine(con, rejected, "source_audit")
        context.log_event(quarantine_written(n_quarantined, "source_audit"))
        summary = (
            rejected.groupby([C.SOURCE_TABLE, C.REASON]).size().rename("rows").reset_index()
            if len(rejected)
            else pd.DataFrame({C.SOURCE_TABLE: [], C.REASON: [], "rows": []})
        )
        summary["rows"] = summary["rows"].astype("int64")
        yield dg.Output(
            summary,
            metadata={
                "rejected_rows": len(rejected),
                "summary": dg.MetadataValue.md(summary.to_markdown(index=False) if len(summary) else "none"),
            },
        )
        yield dg.AssetCheckResult(
            check_name=AUDIT_CHECK,
            passed=rejected.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected_rows": len(rejected)},
        )

    return [raw_sales, source_audit]
