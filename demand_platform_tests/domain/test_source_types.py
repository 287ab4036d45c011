"""The design's DDL types are read as they are: ids integer or text, dates DATE/TIMESTAMP/ISO text.

Ids are canonicalised once at read, to the same text on the pandas path (small tables) and the DuckDB
path (transactions), so an INT warehouse id in transactions equals the warehouses table's key.
"""

import datetime as dt
import decimal
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.conftest import DAYS, START, good_transactions, write_tiny_source
from demand_platform_tests.design_ddl import DESIGN_SCHEMAS, DesignSource, write_design_source

D1 = START + dt.timedelta(days=DAYS - 1)
SYNTHETIC = GeneratorConfig(n_skus=25, n_warehouses=3, days=45, seed=11, bad_rows=12)
SMALL_TABLES = (C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS, C.WEATHER, C.CALENDAR)


def _sql_ids(table: pa.Table, column: str) -> list[str | None]:
    """The DuckDB canonical text of ``column`` of an Arrow table (via :func:`source.id_sql`)."""
    con = duckdb.connect()
    con.register("t", table)
    kind = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM t").fetchall()}[column]
    return [r[0] for r in con.execute(f"SELECT {source.id_sql(column, kind)} FROM t").fetchall()]


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([1, 22, None, -3], type=pa.int32()), ["1", "22", None, "-3"]),
        (pa.array([12345678901234567, 5], type=pa.int64()), ["12345678901234567", "5"]),
        (pa.array([1.0, None, 2.5, float("nan"), float("inf")]), ["1", None, "2.5", None, None]),
        (
            pa.array([decimal.Decimal("1.00"), decimal.Decimal("1.50"), None], type=pa.decimal128(10, 2)),
            ["1", "1.50", None],
        ),
        (pa.array([" W1 ", "007", "", "   ", None, "a b"]), ["W1", "007", None, None, None, "a b"]),
    ],
)
def test_pandas_and_duckdb_give_the_same_canonical_id(array: pa.Array, expected: list) -> None:
    table = pa.table({"x": array})
    from_pandas = source.canonical_ids(table.to_pandas()["x"]).tolist()
    assert from_pandas == expected
    assert _sql_ids(table, "x") == expected


def test_integer_ids_with_nulls_stay_exact_when_pandas_reads_them(tmp_path: Path) -> None:
    # pandas would turn an int64 column with nulls into float64 (losing digits past 2**53).
    src = write_tiny_source(tmp_path / "src")
    products = pd.read_parquet(src / "products.parquet")
    table = pa.Table.from_pandas(products, preserve_index=False)
    big = pa.array([9007199254740993, 2, None], type=pa.int64())
    table = table.set_column(table.schema.get_field_index(C.SKU), C.SKU, big)
    pq.write_table(table, src / "products.parquet")
    split = source.load_table(src, C.PRODUCTS)
    assert list(split.valid[C.SKU]) == ["9007199254740993", "2"]
    assert list(split.rejected[C.REASON]) == ["null sku"]


@pytest.mark.parametrize(
    ("raw", "day"),
    [
        ("2024-01-05", "2024-01-05"),
        (" 2024-01-05 ", "2024-01-05"),
        ("2024-01-05 13:45:00", "2024-01-05"),
        ("2024-01-05T13:45:00.123Z", "2024-01-05"),
        ("2024-01-05T23:30:00+02:00", "2024-01-05"),
        ("infinity", None),
        ("-infinity", None),
        ("epoch", None),
        ("2024-1-5", None),
        ("2024-02-30", None),
        ("20240105", None),
    ],
)
def test_iso_text_dates_parse_the_same_on_both_paths(raw: str, day: str | None) -> None:
    days, bad = source.parse_days(pd.Series([raw], dtype=object))
    expected = None if day is None else pd.Timestamp(day)
    assert (pd.isna(days.iloc[0]) and expected is None) or days.iloc[0] == expected
    assert bool(bad.iloc[0]) == (day is None)
    con = duckdb.connect()
    sql_day = con.execute(f"SELECT {source.day_sql('$1', 'VARCHAR')}", [raw]).fetchone()
    assert sql_day is not None
    assert sql_day[0] == (None if day is None else dt.date.fromisoformat(day))


