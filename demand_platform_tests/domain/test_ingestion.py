"""Source validation and raw_sales building, without Dagster: every bad-input class is kept aside."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandera import errors as pa_errors

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform.quarantine import read_quarantine, replace_quarantine
from demand_platform.schemas import RawSalesModel
from demand_platform_tests.conftest import DAYS, START, good_transactions, write_tiny_source

D0 = START
D1 = START + dt.timedelta(days=DAYS - 1)


def _ingest(src: Path, start: dt.date = D0, end: dt.date = D1, warehouses: list[str] | None = None):
    products = source.load_table(src, C.PRODUCTS).valid
    wh = source.load_table(src, C.WAREHOUSES).valid
    if warehouses is not None:
        wh = wh[wh[C.WAREHOUSE_ID].isin(warehouses)]
    return ingestion.ingest_sales(src, products, wh, start, end)


def _with_bad_line(**overrides) -> pd.DataFrame:
    good = good_transactions()
    bad = good.iloc[[0]].copy()
    bad[C.TRANSACTION_ID] = "bad-1"
    for column, value in overrides.items():
        bad[column] = value
    return pd.concat([good, bad], ignore_index=True)


def test_zero_rows_for_active_skus_and_launch_dates(tiny_source: Path) -> None:
    sales = _ingest(tiny_source).raw_sales
    # A and B every day in both warehouses; C only from its launch on day 3 (Jan 3).
    assert len(sales) == 2 * (2 * DAYS + (DAYS - 2))
    c_days = sales.loc[sales[C.SKU] == "C", C.DATE]
    assert c_days.min() == pd.Timestamp("2024-01-03")
    assert not sales.duplicated([C.SKU, C.WAREHOUSE_ID, C.DATE]).any()
    # B sells only in W2; W1 has explicit zero rows for it.
    b_w1 = sales[(sales[C.SKU] == "B") & (sales[C.WAREHOUSE_ID] == "W1")]
    assert len(b_w1) == DAYS and (b_w1[C.QUANTITY] == 0).all()


def test_returns_net_against_sales_of_their_day(tiny_source: Path) -> None:
    sales = _ingest(tiny_source).raw_sales.set_index([C.SKU, C.WAREHOUSE_ID, C.DATE])
    assert sales.loc[("A", "W1", pd.Timestamp("2024-01-02")), C.QUANTITY] == 2 - 1
    assert sales.loc[("A", "W1", pd.Timestamp("2024-01-02")), C.REVENUE] == 4.0 - 2.0
    assert sales.loc[("A", "W1", pd.Timestamp("2024-01-03")), C.QUANTITY] == 2
    # n_orders counts orders with a sale, not the return.
    assert sales.loc[("A", "W1", pd.Timestamp("2024-01-02")), C.N_ORDERS] == 1


def test_revenue_of_a_day_does_not_depend_on_the_order_of_its_lines(tmp_path: Path) -> None:
    """A day's revenue is the exact sum of its lines in any order (a float sum over DuckDB's parallel
    GROUP BY depends on the order it meets them: the same source gave different revenues from run to run)."""
    day = pd.Timestamp(START) + pd.Timedelta(days=4)
    cents = [0.1, 0.2, 0.3]  # (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3) in floating point
    extra = pd.DataFrame(
        [(f"x{i}", "C", "W1", day, 1, value, "c3", f"x{i}") for i, value in enumerate(cents)],
        columns=list(C.TRANSACTION_COLUMNS),
    )
    revenues = []
    for name, order in (("forward", [0, 1, 2]), ("backward", [2, 1, 0])):
        lines = pd.concat([good_transactions(), extra.iloc[order]], ignore_index=True)
        sales = _ingest(write_tiny_source(tmp_path / name, lines)).raw_sales.set_index(
            [C.SKU, C.WAREHOUSE_ID, C.DATE]
        )
        revenues.append(sales.loc[("C", "W1", day), C.REVENUE])
    assert revenues[0] == revenues[1] == 0.6


def test_slice_reads_only_its_box(tiny_source: Path) -> None:
    sales = _ingest(tiny_source, dt.date(2024, 1, 4), dt.date(2024, 1, 5), ["W2"]).raw_sales
    assert set(sales[C.WAREHOUSE_ID]) == {"W2"}
    assert set(sales[C.DATE].dt.date) == {dt.date(2024, 1, 4), dt.date(2024, 1, 5)}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({C.TRANSACTION_ID: "t0a"}, "duplicate transaction_id"),
        ({C.SKU: "NOPE"}, "unknown sku"),
        ({C.SKU: None}, "null sku"),
        ({C.TRANSACTION_ID: None}, "null transaction_id"),
        ({C.QUANTITY: 5_000_000}, "absurd quantity"),
        ({C.QUANTITY: -5_000_000}, "absurd quantity"),
    ],
)
def test_bad_lines_are_quarantined_and_valid_lines_flow(tmp_path: Path, overrides: dict, reason: str) -> None:
    src = write_tiny_source(tmp_path / "src", _with_bad_line(**overrides))
    result = _ingest(src)
    clean = _ingest(write_tiny_source(tmp_path / "clean"))
    pd.testing.assert_frame_equal(result.raw_sales, clean.raw_sales)  # valid data flows unchanged
    assert len(result.quarantine) == 1
    row = result.quarantine.iloc[0]
    assert reason in row[C.REASON]
    assert row[C.SOURCE_TABLE] == C.TRANSACTIONS
    assert row[C.WAREHOUSE_ID] == "W1"
    assert pd.Timestamp(row[C.PARTITION_DATE]) == pd.Timestamp(START)
    assert json.loads(row[C.ORIGINAL_ROW])[C.TRANSACTION_ID] == overrides.get(C.TRANSACTION_ID, "bad-1")
    counts = result.lines_per_date
    assert counts["rejected"].sum() == 1 and result.n_lines == clean.n_lines + 1


def test_duplicate_in_another_partition_is_caught(tmp_path: Path) -> None:
    # The duplicate of t0a (Jan 1, W1) sits on Jan 5 in W2: a different partition and slice.
    lines = _with_bad_line(**{C.TRANSACTION_ID: "t0a", C.WAREHOUSE_ID: "W2"})
    lines.loc[lines.index[-1], C.TRANSACTION_DATE] = pd.Timestamp("2024-01-05")
    src = write_tiny_source(tmp_path / "src", lines)
    only_w2 = _ingest(src, dt.date(2024, 1, 5), dt.date(2024, 1, 5), ["W2"])
    assert list(only_w2.quarantine[C.REASON]) == ["duplicate transaction_id"]
    only_w1 = _ingest(src, D0, D0, ["W1"])
    assert only_w1.quarantine.empty  # the first occurrence is kept


def test_unparseable_values_in_csv_are_quarantined(tmp_path: Path) -> None:
    lines = good_transactions().astype(object)
    bad = lines.iloc[[0, 0, 0]].copy()
    bad[C.TRANSACTION_ID] = ["x1", "x2", "x3"]
    bad[C.QUANTITY] = ["two", 3, 3]
    bad[C.REVENUE] = [1.0, "lots", 1.0]
    bad[C.TRANSACTION_DATE] = [START.isoformat(), START.isoformat(), "someday"]
    src = write_tiny_source(tmp_path / "src", pd.concat([lines, bad], ignore_index=True), fmt="csv")
    result = _ingest(src)
    assert sorted(result.quarantine[C.REASON]) == ["unparseable quantity", "unparseable revenue"]
    orphans = ingestion.orphan_transactions(src, ["W1", "W2"], D0, D1)
    assert list(orphans[C.REASON]) == ["unparseable transaction_date"]
    assert json.loads(orphans.iloc[0][C.ORIGINAL_ROW])[C.TRANSACTION_DATE] == "someday"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({C.WAREHOUSE_ID: "W99"}, "unknown warehouse_id"),
        ({C.WAREHOUSE_ID: None}, "null warehouse_id"),
        ({C.TRANSACTION_DATE: pd.Timestamp("1999-12-31")}, "transaction_date outside partition range"),
        ({C.TRANSACTION_DATE: pd.Timestamp("2030-01-01")}, "transaction_date outside partition range"),
        ({C.TRANSACTION_DATE: pd.NaT}, "null transaction_date"),
    ],
)
def test_lines_of_no_partition_are_orphans(tmp_path: Path, overrides: dict, reason: str) -> None:
    src = write_tiny_source(tmp_path / "src", _with_bad_line(**overrides))
    orphans = ingestion.orphan_transactions(src, ["W1", "W2"], D0, D1)
    assert list(orphans[C.REASON]) == [reason]
    # ... and no partition slice counts them.
    assert _ingest(src).n_lines == _ingest(write_tiny_source(tmp_path / "clean")).n_lines


def test_small_tables_split_valid_and_rejected(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    products = pd.read_parquet(src / "products.parquet")
    extra = products.iloc[[0, 1, 2]].copy()
    extra[C.SKU] = ["A", "D", "E"]  # A duplicates the first row
    extra[C.PRICE] = [1.0, -3.0, 1.0]  # D has a negative price
    extra[C.LAUNCH_DATE] = [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01"), pd.NaT]
    pd.concat([products, extra]).to_parquet(src / "products.parquet", index=False)
    split = source.load_table(src, C.PRODUCTS)
    assert list(split.valid[C.SKU]) == ["A", "B", "C"]
    reasons = dict(
        zip(
            split.rejected[C.ORIGINAL_ROW].map(lambda r: json.loads(r)[C.SKU]),
            split.rejected[C.REASON],
            strict=True,
        )
    )
    assert reasons["A"] == "duplicate sku"
    assert "price" in reasons["D"]
    assert reasons["E"] == "null launch_date"


def test_missing_file_and_column_name_them(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    (src / "products.parquet").unlink()
    with pytest.raises(source.SourceError, match=r"products\.parquet or products\.csv"):
        source.load_table(src, C.PRODUCTS)
    src2 = write_tiny_source(tmp_path / "src2")
    pd.read_parquet(src2 / "transactions.parquet").drop(columns=[C.QUANTITY]).to_parquet(
        src2 / "transactions.parquet"
    )
    with pytest.raises(source.SourceError, match=r"transactions\.parquet.*quantity"):
        _ingest(src2)
    src3 = write_tiny_source(tmp_path / "src3")
    (src3 / "warehouses.parquet").write_text("not a parquet file")
    with pytest.raises(source.SourceError, match=r"warehouses\.parquet: cannot be read"):
        source.load_table(src3, C.WAREHOUSES)


def test_optional_tables_may_be_absent(tiny_source: Path) -> None:
    assert source.load_table(tiny_source, C.WEATHER) is None
    assert source.load_table(tiny_source, C.MARKETING_CAMPAIGNS) is None


def test_quarantine_replace_is_scoped_and_idempotent(tmp_path: Path, tiny_source: Path) -> None:
    src = write_tiny_source(tmp_path / "src", _with_bad_line(**{C.SKU: "NOPE"}))
    rows = _ingest(src).quarantine
    con = duckdb.connect(str(tmp_path / "q.duckdb"))
    replace_quarantine(con, rows, "raw_sales", ["W1"], D0, D1)
    replace_quarantine(con, rows, "raw_sales", ["W1"], D0, D1)
    replace_quarantine(con, rows.iloc[:0], "source_audit")
    assert len(read_quarantine(con)) == 1
    # Another warehouse's scope leaves W1's rows alone; W1's own scope replaces them.
    replace_quarantine(con, rows.iloc[:0], "raw_sales", ["W2"], D0, D1)
    assert len(read_quarantine(con)) == 1
    replace_quarantine(con, rows.iloc[:0], "raw_sales", ["W1"], D0, D0)
    assert len(read_quarantine(con)) == 0


def test_lines_of_a_rejected_product_say_why(tmp_path: Path) -> None:
    lines = pd.concat(
        [good_transactions(), _with_bad_line(**{C.SKU: "D"}).tail(1), _with_bad_line(**{C.SKU: "Z"}).tail(1)],
        ignore_index=True,
    )
    lines[C.TRANSACTION_ID] = [f"t{i}" for i in range(len(lines))]
    src = write_tiny_source(tmp_path / "src", lines)
    products = pd.read_parquet(src / "products.parquet")
    extra = products.iloc[[0, 0]].assign(**{C.SKU: ["D", "A"], C.PRICE: [-3.0, -1.0]})
    pd.concat([products, extra]).to_parquet(src / "products.parquet", index=False)
    split = source.load_table(src, C.PRODUCTS)
    keys = split.rejected_keys(C.SKU)
    assert keys.to_dict("records") == [
        {C.SKU: "D", C.REASON: "price fails greater_than_or_equal_to(0)"},
        {C.SKU: "A", C.REASON: "duplicate sku; price fails greater_than_or_equal_to(0)"},
    ]
    warehouses = source.load_table(src, C.WAREHOUSES).valid
    told = ingestion.ingest_sales(src, split.valid, warehouses, D0, D1, rejected_products=keys)
    reasons = dict(
        zip(
            told.quarantine[C.ORIGINAL_ROW].map(lambda r: json.loads(r)[C.SKU]),
            told.quarantine[C.REASON],
            strict=True,
        )
    )
    # D is only in the rejected rows; A is a valid product (its first row), so its lines flow.
    assert reasons == {
        "D": "sku rejected in products (price fails greater_than_or_equal_to(0))",
        "Z": "unknown sku",
    }
    untold = ingestion.ingest_sales(src, split.valid, warehouses, D0, D1)
    assert sorted(untold.quarantine[C.REASON]) == ["unknown sku", "unknown sku"]
    pd.testing.assert_frame_equal(told.raw_sales, untold.raw_sales)


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "-Infinity"])
def test_non_finite_quantity_is_only_unparseable(tmp_path: Path, text: str) -> None:
    lines = _with_bad_line().astype(object)
    lines.loc[lines.index[-1], C.QUANTITY] = text
    src = write_tiny_source(tmp_path / "src", lines, fmt="csv")
    assert list(_ingest(src).quarantine[C.REASON]) == ["unparseable quantity"]


def test_nan_quantity_in_parquet_is_only_unparseable(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    lines = _with_bad_line()
    lines[C.QUANTITY] = lines[C.QUANTITY].astype(float)
    table = pa.Table.from_pandas(lines, preserve_index=False)
    quantity = pa.array(lines[C.QUANTITY].to_numpy()[:-1].tolist() + [float("nan")], from_pandas=False)
    table = table.set_column(table.schema.get_field_index(C.QUANTITY), C.QUANTITY, quantity)
    pq.write_table(table, src / "transactions.parquet")
    assert list(_ingest(src).quarantine[C.REASON]) == ["unparseable quantity"]


@pytest.mark.parametrize("second", ["quantity", "Quantity"])
def test_duplicated_csv_header_fails_naming_file_and_column(tmp_path: Path, second: str) -> None:
    src = write_tiny_source(tmp_path / "src", fmt="csv")
    lines = pd.read_csv(src / "transactions.csv", dtype=str)
    header = ",".join([*lines.columns, second])
    body = "\n".join(",".join([*row, "1"]) for row in lines.fillna("").to_numpy())
    (src / "transactions.csv").write_text(f"{header}\n{body}\n")
    with pytest.raises(source.SourceError, match=rf"transactions\.csv: duplicated column\(s\) {second}"):
        _ingest(src)
    with pytest.raises(source.SourceError, match=r"transactions\.csv: duplicated column"):
        ingestion.orphan_transactions(src, ["W1", "W2"], D0, D1)
    with pytest.raises(source.SourceError, match=r"transactions\.csv: duplicated column"):
        source.history_range(src)
    products = (src / "products.csv").read_text().splitlines()
    (src / "products.csv").write_text("\n".join([products[0] + ",price", *(p + ",1" for p in products[1:])]))
    with pytest.raises(source.SourceError, match=r"products\.csv: duplicated column\(s\) price"):
        source.load_table(src, C.PRODUCTS)


def test_raw_sales_model_takes_the_optional_source_columns(tiny_source: Path) -> None:
    sales = _ingest(tiny_source)
    RawSalesModel.validate(sales.raw_sales)
    days = sales.lines_per_date.set_index([C.WAREHOUSE_ID, C.DATE])
    keys = pd.MultiIndex.from_frame(sales.raw_sales[[C.WAREHOUSE_ID, C.DATE]])
    stamped = sales.raw_sales.assign(
        source_lines=days[C.LINES].reindex(keys).fillna(0).astype("int64").to_numpy(),
        source_fingerprint=days[C.FINGERPRINT].reindex(keys).fillna(0).astype("int64").to_numpy(),
    )
    RawSalesModel.validate(stamped)
    with pytest.raises(pa_errors.SchemaError, match="source_lines"):
        RawSalesModel.validate(stamped.assign(source_lines=-1))
