"""Reading a bring-your-own-data source directory: one ``.parquet`` or ``.csv`` file per table.

Small tables (products, warehouses, campaigns, calendar, weather) are read with pandas and split by
their pandera model into valid rows and rejected rows with reasons. The large ``transactions`` table
is never loaded whole: :mod:`demand_platform.ingestion` validates the slice it needs in DuckDB.
"""

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa

from demand_platform import columns as C
from demand_platform.schemas import SOURCE_MODELS

SUFFIXES = (".parquet", ".csv")


class SourceError(ValueError):
    """A source file or column is missing or malformed; the message names the file and the column."""


@dataclass(frozen=True)
class TableSplit:
    """A source table split into the rows that flow on and the rows kept aside.

    Attributes:
        table: Source table name.
        valid: Rows that passed validation, typed by the table's pandera model.
        rejected: Quarantine rows (``QuarantineModel`` columns) with the reason and original row.
    """

    table: str
    valid: pd.DataFrame
    rejected: pd.DataFrame


def table_path(source_dir: str | Path, table: str) -> Path | None:
    """Return the file holding ``table`` in ``source_dir`` (parquet preferred), or None when absent."""
    for suffix in SUFFIXES:
        candidate = Path(source_dir) / f"{table}{suffix}"
        if candidate.exists():
            return candidate
    return None


def require_table_path(source_dir: str | Path, table: str) -> Path:
    """Like :func:`table_path` but raise a :class:`SourceError` naming the expected files."""
    path = table_path(source_dir, table)
    if path is None:
        expected = " or ".join(f"{table}{s}" for s in SUFFIXES)
        raise SourceError(f"source {source_dir}: required table file {expected} is missing")
    return path


def relation_sql(path: Path) -> str:
    """A DuckDB table expression reading ``path`` with a ``file_row_number`` column (0-based)."""
    quoted = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return f"read_parquet('{quoted}', file_row_number = true)"
    # CSV: everything as text, so unparseable values are caught per row instead of failing the scan.
    return (
        f"(SELECT *, (row_number() OVER () - 1) AS file_row_number "
        f"FROM read_csv('{quoted}', all_varchar = true, header = true))"
    )