def test_typed_dates_and_timestamps_parse_to_their_day() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-01-05 23:59:59", None]))
    days, bad = source.parse_days(stamps)
    assert days.iloc[0] == pd.Timestamp("2024-01-05") and pd.isna(days.iloc[1]) and not bad.any()
    aware = pd.Series(pd.to_datetime(["2024-01-05 23:30"]).tz_localize("UTC").tz_convert("Asia/Tokyo"))
    assert source.parse_days(aware)[0].iloc[0] == pd.Timestamp("2024-01-05")  # its UTC day
    objects = pd.Series([dt.date(2024, 1, 5), dt.date(9999, 12, 31), 20240105], dtype=object)
    days, bad = source.parse_days(objects)
    assert days.iloc[0] == pd.Timestamp("2024-01-05") and list(bad) == [False, True, True]
    con = duckdb.connect()
    row = con.execute(
        f"SELECT {source.day_sql('d', 'DATE')}, {source.day_sql('t', 'TIMESTAMP')}, "
        f"{source.day_sql('z', 'TIMESTAMP WITH TIME ZONE')} FROM (SELECT 'infinity'::DATE AS d, "
        "TIMESTAMP '2024-01-05 23:59:59' AS t, TIMESTAMPTZ '2024-01-05 23:30:00+00' AS z)"
    ).fetchone()
    assert row == (None, dt.date(2024, 1, 5), dt.date(2024, 1, 5))


