"""A source written exactly in the original design's DDL types, for tests of the type canonicalisation.

The design's DDL (the platform's brief) types the tables as a warehouse system would export them::

    transactions(transaction_id BIGINT, sku VARCHAR, warehouse_id INT, transaction_date DATE or
                 TIMESTAMP, quantity INT, revenue DECIMAL(12,2), customer_id BIGINT, order_id BIGINT)
    products(sku VARCHAR, category, sub_category, brand VARCHAR, price DECIMAL(10,2),
             weight_kg DECIMAL, is_seasonal BOOLEAN, launch_date DATE)
    warehouses(warehouse_id INT, location_city, location_state VARCHAR, latitude, longitude DECIMAL,
               capacity_units INT, operational_since DATE)
    marketing_campaigns(campaign_id INT, start_date DATE, end_date DATE, sku VARCHAR (null = all),
                        discount_percent DECIMAL, campaign_type VARCHAR, target_region VARCHAR)
    calendar(date DATE, day_of_week INT, is_weekend, is_holiday BOOLEAN, holiday_name VARCHAR,
             is_payday BOOLEAN, month, quarter, year INT)
    weather(date DATE, location_city VARCHAR, temperature_avg DECIMAL, precipitation_mm DECIMAL,
            is_extreme_weather BOOLEAN)

:func:`write_design_source` rewrites a source made by :func:`demand_platform.synthetic.generate_source`
(text ids like ``WH001``, ``TXN-WH001-000000001``, ``CMP-000001``) into these types: integer
warehouse ids ``1, 2, ...`` (by sorted text id), integer campaign ids, BIGINT transaction, customer
and order ids (numbered by first appearance, so duplicates stay duplicates), DECIMAL money and
measures, DATE and TIMESTAMP dates; as Parquet, or as CSV (what a database export writes:
``4.00``, ``2023-01-01 10:30:00``, ``true``, empty for null). A calendar (the platform's own derived
one, :func:`demand_platform.calendar.build_calendar`) is added in the DDL types.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from demand_platform import columns as C
from demand_platform.calendar import build_calendar
from demand_platform.source import history_range

DESIGN_SCHEMAS: dict[str, pa.Schema] = {
    C.TRANSACTIONS: pa.schema(
        [
            (C.TRANSACTION_ID, pa.int64()),
            (C.SKU, pa.string()),
            (C.WAREHOUSE_ID, pa.int32()),
            (C.TRANSACTION_DATE, pa.timestamp("us")),  # date32 with timestamps=False
            (C.QUANTITY, pa.int32()),
            (C.REVENUE, pa.decimal128(12, 2)),
            (C.CUSTOMER_ID, pa.int64()),
            (C.ORDER_ID, pa.int64()),
        ]
    ),
    C.PRODUCTS: pa.schema(
        [
            (C.SKU, pa.string()),
            (C.CATEGORY, pa.string()),
            (C.SUB_CATEGORY, pa.string()),
            (C.BRAND, pa.string()),
            (C.PRICE, pa.decimal128(10, 2)),
            (C.WEIGHT_KG, pa.decimal128(10, 3)),
            (C.IS_SEASONAL, pa.bool_()),
            (C.LAUNCH_DATE, pa.date32()),
        ]
    ),
    C.WAREHOUSES: pa.schema(
        [
            (C.WAREHOUSE_ID, pa.int32()),
            (C.LOCATION_CITY, pa.string()),
            (C.LOCATION_STATE, pa.string()),
            (C.LATITUDE, pa.decimal128(9, 6)),
            (C.LONGITUDE, pa.decimal128(9, 6)),
            (C.CAPACITY_UNITS, pa.int32()),
            (C.OPERATIONAL_SINCE, pa.date32()),
        ]
    ),
    C.MARKETING_CAMPAIGNS: pa.schema(
        [
            (C.CAMPAIGN_ID, pa.int32()),
            (C.START_DATE, pa.date32()),
            (C.END_DATE, pa.date32()),
            (C.SKU, pa.string()),
            (C.DISCOUNT_PERCENT, pa.decimal128(5, 2)),
            (C.CAMPAIGN_TYPE, pa.string()),
            (C.TARGET_REGION, pa.string()),
        ]
    ),
    C.CALENDAR: pa.schema(
        [
            (C.DATE, pa.date32()),
            (C.DAY_OF_WEEK, pa.int32()),
            (C.IS_WEEKEND, pa.bool_()),
            (C.IS_HOLIDAY, pa.bool_()),
            (C.HOLIDAY_NAME, pa.string()),
            (C.IS_PAYDAY, pa.bool_()),
            (C.MONTH, pa.int32()),
            (C.QUARTER, pa.int32()),
            (C.YEAR, pa.int32()),
        ]
    ),
    C.WEATHER: pa.schema(
        [
            (C.DATE, pa.date32()),
            (C.LOCATION_CITY, pa.string()),
            (C.TEMPERATURE_AVG, pa.decimal128(5, 2)),
            (C.PRECIPITATION_MM, pa.decimal128(7, 2)),
            (C.IS_EXTREME_WEATHER, pa.bool_()),
        ]
    ),
}
"""Arrow types of the design's DDL, per table."""

