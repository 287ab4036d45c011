"""Reading a bring-your-own-data source: a directory with one ``.parquet`` or ``.csv`` file per table, or
a PostgreSQL database with one table per table (``postgresql://user@host:port/database[?schema=name]``,
see :mod:`demand_platform.source_db`; every function taking a ``source_dir`` takes either).

Small tables (products, warehouses, campaigns, calendar, weather) are read with pandas and split by
their pandera model into valid rows and rejected rows with reasons. The large ``transactions`` table
is never loaded whole: :mod:`demand_platform.ingestion` validates the slice it needs in DuckDB.

Wherever a table is, :class:`SourceTable` locates it and gives its DuckDB relation (with a
``file_row_number``: the file's row, or the database row's position) and column types; a DuckDB
connection reads a database source once :func:`source_connection` has attached it.

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

import contextlib
import csv
import datetime as dt
import decimal
import re
from collections.abc import Iterator
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
from demand_platform import source_db
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


def database_source(source_dir: str | Path) -> source_db.PostgresSource | None:
    """The database a source names (None when it is a directory).

    Raises:
        SourceError: A URL that is not a PostgreSQL database's.
    """
    if not source_db.is_database_source(source_dir):
        return None
    try:
        return source_db.PostgresSource.from_url(str(source_dir))
    except ValueError as exc:
        raise SourceError(str(exc)) from None


def source_label(source_dir: str | Path) -> str:
    """How messages name a source (a database URL without its password)."""
    database = database_source(source_dir)
    return str(source_dir) if database is None else database.label


def source_connection(
    source_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read ``source_dir``: ``con`` (default a new in-memory one), with the
    postgres extension loaded and the database attached (read-only) when the source is a database.

    Raises:
        SourceError: The database cannot be reached (the message names it, without its password).
    """
    connection = duckdb.connect() if con is None else con
    database = database_source(source_dir)
    if database is not None:
        _attach(connection, database)
    return connection


def _attach(con: duckdb.DuckDBPyConnection, database: source_db.PostgresSource) -> duckdb.DuckDBPyConnection:
    try:
        source_db.attach(con, database)
    except duckdb.Error as exc:
        raise SourceError(f"source {database.label}: cannot connect: {source_db.redact(str(exc))}") from None
    return con