def test_boolean_text_is_parsed_not_truthy(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src", fmt="csv")
    products = pd.read_csv(src / "products.csv", dtype=str)
    products[C.IS_SEASONAL] = ["False", "no", "TRUE"]
    products.to_csv(src / "products.csv", index=False)
    split = source.load_table(src, C.PRODUCTS)
    assert list(split.valid[C.IS_SEASONAL]) == [False, False, True]
    products[C.IS_SEASONAL] = ["f", "maybe", None]
    products.to_csv(src / "products.csv", index=False)
    split = source.load_table(src, C.PRODUCTS)
    assert list(split.valid[C.SKU]) == ["A"]
    assert list(split.rejected[C.REASON]) == ["unparseable is_seasonal", "null is_seasonal"]


def test_integer_warehouse_and_campaign_ids_are_accepted(tmp_path: Path) -> None:
    lines = good_transactions()
    # An int column with a null: pandas writes it as float64 (1.0, 2.0, NaN).
    lines[C.WAREHOUSE_ID] = lines[C.WAREHOUSE_ID].map({"W1": 1, "W2": 2}).astype(float)
    lines.loc[len(lines)] = ["nowh", "A", np.nan, pd.Timestamp(START), 1, 2.0, "c1", "o-x"]
    src = write_tiny_source(tmp_path / "src", lines)
    warehouses = pd.read_parquet(src / "warehouses.parquet").assign(**{C.WAREHOUSE_ID: [1, 2]})
    warehouses.to_parquet(src / "warehouses.parquet", index=False)
    pd.DataFrame(
        {
            C.CAMPAIGN_ID: [7, 8],
            C.START_DATE: ["2024-01-02", "2024-01-03 00:00:00"],
            C.END_DATE: pd.to_datetime(["2024-01-04", "2024-01-05"]),
            C.SKU: [None, "A"],
            C.DISCOUNT_PERCENT: [10, 20.5],
            C.CAMPAIGN_TYPE: ["sitewide", "flash"],
            C.TARGET_REGION: [None, "TX"],
        }
    ).to_parquet(src / "marketing_campaigns.parquet", index=False)
    wh = source.load_table(src, C.WAREHOUSES)
    assert wh.rejected.empty and source.warehouse_ids(src) == ["1", "2"]
    campaigns = source.load_table(src, C.MARKETING_CAMPAIGNS)
    assert campaigns.rejected.empty and list(campaigns.valid[C.CAMPAIGN_ID]) == ["7", "8"]
    products = source.load_table(src, C.PRODUCTS).valid
    result = ingestion.ingest_sales(src, products, wh.valid, START, D1)
    assert result.quarantine.empty
    assert set(result.raw_sales[C.WAREHOUSE_ID]) == {"1", "2"}
    text = ingestion.ingest_sales(
        write_tiny_source(tmp_path / "text"),
        products,
        source.load_table(tmp_path / "text", C.WAREHOUSES).valid,
        START,
        D1,
    ).raw_sales
    renamed = text.assign(**{C.WAREHOUSE_ID: text[C.WAREHOUSE_ID].map({"W1": "1", "W2": "2"})})
    pd.testing.assert_frame_equal(result.raw_sales, renamed)
    orphans = ingestion.orphan_transactions(src, ["1", "2"], START, D1)
    assert list(orphans[C.REASON]) == ["null warehouse_id"]


def test_text_ids_with_spaces_match_their_trimmed_key(tmp_path: Path) -> None:
    lines = good_transactions()
    lines[C.WAREHOUSE_ID] = lines[C.WAREHOUSE_ID] + "  "
    lines[C.SKU] = " " + lines[C.SKU]
    # The same transaction id padded with spaces is a duplicate of the unpadded one.
    dup = lines.iloc[[3]].assign(**{C.TRANSACTION_ID: f" {lines.iloc[3][C.TRANSACTION_ID]} "})
    late_first = lines.iloc[[5]].assign(**{C.TRANSACTION_ID: f"{lines.iloc[5][C.TRANSACTION_ID]} "})
    src = write_tiny_source(tmp_path / "src", pd.concat([late_first, lines, dup], ignore_index=True))
    products = source.load_table(src, C.PRODUCTS).valid
    warehouses = source.load_table(src, C.WAREHOUSES).valid
    result = ingestion.ingest_sales(src, products, warehouses, START, D1)
    clean = ingestion.ingest_sales(write_tiny_source(tmp_path / "clean"), products, warehouses, START, D1)
    pd.testing.assert_frame_equal(result.raw_sales, clean.raw_sales)
    assert sorted(result.quarantine[C.REASON]) == ["duplicate transaction_id"] * 2


# --- a whole source in the design's DDL types ----------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic source (text ids) with bad rows of every kind."""
    out = tmp_path_factory.mktemp("synthetic")
    generate_source(out, SYNTHETIC)
    return out


def _everything(src: Path) -> tuple[dict[str, source.TableSplit], ingestion.SalesSlice, pd.DataFrame]:
    splits = {t: source.load_table(src, t, required=True) for t in SMALL_TABLES if source.table_path(src, t)}
    first, last = source.history_range(src)
    warehouses = splits[C.WAREHOUSES].valid
    sales = ingestion.ingest_sales(src, splits[C.PRODUCTS].valid, warehouses, first.date(), last.date())
    orphans = ingestion.orphan_transactions(
        src, warehouses[C.WAREHOUSE_ID].tolist(), first.date(), last.date()
    )
    return splits, sales, orphans  # type: ignore[return-value]


@pytest.mark.parametrize(("fmt", "timestamps"), [("parquet", True), ("parquet", False), ("csv", True)])
def test_design_ddl_source_reads_and_ingests_like_the_text_source(
    synthetic_source: Path, tmp_path: Path, fmt: str, timestamps: bool
) -> None:
    design: DesignSource = write_design_source(synthetic_source, tmp_path / "design", fmt, timestamps)
    if fmt == "parquet":  # the files really hold the DDL types
        for table, schema in DESIGN_SCHEMAS.items():
            written = pq.read_schema(design.out_dir / f"{table}.parquet")
            for field in schema:
                if field.name == C.TRANSACTION_DATE:
                    assert written.field(field.name).type == (
                        pa.timestamp("us") if timestamps else pa.date32()
                    )
                else:
                    assert written.field(field.name).type == field.type, (table, field.name)
    original, sales, orphans = _everything(synthetic_source)
    splits, design_sales, design_orphans = _everything(design.out_dir)

    # No rejection caused by a type: the small tables keep every row, campaigns included.
    for table in (C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS, C.WEATHER, C.CALENDAR):
        assert splits[table].rejected.empty, (table, splits[table].rejected[C.REASON].tolist())
    for table in (C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS, C.WEATHER):
        assert len(splits[table].valid) == len(original[table].valid) > 0
    assert sorted(splits[C.WAREHOUSES].valid[C.WAREHOUSE_ID]) == ["1", "2", "3"]
    assert sorted(splits[C.MARKETING_CAMPAIGNS].valid[C.CAMPAIGN_ID]) == sorted(
        str(i) for i in design.campaign_ids.values()
    )
    pd.testing.assert_series_equal(
        splits[C.PRODUCTS].valid[C.IS_SEASONAL], original[C.PRODUCTS].valid[C.IS_SEASONAL]
    )
    calendar = splits[C.CALENDAR].valid
    assert (calendar[C.IS_WEEKEND] == (calendar[C.DAY_OF_WEEK] >= 6)).all() and not calendar[
        C.IS_HOLIDAY
    ].all()
    np.testing.assert_allclose(
        splits[C.PRODUCTS].valid[C.PRICE].to_numpy(), original[C.PRODUCTS].valid[C.PRICE].to_numpy()
    )

    # raw_sales: the same quantities (warehouse ids mapped back), and the same bad lines for the same reasons.
    mapped = design_sales.raw_sales.assign(
        **{C.WAREHOUSE_ID: design_sales.raw_sales[C.WAREHOUSE_ID].map(design.original_warehouse)}
    )
    keys = [C.SKU, C.WAREHOUSE_ID, C.DATE]
    left = mapped.sort_values(keys).reset_index(drop=True)
    right = sales.raw_sales.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        left[[*keys, C.QUANTITY, C.N_ORDERS]], right[[*keys, C.QUANTITY, C.N_ORDERS]]
    )
    np.testing.assert_allclose(left[C.REVENUE], right[C.REVENUE], atol=1e-6)
    assert sorted(design_sales.quarantine[C.REASON]) == sorted(sales.quarantine[C.REASON])
    assert sorted(design_orphans[C.REASON]) == sorted(orphans[C.REASON])
    assert len(sales.quarantine) > 0 and len(orphans) > 0  # the bad rows were there to be found
    assert design_sales.n_lines == sales.n_lines


