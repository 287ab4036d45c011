"""Ingestion: validate a slice of ``transactions`` in DuckDB and build ``raw_sales`` from it.

A slice is one warehouse and a range of days (one or many ``date x warehouse`` partitions). The
transactions file is scanned by DuckDB with filters on warehouse and date, so only the slice is read
(parquet row-group statistics prune the rest); the duplicate check probes the ``transaction_id``
column of the whole file, because a duplicate may sit in another partition.

A source database (:mod:`demand_platform.source_db`) is read incrementally the same way: the slice's
warehouse and day filter is written in PostgreSQL's SQL (:func:`database_slice_filter`) and run by
PostgreSQL, so only the box's lines travel (a new day costs that day's lines, whatever the history);
the duplicate probe asks PostgreSQL for the first row of the slice's ids only, grouped there. The SQL
that validates and aggregates the lines is the same for files and databases.

Values are canonicalised as in :mod:`demand_platform.source` (ids integer or text -> text, dates
``DATE``/``TIMESTAMP``/ISO text -> day, infinite dates unparseable), so a warehouse id ``1`` of an
INT column equals the ``"1"`` of the warehouses table.

Rules (also in the README):

* A line is rejected, with every reason that applies, when its ``transaction_id``, ``sku`` or
  quantity is null, a value does not parse (NaN and infinite numbers included), the SKU is unknown
  (not a valid ``products`` row; ``sku rejected in products (<why>)`` when the products table has
  it but rejected it), the absolute quantity exceeds
  :data:`~demand_platform.schemas.MAX_LINE_QUANTITY`, or its ``transaction_id`` appeared earlier in
  the file (keep-first).
* Lines that belong to no partition (null or unknown warehouse, null or unparseable date, or a date
  outside the partitioned range) are found by :func:`orphan_transactions`.
* Returns (negative quantities) net against the sales of the day they are recorded on: the day's
  ``quantity`` is the sum of all valid lines and may be negative; ``revenue`` likewise.
* Every SKU launched on or before a day (and the warehouse operational) gets a row for that day,
  zero when it sold nothing, so lags downstream count real zeros. Sales before a SKU's launch date
  still produce a row (the data says it sold).
* Each (warehouse, day) gets a fingerprint of all its lines (:func:`day_fingerprints`), so that a
  day whose lines changed after it was ingested (late upload, correction) can be found cheaply.
"""

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from demand_platform import columns as C
from demand_platform import source_db
from demand_platform.frames import fetch_frame
from demand_platform.schemas import MAX_LINE_QUANTITY
from demand_platform.source import (
    SourceTable,
    canonical_ids,
    check_columns,
    day_sql,
    id_sql,
    quarantine_frame,
    require_table,
    source_connection,
)

_ID_FIELDS = (C.TRANSACTION_ID, C.SKU, C.WAREHOUSE_ID, C.CUSTOMER_ID, C.ORDER_ID)
_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER_LITERAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INTEGER_KINDS = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)
_NUMERIC_PREFIXES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "U", "FLOAT", "DOUBLE", "DECIMAL")

_ORIGINAL_COLUMNS = f"""
    {C.TRANSACTION_ID}, {C.SKU}, {C.WAREHOUSE_ID}, _date_raw AS {C.TRANSACTION_DATE},
    _qty_raw AS {C.QUANTITY}, _rev_raw AS {C.REVENUE}, {C.CUSTOMER_ID}, {C.ORDER_ID}
"""

# Order-independent fingerprint of the lines of a group: the sum of a hash of each line's canonical
# raw values (ids canonical, date, quantity and revenue as written), reduced to a non-negative BIGINT.
# A sum (not a XOR) so that two identical lines do not cancel out.
# Over the canonical values (ids as text, the day, quantity and revenue as numbers), so the same lines
# exported with another column type (int vs float quantity, DATE vs TIMESTAMP, DECIMAL vs DOUBLE) keep
# their fingerprint; a value that does not parse enters by its raw text.
_FINGERPRINT_SQL = f"""CAST(sum(CAST(hash(
        {C.TRANSACTION_ID}, {C.SKU}, {C.WAREHOUSE_ID}, _date, _qty, _rev,
        CASE WHEN _date IS NULL THEN _date_raw END,
        CASE WHEN _qty IS NULL THEN _qty_raw END,
        CASE WHEN _rev IS NULL THEN _rev_raw END,
        {C.CUSTOMER_ID}, {C.ORDER_ID}
    ) AS HUGEINT)) % 9223372036854775808 AS BIGINT)"""


