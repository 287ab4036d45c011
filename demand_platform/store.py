"""Reading and writing the platform's tables in DuckDB: the SQL lives here (plain SQL, no Dagster).

Assets and the CLI call these functions with a connection from the DuckDB resource or
:func:`demand_platform.dbfile.connect`, so a table's layout is known in one place.
"""

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from demand_platform import accuracy, dbfile
from demand_platform import columns as C
from demand_platform.exceptions import EXCEPTION_DTYPES
from demand_platform.forecasting.donors import POOL_LAG_DAYS, choose_donor_series
from demand_platform.forecasting.overrides import OVERRIDE_APPLIED
from demand_platform.forecasting.overrides import UNADJUSTED_SUFFIX as OVERRIDE_UNADJUSTED_SUFFIX
from demand_platform.frames import fetch_frame
from demand_platform.metrics import BIAS, N_OBS, WMAPE
from demand_platform.reporting import GROUP, REPLENISHMENT_DTYPES, TABLE

#: Forecast columns read as SMALLINT (horizons 1..30, tiers 1..3).
_SMALL_INT_COLUMNS = (C.HORIZON, C.TIER)
_SQL_TYPES = {"datetime64[ns]": "TIMESTAMP", "object": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}
#: Fallback reference origin of the feature drift check (D - this) when the features of the production
#: model's training date are not stored.
FEATURE_DRIFT_REFERENCE_DAYS = 28


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` exists in the database."""
    # fetchall, not fetchone: a result left pending on the connection makes a later register() fail.
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = $t", {"t": table}
    ).fetchall()
    return bool(rows and rows[0][0])


def read_partition(
    con: duckdb.DuckDBPyConnection, table: str, origin: dt.date, warehouse_id: str
) -> pd.DataFrame:
    """The rows of one (origin, warehouse) partition of a table keyed by ``origin_date``.

    Args:
        con: DuckDB connection.
        table: Table keyed by ``origin_date`` and ``warehouse_id`` (e.g. ``tier_assignments``).
        origin: Origin day of the partition.
        warehouse_id: Warehouse of the partition.

    Returns:
        Every column of the partition's rows, as DuckDB's ``.df()`` gives them.

    Raises:
        ValueError: Naming the table and the partition when it has no rows.
        duckdb.CatalogException: When the table does not exist.
    """
    frame = _partition_rows(con, table, origin, warehouse_id)
    if frame.empty:
        raise ValueError(f"{table} has no rows for partition {origin}|{warehouse_id}: materialize it first")
    return frame


def _partition_rows(
    con: duckdb.DuckDBPyConnection, table: str, origin: dt.date, warehouse_id: str
) -> pd.DataFrame:
    """Every row of one (origin, warehouse) partition of a table keyed by ``origin_date`` (maybe none)."""
    return con.execute(
        f"SELECT * FROM {table} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
        {"w": warehouse_id, "d": origin},
    ).df()


def load_history(
    con: duckdb.DuckDBPyConnection,
    warehouse_ids: list[str],
    start: dt.date,
    end: dt.date,
    table: str = C.RAW_SALES,
) -> pd.DataFrame:
    """``raw_sales`` rows of some warehouses over ``[start, end]`` (empty when nothing is stored)."""
    if not table_exists(con, table):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in C.RAW_SALES_COLUMNS})
    # Literal values, not bound parameters: with literals DuckDB prunes row groups by their min/max
    # (bound parameters and list_contains made this 4x slower on 3.8 M rows); warehouse ids match
    # [A-Za-z0-9_-] and the dates are date objects.
    in_list = ", ".join("'" + w.replace("'", "''") + "'" for w in warehouse_ids)
    d0, d1 = pd.Timestamp(start).date().isoformat(), pd.Timestamp(end).date().isoformat()
    # Literals and a relation on a cursor: see frames.fetch_frame.
    with dbfile.cursor(con) as cursor:
        frame = fetch_frame(
            cursor.sql(
                f"""
                SELECT {", ".join(C.RAW_SALES_COLUMNS)} FROM {table}
                WHERE {C.WAREHOUSE_ID} IN ({in_list})
                  AND {C.DATE} >= TIMESTAMP '{d0}' AND {C.DATE} <= TIMESTAMP '{d1}'
                """
            )
        )
    frame[C.DATE] = pd.to_datetime(frame[C.DATE]).astype("datetime64[ns]")
    return frame


def load_pool_history(
    con: duckdb.DuckDBPyConnection,
    warehouse_id: str,
    start: dt.date,
    train_date: dt.date,
    n_series: int,
    table: str = C.RAW_SALES,
) -> pd.DataFrame:
    """``raw_sales`` rows of the ``n_series`` series of other warehouses a warehouse's LightGBM borrows
    (:func:`demand_platform.forecasting.donors.choose_donor_series` among them), from ``start`` to
    ``POOL_LAG_DAYS`` before ``train_date``.

    Only warehouses whose last day of that window is stored take part: one that is behind is left out rather
    than read with a hole. Empty when ``n_series`` is 0.
    """
    if n_series <= 0 or not table_exists(con, table):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in C.RAW_SALES_COLUMNS})
    own = "'" + warehouse_id.replace("'", "''") + "'"
    end = pd.Timestamp(train_date) - pd.Timedelta(days=POOL_LAG_DAYS)
    d0, d1 = pd.Timestamp(start).date().isoformat(), end.date().isoformat()
    window = f"{C.DATE} >= TIMESTAMP '{d0}' AND {C.DATE} <= TIMESTAMP '{d1}'"
    with dbfile.cursor(con) as cursor:
        candidates = fetch_frame(
            cursor.sql(
                f"""
                SELECT DISTINCT {C.SKU}, {C.WAREHOUSE_ID} FROM {table}
                WHERE {window} AND {C.WAREHOUSE_ID} <> {own}
                  AND {C.WAREHOUSE_ID} IN (
                      SELECT DISTINCT {C.WAREHOUSE_ID} FROM {table} WHERE {C.DATE} = TIMESTAMP '{d1}'
                  )
                """
            )
        )
        chosen = choose_donor_series(candidates, n_series, warehouse_id)
        cursor.register("_pool_series", chosen)
        try:
            frame = fetch_frame(
                cursor.sql(
                    f"""
                    SELECT {", ".join("r." + c for c in C.RAW_SALES_COLUMNS)} FROM {table} AS r
                    SEMI JOIN _pool_series AS k ON r.{C.SKU} = k.{C.SKU} AND r.{C.WAREHOUSE_ID} = k.{C.WAREHOUSE_ID}
                    WHERE r.{C.DATE} >= TIMESTAMP '{d0}' AND r.{C.DATE} <= TIMESTAMP '{d1}'
                    """
                )
            )
        finally:
            cursor.unregister("_pool_series")
    frame[C.DATE] = pd.to_datetime(frame[C.DATE]).astype("datetime64[ns]")
    return frame


def _with_ns_days(frame: pd.DataFrame) -> pd.DataFrame:
    """The origin and target days of a forecast frame as ``datetime64[ns]`` (Arrow gives microseconds)."""
    for column in (C.ORIGIN_DATE, C.TARGET_DATE):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def read_forecasts(con: duckdb.DuckDBPyConnection, origin: dt.date, table: str = C.FORECASTS) -> pd.DataFrame:
    """Every warehouse's forecasts of one origin, every column (empty when none are stored).

    Text columns are ``object`` arrays sharing one string per distinct value (:func:`fetch_frame`): a day
    of 500,000 series is 15 M rows, ~5 GB of Python strings through DuckDB's ``.df()``.
    """
    if not table_exists(con, table):
        return pd.DataFrame()
    with dbfile.cursor(con) as cursor:
        return _with_ns_days(
            fetch_frame(
                cursor.sql(
                    f"SELECT * FROM {table} WHERE {_day_literal(C.ORIGIN_DATE, origin)} "
                    f"ORDER BY {C.WAREHOUSE_ID}, {C.SKU}, {C.HORIZON}"
                )
            )
        )


def _day_literal(column: str, day: dt.date) -> str:
    """``column`` (a TIMESTAMP) within ``day``, as literals.

    ``CAST(column AS DATE) = $d`` read a day of 500,000 series' forecasts (15 M of 30 M rows) in 115 s;
    this range of literals in 0.4 s (DuckDB prunes row groups by their min/max and pushes the filter down).
    """
    start = pd.Timestamp(day).date()
    end = start + dt.timedelta(days=1)
    return f"{column} >= TIMESTAMP '{start.isoformat()}' AND {column} < TIMESTAMP '{end.isoformat()}'"


def warehouse_units(
    con: duckdb.DuckDBPyConnection, origin: dt.date, days: int, table: str = C.RAW_SALES
) -> pd.DataFrame:
    """Each SKU x warehouse's units over the ``days`` days up to ``origin``, summed in DuckDB.

    The SQL of :func:`demand_platform.forecasting.pooling.warehouse_shares` (negatives as 0, series without
    units left out), for all warehouses at once without loading a year of sales.

    Returns:
        Frame ``sku``, ``warehouse_id``, ``units`` (empty when nothing is stored).
    """
    if not table_exists(con, table):
        return pd.DataFrame({C.SKU: [], C.WAREHOUSE_ID: [], "units": []})
    end = pd.Timestamp(origin)
    return con.execute(
        f"""
        SELECT {C.SKU}, {C.WAREHOUSE_ID}, CAST(SUM(GREATEST({C.QUANTITY}, 0)) AS DOUBLE) AS units
        FROM {table}
        WHERE {C.DATE} > CAST($d0 AS TIMESTAMP) AND {C.DATE} <= CAST($d1 AS TIMESTAMP)
        GROUP BY ALL HAVING SUM(GREATEST({C.QUANTITY}, 0)) > 0
        ORDER BY {C.SKU}, {C.WAREHOUSE_ID}
        """,
        {"d0": end - pd.Timedelta(days=days), "d1": end},
    ).df()


def read_matured_forecasts(
    con: duckdb.DuckDBPyConnection, origin: dt.date, through: dt.date, table: str = C.FORECASTS
) -> pd.DataFrame:
    """The model's forecasts of ``origin`` (every warehouse) whose target day is on or before ``through``, with
    the units sold that day.

    Returns:
        ``sku``, ``warehouse_id``, ``origin_date``, ``target_date``, ``horizon``, ``forecast`` (the model's:
        before the planners' overrides) and ``actual`` (0 when ``raw_sales`` has no row for the day); empty
        when the table or the origin has no rows.
    """
    if not table_exists(con, table) or not table_exists(con, C.RAW_SALES):
        return pd.DataFrame()
    unadjusted = C.FORECAST + OVERRIDE_UNADJUSTED_SUFFIX
    point = f"f.{unadjusted}" if unadjusted in _columns_of(con, table) else f"f.{C.FORECAST}"
    with dbfile.cursor(con) as cursor:
        return _with_ns_days(
            fetch_frame(
                cursor.sql(
                    f"""
                SELECT f.{C.SKU}, f.{C.WAREHOUSE_ID}, f.{C.ORIGIN_DATE}, f.{C.TARGET_DATE}, f.{C.HORIZON},
                       {point} AS {C.FORECAST}, CAST(COALESCE(s.{C.QUANTITY}, 0) AS DOUBLE) AS actual
                FROM {table} f LEFT JOIN {C.RAW_SALES} s
                  ON s.{C.SKU} = f.{C.SKU} AND s.{C.WAREHOUSE_ID} = f.{C.WAREHOUSE_ID}
                 AND s.{C.DATE} = f.{C.TARGET_DATE}
                WHERE {_day_literal(f"f.{C.ORIGIN_DATE}", origin)}
                  AND f.{C.TARGET_DATE} < TIMESTAMP '{(pd.Timestamp(through).date() + dt.timedelta(days=1)).isoformat()}'
                ORDER BY f.{C.WAREHOUSE_ID}, f.{C.SKU}, f.{C.HORIZON}
                """
                )
            )
        )


def read_forecast_window(
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
    if not table_exists(con, C.FORECASTS):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    # Arrow with the strings as categoricals and small integers: 60 origins x 30 horizons x 10,000 SKUs
    # are 18 M rows, ~1 GB this way against ~5 GB with DuckDB's .df() (one Python string per value).
    selected = [f"CAST({c} AS SMALLINT) AS {c}" if c in _SMALL_INT_COLUMNS else c for c in columns]
    # sql(), not execute(): DuckDB 2 copies the rows once more for Arrow output of a DB-API result. On a
    # cursor, because a relation refuses a connection with an unconsumed execute() result.
    with dbfile.cursor(con) as cursor:
        table = cursor.sql(
            f"""
            SELECT {", ".join(selected)} FROM {C.FORECASTS}
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
    if not table_exists(con, C.FEATURE_TABLE):
        return None
    frame = _partition_rows(con, C.FEATURE_TABLE, origin, warehouse_id)
    return None if frame.empty else frame


def promoted_training_day(con: duckdb.DuckDBPyConnection, warehouse_id: str, day: dt.date) -> dt.date | None:
    """Training date of the warehouse's latest promoted model trained on or before ``day``."""
    if not table_exists(con, C.TRAINED_MODELS):
        return None
    row = con.execute(
        f"SELECT max(CAST({C.ORIGIN_DATE} AS DATE)) FROM {C.TRAINED_MODELS} "
        f"WHERE {C.WAREHOUSE_ID} = $w AND promoted AND CAST({C.ORIGIN_DATE} AS DATE) <= $d",
        {"w": warehouse_id, "d": day},
    ).fetchone()
    return None if row is None or row[0] is None else row[0]


def drift_reference(con: duckdb.DuckDBPyConnection, warehouse_id: str, day: dt.date) -> pd.DataFrame | None:
    """Features the drift check compares against: those of the production model's training date
    (the training window's end), else those of ``day - FEATURE_DRIFT_REFERENCE_DAYS``."""
    trained = promoted_training_day(con, warehouse_id, day)
    reference = read_features(con, warehouse_id, trained) if trained is not None and trained < day else None
    if reference is None:
        reference = read_features(con, warehouse_id, day - dt.timedelta(days=FEATURE_DRIFT_REFERENCE_DAYS))
    return reference


def replace_day_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    dtypes: dict[str, str],
    day: dt.date,
    warehouse_id: str,
) -> None:
    """Replace the ``(day, warehouse)`` rows of a side table keyed by ``origin_date`` (created when missing).

    One transaction (:func:`demand_platform.dbfile.write_transaction`, retried on a lake's write conflict).

    Args:
        con: DuckDB connection (a writer).
        table: The table.
        frame: Its rows, with the columns of ``dtypes``.
        dtypes: Column -> pandas dtype of the table (its DDL).
        day: Report day (``origin_date`` of the rows).
        warehouse_id: Warehouse.
    """
    ddl = ", ".join(f'"{name}" {_SQL_TYPES[dtype]}' for name, dtype in dtypes.items())
    con.register("_day_rows", frame[list(dtypes)])

    def replace(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl})")
        con.execute(
            f"DELETE FROM {table} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
            {"w": warehouse_id, "d": day},
        )
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _day_rows")

    try:
        dbfile.write_transaction(con, replace)
    finally:
        con.unregister("_day_rows")


def write_recommendations(
    con: duckdb.DuckDBPyConnection, recommendations: pd.DataFrame, day: dt.date, warehouse_id: str
) -> None:
    """Replace the ``(day, warehouse)`` rows of :data:`C.REPLENISHMENT_POLICY` (rows of
    :data:`demand_platform.reporting.REPLENISHMENT_DTYPES`; see :func:`replace_day_rows`)."""
    replace_day_rows(con, C.REPLENISHMENT_POLICY, recommendations, REPLENISHMENT_DTYPES, day, warehouse_id)


def write_exceptions(
    con: duckdb.DuckDBPyConnection, exceptions: pd.DataFrame, day: dt.date, warehouse_id: str
) -> None:
    """Replace the ``(day, warehouse)`` rows of :data:`C.EXCEPTIONS` (rows of
    :data:`demand_platform.exceptions.EXCEPTION_DTYPES`; see :func:`replace_day_rows`)."""
    replace_day_rows(con, C.EXCEPTIONS, exceptions, EXCEPTION_DTYPES, day, warehouse_id)


def read_exceptions(
    con: duckdb.DuckDBPyConnection, day: dt.date, warehouse_id: str | None = None
) -> pd.DataFrame:
    """The exceptions of one report day (one warehouse, or all), by warehouse and rank.

    Args:
        con: DuckDB connection.
        day: Report day.
        warehouse_id: Warehouse; every warehouse when None.

    Returns:
        :data:`demand_platform.exceptions.EXCEPTION_COLUMNS`; empty (typed) when the table does not exist.
    """
    if not table_exists(con, C.EXCEPTIONS):
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in EXCEPTION_DTYPES.items()})
    where = f"CAST({C.ORIGIN_DATE} AS DATE) = $d" + (f" AND {C.WAREHOUSE_ID} = $w" if warehouse_id else "")
    params: dict[str, object] = {"d": day, **({"w": warehouse_id} if warehouse_id else {})}
    columns = ", ".join(f'"{c}"' for c in EXCEPTION_DTYPES)
    frame = con.execute(
        f'SELECT {columns} FROM {C.EXCEPTIONS} WHERE {where} ORDER BY {C.WAREHOUSE_ID}, "rank"', params
    ).df()
    return frame.astype(EXCEPTION_DTYPES)


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t ORDER BY ordinal_position",
        {"t": table},
    ).fetchall()
    return [r[0] for r in rows]


def latest_forecast_origin(con: duckdb.DuckDBPyConnection, warehouse_id: str) -> dt.date | None:
    """The latest origin with forecasts in a warehouse (None when it has none or there is no table)."""
    if not table_exists(con, C.FORECASTS):
        return None
    row = con.execute(
        f"SELECT max(CAST({C.ORIGIN_DATE} AS DATE)) FROM {C.FORECASTS} WHERE {C.WAREHOUSE_ID} = ?",
        [warehouse_id],
    ).fetchone()
    return None if row is None or row[0] is None else row[0]


def past_forecast_origin(
    con: duckdb.DuckDBPyConnection, day: dt.date, lag: int, min_lag: int, max_lag: int
) -> dt.date | None:
    """The stored forecast origin to score at ``day``: the latest at least ``lag`` days before it, else the latest
    at least ``min_lag`` days before it; none older than ``max_lag`` days (None when there is none).
    """
    if not table_exists(con, C.FORECASTS):
        return None
    first = day - dt.timedelta(days=max_lag)
    after_last = day - dt.timedelta(days=min_lag - 1)
    full = day - dt.timedelta(days=lag)
    # Literal bounds: the filter prunes row groups (the table holds every origin's forecasts).
    rows = con.execute(
        f"""
        SELECT DISTINCT CAST({C.ORIGIN_DATE} AS DATE) AS origin FROM {C.FORECASTS}
        WHERE {C.ORIGIN_DATE} >= TIMESTAMP '{first.isoformat()}'
          AND {C.ORIGIN_DATE} < TIMESTAMP '{after_last.isoformat()}'
        """
    ).fetchall()
    origins = sorted((row[0] for row in rows), key=lambda o: (o <= full, o))
    return origins[-1] if origins else None


def read_sku_forecasts(
    con: duckdb.DuckDBPyConnection, sku: str, warehouse_id: str, origin: dt.date
) -> pd.DataFrame:
    """Every column of one SKU x warehouse's forecast rows of one origin, by horizon.

    Args:
        con: DuckDB connection.
        sku: SKU.
        warehouse_id: Warehouse.
        origin: Origin day.

    Returns:
        The rows (empty when there are none or the table does not exist); dates as ``datetime64[ns]``.
    """
    if not table_exists(con, C.FORECASTS):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in C.FORECAST_COLUMNS})
    frame = con.execute(
        f"SELECT * FROM {C.FORECASTS} WHERE {C.SKU} = $s AND {C.WAREHOUSE_ID} = $w "
        f"AND CAST({C.ORIGIN_DATE} AS DATE) = $d ORDER BY {C.HORIZON}",
        {"s": sku, "w": warehouse_id, "d": origin},
    ).df()
    for column in (C.ORIGIN_DATE, C.TARGET_DATE):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def read_overridden_forecasts(
    con: duckdb.DuckDBPyConnection, warehouse_id: str, origin: dt.date
) -> pd.DataFrame | None:
    """The forecast rows of one warehouse and origin that a planner override changed (every column).

    Args:
        con: DuckDB connection.
        warehouse_id: Warehouse.
        origin: Origin day.

    Returns:
        The overridden rows (few: only where an override applied); None when the forecasts table does not
        exist or has no override columns.
    """
    if not table_exists(con, C.FORECASTS) or OVERRIDE_APPLIED not in _columns_of(con, C.FORECASTS):
        return None
    frame = con.execute(
        f"SELECT * FROM {C.FORECASTS} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d "
        f"AND {OVERRIDE_APPLIED} ORDER BY {C.SKU}, {C.HORIZON}",
        {"w": warehouse_id, "d": origin},
    ).df()
    for column in (C.ORIGIN_DATE, C.TARGET_DATE):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def read_sku_history(
    con: duckdb.DuckDBPyConnection, sku: str, warehouse_id: str, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """``raw_sales`` rows of one SKU x warehouse over ``[start, end]`` (empty when nothing is stored).

    Args:
        con: DuckDB connection.
        sku: SKU.
        warehouse_id: Warehouse.
        start: First day.
        end: Last day.

    Returns:
        :data:`demand_platform.columns.RAW_SALES_COLUMNS`, by date.
    """
    if not table_exists(con, C.RAW_SALES):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in C.RAW_SALES_COLUMNS})
    frame = con.execute(
        f"SELECT {', '.join(C.RAW_SALES_COLUMNS)} FROM {C.RAW_SALES} WHERE {C.SKU} = $s "
        f"AND {C.WAREHOUSE_ID} = $w AND CAST({C.DATE} AS DATE) BETWEEN $d0 AND $d1 ORDER BY {C.DATE}",
        {"s": sku, "w": warehouse_id, "d0": start, "d1": end},
    ).df()
    frame[C.DATE] = pd.to_datetime(frame[C.DATE]).astype("datetime64[ns]")
    return frame


def clear_partition(con: duckdb.DuckDBPyConnection, table: str, day: dt.date, warehouse_id: str) -> None:
    """Delete the ``(day, warehouse)`` rows of a table keyed by ``origin_date`` (no-op when it is missing).

    The DuckDB IO manager skips an empty output altogether, without deleting the partition's earlier rows;
    a report that becomes empty on re-materialization clears them with this.
    """
    if table_exists(con, table):
        dbfile.write_transaction(
            con,
            lambda con: con.execute(
                f"DELETE FROM {table} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
                {"w": warehouse_id, "d": day},
            ),
        )


#: Columns of :func:`accuracy_summary`, in this order.
ACCURACY_SUMMARY_COLUMNS = (
    C.WAREHOUSE_ID,
    TABLE,
    GROUP,
    WMAPE,
    BIAS,
    accuracy.COVERAGE_P90,
    accuracy.COVERAGE_P95,
    N_OBS,
)
#: Accuracy tables :func:`accuracy_summary` keeps.
ACCURACY_SUMMARY_TABLES = (accuracy.OVERALL, accuracy.BY_TIER)
#: Row count column of :func:`quarantine_summary`.
QUARANTINE_ROWS = "rows"


def accuracy_summary(con: duckdb.DuckDBPyConnection, day: dt.date) -> pd.DataFrame:
    """The overall and per-tier rows of every warehouse's accuracy report of one day.

    Args:
        con: DuckDB connection.
        day: Report day (``origin_date`` of the rows).

    Returns:
        :data:`ACCURACY_SUMMARY_COLUMNS`, sorted by warehouse, table and group; an empty frame without
        columns when ``accuracy_report`` does not exist yet.
    """
    if not table_exists(con, C.ACCURACY_REPORT):
        return pd.DataFrame()
    selected = ", ".join(f'"{c}"' for c in ACCURACY_SUMMARY_COLUMNS)
    kept = ", ".join(f"'{t}'" for t in ACCURACY_SUMMARY_TABLES)
    return con.execute(
        f"SELECT {selected} FROM {C.ACCURACY_REPORT} "
        f'WHERE CAST({C.ORIGIN_DATE} AS DATE) = $d AND "{TABLE}" IN ({kept}) ORDER BY 1, 2, 3',
        {"d": day},
    ).df()


def table_row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every table (and view) in the database, by name in sorted order.

    Args:
        con: DuckDB connection.

    Returns:
        ``{table name: rows}``; empty for an empty database.
    """
    names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    return {n: int((con.execute(f'SELECT count(*) FROM "{n}"').fetchone() or (0,))[0]) for n in sorted(names)}


def quarantine_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Quarantined rows per source table and reason, the most frequent first.

    Args:
        con: DuckDB connection.

    Returns:
        ``source_table``, ``reason`` and :data:`QUARANTINE_ROWS` (ties ordered by source table and
        reason); an empty frame without columns when the quarantine table does not exist yet.
    """
    if not table_exists(con, C.QUARANTINE):
        return pd.DataFrame()
    return con.execute(
        f"SELECT {C.SOURCE_TABLE}, {C.REASON}, count(*) AS {QUARANTINE_ROWS} FROM {C.QUARANTINE} "
        f"GROUP BY ALL ORDER BY {QUARANTINE_ROWS} DESC, {C.SOURCE_TABLE}, {C.REASON}"
    ).df()
