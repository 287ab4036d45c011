"""A source held in a PostgreSQL database: one table per source table, read by DuckDB's postgres extension.

A source may be ``postgresql://user[:password]@host[:port]/database[?schema=name]`` instead of a
directory (other query parameters are passed to libpq as they are, e.g. ``sslmode=require``; a password
may also come from ``PGPASSWORD`` or ``~/.pgpass``). Each table of the contract is the PostgreSQL table
(or view, materialized view, partitioned or foreign table) of the same name in that schema (``public`` by
default): ``transactions``, ``products``, ``warehouses`` and the optional ones. The contract, the type
canonicalisation and the validation are the files' (:mod:`demand_platform.source`,
:mod:`demand_platform.ingestion`): DuckDB reads the tables with the types PostgreSQL declares
(``INTEGER``/``BIGINT`` ids, ``DATE``/``TIMESTAMP`` dates, ``NUMERIC`` money, ``BOOLEAN`` flags, text).

**How a table is read.** The database is attached read-only to the DuckDB connection (``ATTACH ... (TYPE
postgres, READ_ONLY)``, the extension loaded from its package file, never downloaded) and a table is the
relation ``postgres_query(<alias>, '<SQL>')``, where the SQL, run by PostgreSQL, is::

    SELECT <row number> AS file_row_number, * FROM "schema"."table" WHERE <filter>

* **The filter runs in PostgreSQL**: ingestion writes the day x warehouse box of a slice in
  PostgreSQL's SQL (:func:`demand_platform.ingestion.database_slice_filter`), so only the box's lines
  travel, and an index on ``transaction_date`` serves it. ``postgres_scan`` pushes no filter at all in
  this DuckDB version, and ``postgres_scan_pushdown`` (or an attached table) pushes only simple
  comparisons of raw columns, neither the trimmed text ids nor a row number.
* **The row number** stands for the file's row number, which decides which line of a duplicated
  ``transaction_id`` is the first one (kept) and orders the quarantine: the tuple's physical position,
  ``ctid`` (block x 65536 + offset; a partitioned table also by partition), i.e. the order in which
  ``SELECT * FROM table`` or an export of the table lists the rows. A freshly loaded table lists them in
  load order, so a source loaded from files (:func:`write_source`) keeps their first occurrences. Views
  and foreign tables have no ``ctid``: their rows are numbered in the order the view yields them
  (``row_number() OVER ()``), which is stable only if the view orders its rows.

:func:`write_source` and :func:`write_table` load a source directory (or a frame) into a database, with
the files' column types (the design's DDL types when the files are written in them).
"""

import contextlib
import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd
import pyarrow as pa

from demand_platform import columns as C
from demand_platform.lake import extension_file

#: URL schemes of a PostgreSQL source.
SCHEMES = ("postgresql", "postgres")
#: The schema read when the URL names none.
DEFAULT_SCHEMA = "public"
#: pg_class.relkind of the relations a source table may be: table, partitioned table, view, materialized
#: view, foreign table.
TABLE_KINDS = ("r", "p", "v", "m", "f")
_ROW_NUMBER_OF = {
    # ctid (block, offset) of a heap tuple: its position in the table, the order of a sequential scan.
    "r": "((ctid::text::point)[0]::bigint * 65536 + (ctid::text::point)[1]::bigint)",
    "m": "((ctid::text::point)[0]::bigint * 65536 + (ctid::text::point)[1]::bigint)",
    # A ctid is unique within one partition only: the partition's oid in front (numeric(38, 0) in DuckDB).
    "p": "(tableoid::oid::bigint::numeric * 281474976710656 "
    "+ (ctid::text::point)[0]::numeric * 65536 + (ctid::text::point)[1]::numeric)::numeric(38, 0)",
}
_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_database_source(source: object) -> bool:
    """Whether ``source`` names a database (a ``scheme://...`` URL) rather than a directory."""
    return isinstance(source, str) and "://" in source


def quote_literal(value: str) -> str:
    """A SQL string literal (PostgreSQL with ``standard_conforming_strings``, and DuckDB)."""
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _conninfo_value(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def redact(text: str) -> str:
    """``text`` with the password of any libpq connection string or URL in it replaced by ``***``."""
    text = _PASSWORD.sub(r"\1***", text)
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)


