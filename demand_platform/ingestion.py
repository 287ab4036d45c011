"""Ingestion: validate a slice of ``transactions`` in DuckDB and build ``raw_sales`` from it.

A slice is one warehouse and a range of days (one or many ``date x warehouse`` partitions). The
transactions file is scanned by DuckDB with filters on warehouse and date, so only the slice is read
(parquet row-group statistics prune the rest); the duplicate check probes the ``transaction_id``
column of the whole file, because a duplicate may sit in another partition.

Rules (also in the README):

* A line is rejected, with every reason that applies, when its ``transaction_id``, ``sku`` or
  quantity is null, a value does not parse, the SKU is unknown (not a valid ``products`` row), the
  absolute quantity exceeds :data:`~demand_platform.schemas.MAX_LINE_QUANTITY`, or its
  ``transaction_id`` appeared earlier in the file (keep-first).
* Lines that belong to no partition (null or unknown warehouse, null or unparseable date, or a date
  outside the partitioned range) are found by :func:`orphan_transactions`.
* Returns (negative quantities) net against the sales of the day they are recorded on: the day's
  ``quantity`` is the sum of all valid lines and may be negative; ``revenue`` likewise.
* Every SKU launched on or before a day (and the warehouse operational) gets a row for that day,
  zero when it sold nothing, so lags downstream count real zeros. Sales before a SKU's launch date
  still produce a row (the data says it sold).
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from demand_platform import columns as C
from demand_platform.schemas import MAX_LINE_QUANTITY
from demand_platform.source import (
    check_columns,
    file_columns,
    quarantine_frame,
    relation_sql,
    require_table_path,
)

# Validated view of the transactions file, one row per line, typed with TRY_CAST so that a value
# that does not parse becomes NULL here and is reported from its raw text.
_TYPED_SQL = f"""
SELECT
    file_row_number AS _row,
    CAST({C.TRANSACTION_ID} AS VARCHAR) AS {C.TRANSACTION_ID},
    CAST({C.SKU} AS VARCHAR) AS {C.SKU},
    CAST({C.WAREHOUSE_ID} AS VARCHAR) AS {C.WAREHOUSE_ID},
    TRY_CAST({C.TRANSACTION_DATE} AS DATE) AS _date,
    CAST({C.TRANSACTION_DATE} AS VARCHAR) AS _date_raw,
    TRY_CAST({C.QUANTITY} AS DOUBLE) AS _qty,
    CAST({C.QUANTITY} AS VARCHAR) AS _qty_raw,
    TRY_CAST({C.REVENUE} AS DOUBLE) AS _rev,
    CAST({C.REVENUE} AS VARCHAR) AS _rev_raw,
    CAST({C.CUSTOMER_ID} AS VARCHAR) AS {C.CUSTOMER_ID},
    CAST({C.ORDER_ID} AS VARCHAR) AS {C.ORDER_ID}
FROM {{relation}}
"""

_ORIGINAL_COLUMNS = f"""
    {C.TRANSACTION_ID}, {C.SKU}, {C.WAREHOUSE_ID}, _date_raw AS {C.TRANSACTION_DATE},
    _qty_raw AS {C.QUANTITY}, _rev_raw AS {C.REVENUE}, {C.CUSTOMER_ID}, {C.ORDER_ID}
