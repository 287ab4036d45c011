"""Pandera schemas for the source tables and the platform's tables.

The source models describe the contract of a bring-your-own-data source directory (see the README).
They coerce types, so a value that cannot be parsed becomes a row-level failure that the ingestion
layer quarantines with its reason instead of failing the whole table. The platform models
(``RawSalesModel``, ``QuarantineModel``) are turned into Dagster types in the ``assets`` layer.
"""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from demand_platform import columns as C

# Largest plausible quantity on a single order line; larger absolute values are quarantined.
MAX_LINE_QUANTITY = 10_000


class TransactionsModel(pa.DataFrameModel):
    """``transactions``: one row per order line (negative quantity = return)."""

    transaction_id: Series[str] = pa.Field(nullable=False)
    sku: Series[str] = pa.Field(nullable=False)
    warehouse_id: Series[str] = pa.Field(nullable=False)
    transaction_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    quantity: Series[float] = pa.Field(
        nullable=False, coerce=True, ge=-MAX_LINE_QUANTITY, le=MAX_LINE_QUANTITY
    )
    revenue: Series[float] = pa.Field(nullable=True, coerce=True)
    customer_id: Series[str] = pa.Field(nullable=True)
    order_id: Series[str] = pa.Field(nullable=True)


class ProductsModel(pa.DataFrameModel):
    """``products``: the SKU master."""

    sku: Series[str] = pa.Field(nullable=False, unique=True)
    category: Series[str] = pa.Field(nullable=False)
    sub_category: Series[str] = pa.Field(nullable=True)
    brand: Series[str] = pa.Field(nullable=True)
    price: Series[float] = pa.Field(nullable=False, coerce=True, ge=0)
    weight_kg: Series[float] = pa.Field(nullable=True, coerce=True, ge=0)
    is_seasonal: Series[bool] = pa.Field(nullable=False, coerce=True)
    launch_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)


class WarehousesModel(pa.DataFrameModel):
    """``warehouses``: one row per warehouse; its ids become the ``warehouse`` partition keys."""

    warehouse_id: Series[str] = pa.Field(nullable=False, unique=True, str_matches=r"^[A-Za-z0-9_\-]+$")
    location_city: Series[str] = pa.Field(nullable=True)
    location_state: Series[str] = pa.Field(nullable=True)
    latitude: Series[float] = pa.Field(nullable=True, coerce=True, ge=-90, le=90)
    longitude: Series[float] = pa.Field(nullable=True, coerce=True, ge=-180, le=180)
    capacity_units: Series[float] = pa.Field(nullable=True, coerce=True, ge=0)
    operational_since: Series[pd.Timestamp] = pa.Field(nullable=True, coerce=True)


