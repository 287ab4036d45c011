"""Importers of public datasets: the written source passes the platform's validation and keeps the data.

The inputs are tiny frames with the shapes of the real files (M5 wide sales, calendar and weekly
prices; Online Retail II order lines), built here: the tests never read the shared data.
"""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform.importers import QUARANTINE_FILE, ImportSummary
from demand_platform.importers.m5 import import_m5, parse_m5_ids
from demand_platform.importers.online_retail import (
    DEFAULT_WAREHOUSE_MAP,
    import_online_retail,
    is_product_code,
    load_warehouse_map,
)

# --- M5 ---------------------------------------------------------------------------------------------
M5_START = pd.Timestamp("2011-01-29")  # d_1, a Saturday, like the real calendar
M5_CALENDAR_DAYS = 21  # three Walmart weeks
M5_SALES_DAYS = 18  # the sales file stops before the calendar (as sales_train_validation does)
M5_IDS = (
    "HOBBIES_2_001_CA_3_evaluation",
    "HOBBIES_2_002_CA_3_evaluation",
    "HOBBIES_2_003_CA_3_evaluation",  # never sold, never priced
    "FOODS_3_090_TX_2_evaluation",
    "HOBBIES_2_001_TX_2_evaluation",
)


def _m5_calendar() -> pd.DataFrame:
    dates = pd.date_range(M5_START, periods=M5_CALENDAR_DAYS, freq="D")
    frame = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "wm_yr_wk": 11101 + np.arange(M5_CALENDAR_DAYS) // 7,
            "weekday": dates.day_name(),
            "wday": (dates.dayofweek.to_numpy() + 2) % 7 + 1,  # M5: Saturday = 1
            "month": dates.month,
            "year": dates.year,
            "event_name_1": None,
            "event_type_1": None,
            "event_name_2": None,
            "event_type_2": None,
            "snap_CA": (np.arange(M5_CALENDAR_DAYS) < 3).astype(int),
            "snap_TX": ((np.arange(M5_CALENDAR_DAYS) >= 3) & (np.arange(M5_CALENDAR_DAYS) < 5)).astype(int),
            "snap_WI": 0,
        }
    )
    frame.loc[8, ["event_name_1", "event_type_1"]] = ["SuperBowl", "Sporting"]
    frame.loc[9, ["event_name_1", "event_type_1", "event_name_2", "event_type_2"]] = [
        "OrthodoxEaster",
        "Religious",
        "Easter",
        "Cultural",
    ]
    frame.loc[19, ["event_name_1", "event_type_1"]] = ["Thanksgiving", "National"]  # after the sales
    return frame


def _m5_sales() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    units = rng.poisson(1.2, size=(len(M5_IDS), M5_SALES_DAYS)) * (
        rng.random((len(M5_IDS), M5_SALES_DAYS)) < 0.6
    )
    units[2] = 0  # HOBBIES_2_003 never sells
    units[1, :3] = [0, 4, 0]  # HOBBIES_2_002 sells in week 1 although only priced from week 2
    units[0, 0] = 0
    units[0, 5] = 3
    frame = pd.DataFrame(units, columns=[f"d_{n}" for n in range(1, M5_SALES_DAYS + 1)])
    frame.insert(0, "id", list(M5_IDS))
    return frame


def _m5_prices() -> pd.DataFrame:
    rows = [
        ("CA_3", "HOBBIES_2_001", 11101, 2.0),
        ("CA_3", "HOBBIES_2_001", 11102, 2.5),
        ("CA_3", "HOBBIES_2_001", 11103, 2.75),
        ("CA_3", "HOBBIES_2_002", 11102, 1.0),
        ("CA_3", "HOBBIES_2_002", 11103, 1.0),
        ("TX_2", "FOODS_3_090", 11101, 1.5),
        ("TX_2", "FOODS_3_090", 11102, 1.5),
        ("TX_2", "FOODS_3_090", 11103, 1.75),
        ("TX_2", "HOBBIES_2_001", 11101, 2.25),
        ("TX_2", "HOBBIES_2_001", 11102, 2.25),
        ("TX_2", "HOBBIES_2_001", 11103, 2.75),
    ]
    return pd.DataFrame(rows, columns=["store_id", "item_id", "wm_yr_wk", "sell_price"])