"""


@dataclass(frozen=True)
class SalesSlice:
    """What ingesting one warehouse over a range of days produced.

    Attributes:
        raw_sales: ``RawSalesModel`` rows for every (SKU, day) in the slice.
        quarantine: Rejected lines (``QuarantineModel`` columns).
        lines_per_date: Per day: ``lines`` read, ``rejected`` lines (for partition metadata/checks).
    """

    raw_sales: pd.DataFrame
    quarantine: pd.DataFrame
    lines_per_date: pd.DataFrame

    @property
    def n_lines(self) -> int:
        """Transaction lines read for the slice."""
        return int(self.lines_per_date["lines"].sum())

    @property
    def n_rejected(self) -> int:
        """Transaction lines rejected for the slice."""
        return int(self.lines_per_date["rejected"].sum())


def _transactions_relation(source_dir: str | Path, con: duckdb.DuckDBPyConnection) -> str:
    path = require_table_path(source_dir, C.TRANSACTIONS)
    check_columns(path, C.TRANSACTIONS, file_columns(path, con))
    return relation_sql(path)


def _sql_list(values: list[str]) -> str:
    """A SQL list literal of string values (warehouse ids are validated to ``[A-Za-z0-9_-]``)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def ingest_sales(
    source_dir: str | Path,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    con: duckdb.DuckDBPyConnection | None = None,
) -> SalesSlice:
    """Validate the transactions of some warehouses over ``[start, end]`` and build ``raw_sales``.

    A Dagster run covers a box of partitions: many days of one warehouse (a backfill) or one day of
    many warehouses (the daily run); both are one call here, one scan of the transactions file.

    Args:
        source_dir: Source directory holding ``transactions.parquet`` or ``.csv``.
        products: The valid ``products`` rows (``sku``, ``launch_date``).
        warehouses: The valid ``warehouses`` rows of the slice (``warehouse_id``,
            ``operational_since``; no zero rows are made before that day, sales still count).
        start: First day of the slice (inclusive).
        end: Last day of the slice (inclusive).
        con: DuckDB connection for the scan (a fresh in-memory one by default).

    Returns:
        The slice's raw_sales rows, its quarantined lines and per-day line counts.
    """
    con = con or duckdb.connect()
    relation = _transactions_relation(source_dir, con)
    con.register("_products", products[[C.SKU, C.LAUNCH_DATE]])
    con.register("_wh", warehouses[[C.WAREHOUSE_ID, C.OPERATIONAL_SINCE]])
    in_slice = _sql_list(warehouses[C.WAREHOUSE_ID].astype(str).tolist())
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _slice AS
        SELECT * FROM ({_TYPED_SQL.format(relation=relation)})
        WHERE {C.WAREHOUSE_ID} IN {in_slice} AND _date BETWEEN $d0 AND $d1
        """,
        {"d0": start, "d1": end},
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        WITH first_seen AS (
            SELECT CAST({C.TRANSACTION_ID} AS VARCHAR) AS tid, min(file_row_number) AS first_row
            FROM {relation}
            WHERE CAST({C.TRANSACTION_ID} AS VARCHAR) IN (SELECT {C.TRANSACTION_ID} FROM _slice)
            GROUP BY 1
        )
        SELECT s.*,
            concat_ws('; ',
                CASE WHEN s.{C.TRANSACTION_ID} IS NULL THEN 'null {C.TRANSACTION_ID}' END,
                CASE WHEN f.first_row < s._row THEN 'duplicate {C.TRANSACTION_ID}' END,
                CASE WHEN s.{C.SKU} IS NULL THEN 'null {C.SKU}' END,
                CASE WHEN s.{C.SKU} IS NOT NULL AND p.{C.SKU} IS NULL THEN 'unknown {C.SKU}' END,
                CASE WHEN s._qty_raw IS NULL THEN 'null {C.QUANTITY}' END,
                CASE WHEN s._qty_raw IS NOT NULL AND s._qty IS NULL THEN 'unparseable {C.QUANTITY}' END,
                CASE WHEN isnan(s._qty) OR isinf(s._qty) THEN 'unparseable {C.QUANTITY}' END,
                CASE WHEN abs(s._qty) > {MAX_LINE_QUANTITY} THEN 'absurd {C.QUANTITY}' END,
                CASE WHEN s._rev_raw IS NOT NULL AND s._rev IS NULL THEN 'unparseable {C.REVENUE}' END,
                CASE WHEN isnan(s._rev) OR isinf(s._rev) THEN 'unparseable {C.REVENUE}' END
            ) AS _reason
        FROM _slice s
        LEFT JOIN first_seen f ON f.tid = s.{C.TRANSACTION_ID}
        LEFT JOIN _products p ON p.{C.SKU} = s.{C.SKU}
        """
    )
    rejected = con.execute(
        f"SELECT {C.WAREHOUSE_ID} AS _wh, _date, _reason, {_ORIGINAL_COLUMNS} "
        "FROM _checked WHERE _reason <> '' ORDER BY _row"
    ).df()
    lines_per_date = con.execute(
        f"SELECT {C.WAREHOUSE_ID}, _date AS {C.DATE}, count(*) AS lines, "
        "count(*) FILTER (WHERE _reason <> '') AS rejected FROM _checked GROUP BY ALL ORDER BY 1, 2"
    ).df()
    raw_sales = con.execute(
        f"""
        WITH valid AS (SELECT * FROM _checked WHERE _reason = ''),
        agg AS (
            SELECT {C.WAREHOUSE_ID}, {C.SKU}, _date AS {C.DATE},
                sum(_qty) AS {C.QUANTITY},
                coalesce(sum(_rev), 0) AS {C.REVENUE},
                count(DISTINCT coalesce({C.ORDER_ID}, {C.TRANSACTION_ID})) FILTER (WHERE _qty > 0)
                    AS {C.N_ORDERS}
            FROM valid GROUP BY ALL
        ),
        days AS (
            SELECT w.{C.WAREHOUSE_ID}, CAST(r.range AS DATE) AS {C.DATE}
            FROM range(CAST($d0 AS DATE), CAST($d1 AS DATE) + 1, INTERVAL 1 DAY) r
            CROSS JOIN _wh w
            WHERE w.{C.OPERATIONAL_SINCE} IS NULL
                OR CAST(r.range AS DATE) >= CAST(w.{C.OPERATIONAL_SINCE} AS DATE)
        ),
        active AS (
            SELECT d.{C.WAREHOUSE_ID}, p.{C.SKU}, d.{C.DATE}
            FROM _products p JOIN days d ON CAST(p.{C.LAUNCH_DATE} AS DATE) <= d.{C.DATE}
        )
        SELECT coalesce(a.{C.SKU}, g.{C.SKU}) AS {C.SKU},
            coalesce(a.{C.WAREHOUSE_ID}, g.{C.WAREHOUSE_ID}) AS {C.WAREHOUSE_ID},
            CAST(coalesce(a.{C.DATE}, g.{C.DATE}) AS TIMESTAMP) AS {C.DATE},
            coalesce(g.{C.QUANTITY}, 0.0) AS {C.QUANTITY},
            coalesce(g.{C.REVENUE}, 0.0) AS {C.REVENUE},
            CAST(coalesce(g.{C.N_ORDERS}, 0) AS BIGINT) AS {C.N_ORDERS}
        FROM active a FULL OUTER JOIN agg g
            ON a.{C.WAREHOUSE_ID} = g.{C.WAREHOUSE_ID} AND a.{C.SKU} = g.{C.SKU} AND a.{C.DATE} = g.{C.DATE}
        ORDER BY 2, 3, 1
        """,
        {"d0": start, "d1": end},
    ).df()
    raw_sales[C.WAREHOUSE_ID] = raw_sales[C.WAREHOUSE_ID].astype(object)
    raw_sales[C.N_ORDERS] = raw_sales[C.N_ORDERS].astype("int64")
    con.unregister("_products")
    con.unregister("_wh")
    original = rejected.drop(columns=["_wh", "_date", "_reason"])
    quarantine = quarantine_frame(
        C.TRANSACTIONS,
        original,
        rejected["_reason"],
        warehouse_id=rejected["_wh"],
        partition_date=rejected["_date"],
    )
    lines_per_date[C.DATE] = pd.to_datetime(lines_per_date[C.DATE])
    return SalesSlice(raw_sales=raw_sales, quarantine=quarantine, lines_per_date=lines_per_date)