@contextlib.contextmanager
def _database_connection(
    database: source_db.PostgresSource, con: duckdb.DuckDBPyConnection | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` (attached by the caller), or a new connection attached to ``database`` and closed after."""
    if con is not None:
        yield con
        return
    own = _attach(duckdb.connect(), database)
    try:
        yield own
    finally:
        own.close()


@dataclass(frozen=True)
class SourceTable:
    """Where one table of a source is: a file of a directory, or a table of a PostgreSQL database.

    Attributes:
        name: The contract's table name.
        path: The file (None for a database table).
        database: The database table (None for a file).
    """

    name: str
    path: Path | None = None
    database: source_db.PostgresTable | None = None

    @property
    def label(self) -> str:
        """How messages name the table: the file's path, or the database and table."""
        if self.database is not None:
            return self.database.label
        return str(self.path)

    def relation_sql(self, database_filter: str | None = None) -> str:
        """A DuckDB table expression of the table's rows with a ``file_row_number`` column.

        Args:
            database_filter: For a database table, a condition in PostgreSQL's SQL on the raw columns
                that PostgreSQL applies (only those rows travel). Files ignore it: filter them in DuckDB.
        """
        if self.database is not None:
            return self.database.relation_sql(database_filter)
        assert self.path is not None
        return relation_sql(self.path)

    def column_types(self, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, str]:
        """Column name -> DuckDB type, without reading the rows.

        Raises:
            SourceError: The table cannot be read, or repeats a column name (ignoring case).
        """
        if self.database is None:
            assert self.path is not None
            return file_column_types(self.path, con)
        with _database_connection(self.database.source, con) as connection:
            try:
                rows = connection.execute(f"DESCRIBE SELECT * FROM {self.relation_sql('FALSE')}").fetchall()
            except duckdb.Error as exc:
                raise SourceError(f"{self.label}: cannot be read: {source_db.redact(str(exc))}") from None
        types = {str(r[0]): str(r[1]) for r in rows if r[0] != "file_row_number"}
        _check_unique_names(self.label, list(types), "table")
        return types

    def version(self, con: duckdb.DuckDBPyConnection | None = None) -> str:
        """A value that changes when the table changes: the file's path, size and modification time, or
        a hash of a database table's rows computed by the database (:meth:`PostgresTable.version`)."""
        if self.database is None:
            assert self.path is not None
            stat = self.path.stat()
            return f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        with _database_connection(self.database.source, con) as connection:
            return self.database.version(connection)


def locate_table(
    source_dir: str | Path, table: str, con: duckdb.DuckDBPyConnection | None = None
) -> SourceTable | None:
    """Where ``table`` of a source is (None when the source has no such table).

    Args:
        source_dir: A source directory or database URL.
        table: Table name.
        con: For a database source, the connection to look in (attached by
            :func:`source_connection`; a new one by default).
    """
    database = database_source(source_dir)
    if database is None:
        path = table_path(source_dir, table)
        return None if path is None else SourceTable(name=table, path=path)
    with _database_connection(database, con) as connection:
        _attach(connection, database)  # a no-op when attached
        try:
            found = source_db.find_table(connection, database, table)
        except duckdb.Error as exc:
            raise SourceError(
                f"source {database.label}: cannot be read: {source_db.redact(str(exc))}"
            ) from None
    return None if found is None else SourceTable(name=table, database=found)


def require_table(
    source_dir: str | Path, table: str, con: duckdb.DuckDBPyConnection | None = None
) -> SourceTable:
    """Like :func:`locate_table` but raise a :class:`SourceError` naming the missing table."""
    found = locate_table(source_dir, table, con)
    if found is not None:
        return found
    database = database_source(source_dir)
    if database is None:
        expected = " or ".join(f"{table}{s}" for s in SUFFIXES)
        raise SourceError(f"source {source_dir}: required table file {expected} is missing")
    raise SourceError(
        f"source {database.label}: required table {database.schema}.{table} is missing "
        f"(no table or view named '{table}' in schema '{database.schema}')"
    )


def has_table(source_dir: str | Path, table: str) -> bool:
    """Whether the source has ``table`` (a file of the directory, a table of the database)."""
    if database_source(source_dir) is None:
        return table_path(source_dir, table) is not None
    con = source_connection(source_dir)
    try:
        return locate_table(source_dir, table, con) is not None
    finally:
        con.close()


def table_versions(source_dir: str | Path, tables: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The version of each of ``tables`` the source has (absent ones are left out), in one connection.

    A version changes when its table changes (:meth:`SourceTable.version`): a file's path, size and
    modification time; a database table's row count and a hash of its rows computed by the database
    (cheap for the small tables, a full read inside the database of ``transactions``).
    """
    if database_source(source_dir) is None:
        found = (locate_table(source_dir, table) for table in tables)
        return tuple(location.version() for location in found if location is not None)
    con = source_connection(source_dir)
    try:
        versions = []
        for table in tables:
            location = locate_table(source_dir, table, con)
            if location is not None:
                versions.append(location.version(con))
        return tuple(versions)
    finally:
        con.close()


def table_version(source_dir: str | Path, table: str) -> str | None:
    """The version of ``table`` (None when absent): see :func:`table_versions`."""
    versions = table_versions(source_dir, [table])
    return versions[0] if versions else None


def table_path(source_dir: str | Path, table: str) -> Path | None:
    """Return the file holding ``table`` in ``source_dir`` (parquet preferred), or None when absent.

    Raises:
        SourceError: ``source_dir`` is a database: its tables are not files (use :func:`locate_table`,
            :func:`has_table` or :func:`table_version`).
    """
    if source_db.is_database_source(source_dir):
        raise SourceError(
            f"source {source_label(source_dir)} is a database, its tables are not files: use "
            "source.locate_table / has_table / table_version"
        )
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


def _check_unique_names(label: str, names: list[str], where: str) -> None:
    folded = [n.strip().casefold() for n in names]
    duplicated = sorted({n.strip() for n, f in zip(names, folded, strict=True) if folded.count(f) > 1})
    if duplicated:
        raise SourceError(
            f"{label}: duplicated column(s) {', '.join(duplicated)} in the {where} (column names must be "
            "unique, ignoring case)"
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
    _check_unique_names(str(path), names, "header")
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


def check_columns(path: Path | str, table: str, present: list[str] | pd.Index) -> None:
    """Raise :class:`SourceError` naming the file (or database table) and columns when required columns
    are missing."""
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


def _arrow_frame(data: pyarrow.Table, table: str) -> pd.DataFrame:
    """A typed table (parquet, or a database table through DuckDB) as pandas reads it."""
    frame = data.to_pandas()
    text = {n for n, c in SOURCE_MODELS[table].to_schema().columns.items() if str(c.dtype) == "str"}
    for arrow_field in data.schema:
        # Integer ids with nulls become floats in pandas (inexact past 2**53): take Arrow's text.
        if arrow_field.name in text and pyarrow.types.is_integer(arrow_field.type):
            exact = data.column(arrow_field.name).cast(pyarrow.string())
            frame[arrow_field.name] = exact.to_pandas().astype(object).to_numpy()
    return frame


def _read_frame(
    location: SourceTable | Path, table: str, con: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    if isinstance(location, Path):
        location = SourceTable(name=table, path=location)
    if location.database is not None:
        with _database_connection(location.database.source, con) as connection:
            location.column_types(connection)  # repeated column names
            try:
                rows = connection.sql(
                    f"SELECT * EXCLUDE (file_row_number) FROM {location.relation_sql()} ORDER BY file_row_number"
                )
                return _arrow_frame(rows.to_arrow_table(), table)
            except duckdb.Error as exc:
                raise SourceError(f"{location.label}: cannot be read: {source_db.redact(str(exc))}") from None
    path = location.path
    assert path is not None
    header_names(path)
    try:
        if path.suffix == ".parquet":
            return _arrow_frame(pq.read_table(path), table)
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
    check_columns(path, table, frame.columns)
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


def load_table(
    source_dir: str | Path,
    table: str,
    required: bool | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> TableSplit | None:
    """Read and validate one small source table; None when an optional table is absent.

    Args:
        source_dir: The source directory or database.
        table: Table name (not ``transactions``; that one is validated in DuckDB).
        required: Override whether the table must exist (defaults to the contract).
        con: For a database source, a connection :func:`source_connection` attached (a new one by
            default).

    Raises:
        SourceError: The file (database table) is missing (when required), unreadable, repeats a column
            name or lacks a required column.
    """
    must = table in C.REQUIRED_TABLES if required is None else required
    own = con is None and database_source(source_dir) is not None
    connection = source_connection(source_dir) if own else con
    try:
        found = locate_table(source_dir, table, connection)
        if found is None and must:
            found = require_table(source_dir, table, connection)
        if found is None:
            return None
        frame = _read_frame(found, table, connection)
    finally:
        if own and connection is not None:
            connection.close()
    return split_valid(table, frame, found.path if found.path is not None else found.label)


def load_source_tables(source_dir: str | Path) -> SourceTables:
    """Read and validate every small table of a source (:data:`SOURCE_TABLE_NAMES`).

    Raises:
        SourceError: A required table is missing or a table is malformed.
    """
    con = source_connection(source_dir) if database_source(source_dir) is not None else None
    try:
        splits = {table: load_table(source_dir, table, con=con) for table in SOURCE_TABLE_NAMES}
    finally:
        if con is not None:
            con.close()
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


def database_day_sql(column: str, duck_type: str) -> str:
    """PostgreSQL expression grouping a date column by day and keeping its type, so that
    :func:`day_sql` of it is the day of the column's values: a ``DATE`` as is, a ``TIMESTAMP`` truncated
    to its day (a time-zone-aware one to its UTC day), anything else (text) as is."""
    quoted = source_db.quote_ident(column)
    kind = duck_type.upper()
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return f"date_trunc('day', {quoted}, 'UTC')"
    if kind.startswith("TIMESTAMP"):
        return f"date_trunc('day', {quoted})"
    return quoted


def _transaction_days(source_dir: str | Path) -> tuple[str, pd.DataFrame]:
    """The transactions' label and their lines per parseable day (``day``, ``n``, by day).

    A database counts the lines per day itself: a few hundred rows travel, not every line's date.
    """
    con = source_connection(source_dir)
    try:
        location = require_table(source_dir, C.TRANSACTIONS, con)
        types = location.column_types(con)
        check_columns(location.label, C.TRANSACTIONS, list(types))
        kind = types[C.TRANSACTION_DATE]
        day = day_sql(C.TRANSACTION_DATE, kind)
        if location.database is not None:
            table = location.database
            grouped = (
                f"SELECT {database_day_sql(C.TRANSACTION_DATE, kind)} AS {C.TRANSACTION_DATE}, count(*) AS n "
                f"FROM {table.source.qualified(table.name)} GROUP BY 1"
            )
            counts = (
                f"SELECT {day} AS day, CAST(sum(n) AS BIGINT) AS n "
                f"FROM {source_db.query_relation(table.source, grouped)} GROUP BY 1"
            )
        else:
            counts = f"SELECT {day} AS day, count(*) AS n FROM {location.relation_sql()} GROUP BY 1"
        frame = con.execute(f"SELECT day, n FROM ({counts}) WHERE day IS NOT NULL ORDER BY day").df()
    finally:
        con.close()
    return location.label, frame


def transactions_date_range(source_dir: str | Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last parseable transaction dates, stray lines included (infinite dates excluded)."""
    label, counts = _transaction_days(source_dir)
    if counts.empty:
        raise SourceError(f"{label}: column '{C.TRANSACTION_DATE}' has no parseable date")
    return pd.Timestamp(counts["day"].iloc[0]), pd.Timestamp(counts["day"].iloc[-1])


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
        source_dir: The source directory or database.
        max_gap_days: Longest run of days without any line inside one history.
        today: The current day (default: the machine's local date).

    Returns:
        The first and the last day of that segment.

    Raises:
        SourceError: No parseable transaction date.
    """
    label, counts = _transaction_days(source_dir)
    if counts.empty:
        raise SourceError(f"{label}: column '{C.TRANSACTION_DATE}' has no parseable date")
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


SOURCE_KINDS = """\
A source is a directory with one file per table (<table>.parquet or <table>.csv), or a PostgreSQL
database, postgresql://user[:password]@host:port/database[?schema=name] (default schema public), with one
table (or view) per table of the same name. Both are validated alike; a database's transactions are read
by day, the day and warehouse filter applied by PostgreSQL (an index on transaction_date serves it)."""


def describe_contract() -> str:
    """A human-readable listing of the source contract and its type rules (used by the CLI)."""
    lines = [SOURCE_KINDS, ""]
    for table, model in SOURCE_MODELS.items():
        kind = "required" if table in C.REQUIRED_TABLES else "optional"
        cols = ", ".join(model.to_schema().columns)
        lines.append(f"{table} ({kind}): {cols}")
    return "\n".join([*lines, "", CANONICALISATION])
