"""What each ``raw_sales`` partition was built from, to find the days the catch-up must build again.

Every ``raw_sales`` row carries the number of source transaction lines of its (warehouse, day) and their
fingerprint (an order-independent hash of the lines, see
:func:`demand_platform.ingestion.day_fingerprints`): written in the same transaction as the rows, they
always describe the data actually stored. Every ``raw_sales`` run also records, per (warehouse, day), the
lines, fingerprint and number of rows it built in the ``ingest_log`` table. The catch-up re-ingests a
day when:

* it is **not materialized** (Dagster's record);
* **the database's own content** disagrees with the log: ``raw_sales`` rows per (warehouse, day) differ
  from the rows the log says were built (rows lost to a crash or damaged by hand; a partition
  materialized by an older version, without a log row, is a hole only when it has no rows at all);
* **the source as it is now** differs from what the stored rows were built from: lines that arrived
  after the day was ingested (a warehouse's late upload), corrected or deleted lines change the day's
  count or fingerprint.

Plain functions on DuckDB connections and DataFrames (no Dagster).
"""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform import dbfile
from demand_platform.store import table_exists

INGEST_LOG = "ingest_log"
LINES = C.LINES
FINGERPRINT = C.FINGERPRINT
RAW_ROWS = "raw_rows"
RUN_ID = "run_id"
INGESTED_AT = "ingested_at"
#: Columns of ``raw_sales``: the source lines and fingerprint its (warehouse, day) was built from.
SOURCE_LINES = "source_lines"
SOURCE_FINGERPRINT = "source_fingerprint"
LOG_COLUMNS = (C.WAREHOUSE_ID, C.DATE, LINES, FINGERPRINT, RAW_ROWS, RUN_ID, INGESTED_AT)

#: Why a day is ingested again (the catch-up's summary and run tags say it).
REASON_MISSING = "not materialized"
REASON_HOLE = "rows in DuckDB differ from the ingest log"
REASON_CHANGED = "source lines changed since ingestion"
#: Stored by a version that did not record what the rows were built from: ingested once more to record
#: it, without rebuilding what was built on it (an upgrade must not redo a month of forecasts).
REASON_UNRECORDED = "ingested before lines were recorded"
STORED = ("stored_lines", "stored_fingerprint")

_DDL = f"""
CREATE TABLE IF NOT EXISTS {INGEST_LOG} (
    {C.WAREHOUSE_ID} VARCHAR NOT NULL,
    {C.DATE} DATE NOT NULL,
    {LINES} BIGINT NOT NULL,
    {FINGERPRINT} BIGINT NOT NULL,
    {RAW_ROWS} BIGINT NOT NULL,
    {RUN_ID} VARCHAR,
    {INGESTED_AT} TIMESTAMP NOT NULL
)
"""


def _grid_positions(
    warehouse: pd.Series, day: pd.Series, warehouse_ids: list[str], start: dt.date, n_days: int
) -> np.ndarray:
    """Position of each row's (warehouse, day) in the grid ``warehouse_ids x [start, start + n_days)``.

    Warehouse-major, like ``MultiIndex.from_product([warehouse_ids, days])``; -1 outside the grid. One
    hash lookup per row and integer arithmetic, for the millions of rows of a backfill run.
    """
    codes = pd.Categorical(warehouse, categories=list(warehouse_ids)).codes.astype(np.int64)
    days = day.to_numpy() if pd.api.types.is_datetime64_dtype(day.dtype) else pd.to_datetime(day).to_numpy()
    offsets = days.astype("datetime64[D]").astype(np.int64) - _day_number(start)
    inside = (codes >= 0) & (offsets >= 0) & (offsets < n_days)
    return np.where(inside, codes * n_days + offsets, -1)