def orphan_transactions(
    source_dir: str | Path,
    warehouse_ids: list[str],
    first_day: dt.date,
    last_day: dt.date,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Transaction lines that belong to no ``date x warehouse`` partition, as quarantine rows.

    A line is an orphan when its warehouse is null or not a known warehouse, or its date is null,
    unparseable or outside ``[first_day, last_day]`` (the partitioned range).
    """
    con = con or duckdb.connect()
    relation = _transactions_relation(source_dir, con)
    con.register("_warehouses", pd.DataFrame({C.WAREHOUSE_ID: pd.Series(warehouse_ids, dtype=object)}))
    rows = con.execute(
        f"""
        WITH t AS (
            SELECT *, {C.WAREHOUSE_ID} IN (SELECT {C.WAREHOUSE_ID} FROM _warehouses) AS _known
            FROM ({_TYPED_SQL.format(relation=relation)})
        )
        SELECT {C.WAREHOUSE_ID} AS _wh, _date,
            concat_ws('; ',
                CASE WHEN {C.WAREHOUSE_ID} IS NULL THEN 'null {C.WAREHOUSE_ID}' END,
                CASE WHEN {C.WAREHOUSE_ID} IS NOT NULL AND NOT _known THEN 'unknown {C.WAREHOUSE_ID}' END,
                CASE WHEN _date_raw IS NULL THEN 'null {C.TRANSACTION_DATE}' END,
                CASE WHEN _date_raw IS NOT NULL AND _date IS NULL
                    THEN 'unparseable {C.TRANSACTION_DATE}' END,
                CASE WHEN _date NOT BETWEEN $d0 AND $d1
                    THEN '{C.TRANSACTION_DATE} outside partition range' END
            ) AS _reason,
            {_ORIGINAL_COLUMNS}
        FROM t
        WHERE {C.WAREHOUSE_ID} IS NULL OR NOT _known OR _date IS NULL OR _date NOT BETWEEN $d0 AND $d1
        ORDER BY _row
        """,
        {"d0": first_day, "d1": last_day},
    ).df()
    con.unregister("_warehouses")
    original = rows.drop(columns=["_wh", "_date", "_reason"])
    return quarantine_frame(
        C.TRANSACTIONS,
        original,
        rows["_reason"],
        warehouse_id=rows["_wh"],
        partition_date=rows["_date"],
    )
