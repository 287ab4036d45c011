"""The platform's DuckDB IO manager and ``duckdb`` resource: locked connections, kill-safe partition writes.

Both open every connection through :func:`demand_platform.dbfile.connect`, under the platform lock
(``<database>.lock``) that the CLI's in-process runs, the daemon's run subprocesses and the readers all
respect: a second process waits its turn instead of failing on DuckDB's file lock.

The IO manager stores each asset as the table named after it, like ``dagster-duckdb``'s
``DuckDBPandasIOManager`` (same configuration, same table and partition addressing: ``partition_expr``
metadata, a time window per time dimension, a key list per static one; same output metadata), and
differs where the platform needs it to:

**Kill-safe partition writes.** Writing a partition deletes its rows and inserts the new ones. Stock
``dagster-duckdb`` runs them as separate autocommitted statements: a SIGKILL in between leaves the partition
empty while Dagster lists it as materialized. Here they are one DuckDB transaction, committed when the
insert returns (rolled back on an exception): a killed process leaves the previous rows. The delete checks
that the table exists instead of catching DuckDB's ``CatalogException`` (a failed statement aborts the
transaction).

**Insert by name.** The stock pandas handler inserts by position (``INSERT INTO t SELECT * FROM df``): a
frame whose columns come in another order lands in the wrong columns. Here rows are written through
:func:`demand_platform.dbfile.insert_by_name`: the table is created from the first frame, a new frame
column is added with ``ALTER TABLE ADD COLUMN``, a missing one is NULL.

**Typed all-null text columns.** A text column that is null in every row of the first partition (no
holiday on that origin, no override yet) is an ``object`` column of ``None`` to pandas, which DuckDB types
as ``NULL``; the next partition with a value then fails with "Unimplemented type for cast (VARCHAR ->
NULL)". Such columns are written as pandas ``string`` (``VARCHAR``).

Public Dagster API only: the stock IO manager's one place where the delete and the insert share a
connection is ``DbIOManager`` (a ``dagster._core`` class that ``DuckDBIOManager`` builds with a hard-coded
client), so :class:`PlatformDuckDBIOManager` is a ``dg.ConfigurableIOManagerFactory`` whose IO manager
(:class:`LockedDuckDBIOManager`, a ``dg.IOManager``) addresses tables and partitions itself, through the
public ``OutputContext`` / ``InputContext`` API.

Connections are opened without the stock ``custom_user_agent`` option: DuckDB refuses a second connection
of one process to a file with another configuration, and the domain code's nested connections
(:func:`demand_platform.dbfile.connect`) use none.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from demand_platform import dbfile, lake

_LOCK_TIMEOUT_DOC = (
    "Longest wait (seconds) for another process to release the database's platform lock; None for "
    f"${dbfile.LOCK_TIMEOUT_ENV} or {dbfile.DEFAULT_LOCK_TIMEOUT_S:.0f} s."
)
# The time format of partition bounds in SQL, as dagster-duckdb writes them.
_SQL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def type_null_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its all-null ``object`` columns as pandas ``string`` (VARCHAR in DuckDB)."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    return frame.astype({c: "string" for c in empty}) if empty else frame


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _time_clause(expr: str, window: dg.TimeWindow) -> str:
    start, end = window.start.strftime(_SQL_TIME_FORMAT), window.end.strftime(_SQL_TIME_FORMAT)
    return f"{expr} >= '{start}' AND {expr} < '{end}'"


def _keys_clause(expr: str, keys: Sequence[str]) -> str:
    return f"{expr} in ({', '.join(_quote(k) for k in keys)})"


@dataclass(frozen=True)
class DuckDBTable:
    """Where an output is stored: ``schema.table``, narrowed to its partitions.

    Attributes:
        database: Path of the DuckDB database.
        schema: Schema of the table.
        table: Table name (the asset key's last part).
        where: SQL condition selecting the partitions (None: the whole table).
        columns: Columns to load (None: all).
    """

    database: str
    schema: str
    table: str
    where: str | None = None
    columns: Sequence[str] | None = None

    @property
    def qualified_name(self) -> str:
        """``database.schema.table`` (the ``dagster/table_name`` metadata; a lake's catalog as attached)."""
        database = lake.LAKE_ALIAS if lake.is_lake(self.database) else self.database
        return f"{database}.{self.schema}.{self.table}"

    def select_statement(self) -> str:
        """The query reading the slice."""
        cols = ", ".join(self.columns) if self.columns else "*"
        query = f"SELECT {cols} FROM {self.schema}.{self.table}"
        return query if self.where is None else f"{query} WHERE\n{self.where}"

    def delete_statement(self) -> str:
        """The statement deleting the slice's rows."""
        query = f"DELETE FROM {self.schema}.{self.table}"
        return query if self.where is None else f"{query} WHERE\n{self.where}"


def _multi_key(partitions_def: dg.MultiPartitionsDefinition, key: str) -> dg.MultiPartitionKey:
    return key if isinstance(key, dg.MultiPartitionKey) else partitions_def.get_partition_key_from_str(key)


def _key_order(partitions_def: dg.PartitionsDefinition) -> Any:
    """Sort key of one dimension's partition keys in the dimension's own order."""
    position = {key: i for i, key in enumerate(partitions_def.get_partition_keys())}
    return position.__getitem__


def _partition_where(context: dg.OutputContext | dg.InputContext, partition_expr: Any) -> str:
    """The SQL condition selecting the context's partitions (``partition_expr``: column per dimension)."""
    partitions_def = context.asset_partitions_def
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        # The run's partitions form a box (every day of a range x every warehouse of a range). Dagster
        # gives a box of several days x several warehouses as more than one key range, so the box is
        # read from its keys.
        keys = [_multi_key(partitions_def, k) for k in context.asset_partition_keys]
        per_dim = {
            dim.name: sorted(
                {k.keys_by_dimension[dim.name] for k in keys}, key=_key_order(dim.partitions_def)
            )
            for dim in partitions_def.partitions_defs
        }
        if len(keys) != len(set(keys)) or len(keys) != math.prod(len(v) for v in per_dim.values()):
            raise ValueError(
                f"asset '{context.asset_key}': the run's partitions are not a box of days x warehouses"
            )
        clauses = []
        for dim in partitions_def.partitions_defs:
            start, end = per_dim[dim.name][0], per_dim[dim.name][-1]
            expr = partition_expr.get(dim.name) if isinstance(partition_expr, Mapping) else None
            if expr is None:
                raise ValueError(
                    f"Asset '{context.asset_key}' has partition {dim.name}, but the 'partition_expr' "
                    f"metadata does not contain a {dim.name} entry, so we don't know what column to "
                    f"filter it on."
                )
            dim_def = dim.partitions_def
            if isinstance(dim_def, dg.TimeWindowPartitionsDefinition):
                spanned = dim_def.get_partition_keys_in_range(dg.PartitionKeyRange(start=start, end=end))
                if len(spanned) != len(per_dim[dim.name]):
                    raise ValueError(f"asset '{context.asset_key}': the run's {dim.name} keys have gaps")
                window = dg.TimeWindow(
                    dim_def.time_window_for_partition_key(start).start,
                    dim_def.time_window_for_partition_key(end).end,
                )
                clauses.append(_time_clause(expr, window))
            else:
                clauses.append(_keys_clause(expr, per_dim[dim.name]))
        return " AND\n".join(clauses)
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition) and context.asset_partition_keys:
        return _time_clause(str(partition_expr), context.asset_partitions_time_window)
    return _keys_clause(str(partition_expr), context.asset_partition_keys)


def _check_frame_type(obj_type: Any) -> None:
    if not (isinstance(obj_type, type) and issubclass(obj_type, pd.DataFrame)):
        raise dg.DagsterInvariantViolationError(
            f"PlatformDuckDBIOManager stores and loads pandas DataFrames only, not '{obj_type}'."
        )


class LockedDuckDBIOManager(dg.IOManager):
    """Stores each asset as a DuckDB table, a partition rewrite being one transaction under the lock.

    Args:
        database: Path of the DuckDB database.
        schema: Default schema (after the output's ``schema`` metadata, before the asset key prefix).
        connection_config: DuckDB configuration options.
        lock_timeout_s: Longest wait for the platform lock; None for the default.
    """

    def __init__(
        self,
        database: str,
        schema: str | None = None,
        connection_config: Mapping[str, Any] | None = None,
        lock_timeout_s: float | None = None,
    ) -> None:
        self.database = database
        self.schema = schema
        self.connection_config = dict(connection_config or {})
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with dbfile.connect(
            self.database, timeout_s=self.lock_timeout_s, config=self.connection_config
        ) as con:
            yield con

    def table_for(self, context: dg.OutputContext | dg.InputContext, output: dg.OutputContext) -> DuckDBTable:
        """The table (and partitions) of ``context``, addressed as ``dagster-duckdb`` does.

        Args:
            context: The output, or the input loading it.
            output: The output's context (its definition metadata holds ``schema`` and ``partition_expr``).

        Returns:
            The table: the asset key's last part; schema from the ``schema`` metadata, else the IO
            manager's, else the key prefix, else ``public``.
        """
        metadata = output.definition_metadata or {}
        columns = (context.definition_metadata or {}).get("columns")
        default_schema = metadata.get("schema") or self.schema
        if not context.has_asset_key:
            table = str(metadata.get("table") or output.name)
            return DuckDBTable(self.database, str(default_schema or "public"), table, None, columns)
        path = context.asset_key.path
        schema = default_schema or (path[-2] if len(path) > 1 else "public")
        where = None
        if context.has_asset_partitions:
            partition_expr = metadata.get("partition_expr")
            if partition_expr is None:
                raise ValueError(
                    f"Asset '{context.asset_key}' has partitions, but no 'partition_expr' metadata value, "
                    "so we don't know what column it's partitioned on."
                )
            where = _partition_where(context, partition_expr)
        return DuckDBTable(self.database, str(schema), path[-1], where, columns)

    def write_rows(
        self, context: dg.OutputContext, table: DuckDBTable, obj: pd.DataFrame, connection
    ) -> None:
        """Insert ``obj`` into ``table`` by column name (in the transaction that deleted its partition)."""
        if obj.empty:
            context.log.warning(
                "Skipping DuckDB write for empty DataFrame. An empty table will not be created."
            )
        else:
            dbfile.insert_by_name(connection, table.table, type_null_text_columns(obj), table.schema)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        """Replace the output's partition (or table) with ``obj``: delete and insert in one transaction."""
        if obj is None:
            raise dg.DagsterInvariantViolationError(
                "Unexpected 'None' output value. If a 'None' value is intentional, set the output type "
                "to None by adding return type annotation '-> None'."
            )
        _check_frame_type(type(obj))
        table = self.table_for(context, context)

        def replace(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"create schema if not exists {table.schema};")
            ((exists,),) = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $s AND table_name = $t",
                {"s": table.schema, "t": table.table},
            ).fetchall()
            if exists:
                con.execute(table.delete_statement())
            self.write_rows(context, table, obj, con)

        with self._connect() as con:
            # One transaction, retried when another machine's writer conflicts with it (a lake).
            dbfile.write_transaction(con, replace)
        # The stock IO manager's metadata (keys as dagster-duckdb writes them).
        rows = int(obj.shape[0])
        context.add_output_metadata(
            {
                ("dagster/partition_row_count" if context.has_partition_key else "dagster/row_count"): rows,
                "dagster/storage_kind": "ducklake" if lake.is_lake(self.database) else "duckdb",
                "dataframe_columns": dg.MetadataValue.table_schema(
                    dg.TableSchema(
                        columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in obj.dtypes.items()]
                    )
                ),
                "Query": table.select_statement(),
            }
        )
        with suppress(dg.DagsterError):  # the asset set its own table name
            context.add_output_metadata({"dagster/table_name": table.qualified_name})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """The upstream output's rows of the input's partitions, as a DataFrame."""
        load_type = context.dagster_type.typing_type
        _check_frame_type(pd.DataFrame if load_type is Any else load_type)
        upstream = context.upstream_output
        if upstream is None:
            raise dg.DagsterInvariantViolationError(f"input {context.name} has no upstream output to load")
        table = self.table_for(context, upstream)
        if table.where is not None and not context.asset_partition_keys:
            return pd.DataFrame()
        with self._connect() as con:
            return con.execute(table.select_statement()).fetchdf()