def _day_number(day: dt.date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


def log_entries(
    lines_per_date: pd.DataFrame,
    raw_sales: pd.DataFrame,
    warehouse_ids: list[str],
    start: dt.date,
    end: dt.date,
    run_id: str | None = None,
) -> pd.DataFrame:
    """The log rows of one ingestion box: every (warehouse, day) of it, zeros for days without lines.

    Args:
        lines_per_date: Per (warehouse_id, date): ``lines`` and ``fingerprint`` of the source lines read.
        raw_sales: The ``raw_sales`` rows built for the box.
        warehouse_ids: The warehouses of the box.
        start: First day of the box.
        end: Last day of the box.
        run_id: The run that ingested them.

    Returns:
        One row per (warehouse, day) with ``LOG_COLUMNS``.
    """
    index = pd.MultiIndex.from_product(
        [list(warehouse_ids), pd.date_range(start, end, freq="D")], names=[C.WAREHOUSE_ID, C.DATE]
    )
    src = lines_per_date.assign(**{C.DATE: pd.to_datetime(lines_per_date[C.DATE])})
    src = src.set_index([C.WAREHOUSE_ID, C.DATE])[[LINES, FINGERPRINT]].reindex(index, fill_value=0)
    n_days = (end - start).days + 1
    positions = _grid_positions(raw_sales[C.WAREHOUSE_ID], raw_sales[C.DATE], warehouse_ids, start, n_days)
    rows = np.bincount(positions[positions >= 0], minlength=len(index))
    out = src.assign(**{RAW_ROWS: rows}).reset_index()
    out[C.WAREHOUSE_ID] = out[C.WAREHOUSE_ID].astype(str)
    out[C.DATE] = out[C.DATE].dt.date
    out[RUN_ID] = run_id
    out[INGESTED_AT] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return out[list(LOG_COLUMNS)].astype({LINES: "int64", FINGERPRINT: "int64", RAW_ROWS: "int64"})


def stamp_source(raw_sales: pd.DataFrame, lines_per_date: pd.DataFrame) -> pd.DataFrame:
    """``raw_sales`` with the source lines and fingerprint of each row's (warehouse, day).

    Stored with the rows (one transaction), they always describe what the stored rows were built from.
    A row whose (warehouse, day) had no line gets 0 and 0.
    """
    lines = np.zeros(len(raw_sales), dtype=np.int64)
    fingerprints = np.zeros(len(raw_sales), dtype=np.int64)
    if len(lines_per_date) and len(raw_sales):
        warehouse_ids = sorted(set(lines_per_date[C.WAREHOUSE_ID].astype(str)))
        days = pd.to_datetime(lines_per_date[C.DATE])
        start = days.min().date()
        n_days = (days.max().date() - start).days + 1
        grid = _grid_positions(lines_per_date[C.WAREHOUSE_ID].astype(str), days, warehouse_ids, start, n_days)
        grid_lines = np.zeros(len(warehouse_ids) * n_days, dtype=np.int64)
        grid_fingerprints = np.zeros_like(grid_lines)
        grid_lines[grid] = lines_per_date[LINES].to_numpy(dtype=np.int64)
        grid_fingerprints[grid] = lines_per_date[FINGERPRINT].to_numpy(dtype=np.int64)
        positions = _grid_positions(
            raw_sales[C.WAREHOUSE_ID], raw_sales[C.DATE], warehouse_ids, start, n_days
        )
        found = positions >= 0
        lines[found] = grid_lines[positions[found]]
        fingerprints[found] = grid_fingerprints[positions[found]]
    # A shallow copy shares the rows' columns (``assign`` copied all of them: 1.2 s for a warehouse's two
    # years); the caller's frame does not get the new columns.
    out = raw_sales.copy(deep=False)
    out[SOURCE_LINES] = lines
    out[SOURCE_FINGERPRINT] = fingerprints
    return out


def replace_log(
    con: duckdb.DuckDBPyConnection,
    entries: pd.DataFrame,
    warehouse_ids: list[str],
    start: dt.date,
    end: dt.date,
) -> None:
    """Replace the log rows of a box of (warehouse, day) in one transaction."""

    def replace(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(_DDL)
        con.execute(
            f"DELETE FROM {INGEST_LOG} WHERE list_contains($w, {C.WAREHOUSE_ID}) AND {C.DATE} BETWEEN $d0 AND $d1",
            {"w": list(warehouse_ids), "d0": start, "d1": end},
        )
        if len(entries):
            con.register("_log", entries[list(LOG_COLUMNS)])
            con.execute(f"INSERT INTO {INGEST_LOG} BY NAME SELECT * FROM _log")
            con.unregister("_log")

    dbfile.write_transaction(con, replace)


def read_state(
    con: duckdb.DuckDBPyConnection, warehouse_ids: list[str], start: dt.date, end: dt.date
) -> pd.DataFrame:
    """Per (warehouse, day) of ``[start, end]``: the log's record and the rows ``raw_sales`` holds now.

    Returns:
        Columns ``warehouse_id``, ``date`` (datetime64), ``lines``, ``fingerprint``, ``raw_rows`` (the
        log's; NaN where there is no log row), ``stored_rows`` (0 where ``raw_sales`` has none) and
        ``stored_lines``, ``stored_fingerprint`` (what the stored rows were built from; NaN for rows
        written by a version that did not record it).
    """
    columns = [C.WAREHOUSE_ID, C.DATE, LINES, FINGERPRINT, RAW_ROWS, "stored_rows", *STORED]
    params = {"w": list(warehouse_ids), "d0": start, "d1": end}
    log = (
        con.execute(
            f"SELECT {C.WAREHOUSE_ID}, CAST({C.DATE} AS TIMESTAMP) AS {C.DATE}, {LINES}, {FINGERPRINT}, "
            f"{RAW_ROWS} FROM {INGEST_LOG} "
            f"WHERE list_contains($w, {C.WAREHOUSE_ID}) AND {C.DATE} BETWEEN $d0 AND $d1",
            params,
        ).df()
        if table_exists(con, INGEST_LOG)
        else pd.DataFrame(columns=[C.WAREHOUSE_ID, C.DATE, LINES, FINGERPRINT, RAW_ROWS])
    )
    recorded = table_exists(con, "raw_sales") and {SOURCE_LINES, SOURCE_FINGERPRINT} <= {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_sales'"
        ).fetchall()
    }
    source_of = (
        f"max({SOURCE_LINES}) AS stored_lines, max({SOURCE_FINGERPRINT}) AS stored_fingerprint"
        if recorded
        else "NULL::BIGINT AS stored_lines, NULL::BIGINT AS stored_fingerprint"
    )
    stored = (
        con.execute(
            f"SELECT {C.WAREHOUSE_ID}, CAST(CAST({C.DATE} AS DATE) AS TIMESTAMP) AS {C.DATE}, "
            f"count(*) AS stored_rows, {source_of} FROM raw_sales "
            f"WHERE list_contains($w, {C.WAREHOUSE_ID}) "
            f"AND {C.DATE} >= CAST($d0 AS TIMESTAMP) AND {C.DATE} < CAST($d1 AS TIMESTAMP) + INTERVAL 1 DAY "
            f"GROUP BY ALL",
            params,
        ).df()
        if table_exists(con, "raw_sales")
        else pd.DataFrame(columns=[C.WAREHOUSE_ID, C.DATE, "stored_rows", *STORED])
    )
    for frame in (log, stored):
        frame[C.DATE] = pd.to_datetime(frame[C.DATE]).astype("datetime64[ns]")
        frame[C.WAREHOUSE_ID] = frame[C.WAREHOUSE_ID].astype(object)
    merged = log.merge(stored, on=[C.WAREHOUSE_ID, C.DATE], how="outer")
    merged["stored_rows"] = merged["stored_rows"].fillna(0).astype("int64")
    return merged[columns]


def days_to_reingest(
    materialized: set[tuple[str, dt.date]],
    state: pd.DataFrame,
    source_now: pd.DataFrame | None,
    warehouse_ids: list[str],
    start: dt.date,
    end: dt.date,
    changed_since: dt.date | None = None,
) -> pd.DataFrame:
    """The (warehouse, day) of ``[start, end]`` whose ``raw_sales`` must be built (again), with why.

    Args:
        materialized: (warehouse, day) pairs Dagster records as materialized.
        state: :func:`read_state` over the same range.
        source_now: Per (warehouse_id, date): ``lines`` and ``fingerprint`` of the source as it is now
            (:func:`demand_platform.ingestion.day_fingerprints`; days without lines absent), or None to
            skip the late-data comparison.
        warehouse_ids: The warehouses to consider.
        start: First day to consider.
        end: Last day to consider.
        changed_since: Compare fingerprints only from this day on (the late-data window); None: all.

    Returns:
        Columns ``warehouse_id``, ``date`` (datetime.date), ``reason``, sorted; empty when all is well.
    """
    days = pd.date_range(start, end, freq="D")
    grid = pd.MultiIndex.from_product([list(warehouse_ids), days], names=[C.WAREHOUSE_ID, C.DATE])
    frame = pd.DataFrame(index=grid).reset_index()
    frame = frame.merge(state, on=[C.WAREHOUSE_ID, C.DATE], how="left")
    frame["stored_rows"] = frame["stored_rows"].fillna(0)
    done = pd.Series(
        [(w, d.date()) in materialized for w, d in zip(frame[C.WAREHOUSE_ID], frame[C.DATE], strict=True)],
        index=frame.index,
    )
    logged = frame[RAW_ROWS].notna()
    hole = done & (
        (logged & (frame[RAW_ROWS] != frame["stored_rows"])) | (~logged & (frame["stored_rows"] == 0))
    )
    changed = pd.Series(False, index=frame.index)
    unrecorded = pd.Series(False, index=frame.index)
    if source_now is not None:
        now = source_now[[C.WAREHOUSE_ID, C.DATE, LINES, FINGERPRINT]].rename(
            columns={LINES: "lines_now", FINGERPRINT: "fingerprint_now"}
        )
        now = now.assign(**{C.DATE: pd.to_datetime(now[C.DATE]).astype("datetime64[ns]")})
        frame = frame.merge(now, on=[C.WAREHOUSE_ID, C.DATE], how="left")
        frame[["lines_now", "fingerprint_now"]] = frame[["lines_now", "fingerprint_now"]].fillna(0)
        window = frame[C.DATE] >= pd.Timestamp(changed_since) if changed_since else True
        # What the stored rows were built from; for a day without rows, what the log says was read.
        has_rows = frame["stored_fingerprint"].notna()
        built_lines = frame["stored_lines"].where(has_rows, frame[LINES])
        built_print = frame["stored_fingerprint"].where(has_rows, frame[FINGERPRINT])
        known = built_print.notna()
        differs = (frame["lines_now"] != built_lines) | (frame["fingerprint_now"] != built_print)
        changed = done & window & known & differs
        # Days stored by a version that recorded nothing are built once more, to record it.
        unrecorded = done & window & ~known
    reason = pd.Series("", index=frame.index, dtype=object)
    reason[unrecorded] = REASON_UNRECORDED
    reason[changed] = REASON_CHANGED
    reason[hole] = REASON_HOLE
    reason[~done] = REASON_MISSING
    out = frame.loc[reason != "", [C.WAREHOUSE_ID, C.DATE]].assign(reason=reason[reason != ""])
    out[C.DATE] = out[C.DATE].dt.date
    return out.sort_values([C.WAREHOUSE_ID, C.DATE]).reset_index(drop=True)


def contiguous_ranges(days: pd.DataFrame) -> list[tuple[str, dt.date, dt.date]]:
    """Per warehouse, the contiguous day ranges of ``days`` (columns ``warehouse_id``, ``date``)."""
    out: list[tuple[str, dt.date, dt.date]] = []
    for wh, group in days.groupby(C.WAREHOUSE_ID, sort=True):
        ordinals = sorted({d.toordinal() for d in group[C.DATE]})
        begin = prev = ordinals[0]
        for value in ordinals[1:]:
            if value != prev + 1:
                out.append((str(wh), dt.date.fromordinal(begin), dt.date.fromordinal(prev)))
                begin = value
            prev = value
        out.append((str(wh), dt.date.fromordinal(begin), dt.date.fromordinal(prev)))
    return out
