"""``demand_platform.store``: reads of the platform's tables from DuckDB (no Dagster)."""

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.exceptions import (
    EXCEPTION,
    EXCEPTION_COLUMNS,
    EXCEPTION_DTYPES,
    KIND_BIAS,
    MONEY_AT_RISK,
    RANK,
    UNIT_PRICE,
    UNITS_AT_RISK,
)
from demand_platform.forecasting.donors import POOL_LAG_DAYS, choose_donor_series
from demand_platform.reporting import REPORT_COLUMNS
from demand_platform.store import (
    accuracy_summary,
    load_history,
    load_pool_history,
    quarantine_summary,
    read_exceptions,
    read_overridden_forecasts,
    read_partition,
    read_sku_forecasts,
    read_sku_history,
    table_row_counts,
    write_exceptions,
)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a small raw_sales table: 2 warehouses x 3 SKUs x 10 days, one NULL SKU."""
    days = pd.date_range("2024-01-01", periods=10)
    rows: list[tuple[str | None, str, pd.Timestamp, float, float, int]] = [
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
    assert pd.api.types.is_float_dtype(both[C.QUANTITY])


def test_pool_history_reads_the_chosen_series_of_the_other_warehouses(con: duckdb.DuckDBPyConnection) -> None:
    """The series choose_donor_series picks among the other warehouses', their rows from the window's start
    to the day before the training date."""
    late = pd.DataFrame(
        [
            (sku, "W3", day, 1.0, 1.0, 1)
            for sku in ("A", "B")
            for day in pd.date_range("2024-01-01", periods=9)
        ],
        columns=list(C.RAW_SALES_COLUMNS),
    )
    con.register("_late", late)
    con.execute("INSERT INTO raw_sales SELECT * FROM _late")
    start, train_date = dt.date(2024, 1, 3), dt.date(2024, 1, 11)
    got = load_pool_history(con, "W1", start, train_date, n_series=2)
    # W3 has no row on the window's last day (behind): it is left out rather than read with a hole.
    candidates = pd.DataFrame({C.SKU: ["A", "B", "C"], C.WAREHOUSE_ID: "W2"})
    chosen = choose_donor_series(candidates, 2, "W1")
    assert sorted(got[C.SKU].unique()) == sorted(chosen[C.SKU]) and set(got[C.WAREHOUSE_ID]) == {"W2"}
    assert len(got) == 2 * 8 and got[C.DATE].min() == pd.Timestamp(start)
    assert got[C.DATE].max() == pd.Timestamp(train_date) - pd.Timedelta(days=POOL_LAG_DAYS)
    assert list(got.columns) == list(C.RAW_SALES_COLUMNS)
    # Trained a day earlier, the window ends on W3's last day: W3 takes part.
    every = load_pool_history(con, "W1", start, dt.date(2024, 1, 10), n_series=10)
    assert set(every[C.WAREHOUSE_ID]) == {"W2", "W3"} and every[C.SKU].notna().all()
    assert every[C.DATE].max() == pd.Timestamp("2024-01-09")
    assert load_pool_history(con, "W1", start, train_date, n_series=0).empty
    assert load_pool_history(duckdb.connect(), "W1", start, train_date, n_series=5).empty


def _store(path: Path, tables: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """A DuckDB file at ``path`` holding each frame as a table of its name."""
    connection = duckdb.connect(str(path))
    for name, frame in tables.items():
        connection.register("_frame", frame)
        connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _frame')
        connection.unregister("_frame")
    return connection


def _tiers() -> pd.DataFrame:
    """tier_assignments-like rows: 2 origins x 2 warehouses, 2 SKUs each (W2 on the 2nd origin has 1)."""
    rows = [
        (sku, wh, pd.Timestamp(day), tier)
        for day in ("2024-01-05", "2024-01-06")
        for wh in ("W1", "W2")
        for tier, sku in enumerate(("A", "B"), start=1)
        if not (day == "2024-01-06" and wh == "W2" and sku == "B")
    ]
    return pd.DataFrame(rows, columns=[C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.TIER])


def test_read_partition_returns_the_rows_of_one_origin_and_warehouse(tmp_path: Path) -> None:
    con = _store(tmp_path / "w.duckdb", {C.TIER_ASSIGNMENTS: _tiers()})
    got = read_partition(con, C.TIER_ASSIGNMENTS, dt.date(2024, 1, 6), "W2")
    assert got[[C.SKU, C.WAREHOUSE_ID, C.TIER]].values.tolist() == [["A", "W2", 1]]
    assert list(got[C.ORIGIN_DATE]) == [pd.Timestamp("2024-01-06")]
    both = read_partition(con, C.TIER_ASSIGNMENTS, dt.date(2024, 1, 5), "W1")
    assert list(both.columns) == [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.TIER]
    assert sorted(both[C.SKU]) == ["A", "B"] and set(both[C.WAREHOUSE_ID]) == {"W1"}


def test_read_partition_of_an_empty_partition_names_table_and_partition(tmp_path: Path) -> None:
    con = _store(tmp_path / "w.duckdb", {C.TIER_ASSIGNMENTS: _tiers()})
    with pytest.raises(ValueError, match=r"^tier_assignments has no rows for partition 2024-01-07\|W1: "):
        read_partition(con, C.TIER_ASSIGNMENTS, dt.date(2024, 1, 7), "W1")
    with pytest.raises(ValueError, match=r"partition 2024-01-05\|W9"):
        read_partition(con, C.TIER_ASSIGNMENTS, dt.date(2024, 1, 5), "W9")
    # A table never materialized is DuckDB's own error, naming the table.
    with pytest.raises(duckdb.CatalogException, match=C.FORECASTS):
        read_partition(con, C.FORECASTS, dt.date(2024, 1, 5), "W1")


def _report_rows() -> pd.DataFrame:
    """accuracy_report rows of 2 days x 2 warehouses: overall, two tiers and one category row each."""
    rows = []
    for day in ("2024-01-05", "2024-01-06"):
        for w, wh in enumerate(("W2", "W1")):  # stored out of order
            for table, group in (("tier", "2"), ("category", "toys"), ("overall", "all"), ("tier", "1")):
                value = 0.1 * (w + 1) + (0.5 if day == "2024-01-06" else 0.0)
                rows.append((pd.Timestamp(day), wh, table, group, value, 1.0, 2.0, -value, 0.9, 0.95, 10 + w))
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def test_accuracy_summary_is_the_overall_and_tier_rows_of_the_day(tmp_path: Path) -> None:
    con = _store(tmp_path / "w.duckdb", {C.ACCURACY_REPORT: _report_rows()})
    got = accuracy_summary(con, dt.date(2024, 1, 5))
    assert list(got.columns) == [
        "warehouse_id",
        "table",
        "group",
        "wmape",
        "bias",
        "coverage_p90",
        "coverage_p95",
        "n_obs",
    ]
    assert got[["warehouse_id", "table", "group"]].values.tolist() == [
        ["W1", "overall", "all"],
        ["W1", "tier", "1"],
        ["W1", "tier", "2"],
        ["W2", "overall", "all"],
        ["W2", "tier", "1"],
        ["W2", "tier", "2"],
    ]
    assert got["wmape"].tolist() == pytest.approx([0.2] * 3 + [0.1] * 3)  # the 5th's, not the 6th's
    assert got["bias"].tolist() == pytest.approx([-0.2] * 3 + [-0.1] * 3)
    assert got["n_obs"].tolist() == [11] * 3 + [10] * 3
    assert accuracy_summary(con, dt.date(2024, 1, 7)).empty


def test_accuracy_summary_without_a_report_table_is_empty(tmp_path: Path) -> None:
    con = _store(tmp_path / "w.duckdb", {C.TIER_ASSIGNMENTS: _tiers()})
    got = accuracy_summary(con, dt.date(2024, 1, 5))
    assert got.empty and list(got.columns) == []


def _quarantine() -> pd.DataFrame:
    """Quarantined rows: 3 x (transactions, bad date), 2 x (transactions, bad qty), 2 x (products, dup)."""
    reasons = (
        [("transactions", "bad date")] * 3 + [("products", "dup")] * 2 + [("transactions", "bad qty")] * 2
    )
    return pd.DataFrame(
        [(table, "W1", pd.Timestamp("2024-01-05"), reason, "{}", "audit") for table, reason in reasons],
        columns=list(C.QUARANTINE_COLUMNS),
    )


def test_quarantine_summary_counts_rows_by_table_and_reason(tmp_path: Path) -> None:
    con = _store(tmp_path / "w.duckdb", {C.QUARANTINE: _quarantine()})
    got = quarantine_summary(con)
    assert list(got.columns) == [C.SOURCE_TABLE, C.REASON, "rows"]
    assert got.values.tolist() == [
        ["transactions", "bad date", 3],
        ["products", "dup", 2],
        ["transactions", "bad qty", 2],
    ]
    empty = quarantine_summary(_store(tmp_path / "empty.duckdb", {}))
    assert empty.empty and list(empty.columns) == []


def test_table_row_counts_counts_every_table_by_sorted_name(tmp_path: Path) -> None:
    con = _store(
        tmp_path / "w.duckdb",
        {C.TIER_ASSIGNMENTS: _tiers(), C.QUARANTINE: _quarantine(), C.ACCURACY_REPORT: _report_rows()},
    )
    con.execute("CREATE TABLE forecasts (sku VARCHAR)")
    got = table_row_counts(con)
    assert list(got.items()) == [
        (C.ACCURACY_REPORT, 16),
        (C.FORECASTS, 0),
        (C.QUARANTINE, 7),
        (C.TIER_ASSIGNMENTS, 7),
    ]
    assert table_row_counts(_store(tmp_path / "empty.duckdb", {})) == {}


# --- exceptions and the reads of one SKU ---------------------------------------------------------------------------
def _exceptions(day: str, warehouse: str, skus: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.ORIGIN_DATE: pd.Timestamp(day),
            C.WAREHOUSE_ID: warehouse,
            RANK: np.arange(1, len(skus) + 1, dtype=np.int64),
            C.SKU: skus,
            EXCEPTION: KIND_BIAS,
            UNITS_AT_RISK: 1.0,
            UNIT_PRICE: np.nan,
            MONEY_AT_RISK: np.nan,
            C.REASON: "r",
        }
    ).astype(EXCEPTION_DTYPES)


def test_write_exceptions_replaces_the_day_and_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    day = dt.date(2024, 1, 5)
    assert read_exceptions(con, day).empty  # no table yet
    write_exceptions(con, _exceptions("2024-01-05", "W1", ["A", "B"]), day, "W1")
    write_exceptions(con, _exceptions("2024-01-05", "W2", ["C"]), day, "W2")
    write_exceptions(con, _exceptions("2024-01-06", "W1", ["D"]), dt.date(2024, 1, 6), "W1")
    write_exceptions(con, _exceptions("2024-01-05", "W1", ["E"]), day, "W1")  # replaces A and B
    assert read_exceptions(con, day)[C.SKU].tolist() == ["E", "C"]
    got = read_exceptions(con, day, "W1")
    pd.testing.assert_frame_equal(got, _exceptions("2024-01-05", "W1", ["E"]))
    write_exceptions(con, _exceptions("2024-01-05", "W1", [])[list(EXCEPTION_COLUMNS)], day, "W1")
    assert read_exceptions(con, day, "W1").empty and len(read_exceptions(con, day, "W2")) == 1


def test_reads_of_one_sku(con: duckdb.DuckDBPyConnection) -> None:
    history = read_sku_history(con, "B", "W2", dt.date(2024, 1, 3), dt.date(2024, 1, 5))
    assert history[C.DATE].tolist() == list(pd.date_range("2024-01-03", "2024-01-05"))
    assert set(history[C.SKU]) == {"B"} and set(history[C.WAREHOUSE_ID]) == {"W2"}
    assert history[C.QUANTITY].tolist() == [2.0, 3.0, 4.0]  # day i holds i
    assert read_sku_forecasts(con, "A", "W1", dt.date(2024, 1, 1)).empty  # no forecasts table
    assert read_overridden_forecasts(con, "W1", dt.date(2024, 1, 1)) is None
    h = np.arange(1, 4)
    rows = pd.DataFrame(
        {
            C.SKU: np.repeat(["A", "B"], 3),
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: pd.Timestamp("2024-01-05"),
            C.TARGET_DATE: pd.Timestamp("2024-01-05") + pd.to_timedelta(np.tile(h, 2), unit="D"),
            C.HORIZON: np.tile(h, 2),
            C.FORECAST: np.arange(6, dtype=np.float64),
            "override_applied": [False, True, False, False, False, False],
        }
    )
    con.register("_f", pd.concat([rows, rows.assign(**{C.ORIGIN_DATE: pd.Timestamp("2024-01-04")})]))
    con.execute("CREATE TABLE forecasts AS SELECT * FROM _f")
    one = read_sku_forecasts(con, "A", "W1", dt.date(2024, 1, 5))
    assert one[C.HORIZON].tolist() == [1, 2, 3] and one[C.FORECAST].tolist() == [0.0, 1.0, 2.0]
    assert "override_applied" in one.columns and one[C.TARGET_DATE].dtype == "datetime64[ns]"
    overridden = read_overridden_forecasts(con, "W1", dt.date(2024, 1, 5))
    assert overridden is not None and overridden[[C.SKU, C.HORIZON]].values.tolist() == [["A", 2]]