class PlatformDuckDBIOManager(dg.ConfigurableIOManagerFactory):
    """The platform's IO manager: locked connections, one-transaction partition writes by column name.

    Configured like ``dagster-duckdb``'s ``DuckDBPandasIOManager``.

    Attributes:
        database: Path to the DuckDB database.
        connection_config: DuckDB connection configuration options.
        schema_: Schema of the tables (configured as ``schema``).
        lock_timeout_s: Longest wait for the platform lock; None for the default (one hour).
    """

    database: str = Field(description="Path to the DuckDB database.")
    connection_config: dict[str, Any] = Field(
        default={},
        description="DuckDB connection configuration options. See https://duckdb.org/docs/sql/configuration.html",
    )
    schema_: str | None = Field(default=None, alias="schema", description="Name of the schema to use.")
    lock_timeout_s: float | None = Field(default=None, description=_LOCK_TIMEOUT_DOC)

    def create_io_manager(self, context: dg.InitResourceContext) -> LockedDuckDBIOManager:
        """The IO manager of a run."""
        return LockedDuckDBIOManager(
            database=self.database,
            schema=self.schema_,
            connection_config=self.connection_config,
            lock_timeout_s=self.lock_timeout_s,
        )


class PlatformDuckDBResource(DuckDBResource):
    """``DuckDBResource`` whose connections hold the platform lock (:func:`demand_platform.dbfile.connect`).

    ``get_connection()`` waits for another process's connection to close instead of failing on DuckDB's
    file lock, and may be nested in one process (same ``read_only``).

    Attributes:
        lock_timeout_s: Longest wait for the platform lock; None for the default (one hour).
    """

    lock_timeout_s: float | None = Field(default=None, description=_LOCK_TIMEOUT_DOC)

    @contextmanager
    def get_connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the database under the platform lock, closed (and the lock released) on exit.

        Args:
            read_only: Open read-only.
        """
        with dbfile.connect(
            self.database, read_only=read_only, timeout_s=self.lock_timeout_s, config=self.connection_config
        ) as con:
            yield con