def _database_id_filter(column: str, duck_type: str, ids: list[str]) -> tuple[str | None, bool]:
    """PostgreSQL condition on a raw id column holding every row whose canonical id is in ``ids``.

    Returns:
        The condition (None: no filter can be written for this type) and whether it is exact (holds
        no other row).
    """
    quoted, kind = source_db.quote_ident(column), duck_type.upper()
    if kind in _INTEGER_KINDS:
        numbers = [i for i in ids if _CANONICAL_INTEGER.fullmatch(i)]
        return (f"{quoted} IN ({', '.join(numbers)})" if numbers else "FALSE"), True
    if kind in ("VARCHAR", "UUID"):
        # The canonical text is the value stripped of spaces (DuckDB's trim and btrim(' ') alike).
        return (f"btrim({quoted}::text, ' ') IN {_sql_list(ids)}" if ids else "FALSE"), True
    if kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
        # A canonical number (1 for 1.0, DuckDB's shortest text otherwise) equals its value as a literal.
        numbers = [i for i in ids if _NUMBER_LITERAL.fullmatch(i)]
        return (f"{quoted} IN ({', '.join(numbers)})" if numbers else "FALSE"), False
    return None, False


def _database_day_filter(
    column: str, duck_type: str, start: dt.date, end: dt.date
) -> tuple[str | None, bool]:
    """PostgreSQL condition on a raw date column holding every row whose day is in ``[start, end]``
    (:func:`demand_platform.source.day_sql`); None when none can be written, and whether it is exact."""
    quoted, kind = source_db.quote_ident(column), duck_type.upper()
    first, last = start.isoformat(), end.isoformat()
    after = (end + dt.timedelta(days=1)).isoformat() if end < dt.date.max else None
    if kind == "DATE":
        return f"{quoted} BETWEEN '{first}' AND '{last}'", True  # infinite dates are outside any range
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        upper = f" AND {quoted} < '{after} 00:00:00+00'" if after else f" AND {quoted} < 'infinity'"
        return f"{quoted} >= '{first} 00:00:00+00'{upper}", True
    if kind.startswith("TIMESTAMP"):
        upper = f" AND {quoted} < '{after}'" if after else f" AND {quoted} < 'infinity'"
        return f"{quoted} >= '{first}'{upper}", True
    if kind == "VARCHAR":
        # ISO text starts with its zero-padded day: its first ten characters after leading spaces,
        # compared byte-wise (COLLATE "C"), hold every line of the range (and some unparseable ones).
        return f"left(ltrim({quoted}, ' '), 10) COLLATE \"C\" BETWEEN '{first}' AND '{last}'", False
    return None, False


def database_slice_filter(
    types: dict[str, str], warehouse_ids: list[str], start: dt.date, end: dt.date
) -> tuple[str, bool]:
    """The PostgreSQL condition selecting a slice's raw lines: some warehouses over ``[start, end]``.

    It is what makes a database source incremental: PostgreSQL applies it (an index on
    ``transaction_date`` serves it), so only the slice's lines travel to DuckDB, which then applies
    the exact canonical filter as for files.

    Args:
        types: The transactions' column types (DuckDB's names).
        warehouse_ids: Canonical warehouse ids of the slice.
        start: First day (inclusive).
        end: Last day (inclusive).

    Returns:
        The condition (``TRUE`` when the types allow none) and whether it is exact: it holds exactly the
        lines whose canonical warehouse is one of ``warehouse_ids`` and whose day is in the range
        (integer or text warehouse ids, ``DATE`` or ``TIMESTAMP`` dates), so that its negation holds
        exactly the others.
    """
    parts: list[str] = []
    exact = True
    for condition, is_exact in (
        _database_id_filter(C.WAREHOUSE_ID, types[C.WAREHOUSE_ID], [str(w) for w in warehouse_ids]),
        _database_day_filter(C.TRANSACTION_DATE, types[C.TRANSACTION_DATE], start, end),
    ):
        if condition is not None:
            parts.append(f"({condition})")
        exact = exact and is_exact
    return " AND ".join(parts) or "TRUE", exact


