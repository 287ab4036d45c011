"""Partitions: a daily ``date`` dimension x a ``warehouse`` dimension read from the source.

The warehouse keys come from the configured source's ``warehouses`` table when the definitions load
(a static dimension: a dynamic one fails inside the DuckDB IO manager's output handling on
dagster 1.13.27). A new warehouse in the source appears after the code location reloads.
"""

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from demand_platform import columns as C
from demand_platform import source
from demand_platform.settings import PlatformSettings

DATE_DIM = "date"
WAREHOUSE_DIM = "warehouse"
# How the DuckDB IO manager finds a partition's rows in an asset's table.
PARTITION_EXPR = {DATE_DIM: C.DATE, WAREHOUSE_DIM: C.WAREHOUSE_ID}
# Concurrency pool serialising writers of the single DuckDB file (limit set in dagster.yaml).
DUCKDB_POOL = "duckdb"
#: Retries of a step that failed on something transient (the database locked past the lock's timeout, a
#: file being replaced, a store briefly unavailable): twice, after 10 then 20 seconds. Failures that a
#: retry cannot fix (a missing partition, bad data) raise ``dg.Failure(allow_retries=False)``.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)


#: Where the first day derived from a source is cached, keyed by the transactions file's identity.
FIRST_DAY_CACHE = "cache/first_day.json"


def first_partition_day(settings: PlatformSettings) -> dt.date:
    """The first daily partition: configured, or where the bulk of the source's history starts.

    Deriving it scans the transactions' dates, and every run worker loads the definitions, so the result
    is cached in the home, keyed by the transactions file's path, size and modification time: a changed
    (e.g. corrected) source is scanned again, so nothing cached can pin a bound the data no longer has.
    """
    if settings.start_date is not None:
        return settings.start_date
    today = settings.yesterday() + dt.timedelta(days=1)
    if source.database_source(settings.source) is not None:
        # A database source has no cheap identity to key a cache on (hashing its transactions is a full
        # read); the scan is a count per day inside the database. Set DEMAND_PLATFORM_START_DATE to skip it.
        return source.first_continuous_date(settings.source, today=today).date()
    path = source.require_table_path(settings.source, C.TRANSACTIONS)
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = settings.home / FIRST_DAY_CACHE
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return dt.date.fromisoformat(cached["first_day"])
    except (OSError, ValueError, KeyError):
        pass
    # "After tomorrow" (a stray future line) is judged in the company timezone.
    first = source.first_continuous_date(settings.source, today=today).date()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "first_day": first.isoformat()}))
        tmp.replace(cache)  # atomic: concurrent run workers never read half a file
    except OSError:
        pass  # a read-only home still works, it only scans again
    return first


def build_partitions(settings: PlatformSettings) -> dg.MultiPartitionsDefinition:
    """The ``date x warehouse`` partitions of every platform asset.

    Without an explicit end date the daily dimension has none: its last partition is yesterday in the
    company timezone, at every evaluation, so a long-running ``dagster dev`` and the daily schedule
    reach each new day.
    """
    end = None if settings.end_date is None else settings.end_date + dt.timedelta(days=1)
    daily = dg.DailyPartitionsDefinition(
        start_date=first_partition_day(settings).isoformat(),
        end_date=None if end is None else end.isoformat(),
        timezone=settings.timezone,
    )
    warehouses = dg.StaticPartitionsDefinition(source.warehouse_ids(settings.source))
    return dg.MultiPartitionsDefinition({DATE_DIM: daily, WAREHOUSE_DIM: warehouses})


def empty_partitions(settings: PlatformSettings) -> dg.MultiPartitionsDefinition:
    """The ``date x warehouse`` partitions of a platform without a source: no warehouse, so no partition.

    The daily dimension starts yesterday (company timezone) only to be a valid one; with no warehouse key
    the product is empty, which Dagster loads and the UI shows as 0 partitions (nothing to launch).
    """
    daily = dg.DailyPartitionsDefinition(
        start_date=settings.yesterday().isoformat(), timezone=settings.timezone
    )
    return dg.MultiPartitionsDefinition({DATE_DIM: daily, WAREHOUSE_DIM: dg.StaticPartitionsDefinition([])})