@pytest.fixture
def m5_files(tmp_path: Path) -> dict[str, Path]:
    """Tiny M5-shaped CSVs: sales (wide), calendar (no d column) and weekly prices."""
    paths = {name: tmp_path / f"{name}.csv" for name in ("sales", "calendar", "prices")}
    _m5_sales().to_csv(paths["sales"], index=False)
    _m5_calendar().to_csv(paths["calendar"], index=False)
    _m5_prices().to_csv(paths["prices"], index=False)
    return paths


def _load_clean(out: Path, tables: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Load source tables with the platform's validation; no row may be rejected."""
    loaded = {}
    for table in tables:
        split = source.load_table(out, table, required=True)
        assert split is not None
        assert split.rejected.empty, f"{table}: {split.rejected[C.REASON].tolist()}"
        loaded[table] = split.valid
    return loaded


def _ingest_all(out: Path) -> ingestion.SalesSlice:
    """``ingest_sales`` over the whole transaction range of every warehouse."""
    products = source.load_table(out, C.PRODUCTS).valid
    warehouses = source.load_table(out, C.WAREHOUSES).valid
    first, last = source.transactions_date_range(out)
    return ingestion.ingest_sales(out, products, warehouses, first.date(), last.date())


def _m5_expected_long(sales: pd.DataFrame, last_day: int) -> pd.DataFrame:
    """The wide input as (sku, warehouse_id, date) -> units, units > 0 only, through ``last_day``."""
    long = sales.melt(id_vars="id", var_name="d", value_name="units")
    long["n"] = long["d"].str[2:].astype(int)
    long = long[(long["units"] > 0) & (long["n"] <= last_day)]
    ids = parse_m5_ids(long.reset_index(drop=True))
    return pd.DataFrame(
        {
            C.SKU: ids["item_id"].to_numpy(),
            C.WAREHOUSE_ID: ids["store_id"].to_numpy(),
            C.DATE: M5_START + pd.to_timedelta(long["n"].to_numpy() - 1, unit="D"),
            "units": long["units"].to_numpy(dtype=float),
        }
    )


def _assert_daily_quantities(raw_sales: pd.DataFrame, expected: pd.DataFrame) -> None:
    """raw_sales equals the expected net quantity on every listed key and is zero elsewhere."""
    merged = raw_sales.merge(expected, on=[C.SKU, C.WAREHOUSE_ID, C.DATE], how="outer", indicator=True)
    assert (merged["_merge"] != "right_only").all(), "an expected (sku, warehouse, day) has no raw_sales row"
    np.testing.assert_allclose(merged[C.QUANTITY], merged["units"].fillna(0.0))


def test_parse_m5_ids() -> None:
    ids = parse_m5_ids(pd.DataFrame({"id": ["HOBBIES_2_001_CA_3_evaluation", "FOODS_3_090_WI_1_validation"]}))
    assert ids.to_dict("records") == [
        {
            "item_id": "HOBBIES_2_001",
            "dept_id": "HOBBIES_2",
            "cat_id": "HOBBIES",
            "store_id": "CA_3",
            "state_id": "CA",
        },
        {
            "item_id": "FOODS_3_090",
            "dept_id": "FOODS_3",
            "cat_id": "FOODS",
            "store_id": "WI_1",
            "state_id": "WI",
        },
    ]
    with pytest.raises(ValueError, match="cannot parse id"):
        parse_m5_ids(pd.DataFrame({"id": ["nonsense"]}))


def test_m5_source_passes_validation_and_keeps_daily_units(m5_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m5src"
    summary = import_m5(m5_files["sales"], m5_files["calendar"], out, prices_csv=m5_files["prices"])
    tables = _load_clean(out, (C.PRODUCTS, C.WAREHOUSES, C.CALENDAR))
    sales = _m5_sales()

    result = _ingest_all(out)
    assert result.quarantine.empty
    _assert_daily_quantities(result.raw_sales, _m5_expected_long(sales, M5_SALES_DAYS))
    n_positive = int((sales.drop(columns="id").to_numpy() > 0).sum())
    assert summary.rows[C.TRANSACTIONS] == n_positive == result.n_lines
    assert summary.first_date >= dt.date(2011, 1, 29)
    assert summary.last_date <= (M5_START + pd.Timedelta(days=M5_SALES_DAYS - 1)).date()
    assert pd.read_parquet(out / QUARANTINE_FILE).empty and summary.n_quarantined == 0

    # Stores -> warehouses, state from the store id.
    warehouses = tables[C.WAREHOUSES].set_index(C.WAREHOUSE_ID)
    assert warehouses[C.LOCATION_STATE].to_dict() == {"CA_3": "CA", "TX_2": "TX"}
    assert warehouses[C.LOCATION_CITY].to_dict() == {"CA_3": "CA_3", "TX_2": "TX_2"}
    assert warehouses[C.CAPACITY_UNITS].isna().all()
    assert warehouses[C.LATITUDE].between(25, 50).all() and warehouses[C.LONGITUDE].between(-125, -65).all()

    # Items -> products; the never-sold, never-priced item is left out.
    products = tables[C.PRODUCTS].set_index(C.SKU)
    assert sorted(products.index) == ["FOODS_3_090", "HOBBIES_2_001", "HOBBIES_2_002"]
    assert products.loc["FOODS_3_090", C.CATEGORY] == "FOODS"
    assert products.loc["HOBBIES_2_001", C.SUB_CATEGORY] == "HOBBIES_2"
    assert not products[C.IS_SEASONAL].any() and products[C.BRAND].isna().all()
    # Latest known price: week 3, median over CA_3 (2.75) and TX_2 (2.75).
    assert products.loc["HOBBIES_2_001", C.PRICE] == 2.75
    assert products.loc["HOBBIES_2_001", C.LAUNCH_DATE] == M5_START  # priced from week 1
    # HOBBIES_2_002 is priced from week 2 but sold on d_2: launch is its first sale.
    assert products.loc["HOBBIES_2_002", C.LAUNCH_DATE] == M5_START + pd.Timedelta(days=1)
    assert any("neither a price nor a sale" in note for note in summary.notes)

    # Lines: deterministic ids, revenue = units x the week's price, null when the week has no price.
    lines = pd.read_parquet(out / f"{C.TRANSACTIONS}.parquet").set_index(C.TRANSACTION_ID)
    assert lines.index.is_unique and (lines.index == lines[C.ORDER_ID]).all()
    assert lines[C.CUSTOMER_ID].isna().all()
    line = lines.loc["CA_3-HOBBIES_2_001-d_6"]
    assert (line[C.QUANTITY], line[C.REVENUE]) == (3, 3 * 2.0)
    assert np.isnan(lines.loc["CA_3-HOBBIES_2_002-d_2", C.REVENUE])


def test_m5_events_become_holidays_and_snap_days_paydays(m5_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m5src"
    summary = import_m5(m5_files["sales"], m5_files["calendar"], out, prices_csv=m5_files["prices"])
    calendar = _load_clean(out, (C.CALENDAR,))[C.CALENDAR].set_index(C.DATE)
    assert len(calendar) == M5_CALENDAR_DAYS  # the whole calendar: events are known ahead
    day = lambda n: M5_START + pd.Timedelta(days=n - 1)  # noqa: E731
    assert calendar.loc[day(9), C.HOLIDAY_NAME] == "SuperBowl"
    assert calendar.loc[day(10), C.HOLIDAY_NAME] == "OrthodoxEaster; Easter"
    assert calendar.loc[day(20), C.HOLIDAY_NAME] == "Thanksgiving"
    assert set(calendar.index[calendar[C.IS_HOLIDAY]]) == {day(9), day(10), day(20)}
    assert calendar.loc[day(1), C.DAY_OF_WEEK] == 6 and calendar.loc[day(1), C.IS_WEEKEND]
    assert calendar.loc[day(3), C.DAY_OF_WEEK] == 1 and not calendar.loc[day(3), C.IS_WEEKEND]
    # Stores in CA and TX, one each: the tie goes to CA (alphabetical), noted.
    assert set(calendar.index[calendar[C.IS_PAYDAY]]) == {day(1), day(2), day(3)}
    assert any("SNAP days of CA" in note for note in summary.notes)


def test_m5_single_state_uses_its_snap_days(m5_files: dict[str, Path], tmp_path: Path) -> None:
    sales = _m5_sales()
    tx_only = tmp_path / "tx_sales.csv"
    sales[sales["id"].str.contains("_TX_")].to_csv(tx_only, index=False)
    summary = import_m5(tx_only, m5_files["calendar"], tmp_path / "tx", prices_csv=m5_files["prices"])
    calendar = _load_clean(tmp_path / "tx", (C.CALENDAR,))[C.CALENDAR]
    assert set(calendar.loc[calendar[C.IS_PAYDAY], C.DATE]) == {
        M5_START + pd.Timedelta(days=3),
        M5_START + pd.Timedelta(days=4),
    }
    assert not any("SNAP" in note for note in summary.notes)


def test_m5_last_day_truncates_sales_and_prices(m5_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m5src"
    summary = import_m5(
        m5_files["sales"], m5_files["calendar"], out, prices_csv=m5_files["prices"], last_day=7
    )
    assert summary.last_date <= (M5_START + pd.Timedelta(days=6)).date()
    lines = pd.read_parquet(out / f"{C.TRANSACTIONS}.parquet")
    assert pd.to_datetime(lines[C.TRANSACTION_DATE]).max() <= M5_START + pd.Timedelta(days=6)
    assert not lines[C.TRANSACTION_ID].str.contains(r"-d_(?:[89]|1\d)$").any()
    result = _ingest_all(out)
    _assert_daily_quantities(result.raw_sales, _m5_expected_long(_m5_sales(), 7))
    products = _load_clean(out, (C.PRODUCTS,))[C.PRODUCTS].set_index(C.SKU)
    # Only week 1 prices are known on d_7: median of CA_3 2.0 and TX_2 2.25.
    assert products.loc["HOBBIES_2_001", C.PRICE] == pytest.approx(2.125)
    # HOBBIES_2_002 has no price by d_7: its department's median price, noted.
    assert products.loc["HOBBIES_2_002", C.PRICE] == pytest.approx(2.125)
    assert any("without a known price" in note for note in summary.notes)
    # The calendar is not truncated (holidays ahead of the origin are known).
    assert summary.rows[C.CALENDAR] == M5_CALENDAR_DAYS


def test_m5_without_prices_and_in_small_chunks(m5_files: dict[str, Path], tmp_path: Path) -> None:
    whole = import_m5(m5_files["sales"], m5_files["calendar"], tmp_path / "a")
    chunked = import_m5(m5_files["sales"], m5_files["calendar"], tmp_path / "b", chunk_rows=2)
    a = pd.read_parquet(tmp_path / "a" / f"{C.TRANSACTIONS}.parquet").sort_values(C.TRANSACTION_ID)
    b = pd.read_parquet(tmp_path / "b" / f"{C.TRANSACTIONS}.parquet").sort_values(C.TRANSACTION_ID)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert whole.rows == chunked.rows
    assert a[C.REVENUE].isna().all()
    products = _load_clean(tmp_path / "a", (C.PRODUCTS,))[C.PRODUCTS]
    assert (products[C.PRICE] == 0.0).all()
    assert any("no sell prices" in note for note in whole.notes)


# --- Online Retail II ------------------------------------------------------------------------------------
def _retail_lines() -> pd.DataFrame:
    """Order lines shaped like Online Retail II (InvoiceDate a string, Customer ID a float)."""
    rows = [
        (
            "489434",
            "85048",
            "15CM CHRISTMAS GLASS BALL",
            12,
            "2009-12-01 07:45:00",
            6.95,
            13085.0,
            "United Kingdom",
        ),
        (
            "489434",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            6,
            "2009-12-01 07:45:00",
            2.55,
            13085.0,
            "United Kingdom",
        ),
        ("489434", "POST", "POSTAGE", 1, "2009-12-01 07:45:00", 18.0, 13085.0, "United Kingdom"),
        (
            "489435",
            "85123a",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            3,
            "2009-12-01 09:06:00",
            2.55,
            None,
            "France",
        ),
        ("489435", "85048", "15CM CHRISTMAS GLASS BALL", 24, "2009-12-01 09:06:00", 6.5, 12682.0, "France"),
        (
            "C489436",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            -2,
            "2009-12-01 10:00:00",
            2.55,
            13085.0,
            "United Kingdom",
        ),
        (
            "489437",
            "22041",
            'RECORD FRAME 7" SINGLE SIZE',
            5,
            "2009-12-01 11:00:00",
            0.0,
            None,
            "United Kingdom",
        ),
        ("489437", None, None, 4, "2009-12-01 11:00:00", 1.25, None, "United Kingdom"),
        ("489438", "22041", 'RECORD FRAME 7" SINGLE SIZE', 2, "2009-12-02 08:30:00", 2.1, 12346.0, "USA"),
        ("489438", "M", "Manual", 1, "2009-12-02 08:30:00", 0.0, 12346.0, "USA"),
        (
            "489439",
            "DCGS0058",
            "MISO PRETTY  GUM",
            10,
            "2009-12-02 12:00:00",
            0.83,
            13085.0,
            "United Kingdom",
        ),
        ("C489440", "22041", 'RECORD FRAME 7" SINGLE SIZE', -1, "2009-12-03 09:00:00", 2.1, 12346.0, "USA"),
        ("C489441", "D", "Discount", -1, "2009-12-03 09:30:00", 5.0, 12682.0, "France"),
        (
            "489442",
            "85123A",
            "CREAM HANGING HEART T-LIGHT HOLDER",
            8,
            "2009-12-03 10:00:00",
            2.95,
            14000.0,
            "EIRE",
        ),
        ("489442", "TEST001", "This is a test product.", 1, "2009-12-03 10:00:00", 4.5, 14000.0, "EIRE"),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "Invoice",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "Price",
            "Customer ID",
            "Country",
        ],
    )


def _retail_expected(lines: pd.DataFrame, kept: pd.Series) -> pd.DataFrame:
    """Summed Quantity per stock code, warehouse and day of the kept lines (cancellations net)."""
    frame = lines.loc[kept].copy()
    frame[C.SKU] = frame["StockCode"].str.upper()
    frame[C.WAREHOUSE_ID] = frame["Country"].map(
        lambda c: DEFAULT_WAREHOUSE_MAP.get(c, DEFAULT_WAREHOUSE_MAP["*"])
    )
    frame[C.DATE] = pd.to_datetime(frame["InvoiceDate"]).dt.normalize()
    return (
        frame.groupby([C.SKU, C.WAREHOUSE_ID, C.DATE], as_index=False)["Quantity"]
        .sum()
        .rename(columns={"Quantity": "units"})
    )


QUARANTINED_CODES = {"POST", "M", "D", "TEST001"}


def _kept_mask(lines: pd.DataFrame) -> pd.Series:
    return lines["StockCode"].notna() & ~lines["StockCode"].isin(QUARANTINED_CODES) & (lines["Price"] > 0)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_online_retail_source_passes_validation_and_nets_returns(tmp_path: Path, suffix: str) -> None:
    lines = _retail_lines()
    file = tmp_path / f"lines{suffix}"
    if suffix == ".parquet":
        lines.to_parquet(file, index=False)
    else:
        lines.to_csv(file, index=False)
    out = tmp_path / "orsrc"
    summary = import_online_retail(file, out)
    tables = _load_clean(out, (C.PRODUCTS, C.WAREHOUSES))

    result = _ingest_all(out)
    assert result.quarantine.empty
    _assert_daily_quantities(result.raw_sales, _retail_expected(lines, _kept_mask(lines)))
    uk_day1 = result.raw_sales.set_index([C.SKU, C.WAREHOUSE_ID, C.DATE]).loc[
        ("85123A", "UK", pd.Timestamp("2009-12-01")), C.QUANTITY
    ]
    assert uk_day1 == 6 - 2  # the cancellation nets against the day's sale

    written = pd.read_parquet(out / f"{C.TRANSACTIONS}.parquet").set_index(C.TRANSACTION_ID)
    assert summary.rows[C.TRANSACTIONS] == len(written) == int(_kept_mask(lines).sum())
    # Returns stay as negative lines; ids are invoice + position in the invoice (skipped lines count).
    assert written.loc["C489436-1", C.QUANTITY] == -2
    assert written.loc["C489436-1", C.REVENUE] == pytest.approx(-2 * 2.55)
    assert written.loc["489434-2", C.SKU] == "85123A" and "489434-3" not in written.index
    assert written.loc["489435-1", C.SKU] == "85123A"  # lower-case code folded
    assert (
        written.loc["489434-1", C.CUSTOMER_ID] == "13085" and written.loc["489434-1", C.ORDER_ID] == "489434"
    )
    assert pd.isna(written.loc["489435-1", C.CUSTOMER_ID])
    assert summary.first_date == dt.date(2009, 12, 1) and summary.last_date == dt.date(2009, 12, 3)

    assert sorted(tables[C.WAREHOUSES][C.WAREHOUSE_ID]) == ["EU", "ROW", "UK"]
    products = tables[C.PRODUCTS].set_index(C.SKU)
    assert sorted(products.index) == ["22041", "85048", "85123A", "DCGS0058"]
    assert products.loc["85123A", C.CATEGORY] == "white"  # first word of the most frequent description
    assert products.loc["85123A", C.PRICE] == pytest.approx(2.55)  # median of 2.55, 2.55, 2.55, 2.95
    assert products.loc["22041", C.LAUNCH_DATE] == pd.Timestamp("2009-12-02")  # the zero-price line is out
    assert products.loc["85048", C.LAUNCH_DATE] == pd.Timestamp("2009-12-01")


def test_online_retail_quarantine_reasons(tmp_path: Path) -> None:
    file = tmp_path / "lines.parquet"
    _retail_lines().to_parquet(file, index=False)
    out = tmp_path / "orsrc"
    summary = import_online_retail(file, out)
    quarantine = pd.read_parquet(out / QUARANTINE_FILE)
    assert (
        list(quarantine.columns[:1]) == [C.SOURCE_TABLE]
        and (quarantine[C.SOURCE_TABLE] == "transactions").all()
    )
    originals = [json.loads(row) for row in quarantine[C.ORIGINAL_ROW]]
    by_code = {
        (o["StockCode"], o["Invoice"]): r for o, r in zip(originals, quarantine[C.REASON], strict=True)
    }
    assert by_code[("POST", "489434")] == "non-product stock code"
    assert by_code[("22041", "489437")] == "non-positive price"
    assert by_code[(None, "489437")] == "missing stock code"
    assert by_code[("M", "489438")] == "non-product stock code; non-positive price"
    assert by_code[("D", "C489441")] == "non-product stock code"
    assert by_code[("TEST001", "489442")] == "non-product stock code"
    assert summary.quarantined == {
        "non-product stock code": 3,
        "non-positive price": 1,
        "missing stock code": 1,
        "non-product stock code; non-positive price": 1,
    }
    assert summary.n_quarantined == len(quarantine) == 6
    assert set(quarantine[C.WAREHOUSE_ID]) == {"UK", "EU", "ROW"}
    text = str(summary)
    assert "transactions" in text and "non-positive price: 1" in text


def test_is_product_code() -> None:
    codes = pd.Series(
        [
            "85123A",
            "85123a",
            "DCGS0058",
            "SP1002",
            "22041",
            "POST",
            "m",
            "C2",
            "BANK CHARGES",
            "ADJUST2",
            "TEST002",
            "gift_0001_20",
            "AMAZONFEE",
            "DCGSSGIRL",
            "CRUK",
            "S",
        ]
    )
    assert is_product_code(codes).tolist() == [True] * 5 + [False] * 11


def test_custom_warehouse_map(tmp_path: Path) -> None:
    file = tmp_path / "lines.parquet"
    _retail_lines().to_parquet(file, index=False)
    csv_map = tmp_path / "map.csv"
    csv_map.write_text("country,warehouse_id\nUnited Kingdom,GB-1\nFrance,FR\nEIRE,GB-1\n")
    mapping = load_warehouse_map(csv_map)
    assert mapping == {"United Kingdom": "GB-1", "France": "FR", "EIRE": "GB-1"}
    out = tmp_path / "orsrc"
    summary = import_online_retail(file, out, warehouse_map=mapping)
    assert sorted(_load_clean(out, (C.WAREHOUSES,))[C.WAREHOUSES][C.WAREHOUSE_ID]) == ["FR", "GB-1"]
    assert summary.quarantined["unmapped country"] == 2  # the USA lines that would be kept
    json_map = tmp_path / "map.json"
    json_map.write_text(json.dumps({"united kingdom": "UK", "*": "OTHER"}))
    summary = import_online_retail(file, tmp_path / "json", warehouse_map=load_warehouse_map(json_map))
    assert sorted(_load_clean(tmp_path / "json", (C.WAREHOUSES,))[C.WAREHOUSES][C.WAREHOUSE_ID]) == [
        "OTHER",
        "UK",
    ]
    json_map.write_text(json.dumps({"France": "bad id"}))
    with pytest.raises(ValueError, match="invalid"):
        load_warehouse_map(json_map)


def test_import_summary_str(tmp_path: Path) -> None:
    summary = ImportSummary(
        out_dir=tmp_path,
        rows={C.TRANSACTIONS: 1234, C.PRODUCTS: 2},
        quarantined={"non-positive price": 3},
        first_date=dt.date(2020, 1, 1),
        last_date=dt.date(2020, 1, 31),
        seconds=1.5,
        notes=("a note",),
    )
    text = str(summary)
    assert "transactions: 1,234 rows" in text and "2020-01-01 .. 2020-01-31" in text
    assert "non-positive price: 3" in text and "note: a note" in text


def _classic(lines: pd.DataFrame) -> pd.DataFrame:
    """The same lines under the classic UCI "Online Retail" names and its US date format."""
    classic = lines.rename(
        columns={"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}
    )
    stamps = pd.to_datetime(classic["InvoiceDate"])
    classic["InvoiceDate"] = [f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}" for t in stamps]
    return classic[
        [
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ]
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_classic_online_retail_columns_import_like_ii(tmp_path: Path, suffix: str) -> None:
    lines = _retail_lines()
    ii_file, classic_file = tmp_path / f"ii{suffix}", tmp_path / f"classic{suffix}"
    for frame, file in ((lines, ii_file), (_classic(lines), classic_file)):
        if suffix == ".parquet":
            frame.to_parquet(file, index=False)
        else:
            frame.to_csv(file, index=False)
    ii = import_online_retail(ii_file, tmp_path / "ii")
    classic = import_online_retail(classic_file, tmp_path / "classic")
    assert classic.rows == ii.rows and classic.quarantined == ii.quarantined
    assert (classic.first_date, classic.last_date) == (ii.first_date, ii.last_date)
    for table in (C.TRANSACTIONS, C.PRODUCTS, C.WAREHOUSES):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "classic" / f"{table}.parquet"),
            pd.read_parquet(tmp_path / "ii" / f"{table}.parquet"),
        )
    written = pd.read_parquet(tmp_path / "classic" / f"{C.TRANSACTIONS}.parquet").set_index(C.TRANSACTION_ID)
    assert (
        written.loc["489434-1", C.CUSTOMER_ID] == "13085" and written.loc["489434-1", C.ORDER_ID] == "489434"
    )
    assert written.loc["C489436-1", C.REVENUE] == pytest.approx(-2 * 2.55)
    result = _ingest_all(tmp_path / "classic")
    assert result.quarantine.empty
    _assert_daily_quantities(result.raw_sales, _retail_expected(lines, _kept_mask(lines)))
    # The import quarantine keeps each row under the file's own column names.
    original = json.loads(pd.read_parquet(tmp_path / "classic" / QUARANTINE_FILE)[C.ORIGINAL_ROW].iloc[0])
    assert {"InvoiceNo", "UnitPrice", "CustomerID"} <= set(original) and "Invoice" not in original


def test_online_retail_missing_columns_name_both_spellings(tmp_path: Path) -> None:
    file = tmp_path / "lines.csv"
    _classic(_retail_lines()).drop(columns=["UnitPrice"]).to_csv(file, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) Price \(or UnitPrice\)"):
        import_online_retail(file, tmp_path / "out")
    both = _retail_lines().assign(InvoiceNo="1")
    both.to_csv(file, index=False)
    with pytest.raises(ValueError, match=r"both the classic and the II name.*InvoiceNo/Invoice"):
        import_online_retail(file, tmp_path / "out")