def test_contract_documents_the_canonicalisation() -> None:
    text = source.describe_contract()
    assert "transactions (required)" in text
    assert '1 -> "1"' in text and "TIMESTAMP" in text and "infinity" in text


def test_rejected_rows_keep_their_original_values(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    warehouses = pd.read_parquet(src / "warehouses.parquet")
    warehouses[C.WAREHOUSE_ID] = [" W1", "W1 "]
    warehouses.to_parquet(src / "warehouses.parquet", index=False)
    split = source.load_table(src, C.WAREHOUSES)
    assert list(split.valid[C.WAREHOUSE_ID]) == ["W1"]
    assert list(split.rejected[C.REASON]) == ["duplicate warehouse_id"]
    assert json.loads(split.rejected.iloc[0][C.ORIGINAL_ROW])[C.WAREHOUSE_ID] == "W1 "  # as read
    assert split.rejected_keys(C.WAREHOUSE_ID).to_dict("records") == [
        {C.WAREHOUSE_ID: "W1", C.REASON: "duplicate warehouse_id"}
    ]


def test_overrides_take_integer_sku_and_warehouse_ids(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    pd.DataFrame(
        {
            C.SKU: pd.array([5, None], dtype="Int64"),
            C.WAREHOUSE_ID: [1.0, np.nan],  # an INT column with nulls, as pandas writes it
            C.START_DATE: ["2024-01-02T00:00:00", "2024-01-03"],
            C.END_DATE: pd.to_datetime(["2024-01-04 12:00", "2024-01-05 00:00"]),
            "multiplier": [1.5, None],
            "absolute_value": [None, 3.0],
            "author": ["ann", "bob"],
            C.REASON: [None, "promo"],
        }
    ).to_parquet(src / "overrides.parquet", index=False)
    split = source.load_table(src, C.OVERRIDES)
    assert split is not None and split.rejected.empty
    assert split.valid[C.SKU].tolist() == ["5", None] and split.valid[C.WAREHOUSE_ID].tolist() == ["1", None]
    assert split.valid[C.END_DATE].tolist() == [pd.Timestamp("2024-01-04"), pd.Timestamp("2024-01-05")]


def test_text_dates_in_any_iso_spelling_land_in_their_day(tmp_path: Path) -> None:
    lines = good_transactions()
    day = lines[C.TRANSACTION_DATE].dt.strftime("%Y-%m-%d")
    spellings = [" {d}", "{d}T08:00:00", "{d} 23:59:59.5", "{d}T00:00:00Z", "{d} "]
    lines[C.TRANSACTION_DATE] = [spellings[i % len(spellings)].format(d=d) for i, d in enumerate(day)]
    lines[C.WAREHOUSE_ID] = [f" {w}" if i % 3 == 0 else w for i, w in enumerate(lines[C.WAREHOUSE_ID])]
    src = write_tiny_source(tmp_path / "src", lines)  # parquet with VARCHAR dates
    clean = write_tiny_source(tmp_path / "clean")
    for day_offset in range(DAYS):
        d = START + dt.timedelta(days=day_offset)
        got = ingestion.day_fingerprints(src, ["W1", "W2"], d, d)
        want = ingestion.day_fingerprints(clean, ["W1", "W2"], d, d)
        pd.testing.assert_frame_equal(got.drop(columns=[C.FINGERPRINT]), want.drop(columns=[C.FINGERPRINT]))
    assert ingestion.orphan_transactions(src, ["W1", "W2"], START, D1).empty
