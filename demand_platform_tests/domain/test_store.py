"""``demand_platform.store``: history reads from DuckDB (no Dagster)."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.store import load_history


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a small raw_sales table: 2 warehouses x 3 SKUs x 10 days, one NULL SKU."""
    days = pd.date_range("2024-01-01", periods=10)
    rows = [
        (sku, wh, day, float(i), 2.0 * i, i % 3)
        for wh in ("W1", "W2")
        for sku in ("A", "B", "C")
        for i, day in enumerate(days)
    ]
    rows.append((None, "W1", days[4], 1.0, 1.0, 1))
    frame = pd.DataFrame(rows, columns=list(C.RAW_SALES_COLUMNS))
    connection = duckdb.connect()
    connection.register("_frame", frame)
    connection.execute("CREATE TABLE raw_sales AS SELECT * FROM _frame")
    connection.unregister("_frame")
    return connection


def test_load_history_is_the_plain_read_of_the_window(con: duckdb.DuckDBPyConnection) -> None:
    """Same frame as DuckDB's .df() of the filtered rows (values, dtypes, NULL text as None)."""
    start, end = dt.date(2024, 1, 3), dt.date(2024, 1, 7)
    got = load_history(con, ["W1"], start, end)
    expected = con.execute(
        "SELECT * FROM raw_sales WHERE warehouse_id = 'W1' AND date BETWEEN '2024-01-03' AND '2024-01-07'"
    ).df()
    expected[C.DATE] = expected[C.DATE].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == 3 * 5 + 1
    assert got[C.SKU].dtype == object and got[C.WAREHOUSE_ID].dtype == object
    assert got[C.SKU].isna().sum() == 1  # the NULL SKU stays NULL, not another SKU's code
    assert set(got[C.SKU].dropna()) == {"A", "B", "C"}


def test_load_history_of_several_warehouses_and_of_nothing(con: duckdb.DuckDBPyConnection) -> None:
    both = load_history(con, ["W1", "W2"], dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert sorted(both[C.WAREHOUSE_ID].unique()) == ["W1", "W2"] and len(both) == 61
    none = load_history(con, ["W9"], dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert none.empty and list(none.columns) == list(C.RAW_SALES_COLUMNS)
    missing = load_history(duckdb.connect(), ["W1"], dt.date(2024, 1, 1), dt.date(2024, 1, 10))
    assert missing.empty and list(missing.columns) == list(C.RAW_SALES_COLUMNS)
    assert np.issubdtype(both[C.QUANTITY].dtype, np.floating)
