"""Reading a bring-your-own-data source directory: one ``.parquet`` or ``.csv`` file per table.

Small tables (products, warehouses, campaigns, calendar, weather) are read with pandas and split by
their pandera model into valid rows and rejected rows with reasons. The large ``transactions`` table
is never loaded whole: :mod:`demand_platform.ingestion` validates the slice it needs in DuckDB.

Types are canonicalised once, at read, the same way on both paths (pandas here, DuckDB SQL from
:func:`id_sql` and :func:`day_sql`), so a value compares equal whatever type its file gave it:

* **ids** (:data:`~demand_platform.columns.ID_COLUMNS`: ``transaction_id``, ``sku``,
  ``warehouse_id``, ``customer_id``, ``order_id``, ``campaign_id``) and every other text column
  become text: an integer ``1`` -> ``"1"``, an integral float or decimal ``1.0`` (pandas makes
  those from integer columns with nulls) -> ``"1"``, text is kept as written but stripped of
  surrounding spaces; blank text, NaN and infinities are null. ``"007"`` stays ``"007"`` (not 7).
* **dates** may be ``DATE``, ``TIMESTAMP`` (its day; a time-zone-aware one: its UTC day) or ISO text
  ``YYYY-MM-DD`` optionally followed by a time (``T`` or space separated; the day as written).
  Anything else (``infinity``, ``epoch``, ``2024-1-5``, numbers) does not parse.
* **booleans** may be ``BOOLEAN``, 0/1 or the text ``true/false``, ``t/f``, ``yes/no``, ``y/n``,
  ``1/0`` (any case).
"""

import csv
import datetime as dt
import decimal
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq

from demand_platform import columns as C
from demand_platform.schemas import SOURCE_MODELS
from demand_platform.tables import SOURCE_TABLE_NAMES, SourceTables

SUFFIXES = (".parquet", ".csv")

ISO_DAY_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
"""ISO text accepted as a date: ``YYYY-MM-DD``, optionally a time and a UTC offset (ignored)."""

_ISO_DAY = re.compile(ISO_DAY_PATTERN)
_TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE_TEXT = frozenset({"false", "f", "no", "n", "0", "0.0"})
_INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
_NS: Final = "datetime64[ns]"


class SourceError(ValueError):
    """A source file or column is missing or malformed; the message names the file and the column."""


@dataclass(frozen=True)
class TableSplit:
    """A source table split into the rows that flow on and the rows kept aside.

    Attributes:
        table: Source table name.
        valid: Rows that passed validation, typed by the table's pandera model.
        rejected: Quarantine rows (``QuarantineModel`` columns) with the reason and original row.
        rejected_rows: The rejected rows after canonicalisation (ids as text), aligned with
            ``rejected``; see :meth:`rejected_keys`.
    """

    table: str
    valid: pd.DataFrame
    rejected: pd.DataFrame
    rejected_rows: pd.DataFrame = field(default_factory=pd.DataFrame)

    def rejected_keys(self, column: str = C.SKU) -> pd.DataFrame:
        """The canonical ``column`` value and the reason of every rejected row where it is not null.

        ``split.rejected_keys(C.SKU)`` of the products is what
        :func:`demand_platform.ingestion.ingest_sales` takes as ``rejected_products``.

        Args:
            column: A column of the table (``sku`` for products, ``warehouse_id`` for warehouses).

        Returns:
            Columns ``column`` (str) and ``reason`` (str), one row per rejected row with a value.
        """
        if column not in self.rejected_rows.columns:
            return pd.DataFrame({column: pd.Series(dtype=object), C.REASON: pd.Series(dtype=object)})
        keys = pd.DataFrame(
            {
                column: self.rejected_rows[column].to_numpy(dtype=object),
                C.REASON: self.rejected[C.REASON].to_numpy(dtype=object),
            }
        )
        return keys.loc[keys[column].notna()].reset_index(drop=True)


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