@dataclass(frozen=True)
class PostgresSource:
    """A source database: where it is and which schema holds the tables.

    Attributes:
        conninfo: libpq key-value connection string (what DuckDB's ``ATTACH`` takes).
        schema: The schema holding the source tables.
        label: The URL without its password, for messages.
    """

    conninfo: str
    schema: str
    label: str

    @classmethod
    def from_url(cls, url: str) -> "PostgresSource":
        """Parse ``postgresql://user[:password]@host[:port]/database[?schema=name&<libpq parameter>=...]``.

        Raises:
            ValueError: Not a PostgreSQL URL, or no database named.
        """
        parts = urllib.parse.urlsplit(url)
        database = urllib.parse.unquote(parts.path.lstrip("/"))
        if parts.scheme not in SCHEMES or not database or "/" in database:
            raise ValueError(
                f"not a PostgreSQL source: {redact(url)!r} (expected "
                "postgresql://user[:password]@host:port/database[?schema=name], or a directory)"
            )
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        schema = query.pop("schema", "") or DEFAULT_SCHEMA
        fields: dict[str, str | int | None] = {
            "dbname": database,
            "host": parts.hostname,
            "port": parts.port,
            "user": urllib.parse.unquote(parts.username) if parts.username else None,
            "password": urllib.parse.unquote(parts.password) if parts.password else None,
            **query,
        }
        conninfo = " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in fields.items() if v is not None)
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        label = f"{parts.scheme}://{netloc}/{database}" + (
            f"?schema={schema}" if schema != DEFAULT_SCHEMA else ""
        )
        return cls(conninfo=conninfo, schema=schema, label=label)

    @property
    def alias(self) -> str:
        """The name the database is attached as in a DuckDB connection (one per connection string)."""
        return "source_pg_" + hashlib.sha1(self.conninfo.encode()).hexdigest()[:12]

    def qualified(self, table: str) -> str:
        """``"schema"."table"`` in PostgreSQL's SQL."""
        return f"{quote_ident(self.schema)}.{quote_ident(table)}"

    def table_label(self, table: str) -> str:
        """How messages name ``table`` of this source."""
        return f"{self.label} table {self.schema}.{table}"


def load_extension(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's postgres extension into ``con`` from its package file (it is never downloaded)."""
    loaded = con.execute(
        "SELECT count(*) FROM duckdb_extensions() WHERE extension_name = 'postgres_scanner' AND loaded"
    ).fetchone()
    if not (loaded and loaded[0]):
        con.execute(f"LOAD {quote_literal(str(extension_file('postgres_scanner')))}")


def attach(con: duckdb.DuckDBPyConnection, source: PostgresSource, read_only: bool = True) -> str:
    """Attach ``source``'s database to ``con`` (once; read-only by default) and return its alias.

    Raises:
        duckdb.Error: The database cannot be reached (the message may hold the connection string).
    """
    load_extension(con)
    alias = source.alias if read_only else f"{source.alias}_rw"
    attached = con.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]
    ).fetchone()
    if not (attached and attached[0]):
        mode = ", READ_ONLY" if read_only else ""
        con.execute(f"ATTACH {quote_literal(source.conninfo)} AS {alias} (TYPE postgres{mode})")
    return alias


def query_relation(source: PostgresSource, sql: str, alias: str | None = None) -> str:
    """The DuckDB table expression of a query run by PostgreSQL (the database attached as ``alias``,
    by default the read-only :func:`attach`)."""
    return f"postgres_query({quote_literal(alias or source.alias)}, {quote_literal(sql)})"


