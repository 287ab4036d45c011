"""The platform's DuckDB IO manager: dagster-duckdb-pandas with typed all-null text columns.

``DuckDBPandasIOManager`` creates an asset's table from the first partition written. A text column
that is null in every row of that partition (no holiday on that origin, no override yet) is an
``object`` column of ``None`` to pandas, which DuckDB types as ``NULL``; the next partition with a
value then fails with "Unimplemented type for cast (VARCHAR -> NULL)". Writing such columns as
pandas ``string`` makes DuckDB create them as ``VARCHAR``.
"""

from collections.abc import Sequence

import pandas as pd
from dagster import OutputContext
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler


def type_null_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its all-null ``object`` columns as pandas ``string`` (VARCHAR in DuckDB)."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    return frame.astype({c: "string" for c in empty}) if empty else frame


class _TypedNullsHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        super().handle_output(context, table_slice, type_null_text_columns(obj), connection)


class PlatformDuckDBIOManager(DuckDBPandasIOManager):
    """``DuckDBPandasIOManager`` that never creates a column of DuckDB type ``NULL``."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        """The pandas handler with all-null text columns typed as VARCHAR."""
        return [_TypedNullsHandler()]