def header_names(path: Path) -> list[str]:
    """The column names as written in the file (a CSV's first line, a parquet file's schema).

    Raises:
        SourceError: The file cannot be read, or a column name appears twice (readers would
            silently rename the second one, ``quantity_1`` or ``quantity.1``).
    """
    try:
        if path.suffix == ".parquet":
            names = list(pq.read_schema(path).names)
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                names = next(csv.reader(handle), [])
    except Exception as exc:
        raise SourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc
    folded = [n.strip().casefold() for n in names]
    duplicated = sorted({n.strip() for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
    if duplicated:
        raise SourceError(
            f"{path}: duplicated column(s) {', '.join(duplicated)} in the header (column names must be "
            "unique, ignoring case)"
        )
    return names


def file_column_types(path: Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
    """Column name -> DuckDB type of a source file, read from its header only.

    Raises:
        SourceError: The file cannot be read, or its header repeats a column name.
    """
    header_names(path)
    connection = con or duckdb.connect()
    try:
        rows = connection.execute(f"DESCRIBE SELECT * FROM {relation_sql(path)}").fetchall()
    except duckdb.Error as exc:
        raise SourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc
    return {r[0]: str(r[1]) for r in rows if r[0] != "file_row_number"}


def file_columns(path: Path, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Column names of a source file, read from its header only."""
    return list(file_column_types(path, con))


def check_columns(path: Path, table: str, present: list[str] | pd.Index) -> None:
    """Raise :class:`SourceError` naming the file and columns when required columns are missing."""
    required = list(SOURCE_MODELS[table].to_schema().columns)
    missing = [c for c in required if c not in set(present)]
    if missing:
        raise SourceError(
            f"{path}: table '{table}' is missing required column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, present))})"
        )


# --- canonical values, SQL side ---------------------------------------------------------------------
def id_sql(column: str, duck_type: str) -> str:
    """DuckDB expression giving the canonical text of an id (or text) column of type ``duck_type``.

    The SQL twin of :func:`canonical_ids`: integers as their decimal text, integral floats and
    decimals as integers, other finite numbers as DuckDB prints them, text stripped of surrounding spaces; blank text, NaN
    and infinities are NULL.
    """
    kind = duck_type.upper()
    if kind in _INTEGER_TYPES:
        return f"CAST({column} AS VARCHAR)"
    if kind in _FLOAT_TYPES:
        return (
            f"(CASE WHEN NOT isfinite({column}) THEN NULL "
            f"WHEN {column} = trunc({column}) THEN CAST(TRY_CAST({column} AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({column} AS VARCHAR) END)"
        )
    if kind.startswith("DECIMAL"):
        return (
            f"(CASE WHEN {column} = trunc({column}) THEN CAST(CAST(trunc({column}) AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({column} AS VARCHAR) END)"
        )
    return f"NULLIF(trim(CAST({column} AS VARCHAR)), '')"


def day_sql(column: str, duck_type: str) -> str:
    """DuckDB expression giving the day (``DATE``) of a date column of type ``duck_type``, or NULL.

    The SQL twin of :func:`parse_days`: a ``DATE`` as is, a ``TIMESTAMP`` its day (time-zone aware:
    its UTC day), ISO text (:data:`ISO_DAY_PATTERN`, surrounding spaces allowed) the day written;
    infinite dates and anything else are NULL (unparseable).
    """
    kind = duck_type.upper()
    if kind == "DATE":
        return f"(CASE WHEN isfinite({column}) THEN {column} END)"
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"(CASE WHEN isfinite({column}) THEN CAST(timezone('UTC', {column}) AS DATE) END)"
    if kind.startswith("TIMESTAMP"):
        return f"(CASE WHEN isfinite({column}) THEN CAST({column} AS DATE) END)"
    text = f"trim(CAST({column} AS VARCHAR))"
    return (
        f"(CASE WHEN regexp_full_match({text}, '{ISO_DAY_PATTERN}') "
        f"THEN TRY_CAST(left({text}, 10) AS DATE) END)"
    )


# --- canonical values, pandas side ----------------------------------------------------------------
def _canonical_number(value: float | np.floating | decimal.Decimal) -> str | None:
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return str(int(value)) if value == value.to_integral_value() else str(value)
    number = float(value)
    if not np.isfinite(number):
        return None
    return str(int(number)) if number == np.trunc(number) else repr(number)


def _canonical_id_value(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value.strip(" ") or None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip(" ") or None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating | decimal.Decimal):
        return _canonical_number(value)
    return str(value).strip(" ") or None


def canonical_ids(values: pd.Series) -> pd.Series:
    """Canonical text of an id (or text) column: see the module docstring; the twin of :func:`id_sql`.

    Args:
        values: The column as read (integers, floats, decimals, text or a mix).

    Returns:
        An object series of ``str`` and ``None``, same index.
    """
    dtype = values.dtype
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        kind = pd.api.types.infer_dtype(values, skipna=True)
    else:
        kind = "typed"
    if kind == "string":
        text = values.astype(object).str.strip(" ")
        text[(text.isna() | (text == "")).to_numpy()] = None
        return text
    out = pd.Series([None] * len(values), index=values.index, dtype=object)
    present = values.notna().to_numpy()
    if not present.any():
        return out
    if pd.api.types.is_bool_dtype(dtype):
        out[present] = values[present].astype(bool).astype(str)
    elif pd.api.types.is_integer_dtype(dtype):
        out[present] = values[present].astype(str)
    elif pd.api.types.is_float_dtype(dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(numbers)
        small = finite & (numbers == np.trunc(numbers)) & (np.abs(numbers) < 2.0**62)
        out[small] = numbers[small].astype(np.int64).astype(str)
        rest = finite & ~small
        out[rest] = [_canonical_number(n) for n in numbers[rest]]
    else:
        out[:] = [_canonical_id_value(v) for v in values.astype(object)]
    return out


def parse_days(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Days of a date column (the twin of :func:`day_sql`).

    Args:
        values: The column as read (dates, timestamps, ISO text or a mix).

    Returns:
        The days (``datetime64[ns]`` at midnight, NaT when null or unparseable) and a boolean mask
        of the values that were present but do not parse.
    """
    present = values.notna()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        days = values.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize().astype(_NS)
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        days = values.astype(_NS).dt.normalize()
    elif pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        days = pd.Series(pd.NaT, index=values.index, dtype=_NS)
    elif pd.api.types.infer_dtype(values, skipna=True) in ("date", "datetime", "datetime64"):
        # Date or datetime objects (parquet DATE columns): their day; out of range -> unparseable.
        stamps = pd.to_datetime(values, errors="coerce", utc=True)
        days = stamps.dt.tz_localize(None).dt.normalize().astype(_NS)
    else:
        objects = values.astype(object)
        is_text = objects.map(lambda v: isinstance(v, str)).astype(bool)
        days = pd.Series(pd.NaT, index=values.index, dtype=_NS)
        if is_text.any():
            text = objects[is_text].str.strip(" ")
            iso = text.map(lambda t: _ISO_DAY.fullmatch(t) is not None).astype(bool)
            parsed = pd.to_datetime(text.str[:10].where(iso), format="%Y-%m-%d", errors="coerce")
            days[is_text] = parsed.astype(_NS)
        other = present & ~is_text
        if other.any():
            things = objects[other]
            usable = things.map(
                lambda v: isinstance(v, dt.date | np.datetime64) and not isinstance(v, bool)
            ).astype(bool)
            converted = pd.to_datetime(things.where(usable), errors="coerce", utc=True)
            days[other] = converted.dt.tz_localize(None).dt.normalize().astype(_NS)
    return days, present & days.isna()


def parse_bools(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Booleans of a column of booleans, 0/1 or text (``true/false``, ``t/f``, ``yes/no``, ...).

    Returns:
        A pandas ``boolean`` series (NA when null or unparseable) and a mask of the values that
        were present but do not parse.
    """
    present = values.notna()
    if pd.api.types.is_bool_dtype(values.dtype):
        parsed = values.astype("boolean")
    else:
        text = (
            values.astype(object)
            .where(present)
            .map(lambda v: None if v is None or v is pd.NA else str(v).strip().casefold(), na_action="ignore")
        )
        parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        parsed[text.isin(_TRUE_TEXT).to_numpy()] = True
        parsed[text.isin(_FALSE_TEXT).to_numpy()] = False
    return parsed, present & parsed.isna()


def canonical_frame(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Canonicalise the text, date and boolean columns of a small table (see the module docstring).

    Args:
        table: Source table name (its pandera model says which columns are text, dates, booleans).
        frame: The table as read.

    Returns:
        The canonical frame and, per canonicalised column, the mask of present values that did not
        parse (always all False for text columns).
    """
    schema = SOURCE_MODELS[table].to_schema()
    out = frame.copy()
    unparseable: dict[str, pd.Series] = {}
    for name, column in schema.columns.items():
        if name not in frame.columns:
            continue
        kind = str(column.dtype)
        if kind == "str":
            out[name] = canonical_ids(frame[name])
            unparseable[name] = pd.Series(False, index=frame.index)
        elif kind.startswith("datetime64"):
            out[name], unparseable[name] = parse_days(frame[name])
        elif kind in ("bool", "boolean"):
            out[name], unparseable[name] = parse_bools(frame[name])
    return out, unparseable


def _read_frame(path: Path, table: str) -> pd.DataFrame:
    header_names(path)
    try:
        if path.suffix == ".parquet":
            data = pq.read_table(path)
            frame = data.to_pandas()
            text = {n for n, c in SOURCE_MODELS[table].to_schema().columns.items() if str(c.dtype) == "str"}
            for arrow_field in data.schema:
                # Integer ids with nulls become floats in pandas (inexact past 2**53): take Arrow's text.
                if arrow_field.name in text and pyarrow.types.is_integer(arrow_field.type):
                    exact = data.column(arrow_field.name).cast(pyarrow.string())
                    frame[arrow_field.name] = exact.to_pandas().astype(object).to_numpy()
            return frame
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

    Text (ids included), date and boolean columns are first canonicalised (:func:`canonical_frame`);
    a value present but unparseable is rejected as ``unparseable <column>``, a missing value of a
    non-nullable column as ``null <column>``. Uniqueness is enforced keep-first on the canonical
    values: the first row of a duplicated key flows, later ones are rejected. The quarantine's
    ``original_row`` holds the row as read.

    Raises:
        SourceError: A required column is missing, or a failure cannot be attributed to rows.
    """
    model = SOURCE_MODELS[table]
    schema = model.to_schema()
    check_columns(Path(str(path)), table, frame.columns)
    original = frame.reset_index(drop=True)
    frame, unparseable = canonical_frame(table, original)
    reasons: dict[int, list[str]] = {}
    for name, bad in unparseable.items():
        for idx in frame.index[bad.to_numpy()]:
            reasons.setdefault(int(idx), []).append(f"unparseable {name}")
        if not schema.columns[name].nullable:
            for idx in frame.index[(frame[name].isna() & ~bad).to_numpy()]:
                reasons.setdefault(int(idx), []).append(f"null {name}")
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
            if column in unparseable and pd.isna(frame.at[int(case["index"]), column]):
                continue  # null or unparseable: reported above
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
    rejected = quarantine_frame(table, original.loc[bad_mask], reason_series)
    return TableSplit(
        table=table,
        valid=valid.reset_index(drop=True),
        rejected=rejected,
        rejected_rows=frame.loc[bad_mask].reset_index(drop=True),
    )


def load_table(source_dir: str | Path, table: str, required: bool | None = None) -> TableSplit | None:
    """Read and validate one small source table; None when an optional table is absent.

    Args:
        source_dir: The source directory.
        table: Table name (not ``transactions``; that one is validated in DuckDB).
        required: Override whether the table must exist (defaults to the contract).

    Raises:
        SourceError: The file is missing (when required), unreadable, repeats a column name or
            lacks a required column.
    """
    must = table in C.REQUIRED_TABLES if required is None else required
    path = require_table_path(source_dir, table) if must else table_path(source_dir, table)
    if path is None:
        return None
    return split_valid(table, _read_frame(path, table), path)


def load_source_tables(source_dir: str | Path) -> SourceTables:
    """Read and validate every small table of a source directory (:data:`SOURCE_TABLE_NAMES`).

    Raises:
        SourceError: A required table is missing or a table is malformed.
    """
    splits = {table: load_table(source_dir, table) for table in SOURCE_TABLE_NAMES}
    products, warehouses = splits[C.PRODUCTS], splits[C.WAREHOUSES]
    assert products is not None and warehouses is not None  # required tables raise when absent

    def valid(table: str) -> pd.DataFrame | None:
        split = splits[table]
        return None if split is None else split.valid

    return SourceTables(
        products=products.valid,
        warehouses=warehouses.valid,
        calendar=valid(C.CALENDAR),
        campaigns=valid(C.MARKETING_CAMPAIGNS),
        weather=valid(C.WEATHER),
        overrides=valid(C.OVERRIDES),
        rejected_products=products.rejected_keys(C.SKU),
    )


def warehouse_ids(source_dir: str | Path) -> list[str]:
    """The valid warehouse ids of a source, sorted (the ``warehouse`` partition keys)."""
    split = load_table(source_dir, C.WAREHOUSES)
    assert split is not None
    return sorted(split.valid[C.WAREHOUSE_ID].astype(str).unique().tolist())


def _transaction_days(source_dir: str | Path) -> tuple[Path, str]:
    """The transactions file and its canonical-day relation (``day``, non-null days only)."""
    path = require_table_path(source_dir, C.TRANSACTIONS)
    types = file_column_types(path)
    check_columns(path, C.TRANSACTIONS, list(types))
    day = day_sql(C.TRANSACTION_DATE, types[C.TRANSACTION_DATE])
    return path, f"(SELECT {day} AS day FROM {relation_sql(path)}) WHERE day IS NOT NULL"


def transactions_date_range(source_dir: str | Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last parseable transaction dates, stray lines included (infinite dates excluded)."""
    path, days = _transaction_days(source_dir)
    lo, hi = duckdb.connect().execute(f"SELECT min(day), max(day) FROM {days}").fetchone() or (None, None)
    if lo is None or hi is None:
        raise SourceError(f"{path}: column '{C.TRANSACTION_DATE}' has no parseable date")
    return pd.Timestamp(lo), pd.Timestamp(hi)


def history_range(
    source_dir: str | Path, max_gap_days: int = 30, today: dt.date | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of the bulk of the source's sales history, in one scan of the dates.

    The distinct parseable transaction days up to ``today + 1`` are split into segments wherever
    more than ``max_gap_days`` days pass without a line; the segment holding the most lines is the
    history (ties: the latest). Stray lines dated far before or after it, in the future, with an
    infinite or unparseable date never become a bound (they are reported as outside the partition
    range, or unparseable, instead). When every line is after ``today + 1`` the limit is dropped.

    Args:
        source_dir: The source directory.
        max_gap_days: Longest run of days without any line inside one history.
        today: The current day (default: the machine's local date).

    Returns:
        The first and the last day of that segment.

    Raises:
        SourceError: No parseable transaction date.
    """
    path, days = _transaction_days(source_dir)
    counts = duckdb.connect().execute(f"SELECT day, count(*) AS n FROM {days} GROUP BY day ORDER BY day").df()
    if counts.empty:
        raise SourceError(f"{path}: column '{C.TRANSACTION_DATE}' has no parseable date")
    limit = pd.Timestamp((today or dt.date.today()) + dt.timedelta(days=1))
    day = pd.to_datetime(counts["day"])
    if (day <= limit).any():
        keep = (day <= limit).to_numpy()
        counts, day = counts.loc[keep], day[keep]
    gap_days = day.diff().dt.days.fillna(0).to_numpy()
    segment = np.cumsum(gap_days > max_gap_days)
    lines = np.bincount(segment, weights=counts["n"].to_numpy(dtype=float))
    best = len(lines) - 1 - int(np.argmax(lines[::-1]))
    chosen = day[segment == best]
    return pd.Timestamp(chosen.iloc[0]), pd.Timestamp(chosen.iloc[-1])


def first_continuous_date(
    source_dir: str | Path, max_gap_days: int = 30, today: dt.date | None = None
) -> pd.Timestamp:
    """The first day of the bulk of the source's sales history (see :func:`history_range`)."""
    return history_range(source_dir, max_gap_days, today)[0]


def last_history_date(
    source_dir: str | Path, max_gap_days: int = 30, today: dt.date | None = None
) -> pd.Timestamp:
    """The last day of the bulk of the source's sales history (see :func:`history_range`)."""
    return history_range(source_dir, max_gap_days, today)[1]


CANONICALISATION = """\
Types are canonicalised once, at read, in the small tables (pandas) and in transactions (DuckDB):
  ids (transaction_id, sku, warehouse_id, customer_id, order_id, campaign_id; the overrides' sku and
    warehouse_id) and text columns: INT/BIGINT or text. Integers become their decimal text
    (1 -> "1"), integral floats/decimals too (1.0 -> "1", as pandas writes integer columns with
    nulls); text is kept as written, stripped of surrounding spaces ("007" stays "007"); blank text,
    NaN and infinities are null. So warehouse_id 1 in transactions equals "1" in warehouses.
  dates: DATE, TIMESTAMP (its day; time-zone aware: its UTC day) or ISO text YYYY-MM-DD with an
    optional time ("2024-01-05", "2024-01-05 13:45:00", "2024-01-05T13:45:00Z": the day written).
    Anything else (infinity, epoch, 2024-1-5, numbers) is unparseable: the row is rejected.
  booleans: BOOLEAN, 0/1 or text true/false, t/f, yes/no, y/n (any case).
  numbers (quantity, revenue, price, ...): INT, DECIMAL, FLOAT or numeric text."""


def describe_contract() -> str:
    """A human-readable listing of the source contract and its type rules (used by the CLI)."""
    lines = []
    for table, model in SOURCE_MODELS.items():
        kind = "required" if table in C.REQUIRED_TABLES else "optional"
        cols = ", ".join(model.to_schema().columns)
        lines.append(f"{table} ({kind}): {cols}")
    return "\n".join([*lines, "", CANONICALISATION])