TRANSACTION_TIME = pd.Timedelta(hours=10, minutes=30)
"""Time of day given to every line when ``transaction_date`` is written as a TIMESTAMP."""

UNKNOWN_WAREHOUSE_BASE = 9000
"""Integer ids of warehouses that transactions name but the warehouses table lacks start here."""


@dataclass(frozen=True)
class DesignSource:
    """A source written in the design's DDL types.

    Attributes:
        out_dir: The source directory written.
        fmt: ``"parquet"`` or ``"csv"``.
        warehouse_ids: Original (text) warehouse id -> integer id written.
        campaign_ids: Original (text) campaign id -> integer id written.
    """

    out_dir: Path
    fmt: str
    warehouse_ids: dict[str, int]
    campaign_ids: dict[str, int]

    def original_warehouse(self, design_id: str) -> str:
        """The original text id of a canonical design warehouse id (``"1"`` -> ``"WH001"``)."""
        return {str(v): k for k, v in self.warehouse_ids.items()}[design_id]


def _numbered(values: pa.ChunkedArray) -> pa.Array:
    """Integers 1, 2, ... by first appearance (nulls stay null; equal values get equal numbers)."""
    codes = values.combine_chunks().dictionary_encode().indices  # null where the value is null
    return pc.add(codes.cast(pa.int64()), 1)


def _decimals_arrow(values: pa.ChunkedArray, field_type: pa.DataType) -> pa.ChunkedArray:
    """Arrow twin of :func:`_decimals`."""
    assert isinstance(field_type, pa.Decimal128Type)
    numbers = values.cast(pa.float64())
    fits = pc.less(pc.abs(numbers), 10.0 ** (field_type.precision - field_type.scale))
    kept = pc.if_else(fits, numbers, pa.scalar(None, pa.float64()))
    return pc.round(kept, field_type.scale).cast(field_type)


def _decimals(values: pd.Series, field_type: pa.DataType) -> pa.Array:
    """Decimals rounded to the type's scale; values too large for its precision become null (a
    database would refuse them: only the absurd quantities of deliberately bad rows get there)."""
    assert isinstance(field_type, pa.Decimal128Type)
    numbers = values.to_numpy(dtype=float)
    limit = 10.0 ** (field_type.precision - field_type.scale)
    numbers = np.where(np.abs(numbers) < limit, numbers, np.nan)
    floats = pa.array(numbers, from_pandas=True)
    return pc.round(floats, field_type.scale).cast(field_type)


def _dates(values: pd.Series) -> pa.Array:
    days = pd.to_datetime(values).dt.normalize().to_numpy(dtype="datetime64[ns]")
    return pa.array(days, from_pandas=True).cast(pa.date32())


def _column(frame: pd.DataFrame, field: pa.Field) -> pa.Array:
    values = frame[field.name]
    if pa.types.is_decimal(field.type):
        return _decimals(values, field.type)
    if pa.types.is_date(field.type):
        return _dates(values)
    if pa.types.is_integer(field.type):
        return pa.array(pd.array(values, dtype="Int64"), type=pa.int64()).cast(field.type)
    return pa.array(values.to_numpy(), type=field.type, from_pandas=True)


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([_column(frame, f) for f in schema], schema=schema)


def _write(table: pa.Table, out: Path, name: str, fmt: str) -> None:
    other = out / f"{name}.{'csv' if fmt == 'parquet' else 'parquet'}"
    other.unlink(missing_ok=True)  # the platform reads parquet first: never leave the other format
    if fmt == "parquet":
        pq.write_table(table, out / f"{name}.parquet")
    else:
        pacsv.write_csv(table, out / f"{name}.csv")