def date_dimension(partitions_def: dg.MultiPartitionsDefinition) -> dg.DailyPartitionsDefinition:
    """The daily dimension of the platform partitions."""
    dim = partitions_def.get_partitions_def_for_dimension(DATE_DIM)
    assert isinstance(dim, dg.DailyPartitionsDefinition)
    return dim


def warehouse_keys(partitions_def: dg.MultiPartitionsDefinition) -> list[str]:
    """The warehouse partition keys."""
    return list(partitions_def.get_partitions_def_for_dimension(WAREHOUSE_DIM).get_partition_keys())


def partition_key(day: dt.date, warehouse_id: str) -> dg.MultiPartitionKey:
    """The multi-partition key of one day and warehouse."""
    return dg.MultiPartitionKey({DATE_DIM: day.isoformat(), WAREHOUSE_DIM: warehouse_id})


@dataclass(frozen=True)
class PartitionBox:
    """The partitions of one run: every day of ``[start, end]`` for every warehouse listed.

    Dagster's backfills of a multi-partitioned asset with a single-run policy always form such a box
    (many days of one warehouse, or one day of many warehouses).
    """

    warehouse_ids: list[str]
    start: dt.date
    end: dt.date
    keys: list[str]


def partition_box(context: dg.AssetExecutionContext) -> PartitionBox:
    """The box of partitions a run covers (a single partition, or a single-run backfill range)."""
    partitions_def = context.assets_def.partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    keys = list(context.partition_keys)
    if not keys:
        raise ValueError(f"run covers no partition (range {context.partition_key_range})")
    parsed = [partitions_def.get_partition_key_from_str(k) for k in keys]
    warehouses = sorted({k.keys_by_dimension[WAREHOUSE_DIM] for k in parsed})
    days = sorted({k.keys_by_dimension[DATE_DIM] for k in parsed})
    return PartitionBox(
        warehouse_ids=warehouses,
        start=dt.date.fromisoformat(days[0]),
        end=dt.date.fromisoformat(days[-1]),
        keys=keys,
    )


#: Dagster's run tags of a single-run partition range.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(start: dt.date, end: dt.date, warehouse_id: str) -> dict[str, str]:
    """Run tags for one run over ``[start, end]`` of one warehouse (a single-run backfill range)."""
    return {
        RANGE_START_TAG: str(partition_key(start, warehouse_id)),
        RANGE_END_TAG: str(partition_key(end, warehouse_id)),
    }


def box_tags(start: dt.date, end: dt.date, warehouse_ids: Sequence[str]) -> dict[str, str]:
    """Run tags for one run over ``[start, end]`` x a contiguous run of warehouses (first to last, in key order).

    Dagster reads such a range of a multi-partitioned asset as the box of every day x every warehouse
    between the two keys.
    """
    return {
        RANGE_START_TAG: str(partition_key(start, warehouse_ids[0])),
        RANGE_END_TAG: str(partition_key(end, warehouse_ids[-1])),
    }


def day_box_tags(day: dt.date, warehouse_ids: Sequence[str]) -> dict[str, str]:
    """Run tags for one run over ``day`` x a contiguous run of warehouses (first to last, in key order)."""
    return box_tags(day, day, warehouse_ids)


def window_mapping(days: int) -> dg.MultiPartitionMapping:
    """(D, W) depends on (D - days .. D, W) upstream."""
    return dg.MultiPartitionMapping(
        {
            DATE_DIM: dg.DimensionPartitionMapping(
                DATE_DIM, dg.TimeWindowPartitionMapping(start_offset=-days, end_offset=0)
            ),
            WAREHOUSE_DIM: dg.DimensionPartitionMapping(WAREHOUSE_DIM, dg.IdentityPartitionMapping()),
        }
    )