@dataclass(frozen=True)
class _Transactions:
    """The transactions of a source (a file or a database table): where they are and their column types."""

    table: SourceTable
    types: dict[str, str]

    @property
    def relation(self) -> str:
        """DuckDB table expression of every line (with ``file_row_number``)."""
        return self.table.relation_sql()

    def typed_sql(self, where: str = "TRUE", database_filter: str | None = None) -> str:
        """Validated view of the file, one row per line (``where`` filters the raw columns first).

        Ids are canonical text, the date its day (NULL when unparseable or infinite), numbers
        ``TRY_CAST`` so that a value that does not parse becomes NULL here and is reported from its
        raw text (``_*_raw``). ``database_filter`` (PostgreSQL's SQL) is applied by a source database.
        """
        ids = {name: id_sql(name, self.types[name]) for name in _ID_FIELDS}
        return f"""
        SELECT
            file_row_number AS _row,
            {ids[C.TRANSACTION_ID]} AS {C.TRANSACTION_ID},
            {ids[C.SKU]} AS {C.SKU},
            {ids[C.WAREHOUSE_ID]} AS {C.WAREHOUSE_ID},
            {day_sql(C.TRANSACTION_DATE, self.types[C.TRANSACTION_DATE])} AS _date,
            CAST({C.TRANSACTION_DATE} AS VARCHAR) AS _date_raw,
            TRY_CAST({C.QUANTITY} AS DOUBLE) AS _qty,
            CAST({C.QUANTITY} AS VARCHAR) AS _qty_raw,
            TRY_CAST({C.REVENUE} AS DOUBLE) AS _rev,
            CAST({C.REVENUE} AS VARCHAR) AS _rev_raw,
            {ids[C.CUSTOMER_ID]} AS {C.CUSTOMER_ID},
            {ids[C.ORDER_ID]} AS {C.ORDER_ID}
        FROM {self.table.relation_sql(database_filter)}
        WHERE {where}
        """

    def first_seen_sql(self, con: duckdb.DuckDBPyConnection) -> tuple[str, dict[str, object]]:
        """SQL (and its parameters) of the first file row of every ``transaction_id`` in ``_slice``.

        The whole file is probed, because a duplicate may sit in another partition. Ids are compared
        canonically; filters on the raw column keep the probe cheap: parquet row groups outside the
        slice's id range are pruned, and only rows that can differ from their canonical form are
        canonicalised. Text ids: rows with a leading space, and rows within
        ``[min, max + U+10FFFF]`` of the slice's ids (which holds every ``id + spaces`` unless an id
        has a control character right after a prefix that is itself an id of the slice), trimmed
        when they end with a space. Integer ids: rows within the slice's numeric range.
        """
        raw, kind = C.TRANSACTION_ID, self.types[C.TRANSACTION_ID].upper()
        canonical = id_sql(raw, kind)
        in_slice = f"IN (SELECT {C.TRANSACTION_ID} FROM _slice)"
        if self.table.database is not None:
            return self._database_first_seen_sql(con, canonical, in_slice), {}
        if kind in ("VARCHAR", "TEXT", "STRING"):
            lo, hi = con.execute(f"SELECT min({raw}), max({raw}) FROM _slice").fetchone() or (None, None)
            if lo is None or hi is None:
                return "SELECT NULL::VARCHAR AS tid, NULL::BIGINT AS first_row WHERE FALSE", {}
            sql = f"""
                SELECT tid, min(r) AS first_row FROM (
                    SELECT CASE WHEN {raw} LIKE '% ' THEN {canonical} ELSE {raw} END AS tid,
                        file_row_number AS r
                    FROM {self.relation} WHERE {raw} BETWEEN $lo AND $hi
                    UNION ALL
                    SELECT {canonical}, file_row_number FROM {self.relation} WHERE {raw} LIKE ' %'
                ) WHERE tid {in_slice} GROUP BY 1
            """
            return sql, {"lo": lo, "hi": f"{hi}\U0010ffff"}
        where = f"{canonical} {in_slice}"
        if kind in _INTEGER_KINDS:
            lo, hi = con.execute(
                f"SELECT min(TRY_CAST({raw} AS HUGEINT)), max(TRY_CAST({raw} AS HUGEINT)) FROM _slice"
            ).fetchone() or (None, None)
            where = (
                "FALSE" if lo is None or hi is None else f"{raw} BETWEEN {int(lo)} AND {int(hi)} AND {where}"
            )
        sql = f"""
            SELECT {canonical} AS tid, min(file_row_number) AS first_row
            FROM {self.relation} WHERE {where} GROUP BY 1
        """
        return sql, {}

    def _database_first_seen_sql(self, con: duckdb.DuckDBPyConnection, canonical: str, in_slice: str) -> str:
        """:meth:`first_seen_sql` of a database: PostgreSQL finds the first row of each raw id among the
        rows whose canonical id is one of the slice's (an index on ``transaction_id`` serves integer
        ids), so one row per id travels; DuckDB then canonicalises the raw ids."""
        database = self.table.database
        assert database is not None
        ids = [
            str(row[0])
            for row in con.execute(
                f"SELECT DISTINCT {C.TRANSACTION_ID} FROM _slice WHERE {C.TRANSACTION_ID} IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        if not ids:
            return "SELECT NULL::VARCHAR AS tid, NULL::BIGINT AS first_row WHERE FALSE"
        condition, _ = _database_id_filter(C.TRANSACTION_ID, self.types[C.TRANSACTION_ID], ids)
        column = source_db.quote_ident(C.TRANSACTION_ID)
        grouped = (
            f"SELECT {column}, min(file_row_number) AS file_row_number "
            f"FROM ({database.sql(condition)}) AS _lines GROUP BY 1"
        )
        return f"""
            SELECT {canonical} AS tid, min(file_row_number) AS first_row
            FROM {source_db.query_relation(database.source, grouped)}
            WHERE {canonical} {in_slice} GROUP BY 1
        """

    def slice_sql(self, warehouse_ids: list[str], start: dt.date, end: dt.date) -> str:
        """The typed lines of some warehouses between ``start`` and ``end`` (inclusive).

        The canonical filter is exact; a filter on the raw columns is added where the file's types
        allow an equivalent one, so that parquet row groups are pruned by their statistics (the
        bounds are literals: DuckDB prunes with constants, not with parameters cast at run time).
        """
        d0, d1 = dt.date.fromordinal(start.toordinal()), dt.date.fromordinal(end.toordinal())
        first, last = f"DATE '{d0.isoformat()}'", f"DATE '{d1.isoformat()}'"
        if self.table.database is not None:
            database_filter, _ = database_slice_filter(self.types, warehouse_ids, d0, d1)
            return f"""
            SELECT * FROM ({self.typed_sql(database_filter=database_filter)})
            WHERE {C.WAREHOUSE_ID} IN {_sql_list(warehouse_ids)} AND _date BETWEEN {first} AND {last}
            """
        raw: list[str] = []
        wh_type = self.types[C.WAREHOUSE_ID].upper()
        if wh_type.startswith(_NUMERIC_PREFIXES):
            numbers = [w for w in warehouse_ids if _CANONICAL_INTEGER.fullmatch(w)]
            raw.append(f"{C.WAREHOUSE_ID} IN ({', '.join(numbers)})" if numbers else "FALSE")
        elif wh_type == "VARCHAR" and warehouse_ids:
            # Every ``id + spaces`` lies in [min id, max id + U+10FFFF] (ids are [A-Za-z0-9_-]).
            lo, hi = _sql_text(min(warehouse_ids)), _sql_text(f"{max(warehouse_ids)}\U0010ffff")
            raw.append(f"({C.WAREHOUSE_ID} LIKE ' %' OR {C.WAREHOUSE_ID} BETWEEN {lo} AND {hi})")
        date_type = self.types[C.TRANSACTION_DATE].upper()
        if date_type == "DATE":
            raw.append(f"{C.TRANSACTION_DATE} BETWEEN {first} AND {last}")
        elif date_type.startswith("TIMESTAMP") and "ZONE" not in date_type and date_type != "TIMESTAMPTZ":
            after = f"TIMESTAMP '{(d1 + dt.timedelta(days=1)).isoformat()}'" if d1 < dt.date.max else None
            raw.append(f"{C.TRANSACTION_DATE} >= TIMESTAMP '{d0.isoformat()}'")
            if after is not None:
                raw.append(f"{C.TRANSACTION_DATE} < {after}")
        elif date_type == "VARCHAR":
            # ISO text starts with its zero-padded day, so it sorts like the day (unless it starts
            # with a space): a lexicographic range holds every line of [start, end].
            raw.append(
                f"({C.TRANSACTION_DATE} LIKE ' %' OR {C.TRANSACTION_DATE} "
                f"BETWEEN '{d0.isoformat()}' AND '{d1.isoformat()}\U0010ffff')"
            )
        return f"""
        SELECT * FROM ({self.typed_sql(" AND ".join(raw) or "TRUE")})
        WHERE {C.WAREHOUSE_ID} IN {_sql_list(warehouse_ids)} AND _date BETWEEN {first} AND {last}
        """


@dataclass(frozen=True)
class SalesSlice:
    """What ingesting one warehouse over a range of days produced.

    Attributes:
        raw_sales: ``RawSalesModel`` rows for every (SKU, day) in the slice.
        quarantine: Rejected lines (``QuarantineModel`` columns).
        lines_per_date: Per warehouse and day with lines: ``lines`` read, ``rejected`` lines and the
            day's ``fingerprint`` (BIGINT hash of all its lines, valid or not, independent of their
            order; equal to :func:`day_fingerprints`' for the same lines).
    """

    raw_sales: pd.DataFrame
    quarantine: pd.DataFrame
    lines_per_date: pd.DataFrame

    @property
    def n_lines(self) -> int:
        """Transaction lines read for the slice."""
        return int(self.lines_per_date[C.LINES].sum())

    @property
    def n_rejected(self) -> int:
        """Transaction lines rejected for the slice."""
        return int(self.lines_per_date[C.REJECTED].sum())


def _transactions(source_dir: str | Path, con: duckdb.DuckDBPyConnection) -> _Transactions:
    """The source's transactions (``con`` from :func:`~demand_platform.source.source_connection`)."""
    table = require_table(source_dir, C.TRANSACTIONS, con)
    types = table.column_types(con)
    check_columns(table.path if table.path is not None else table.label, C.TRANSACTIONS, list(types))
    return _Transactions(table=table, types=types)


def _sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _sql_list(values: list[str]) -> str:
    """A SQL list literal of string values (``(NULL)``, matching nothing, when empty)."""
    if not values:
        return "(NULL)"
    return "(" + ", ".join(_sql_text(v) for v in values) + ")"


def _rejected_reasons(rejected_products: pd.DataFrame | None) -> pd.DataFrame:
    """One row per rejected SKU: ``sku`` (canonical) and its reasons joined."""
    if rejected_products is None or rejected_products.empty:
        return pd.DataFrame({C.SKU: pd.Series(dtype=object), C.REASON: pd.Series(dtype=object)})
    frame = pd.DataFrame(
        {
            C.SKU: canonical_ids(rejected_products[C.SKU]).to_numpy(dtype=object),
            C.REASON: rejected_products[C.REASON].astype(str).to_numpy(dtype=object),
        }
    ).dropna(subset=[C.SKU])
    joined = frame.drop_duplicates().groupby(C.SKU, sort=True)[C.REASON].agg("; ".join)
    return joined.reset_index()


def _lines_frame(frame: pd.DataFrame, with_rejected: bool) -> pd.DataFrame:
    """Per-day line counts with stable dtypes (also when empty)."""
    out = pd.DataFrame(
        {
            C.WAREHOUSE_ID: frame[C.WAREHOUSE_ID].astype(object).to_numpy(),
            C.DATE: pd.to_datetime(frame[C.DATE]).astype("datetime64[ns]").to_numpy(),
            C.LINES: frame[C.LINES].astype("int64").to_numpy(),
        }
    )
    if with_rejected:
        out[C.REJECTED] = frame[C.REJECTED].astype("int64").to_numpy()
    out[C.FINGERPRINT] = frame[C.FINGERPRINT].astype("int64").to_numpy()
    return out


def ingest_sales(
    source_dir: str | Path,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    start: dt.date,
    end: dt.date,
    con: duckdb.DuckDBPyConnection | None = None,
    rejected_products: pd.DataFrame | None = None,
) -> SalesSlice:
    """Validate the transactions of some warehouses over ``[start, end]`` and build ``raw_sales``.

    A Dagster run covers a box of partitions: many days of one warehouse (a backfill) or one day of
    many warehouses (the daily run); both are one call here, one scan of the transactions file.

    Args:
        source_dir: Source directory holding ``transactions.parquet`` or ``.csv``, or database.
        products: The valid ``products`` rows (``sku``, ``launch_date``).
        warehouses: The valid ``warehouses`` rows of the slice (``warehouse_id``,
            ``operational_since``; no zero rows are made before that day, sales still count).
        start: First day of the slice (inclusive).
        end: Last day of the slice (inclusive).
        con: DuckDB connection for the scan (a fresh in-memory one by default).
        rejected_products: The products rows rejected by validation, columns ``sku`` and
            ``reason`` (``source.load_table(src, "products").rejected_keys("sku")``). A line whose
            SKU is not a valid product but is here is quarantined as
            ``sku rejected in products (<reason>)`` instead of ``unknown sku``. None: all such
            lines are ``unknown sku``.

    Returns:
        The slice's raw_sales rows, its quarantined lines and per-day line counts and fingerprints.
    """
    con = source_connection(source_dir, con)
    transactions = _transactions(source_dir, con)
    con.register("_products", products[[C.SKU, C.LAUNCH_DATE]])
    con.register("_wh", warehouses[[C.WAREHOUSE_ID, C.OPERATIONAL_SINCE]])
    con.register("_rejected_products", _rejected_reasons(rejected_products))
    in_slice = warehouses[C.WAREHOUSE_ID].astype(str).tolist()
    con.execute(f"CREATE OR REPLACE TEMP TABLE _slice AS {transactions.slice_sql(in_slice, start, end)}")
    first_seen, first_seen_params = transactions.first_seen_sql(con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        WITH first_seen AS ({first_seen})
        SELECT s.*,
            concat_ws('; ',
                CASE WHEN s.{C.TRANSACTION_ID} IS NULL THEN 'null {C.TRANSACTION_ID}' END,
                CASE WHEN f.first_row < s._row THEN 'duplicate {C.TRANSACTION_ID}' END,
                CASE WHEN s.{C.SKU} IS NULL THEN 'null {C.SKU}' END,
                CASE WHEN s.{C.SKU} IS NOT NULL AND p.{C.SKU} IS NULL
                    THEN coalesce('{C.SKU} rejected in products (' || r.{C.REASON} || ')', 'unknown {C.SKU}')
                END,
                CASE WHEN s._qty_raw IS NULL THEN 'null {C.QUANTITY}' END,
                CASE WHEN s._qty_raw IS NOT NULL AND (s._qty IS NULL OR NOT isfinite(s._qty))
                    THEN 'unparseable {C.QUANTITY}' END,
                CASE WHEN isfinite(s._qty) AND abs(s._qty) > {MAX_LINE_QUANTITY} THEN 'absurd {C.QUANTITY}' END,
                CASE WHEN s._rev_raw IS NOT NULL AND (s._rev IS NULL OR NOT isfinite(s._rev))
                    THEN 'unparseable {C.REVENUE}' END
            ) AS _reason
        FROM _slice s
        LEFT JOIN first_seen f ON f.tid = s.{C.TRANSACTION_ID}
        LEFT JOIN _products p ON p.{C.SKU} = s.{C.SKU}
        LEFT JOIN _rejected_products r ON r.{C.SKU} = s.{C.SKU}
        """,
        first_seen_params,
    )
    rejected = con.execute(
        f"SELECT {C.WAREHOUSE_ID} AS _wh, _date, _reason, {_ORIGINAL_COLUMNS} "
        "FROM _checked WHERE _reason <> '' ORDER BY _row"
    ).df()
    lines_per_date = _lines_frame(
        con.execute(
            f"SELECT {C.WAREHOUSE_ID}, _date AS {C.DATE}, count(*) AS {C.LINES}, "
            f"count(*) FILTER (WHERE _reason <> '') AS {C.REJECTED}, {_FINGERPRINT_SQL} AS {C.FINGERPRINT} "
            "FROM _checked GROUP BY ALL ORDER BY 1, 2"
        ).df(),
        with_rejected=True,
    )
    raw_sales = fetch_frame(
        con.sql(
            f"""
        WITH valid AS (SELECT * FROM _checked WHERE _reason = ''),
        agg AS (
            SELECT {C.WAREHOUSE_ID}, {C.SKU}, _date AS {C.DATE},
                sum(_qty) AS {C.QUANTITY},
                -- Summed as a decimal: a float sum over a parallel GROUP BY adds in a varying order, so
                -- the same source gave revenues differing in the last bits from run to run.
                CAST(coalesce(sum(CAST(_rev AS DECIMAL(38, 10))), 0) AS DOUBLE) AS {C.REVENUE},
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
            params={"d0": start, "d1": end},
        )
    )
    raw_sales[C.WAREHOUSE_ID] = raw_sales[C.WAREHOUSE_ID].astype(object)
    raw_sales[C.N_ORDERS] = raw_sales[C.N_ORDERS].astype("int64")
    for name in ("_products", "_wh", "_rejected_products"):
        con.unregister(name)
    original = rejected.drop(columns=["_wh", "_date", "_reason"])
    quarantine = quarantine_frame(
        C.TRANSACTIONS,
        original,
        rejected["_reason"],
        warehouse_id=rejected["_wh"],
        partition_date=rejected["_date"],
    )
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
    unparseable (infinite dates included) or outside ``[first_day, last_day]`` (the partitioned
    range).
    """
    con = source_connection(source_dir, con)
    transactions = _transactions(source_dir, con)
    con.register("_warehouses", pd.DataFrame({C.WAREHOUSE_ID: pd.Series(warehouse_ids, dtype=object)}))
    database_filter = None
    if transactions.table.database is not None:
        # The lines of every partition, exactly, stay in the database: only the orphans travel.
        in_partitions, exact = database_slice_filter(
            transactions.types, [str(w) for w in warehouse_ids], first_day, last_day
        )
        database_filter = f"NOT coalesce({in_partitions}, FALSE)" if exact else None
    rows = con.execute(
        f"""
        WITH t AS (
            SELECT *, {C.WAREHOUSE_ID} IN (SELECT {C.WAREHOUSE_ID} FROM _warehouses) AS _known
            FROM ({transactions.typed_sql(database_filter=database_filter)})
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


def day_fingerprints(
    source_dir: str | Path,
    warehouse_ids: list[str],
    start: dt.date,
    end: dt.date,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Lines and fingerprint per warehouse and day of ``[start, end]``, in one filtered scan.

    The values equal ``ingest_sales(...).lines_per_date``'s for the same lines: a day whose
    fingerprint or line count changed since it was ingested has new, changed or deleted lines (a
    late upload, a correction). Days without any line are absent.

    Args:
        source_dir: Source directory holding ``transactions.parquet`` or ``.csv``, or database.
        warehouse_ids: Warehouses to cover (canonical ids, the partition keys).
        start: First day (inclusive).
        end: Last day (inclusive).
        con: DuckDB connection for the scan (a fresh in-memory one by default).

    Returns:
        Columns ``warehouse_id`` (str), ``date`` (``datetime64[ns]``), ``lines`` (int64) and
        ``fingerprint`` (int64), sorted by warehouse and day.
    """
    con = source_connection(source_dir, con)
    transactions = _transactions(source_dir, con)
    frame = con.execute(
        f"""
        SELECT {C.WAREHOUSE_ID}, _date AS {C.DATE}, count(*) AS {C.LINES}, {_FINGERPRINT_SQL} AS {C.FINGERPRINT}
        FROM ({transactions.slice_sql([str(w) for w in warehouse_ids], start, end)})
        GROUP BY ALL ORDER BY 1, 2
        """
    ).df()
    return _lines_frame(frame, with_rejected=False)