def write_design_source(
    source_dir: str | Path,
    out_dir: str | Path,
    fmt: str = "parquet",
    timestamps: bool = True,
    calendar: bool = True,
) -> DesignSource:
    """Rewrite a synthetic (text-id) source into the design's DDL types.

    Args:
        source_dir: A source written by :func:`demand_platform.synthetic.generate_source`.
        out_dir: Directory to write (created; table files replaced).
        fmt: ``"parquet"`` (typed columns) or ``"csv"`` (the same values as an export writes them).
        timestamps: Write ``transaction_date`` as a TIMESTAMP at 10:30 (else as a DATE).
        calendar: Also write a ``calendar`` table (the derived national calendar) from the first
            history day to a year after the last.

    Returns:
        Where it was written and the id mappings.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    src = Path(source_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        name: pd.read_parquet(src / f"{name}.parquet")
        for name in C.SOURCE_TABLES
        if (src / f"{name}.parquet").exists() and name in DESIGN_SCHEMAS and name != C.TRANSACTIONS
    }

    warehouses = tables[C.WAREHOUSES].copy()
    wh_map = {w: i + 1 for i, w in enumerate(sorted(warehouses[C.WAREHOUSE_ID].dropna().astype(str)))}
    lines = pq.read_table(src / f"{C.TRANSACTIONS}.parquet")  # Arrow: sources can be large
    line_warehouses = lines.column(C.WAREHOUSE_ID).cast(pa.string())
    unknown = sorted(set(pc.unique(line_warehouses).drop_null().to_pylist()) - set(wh_map))
    wh_map_all = {**wh_map, **{w: UNKNOWN_WAREHOUSE_BASE + i for i, w in enumerate(unknown)}}
    warehouses[C.WAREHOUSE_ID] = warehouses[C.WAREHOUSE_ID].map(wh_map)
    warehouses[C.CAPACITY_UNITS] = warehouses[C.CAPACITY_UNITS].round()
    _write(_table(warehouses, DESIGN_SCHEMAS[C.WAREHOUSES]), out, C.WAREHOUSES, fmt)

    schema = DESIGN_SCHEMAS[C.TRANSACTIONS]
    day = lines.column(C.TRANSACTION_DATE).cast(pa.date32())
    if timestamps:
        time_of_day = pa.scalar(TRANSACTION_TIME.to_pytimedelta(), pa.duration("us"))
        date_array = pc.add(day.cast(pa.timestamp("us")), time_of_day)
    else:
        schema = schema.set(
            schema.get_field_index(C.TRANSACTION_DATE), pa.field(C.TRANSACTION_DATE, pa.date32())
        )
        date_array = day
    wh_index = pc.index_in(line_warehouses, value_set=pa.array(list(wh_map_all), pa.string()))
    arrays = {
        C.TRANSACTION_ID: _numbered(lines.column(C.TRANSACTION_ID)),
        C.SKU: lines.column(C.SKU).cast(pa.string()),
        C.WAREHOUSE_ID: pc.take(pa.array(list(wh_map_all.values()), pa.int32()), wh_index),
        C.TRANSACTION_DATE: date_array,
        C.QUANTITY: lines.column(C.QUANTITY).cast(pa.int32()),
        C.REVENUE: _decimals_arrow(lines.column(C.REVENUE), schema.field(C.REVENUE).type),
        C.CUSTOMER_ID: _numbered(lines.column(C.CUSTOMER_ID)),
        C.ORDER_ID: _numbered(lines.column(C.ORDER_ID)),
    }
    _write(pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema), out, C.TRANSACTIONS, fmt)

    _write(_table(tables[C.PRODUCTS], DESIGN_SCHEMAS[C.PRODUCTS]), out, C.PRODUCTS, fmt)
    campaign_map: dict[str, int] = {}
    if C.MARKETING_CAMPAIGNS in tables:
        campaigns = tables[C.MARKETING_CAMPAIGNS].copy()
        campaign_map = {c: i + 1 for i, c in enumerate(campaigns[C.CAMPAIGN_ID].astype(str).unique())}
        campaigns[C.CAMPAIGN_ID] = campaigns[C.CAMPAIGN_ID].astype(str).map(campaign_map)
        _write(_table(campaigns, DESIGN_SCHEMAS[C.MARKETING_CAMPAIGNS]), out, C.MARKETING_CAMPAIGNS, fmt)
    if C.WEATHER in tables:
        _write(_table(tables[C.WEATHER], DESIGN_SCHEMAS[C.WEATHER]), out, C.WEATHER, fmt)
    if calendar:
        first, last = history_range(src)
        days = build_calendar(first.date(), last.date() + dt.timedelta(days=366))
        _write(_table(days, DESIGN_SCHEMAS[C.CALENDAR]), out, C.CALENDAR, fmt)
    return DesignSource(out_dir=out, fmt=fmt, warehouse_ids=wh_map, campaign_ids=campaign_map)