def table_kind(
    con: duckdb.DuckDBPyConnection, source: PostgresSource, table: str, alias: str | None = None
) -> str | None:
    """The ``pg_class.relkind`` of ``table`` in the source's schema (None when there is none)."""
    kinds = ", ".join(quote_literal(k) for k in TABLE_KINDS)
    sql = (
        "SELECT c.relkind::text AS kind FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {quote_literal(source.schema)} AND c.relname = {quote_literal(table)} "
        f"AND c.relkind IN ({kinds})"
    )
    row = con.execute(f"SELECT kind FROM {query_relation(source, sql, alias)}").fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class PostgresTable:
    """One table of a source database.

    Attributes:
        source: The database.
        name: The table's name (the contract's).
        kind: Its ``pg_class.relkind`` (:data:`TABLE_KINDS`).
    """

    source: PostgresSource
    name: str
    kind: str

    @property
    def label(self) -> str:
        """How messages name the table."""
        return self.source.table_label(self.name)

    def sql(self, where: str | None = None) -> str:
        """PostgreSQL's SQL of the table's rows (``WHERE where``) with their ``file_row_number``."""
        table = self.source.qualified(self.name)
        condition = f" WHERE {where}" if where else ""
        row_number = _ROW_NUMBER_OF.get(self.kind)
        if row_number is None:  # a view or a foreign table: no ctid
            return (
                f"SELECT * FROM (SELECT row_number() OVER () - 1 AS file_row_number, * FROM {table}) "
                f"AS _rows{condition}"
            )
        return f"SELECT {row_number} AS file_row_number, * FROM {table}{condition}"

    def relation_sql(self, where: str | None = None) -> str:
        """The DuckDB table expression of :meth:`sql` (the database attached to the connection)."""
        return query_relation(self.source, self.sql(where))

    def version(self, con: duckdb.DuckDBPyConnection) -> str:
        """A value that changes whenever the table's rows or their order change.

        The rows are hashed by PostgreSQL (a sum of 64-bit hashes of ``ctid`` and row text: constant
        memory, nothing travels but one row), so it reads the whole table inside the database: meant for
        the small tables.
        """
        table = self.source.qualified(self.name)
        position = "ctid::text || " if self.kind in _ROW_NUMBER_OF else ""
        sql = (
            f"SELECT count(*)::text || ':' || coalesce(sum(hashtextextended({position}_t::text, 0)::numeric), 0)"
            f"::text AS version FROM {table} AS _t"
        )
        row = con.execute(f"SELECT version FROM {query_relation(self.source, sql)}").fetchone()
        return f"{self.label}|{row[0] if row else ''}"


def find_table(con: duckdb.DuckDBPyConnection, source: PostgresSource, table: str) -> PostgresTable | None:
    """``table`` of ``source`` (None when the schema has no relation of that name); ``con`` attached."""
    kind = table_kind(con, source, table)
    return None if kind is None else PostgresTable(source=source, name=table, kind=kind)


# --- loading a source into a database -----------------------------------------------------------------------
def write_table(
    url: str,
    table: str,
    data: pd.DataFrame | pa.Table | str,
    if_exists: Literal["replace", "append"] = "replace",
    con: duckdb.DuckDBPyConnection | None = None,
) -> int:
    """Write rows into table ``table`` of the source database at ``url``, in their order.

    The table is created (with its schema) from the rows' DuckDB types: ``VARCHAR`` -> ``varchar``,
    ``INTEGER``/``BIGINT`` -> ``integer``/``bigint``, ``DECIMAL(p,s)`` -> ``numeric(p,s)``, ``DOUBLE``
    -> ``double precision``, ``DATE``, ``TIMESTAMP``, ``BOOLEAN`` alike. Appended rows go after the rows
    already there (a later ``file_row_number``).

    Args:
        url: The source database (:class:`PostgresSource` URL).
        table: Table name.
        data: A frame, an Arrow table, or a DuckDB table expression (e.g. ``read_parquet('f.parquet')``).
        if_exists: ``replace`` drops an existing table first; ``append`` inserts into it (creating it
            when missing).
        con: DuckDB connection to write through (a fresh in-memory one by default).

    Returns:
        The number of rows written.
    """
    if if_exists not in ("replace", "append"):
        raise ValueError(f"if_exists must be 'replace' or 'append', not {if_exists!r}")
    source = PostgresSource.from_url(url)
    own = con is None
    connection = duckdb.connect() if con is None else con
    try:
        alias = attach(connection, source, read_only=False)
        connection.execute(
            f"CALL postgres_execute({quote_literal(alias)}, "
            f"{quote_literal(f'CREATE SCHEMA IF NOT EXISTS {quote_ident(source.schema)}')})"
        )
        target = f"{alias}.{quote_ident(source.schema)}.{quote_ident(table)}"
        if isinstance(data, str):
            rows = f"SELECT * FROM {data}"
        else:
            connection.register("_source_rows", data)
            rows = "SELECT * FROM _source_rows"
        exists = table_kind(connection, source, table, alias) is not None
        if exists and if_exists == "replace":
            drop = f"DROP TABLE {source.qualified(table)}"
            connection.execute(f"CALL postgres_execute({quote_literal(alias)}, {quote_literal(drop)})")
            exists = False
        if not exists:
            connection.execute(f"CREATE TABLE {target} AS {rows} WITH NO DATA")
        inserted = connection.execute(f"INSERT INTO {target} BY NAME {rows}").fetchone()
        # This process's other connections cache the database's catalog (the extension's cache is global).
        connection.execute("CALL pg_clear_cache()")
        return int(inserted[0]) if inserted else 0
    finally:
        if not isinstance(data, str):
            with contextlib.suppress(duckdb.Error):
                connection.unregister("_source_rows")
        if own:
            connection.close()


