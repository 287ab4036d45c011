"""The platform's DuckDB IO manager and ``duckdb`` resource: locked connections, kill-safe partition writes.

Both open every connection through :func:`demand_platform.dbfile.connect`, under the platform lock
(``<database>.lock``) that the CLI's in-process runs, the daemon's run subprocesses and the readers all
respect: a second process waits its turn instead of failing on DuckDB's file lock.

**Kill-safe partition writes.** Dagster's ``DbIOManager.handle_output`` opens a connection, deletes the
output's partition (``DbClient.delete_table_slice``) and lets the type handler insert the new rows. Stock
``dagster-duckdb`` runs them as separate autocommitted statements: a SIGKILL in between leaves the partition
empty while Dagster lists it as materialized. Here the client's ``connect`` opens a transaction for an
output (``OutputContext``) and commits it when the handler returns (rolls back on an exception), so the
delete and the insert are one DuckDB transaction; a killed process leaves the previous rows. The delete
checks that the table exists instead of catching DuckDB's ``CatalogException`` (a failed statement aborts
the transaction).

**Insert by name.** The stock pandas handler inserts by position (``INSERT INTO t SELECT * FROM df``): a
frame whose columns come in another order lands in the wrong columns. The handler here writes through
:func:`demand_platform.dbfile.insert_by_name`: the table is created from the first frame, a new frame
column is added with ``ALTER TABLE ADD COLUMN``, a missing one is NULL.

**Typed all-null text columns.** A text column that is null in every row of the first partition (no
holiday on that origin, no override yet) is an ``object`` column of ``None`` to pandas, which DuckDB types
as ``NULL``; the next partition with a value then fails with "Unimplemented type for cast (VARCHAR ->
NULL)". Such columns are written as pandas ``string`` (``VARCHAR``).

Why internals: the only place where the delete and the insert share a connection is
``dagster._core.storage.db_io_manager.DbIOManager.handle_output``, and ``DuckDBIOManager.create_io_manager``
hard-codes the stock client; so :class:`PlatformDuckDBIOManager` overrides ``create_io_manager`` to build the
same ``DbIOManager`` (a ``dagster._core`` class, as ``dagster-duckdb`` itself does) with
:class:`LockedTransactionalDuckDbClient`. All of it stays in this file.

Connections are opened without the stock ``custom_user_agent`` option: DuckDB refuses a second connection
of one process to a file with another configuration, and the domain code's nested connections
(:func:`demand_platform.dbfile.connect`) use none.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import duckdb
import pandas as pd
from dagster import InputContext, MetadataValue, OutputContext, TableColumn, TableSchema
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler
from pydantic import Field

from demand_platform import dbfile

_LOCK_TIMEOUT_DOC = (
    "Longest wait (seconds) for another process to release the database's platform lock; None for "
    f"${dbfile.LOCK_TIMEOUT_ENV} or {dbfile.DEFAULT_LOCK_TIMEOUT_S:.0f} s."
)


def type_null_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its all-null ``object`` columns as pandas ``string`` (VARCHAR in DuckDB)."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    return frame.astype({c: "string" for c in empty}) if empty else frame


class PlatformPandasTypeHandler(DuckDBPandasTypeHandler):
    """The pandas handler, inserting by column name with all-null text columns typed VARCHAR.

    Loading is the stock handler's. Writing runs in the connection's transaction opened by
    :class:`LockedTransactionalDuckDbClient`.
    """

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> None:
        """Insert ``obj`` into the slice's table by column name (the partition was deleted just before)."""
        if obj.empty:
            context.log.warning(
                "Skipping DuckDB write for empty DataFrame. An empty table will not be created."
            )
        else:
            dbfile.insert_by_name(
                connection, table_slice.table, type_null_text_columns(obj), table_slice.schema
            )
        # The stock handler's metadata.
        context.add_output_metadata(
            {
                **(
                    TableMetadataSet(partition_row_count=obj.shape[0], storage_kind="duckdb")
                    if context.has_partition_key
                    else TableMetadataSet(row_count=obj.shape[0], storage_kind="duckdb")
                ),
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(
                        columns=[TableColumn(name=str(n), type=str(t)) for n, t in obj.dtypes.items()]
                    )
                ),
            }
        )


class LockedTransactionalDuckDbClient(DuckDbClient):
    """``DuckDbClient`` whose connections hold the platform lock and whose outputs are one transaction."""

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        """Delete the slice's rows when the table exists (inside the output's transaction)."""
        ((exists,),) = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $s AND table_name = $t",
            {"s": table_slice.schema, "t": table_slice.table},
        ).fetchall()
        if exists:
            DuckDbClient.delete_table_slice(context, table_slice, connection)

    @staticmethod
    @contextmanager
    def connect(context: OutputContext | InputContext, _: TableSlice) -> Iterator[duckdb.DuckDBPyConnection]:
        """A locked read-write connection; for an output, inside a transaction committed on success."""
        config: Mapping[str, Any] = context.resource_config or {}
        with dbfile.connect(
            config["database"], timeout_s=config.get("lock_timeout_s"), config=config.get("connection_config")
        ) as con:
            if not isinstance(context, OutputContext):
                yield con
                return
            con.begin()
            try:
                yield con
            except BaseException:
                with suppress(duckdb.Error):  # closing discards the transaction anyway
                    con.rollback()
                raise
            con.commit()


class PlatformDuckDBIOManager(DuckDBPandasIOManager):
    """``DuckDBPandasIOManager`` with locked connections, one-transaction partition writes by column name.

    Attributes:
        lock_timeout_s: Longest wait for the platform lock; None for the default (one hour).
    """

    lock_timeout_s: float | None = Field(default=None, description=_LOCK_TIMEOUT_DOC)

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        """The pandas handler inserting by name, all-null text columns typed as VARCHAR."""
        return [PlatformPandasTypeHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        """The stock ``DbIOManager`` with :class:`LockedTransactionalDuckDbClient` as its client."""
        return DbIOManager(
            db_client=LockedTransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="DuckDBIOManager",
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