class MarketingCampaignsModel(pa.DataFrameModel):
    """``marketing_campaigns`` (optional): sku null = all SKUs, target_region null = all states."""

    campaign_id: Series[str] = pa.Field(nullable=False)
    start_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    end_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    sku: Series[str] = pa.Field(nullable=True)
    discount_percent: Series[float] = pa.Field(nullable=False, coerce=True, ge=0, le=100)
    campaign_type: Series[str] = pa.Field(nullable=True)
    target_region: Series[str] = pa.Field(nullable=True)

    @pa.dataframe_check
    @classmethod
    def ends_after_start(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        """A campaign ends on or after the day it starts."""
        return df[C.END_DATE] >= df[C.START_DATE]


class CalendarModel(pa.DataFrameModel):
    """``calendar`` (optional; derived with national holidays when absent)."""

    date: Series[pd.Timestamp] = pa.Field(nullable=False, unique=True, coerce=True)
    day_of_week: Series[int] = pa.Field(nullable=False, coerce=True, ge=1, le=7)
    is_weekend: Series[bool] = pa.Field(nullable=False, coerce=True)
    is_holiday: Series[bool] = pa.Field(nullable=False, coerce=True)
    holiday_name: Series[str] = pa.Field(nullable=True)
    is_payday: Series[bool] = pa.Field(nullable=False, coerce=True)
    month: Series[int] = pa.Field(nullable=False, coerce=True, ge=1, le=12)
    quarter: Series[int] = pa.Field(nullable=False, coerce=True, ge=1, le=4)
    year: Series[int] = pa.Field(nullable=False, coerce=True)


class WeatherModel(pa.DataFrameModel):
    """``weather`` (optional): daily weather per city."""

    date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    location_city: Series[str] = pa.Field(nullable=False)
    temperature_avg: Series[float] = pa.Field(nullable=True, coerce=True, ge=-80, le=70)
    precipitation_mm: Series[float] = pa.Field(nullable=True, coerce=True, ge=0)
    is_extreme_weather: Series[bool] = pa.Field(nullable=True, coerce=True)


class OverridesModel(pa.DataFrameModel):
    """``overrides`` (optional): planner adjustments applied after modelling.

    Exactly one of ``multiplier`` and ``absolute_value`` is set; a null SKU or warehouse matches all.
    """

    sku: Series[str] = pa.Field(nullable=True)
    warehouse_id: Series[str] = pa.Field(nullable=True)
    start_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    end_date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True)
    multiplier: Series[float] = pa.Field(nullable=True, coerce=True, ge=0)
    absolute_value: Series[float] = pa.Field(nullable=True, coerce=True, ge=0)
    author: Series[str] = pa.Field(nullable=False)
    reason: Series[str] = pa.Field(nullable=True)

    @pa.dataframe_check
    @classmethod
    def one_adjustment(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        """Exactly one of multiplier and absolute_value is set."""
        return df["multiplier"].isna() != df["absolute_value"].isna()


SOURCE_MODELS: dict[str, type[pa.DataFrameModel]] = {
    C.TRANSACTIONS: TransactionsModel,
    C.PRODUCTS: ProductsModel,
    C.WAREHOUSES: WarehousesModel,
    C.MARKETING_CAMPAIGNS: MarketingCampaignsModel,
    C.CALENDAR: CalendarModel,
    C.WEATHER: WeatherModel,
    C.OVERRIDES: OverridesModel,
}


class RawSalesModel(pa.DataFrameModel):
    """``raw_sales``: net demand of one day per SKU active in one warehouse (zero rows included).

    ``source_lines`` and ``source_fingerprint`` (optional) are the transaction lines and the
    fingerprint of the row's (warehouse, day) it was built from (``SalesSlice.lines_per_date``).
    """

    sku: Series[str] = pa.Field(nullable=False)
    warehouse_id: Series[str] = pa.Field(nullable=False)
    date: Series[pd.Timestamp] = pa.Field(nullable=False)
    quantity: Series[float] = pa.Field(nullable=False)
    revenue: Series[float] = pa.Field(nullable=False)
    n_orders: Series[int] = pa.Field(nullable=False, ge=0)
    source_lines: Series[int] | None = pa.Field(nullable=False, ge=0)
    source_fingerprint: Series[int] | None = pa.Field(nullable=False, ge=0)

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.DATE]


class QuarantineModel(pa.DataFrameModel):
    """``quarantine``: rejected source rows kept aside with their reason and the original row (JSON)."""

    source_table: Series[str] = pa.Field(nullable=False, isin=list(C.SOURCE_TABLES))
    warehouse_id: Series[str] = pa.Field(nullable=True)
    partition_date: Series[pd.Timestamp] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    original_row: Series[str] = pa.Field(nullable=False)
    detected_by: Series[str] = pa.Field(nullable=False)

    class Config:
        strict = True


