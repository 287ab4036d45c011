"""The ``quarantine`` table: rejected source rows, kept with their reason and original row.

Each writer owns a scope of the table (``detected_by`` plus, for partitioned writers, the
warehouses and days it covers) and replaces exactly that scope, so re-running a partition never
duplicates or loses quarantine rows.
"""

import datetime as dt

import duckdb
import pandas as pd

from demand_platform import columns as C
from demand_platform import dbfile
from demand_platform.schemas import QuarantineModel

_DDL = f"""
CREATE TABLE IF NOT EXISTS {C.QUARANTINE} (
    {C.SOURCE_TABLE} VARCHAR NOT NULL,
    {C.WAREHOUSE_ID} VARCHAR,
    {C.PARTITION_DATE} TIMESTAMP,
    {C.REASON} VARCHAR NOT NULL,
    {C.ORIGINAL_ROW} VARCHAR NOT NULL,
    {C.DETECTED_BY} VARCHAR NOT NULL
)
"""


def replace_quarantine(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    detected_by: str,
    warehouse_ids: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> int:
    """Replace the quarantine rows of one writer's scope with ``rows``.

    Args:
        con: Connection to the platform database.
        rows: Quarantine rows (``QuarantineModel`` columns except ``detected_by``).
        detected_by: The writer (asset name) owning the scope.
        warehouse_ids: Restrict the scope to these warehouses (partitioned writers).
        start: First partition day of the scope (inclusive).
        end: Last partition day of the scope (inclusive).

    Returns:
        The number of rows written.
    """
    frame = rows.assign(**{C.DETECTED_BY: detected_by})[list(C.QUARANTINE_COLUMNS)]
    QuarantineModel.validate(frame)
    where = [f"{C.DETECTED_BY} = $by"]
    params: dict[str, object] = {"by": detected_by}
    if warehouse_ids is not None:
        where.append(f"list_contains($w, {C.WAREHOUSE_ID})")
        params["w"] = list(warehouse_ids)
    if start is not None and end is not None:
        where.append(f"CAST({C.PARTITION_DATE} AS DATE) BETWEEN $d0 AND $d1")
        params.update(d0=start, d1=end)

    def replace(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(_DDL)
        con.execute(f"DELETE FROM {C.QUARANTINE} WHERE {' AND '.join(where)}", params)
        if len(frame):
            con.register("_q", frame)
            con.execute(f"INSERT INTO {C.QUARANTINE} SELECT * FROM _q")
            con.unregister("_q")

    dbfile.write_transaction(con, replace)
    return len(frame)


def read_quarantine(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """All quarantine rows (empty frame with the right columns when none were written yet)."""
    con.execute(_DDL)
    return con.execute(f"SELECT * FROM {C.QUARANTINE}").df()