def file_columns(path: Path, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Column names of a source file, read from its header only."""
    connection = con or duckdb.connect()
    try:
        rows = connection.execute(f"DESCRIBE SELECT * FROM {relation_sql(path)}").fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc
    return [r[0] for r in rows if r[0] != "file_row_number"]


def check_columns(path: Path, table: str, present: list[str] | pd.Index) -> None:
    """Raise :class:`SourceError` naming the file and columns when required columns are missing."""
    required = list(SOURCE_MODELS[table].to_schema().columns)
    missing = [c for c in required if c not in set(present)]
    if missing:
        raise SourceError(
            f"{path}: table '{table}' is missing required column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, present))})"
        )


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except Exception as exc:
        raise SourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc


def rows_as_json(frame: pd.DataFrame) -> list[str]:
    """Serialise each row of ``frame`` as a JSON object (the quarantine's ``original_row``)."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    return text.strip("\n").split("\n")


def quarantine_frame(
    table: str,
    original: pd.DataFrame,
    reasons: pd.Series,
    warehouse_id: pd.Series | None = None,
    partition_date: pd.Series | None = None,
) -> pd.DataFrame:
    """Build quarantine rows for ``original`` (aligned with ``reasons``)."""
    n = len(original)
    return pd.DataFrame(
        {
            C.SOURCE_TABLE: pd.Series([table] * n, dtype=object),
            C.WAREHOUSE_ID: (
                pd.Series([None] * n, dtype=object)
                if warehouse_id is None
                else warehouse_id.astype(object).to_numpy()
            ),
            C.PARTITION_DATE: (
                pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
                if partition_date is None
                else pd.to_datetime(partition_date).to_numpy()
            ),
            C.REASON: reasons.astype(str).to_numpy(),
            C.ORIGINAL_ROW: rows_as_json(original),
        }
    )


def split_valid(table: str, frame: pd.DataFrame, path: Path | str = "") -> TableSplit:
    """Validate ``frame`` against the table's pandera model, keeping bad rows aside with reasons.

    Uniqueness is enforced keep-first: the first row of a duplicated key flows, later ones are rejected.

    Raises:
        SourceError: A required column is missing, or a failure cannot be attributed to rows.
    """
    model = SOURCE_MODELS[table]
    schema = model.to_schema()
    check_columns(Path(str(path)), table, frame.columns)
    frame = frame.reset_index(drop=True)
    reasons: dict[int, list[str]] = {}
    unique_cols = [name for name, col in schema.columns.items() if col.unique]
    for col in unique_cols:
        dup = frame[col].notna() & frame.duplicated(subset=[col], keep="first")
        for idx in frame.index[dup]:
            reasons.setdefault(int(idx), []).append(f"duplicate {col}")
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        for _, case in cases.iterrows():
            check = str(case["check"])
            column = case["column"]
            if "field_uniqueness" in check or check == "unique":
                continue  # handled keep-first above
            if pd.isna(case["index"]):
                raise SourceError(
                    f"{path}: table '{table}' column '{column}' fails check {check} "
                    f"(value {case['failure_case']!r})"
                ) from err
            if "coerce_dtype" in check or check.startswith("dtype("):
                label = f"unparseable {column}"
            elif check == "not_nullable":
                label = f"null {column}"
            elif column is None or column == table or pd.isna(column):
                label = f"failed {check}"
            else:
                label = f"{column} fails {check}"
            reasons.setdefault(int(case["index"]), []).append(label)
    bad_index = sorted(reasons)
    bad_mask = frame.index.isin(bad_index)
    good = frame.loc[~bad_mask]
    valid = schema.validate(good, lazy=False) if len(good) else schema.coerce_dtype(good.iloc[:0])
    reason_series = pd.Series(["; ".join(dict.fromkeys(reasons[i])) for i in bad_index], dtype=object)
    rejected = quarantine_frame(table, frame.loc[bad_mask], reason_series)
    return TableSplit(table=table, valid=valid.reset_index(drop=True), rejected=rejected)


def load_table(source_dir: str | Path, table: str, required: bool | None = None) -> TableSplit | None:
    """Read and validate one small source table; None when an optional table is absent.

    Args:
        source_dir: The source directory.
        table: Table name (not ``transactions``; that one is validated in DuckDB).
        required: Override whether the table must exist (defaults to the contract).

    Raises:
        SourceError: The file is missing (when required), unreadable, or lacks a required column.
    """
    must = table in C.REQUIRED_TABLES if required is None else required
    path = require_table_path(source_dir, table) if must else table_path(source_dir, table)
    if path is None:
        return None
    return split_valid(table, _read_frame(path), path)


def warehouse_ids(source_dir: str | Path) -> list[str]:
    """The valid warehouse ids of a source, sorted (the ``warehouse`` partition keys)."""
    split = load_table(source_dir, C.WAREHOUSES)
    assert split is not None
    return sorted(split.valid[C.WAREHOUSE_ID].astype(str).unique().tolist())


def transactions_date_range(source_dir: str | Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last parseable transaction dates (cheap on parquet: read from row-group statistics)."""
    path = require_table_path(source_dir, C.TRANSACTIONS)
    check_columns(path, C.TRANSACTIONS, file_columns(path))
    sql = (
        f"SELECT min(TRY_CAST({C.TRANSACTION_DATE} AS DATE)), max(TRY_CAST({C.TRANSACTION_DATE} AS DATE)) "
        f"FROM {relation_sql(path)}"
    )
    lo, hi = duckdb.connect().execute(sql).fetchone() or (None, None)
    if lo is None or hi is None:
        raise SourceError(f"{path}: column '{C.TRANSACTION_DATE}' has no parseable date")
    return pd.Timestamp(lo), pd.Timestamp(hi)


def first_continuous_date(source_dir: str | Path, max_gap_days: int = 30) -> pd.Timestamp:
    """The first day of the source's sales history once stray old lines are set aside.

    It is the first transaction date after the last gap of more than ``max_gap_days`` days without
    any line, so that a handful of mis-dated lines years before the real history do not stretch the
    partitions back to them (they are then reported as outside the partition range instead).
    """
    path = require_table_path(source_dir, C.TRANSACTIONS)
    check_columns(path, C.TRANSACTIONS, file_columns(path))
    row = (
        duckdb.connect()
        .execute(
            f"""
            WITH d AS (SELECT DISTINCT TRY_CAST({C.TRANSACTION_DATE} AS DATE) AS day FROM {relation_sql(path)}
                       WHERE TRY_CAST({C.TRANSACTION_DATE} AS DATE) IS NOT NULL),
            g AS (SELECT day, day - lag(day) OVER (ORDER BY day) AS gap FROM d)
            SELECT coalesce(max(day) FILTER (WHERE gap > $g), min(day)) FROM g
            """,
            {"g": max_gap_days},
        )
        .fetchone()
    )
    if row is None or row[0] is None:
        raise SourceError(f"{path}: column '{C.TRANSACTION_DATE}' has no parseable date")
    return pd.Timestamp(row[0])


def describe_contract() -> str:
    """A human-readable listing of the source contract (used by the CLI)."""
    lines = []
    for table, model in SOURCE_MODELS.items():
        kind = "required" if table in C.REQUIRED_TABLES else "optional"
        cols = ", ".join(model.to_schema().columns)
        lines.append(f"{table} ({kind}): {cols}")
    return "\n".join(lines)