def feature_table_schema() -> pa.DataFrameSchema:
    """``feature_table``: one row per SKU active at the origin, the features known at its end."""
    from demand_platform import features as F

    columns: dict[str, pa.Column] = {
        F.ORIGIN_DATE: pa.Column("datetime64[ns]", nullable=False),
        C.SKU: pa.Column(str, nullable=False),
        C.WAREHOUSE_ID: pa.Column(str, nullable=False),
        F.MISSING_HISTORY_DAYS: pa.Column("int64", pa.Check.ge(0), nullable=False),
    }
    columns.update({name: pa.Column("float64", nullable=True) for name in F.FEATURE_COLUMNS})
    columns.update({name: pa.Column(object, nullable=True) for name in F.CATEGORICAL_FEATURES})
    return pa.DataFrameSchema(
        columns,
        strict=True,
        unique=[F.ORIGIN_DATE, C.SKU, C.WAREHOUSE_ID],
        name="FeatureTable",
    )


class TierAssignmentsModel(pa.DataFrameModel):
    """``tier_assignments``: volume tier, intermittency class, cold-start flag and route per SKU."""

    sku: Series[str] = pa.Field(nullable=False)
    warehouse_id: Series[str] = pa.Field(nullable=False)
    origin_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    trailing_volume: Series[float] = pa.Field(ge=0)
    trailing_revenue: Series[float]
    revenue_rank: Series[int] = pa.Field(ge=1)
    tier: Series[int] = pa.Field(isin=[1, 2, 3])
    adi: Series[float] = pa.Field(nullable=True)
    cv2: Series[float] = pa.Field(nullable=True)
    nonzero_days_total: Series[float] = pa.Field(ge=0)
    age_days: Series[float] = pa.Field(nullable=True)
    intermittency_class: Series[str] = pa.Field(
        isin=["smooth", "erratic", "intermittent", "lumpy", "no_demand"]
    )
    cold_start: Series[bool]
    route: Series[str] = pa.Field(isin=["global_ml", "statistical", "cold_start"])

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE]


class TrainedModelsModel(pa.DataFrameModel):
    """``trained_models``: one row per warehouse and training date: the registry version and the gate."""

    origin_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    warehouse_id: Series[str] = pa.Field(nullable=False)
    model_name: Series[str]
    version: Series[str]
    promoted: Series[bool]
    production_version: Series[str] = pa.Field(nullable=True)
    validation_wmape: Series[float] = pa.Field(nullable=True)
    reference_wmape: Series[float] = pa.Field(nullable=True)
    reference: Series[str]
    reason: Series[str]
    train_seconds: Series[float] = pa.Field(ge=0)

    class Config:
        strict = True
        unique = [C.ORIGIN_DATE, C.WAREHOUSE_ID]


class ForecastsModel(pa.DataFrameModel):
    """``forecasts``: daily forecasts D+1..D+30 per SKU, non-negative, with ordered quantiles."""

    sku: Series[str] = pa.Field(nullable=False)
    warehouse_id: Series[str] = pa.Field(nullable=False)
    origin_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    target_date: Series[pd.Timestamp] = pa.Field(nullable=False)
    horizon: Series[int] = pa.Field(ge=1, le=90)
    forecast: Series[float] = pa.Field(ge=0)
    p50: Series[float] = pa.Field(ge=0)
    p90: Series[float] = pa.Field(ge=0)
    p95: Series[float] = pa.Field(ge=0)
    tier: Series[int] = pa.Field(isin=[1, 2, 3])
    model: Series[str]
    forecast_unadjusted: Series[float] = pa.Field(ge=0)
    p50_unadjusted: Series[float] = pa.Field(ge=0)
    p90_unadjusted: Series[float] = pa.Field(ge=0)
    p95_unadjusted: Series[float] = pa.Field(ge=0)
    override_applied: Series[bool]
    override_author: Series[str] = pa.Field(nullable=True)
    override_reason: Series[str] = pa.Field(nullable=True)
    model_version: Series[str]

    @pa.dataframe_check
    @classmethod
    def quantiles_ordered(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        """p50 <= p90 <= p95 on every row (a small tolerance for float rounding)."""
        return (df[C.P50] <= df[C.P90] + 1e-9) & (df[C.P90] <= df[C.P95] + 1e-9)

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.HORIZON]
