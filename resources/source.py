"""The source data resource: a bring-your-own-data directory, one file per table."""

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform.calendar import build_calendar
from demand_platform.tables import SOURCE_TABLE_NAMES, SourceTables


def _table_stamps(path: str) -> tuple[str, ...]:
    """The version of every small table (a file's name, size and modification time; a database table's
    row hash): the cache key of their contents."""
    return source.table_versions(path, SOURCE_TABLE_NAMES)


@functools.lru_cache(maxsize=4)
def _load_tables(path: str, stamps: tuple[str, ...]) -> SourceTables:
    """Load once per process and per version of the files (``stamps`` keys the cache)."""
    del stamps
    return source.load_source_tables(path)


class SourceDataResource(dg.ConfigurableResource):
    """A source directory following the platform's data contract (see the README).

    Attributes:
        path: Directory holding ``transactions``, ``products``, ``warehouses`` and the optional
            ``marketing_campaigns``, ``calendar``, ``weather`` and ``overrides`` tables.
        timezone: The company timezone ("today", past which a line is a stray from the future).
    """

    path: str
    timezone: str = "UTC"

    def tables(self) -> SourceTables:
        """The validated small tables, loaded once per process while their files are unchanged."""
        return _load_tables(self.path, _table_stamps(self.path))

    def table(self, table: str) -> source.TableSplit | None:
        """Read and validate one small table (None when an optional table is absent)."""
        return source.load_table(self.path, table)

    def valid(self, table: str) -> pd.DataFrame | None:
        """The valid rows of one small table (None when an optional table is absent)."""
        split = self.table(table)
        return None if split is None else split.valid

    def required(self, table: str) -> pd.DataFrame:
        """The valid rows of a required table (products, warehouses)."""
        split = source.load_table(self.path, table, required=True)
        assert split is not None
        return split.valid

    def calendar(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The source's calendar, or one derived with national holidays when the source has none."""
        given = self.valid(C.CALENDAR)
        return build_calendar(start, end) if given is None else given

    def ingest_sales(self, warehouse_ids: list[str], start: dt.date, end: dt.date) -> ingestion.SalesSlice:
        """Validate and aggregate the transactions of a box of ``date x warehouse`` partitions."""
        split = source.load_table(self.path, C.PRODUCTS, required=True)
        assert split is not None
        warehouses = self.required(C.WAREHOUSES)
        chosen = warehouses[warehouses[C.WAREHOUSE_ID].isin(warehouse_ids)]
        # Lines of a product the products table rejected say why, not "unknown sku".
        return ingestion.ingest_sales(
            self.path, split.valid, chosen, start, end, rejected_products=split.rejected_keys(C.SKU)
        )

    def has_landed(self, day: dt.date, within_days: int = 7) -> bool:
        """Whether the source has any transaction line dated ``day`` or up to ``within_days`` later.

        A day whose lines have not arrived at all (yesterday's export is late) must not be ingested as a
        day of zero demand; a day on which no warehouse sold anything (a closure) is told apart by the
        lines of the days after it.
        """
        warehouses = self.required(C.WAREHOUSES)[C.WAREHOUSE_ID].astype(str).tolist()
        found = ingestion.day_fingerprints(self.path, warehouses, day, day + dt.timedelta(days=within_days))
        return not found.empty

    def history_last_day(self) -> dt.date:
        """The last day of the bulk of the source's history (stray later lines excluded)."""
        today = dt.datetime.now(ZoneInfo(self.timezone)).date()
        return source.last_history_date(self.path, today=today).date()

    def orphan_transactions(self, warehouse_ids: list[str], first: dt.date, last: dt.date) -> pd.DataFrame:
        """Transaction lines that belong to no partition, as quarantine rows."""
        return ingestion.orphan_transactions(self.path, warehouse_ids, first, last)