def write_source(
    source_dir: str | os.PathLike[str],
    url: str,
    tables: tuple[str, ...] = C.SOURCE_TABLES,
    indexes: bool = True,
) -> dict[str, int]:
    """Load a source directory into the database at ``url``: one table per file, replaced.

    Every table file of ``source_dir`` (parquet or CSV, as :func:`demand_platform.source.table_path`
    finds it) becomes the table of the same name, its rows in file order, so the database source reads
    exactly the directory's rows (first occurrences included). Parquet columns keep their types (a source
    written in the design's DDL types gives integer ids, ``numeric`` money, ``date``/``timestamp`` dates);
    CSV columns are loaded as text, as the platform reads a CSV file (every value as written).

    Args:
        source_dir: The source directory.
        url: The source database, ``postgresql://...[?schema=name]`` (the schema is created).
        tables: The tables to load (those without a file are skipped).
        indexes: Index the transactions as a transactions database would (:func:`index_transactions`).

    Returns:
        Rows written per table.
    """
    from demand_platform.source import table_path  # the file layout lives there (which imports this module)

    written: dict[str, int] = {}
    con = duckdb.connect()
    try:
        for table in tables:
            path = table_path(Path(source_dir), table)
            if path is None:
                continue
            quoted = quote_literal(str(path))
            if path.suffix == ".parquet":
                relation = (
                    f"(SELECT * EXCLUDE (file_row_number) FROM read_parquet({quoted}, file_row_number = true) "
                    "ORDER BY file_row_number)"
                )
            else:
                relation = f"read_csv({quoted}, all_varchar = true, header = true)"
            written[table] = write_table(url, table, relation, con=con)
        if indexes and C.TRANSACTIONS in written:
            index_transactions(url, con=con)
    finally:
        con.close()
    return written


def index_transactions(url: str, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Create the indexes that serve the platform's reads of ``transactions`` (when missing).

    One on ``transaction_date`` (a day's slice: only its index range is read) and one on the expression
    the duplicate probe compares ``transaction_id`` with: the id itself when it is an integer, else its
    text stripped of spaces (``btrim(transaction_id::text, ' ')``).

    Returns:
        The ``CREATE INDEX`` statements run.
    """
    source = PostgresSource.from_url(url)
    own = con is None
    connection = duckdb.connect() if con is None else con
    try:
        alias = attach(connection, source, read_only=False)
        table = source.qualified(C.TRANSACTIONS)
        columns = connection.execute(
            f"DESCRIBE SELECT * FROM {query_relation(source, f'SELECT * FROM {table} LIMIT 0', alias)}"
        ).fetchall()
        kind = {str(r[0]): str(r[1]) for r in columns}[C.TRANSACTION_ID]
        transaction_id = quote_ident(C.TRANSACTION_ID)
        integer = kind in ("SMALLINT", "INTEGER", "BIGINT")
        expressions = {
            "day": quote_ident(C.TRANSACTION_DATE),
            "id": transaction_id if integer else f"(btrim({transaction_id}::text, ' '))",
        }
        statements = [
            f"CREATE INDEX IF NOT EXISTS {quote_ident(f'{C.TRANSACTIONS}_{name}')} ON {table} ({expression})"
            for name, expression in expressions.items()
        ]
        for statement in statements:
            connection.execute(f"CALL postgres_execute({quote_literal(alias)}, {quote_literal(statement)})")
        return statements
    finally:
        if own:
            connection.close()
