"""Pandera schemas for the source tables and the platform's tables.

The source models describe the contract of a bring-your-own-data source directory (see the README).
They coerce types, so a value that cannot be parsed becomes a row-level failure that the ingestion
layer quarantines with its reason instead of failing the whole table. The platform models
(``RawSalesModel``, ``QuarantineModel``) are turned into Dagster types in the ``assets`` layer.
"""

from collections.abc import Iterable

import pandas as pd
import pandera.pandas as pa
from pandera import dtypes
from pandera.engines import pandas_engine
from pandera.typing import Series

from demand_platform import columns as C


@pandas_engine.Engine.register_dtype
@dtypes.immutable
class Text(pandas_engine.NpString):
    """Pandera's ``str`` dtype, checked in one vectorised pass.

    pandera checks a ``str`` column of object dtype by calling ``isinstance`` on every element from
    Python, about a second per ten million values, which a raw_sales run of two years paid on each of
    its id columns. ``pandas.api.types.infer_dtype`` makes the same test in C; only a column that
    fails it goes through pandera's own check, which names the failing rows.
    """

    def check(
        self, pandera_dtype: dtypes.DataType, data_container: pd.Series | pd.DataFrame | None = None
    ) -> bool | Iterable[bool]:
        if data_container is not None and pd.api.types.infer_dtype(data_container, skipna=True) in (
            "string",
            "empty",
        ):
            return True
        return super().check(pandera_dtype, data_container)


# Largest plausible quantity on a single order line; larger absolute values are quarantined.
MAX_LINE_QUANTITY = 10_000


class TransactionsModel(pa.DataFrameModel):
    """``transactions``: one row per order line (negative quantity = return)."""

    transaction_id: Series[Text] = pa.Field(
        nullable=False, description="Identifier of the order line in the source system."
    )
    sku: Series[Text] = pa.Field(nullable=False, description="Stock-keeping unit sold (or returned).")
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse that shipped the line.")
    transaction_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="Day of the order line."
    )
    quantity: Series[float] = pa.Field(
        nullable=False,
        coerce=True,
        ge=-MAX_LINE_QUANTITY,
        le=MAX_LINE_QUANTITY,
        description=(
            f"Units on the line; negative for a return. Beyond +/- {MAX_LINE_QUANTITY:,} it is quarantined."
        ),
    )
    revenue: Series[float] = pa.Field(
        nullable=True, coerce=True, description="Net revenue of the line (currency of the source)."
    )
    customer_id: Series[Text] = pa.Field(nullable=True, description="Customer of the order, when known.")
    order_id: Series[Text] = pa.Field(
        nullable=True, description="Order the line belongs to (distinct orders give raw_sales.n_orders)."
    )


class ProductsModel(pa.DataFrameModel):
    """``products``: the SKU master."""

    sku: Series[Text] = pa.Field(nullable=False, unique=True, description="Stock-keeping unit (unique).")
    category: Series[Text] = pa.Field(nullable=False, description="Product category.")
    sub_category: Series[Text] = pa.Field(nullable=True, description="Product sub-category.")
    brand: Series[Text] = pa.Field(nullable=True, description="Brand.")
    price: Series[float] = pa.Field(
        nullable=False, coerce=True, ge=0, description="List unit price (non-negative)."
    )
    weight_kg: Series[float] = pa.Field(
        nullable=True, coerce=True, ge=0, description="Unit weight in kilograms."
    )
    is_seasonal: Series[bool] = pa.Field(
        nullable=False, coerce=True, description="Whether the product sells seasonally."
    )
    launch_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="Day the product was launched."
    )


class WarehousesModel(pa.DataFrameModel):
    """``warehouses``: one row per warehouse; its ids become the ``warehouse`` partition keys."""

    warehouse_id: Series[Text] = pa.Field(
        nullable=False,
        unique=True,
        str_matches=r"^[A-Za-z0-9_\-]+$",
        description="Warehouse identifier (letters, digits, '_' and '-'); a warehouse partition key.",
    )
    location_city: Series[Text] = pa.Field(
        nullable=True, description="City of the warehouse (joins the weather table)."
    )
    location_state: Series[Text] = pa.Field(
        nullable=True, description="State or region of the warehouse (matches campaigns' target_region)."
    )
    latitude: Series[float] = pa.Field(
        nullable=True, coerce=True, ge=-90, le=90, description="Latitude in degrees."
    )
    longitude: Series[float] = pa.Field(
        nullable=True, coerce=True, ge=-180, le=180, description="Longitude in degrees."
    )
    capacity_units: Series[float] = pa.Field(
        nullable=True, coerce=True, ge=0, description="Storage capacity in units."
    )
    operational_since: Series[pd.Timestamp] = pa.Field(
        nullable=True, coerce=True, description="Day the warehouse started operating."
    )


class MarketingCampaignsModel(pa.DataFrameModel):
    """``marketing_campaigns`` (optional): sku null = all SKUs, target_region null = all states."""

    campaign_id: Series[Text] = pa.Field(nullable=False, description="Campaign identifier.")
    start_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="First day of the campaign."
    )
    end_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="Last day of the campaign (on or after start_date)."
    )
    sku: Series[Text] = pa.Field(nullable=True, description="SKU on promotion; null for every SKU.")
    discount_percent: Series[float] = pa.Field(
        nullable=False, coerce=True, ge=0, le=100, description="Discount in percent (0-100)."
    )
    campaign_type: Series[Text] = pa.Field(nullable=True, description="Kind of campaign.")
    target_region: Series[Text] = pa.Field(
        nullable=True, description="State the campaign runs in (a warehouse's location_state); null for all."
    )

    @pa.dataframe_check
    @classmethod
    def ends_after_start(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        """A campaign ends on or after the day it starts."""
        return df[C.END_DATE] >= df[C.START_DATE]


class CalendarModel(pa.DataFrameModel):
    """``calendar`` (optional; derived with national holidays when absent)."""

    date: Series[pd.Timestamp] = pa.Field(
        nullable=False, unique=True, coerce=True, description="Calendar day (unique)."
    )
    day_of_week: Series[int] = pa.Field(
        nullable=False, coerce=True, ge=1, le=7, description="ISO day of the week, 1 = Monday .. 7 = Sunday."
    )
    is_weekend: Series[bool] = pa.Field(nullable=False, coerce=True, description="Saturday or Sunday.")
    is_holiday: Series[bool] = pa.Field(nullable=False, coerce=True, description="Public holiday.")
    holiday_name: Series[Text] = pa.Field(
        nullable=True, description="Name of the holiday, when there is one."
    )
    is_payday: Series[bool] = pa.Field(nullable=False, coerce=True, description="Payday.")
    month: Series[int] = pa.Field(nullable=False, coerce=True, ge=1, le=12, description="Month, 1-12.")
    quarter: Series[int] = pa.Field(nullable=False, coerce=True, ge=1, le=4, description="Quarter, 1-4.")
    year: Series[int] = pa.Field(nullable=False, coerce=True, description="Year.")


class WeatherModel(pa.DataFrameModel):
    """``weather`` (optional): daily weather per city."""

    date: Series[pd.Timestamp] = pa.Field(nullable=False, coerce=True, description="Day of the observation.")
    location_city: Series[Text] = pa.Field(nullable=False, description="City (a warehouse's location_city).")
    temperature_avg: Series[float] = pa.Field(
        nullable=True,
        coerce=True,
        ge=-80,
        le=70,
        description="Average temperature of the day, degrees Celsius.",
    )
    precipitation_mm: Series[float] = pa.Field(
        nullable=True, coerce=True, ge=0, description="Precipitation of the day, millimetres."
    )
    is_extreme_weather: Series[bool] = pa.Field(
        nullable=True, coerce=True, description="Extreme weather that day."
    )


class OverridesModel(pa.DataFrameModel):
    """``overrides`` (optional): planner adjustments applied after modelling.

    Exactly one of ``multiplier`` and ``absolute_value`` is set; a null SKU or warehouse matches all.
    """

    sku: Series[Text] = pa.Field(nullable=True, description="SKU adjusted; null for every SKU.")
    warehouse_id: Series[Text] = pa.Field(
        nullable=True, description="Warehouse adjusted; null for every warehouse."
    )
    start_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="First target day the override applies to."
    )
    end_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, coerce=True, description="Last target day the override applies to."
    )
    multiplier: Series[float] = pa.Field(
        nullable=True,
        coerce=True,
        ge=0,
        description="Factor applied to the forecast and its quantiles (exclusive with absolute_value).",
    )
    absolute_value: Series[float] = pa.Field(
        nullable=True,
        coerce=True,
        ge=0,
        description="Value replacing the forecast (exclusive with multiplier).",
    )
    author: Series[Text] = pa.Field(nullable=False, description="Planner who entered the override.")
    reason: Series[Text] = pa.Field(nullable=True, description="Why the forecast was adjusted.")

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

    sku: Series[Text] = pa.Field(nullable=False, description="Stock-keeping unit.")
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse (partition dimension).")
    date: Series[pd.Timestamp] = pa.Field(nullable=False, description="Day (partition dimension).")
    quantity: Series[float] = pa.Field(
        nullable=False, description="Net units of the day (sales less returns); 0 on a day without lines."
    )
    revenue: Series[float] = pa.Field(nullable=False, description="Net revenue of the day.")
    n_orders: Series[int] = pa.Field(nullable=False, ge=0, description="Distinct orders of the day.")
    source_lines: Series[int] | None = pa.Field(
        nullable=False,
        ge=0,
        description="Transaction lines of the row's warehouse and day that it was built from.",
    )
    source_fingerprint: Series[int] | None = pa.Field(
        nullable=False, ge=0, description="Fingerprint of those lines (finds late or corrected uploads)."
    )

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.DATE]


class QuarantineModel(pa.DataFrameModel):
    """``quarantine``: rejected source rows kept aside with their reason and the original row (JSON)."""

    source_table: Series[Text] = pa.Field(
        nullable=False, isin=list(C.SOURCE_TABLES), description="Source table the rejected row came from."
    )
    warehouse_id: Series[Text] = pa.Field(
        nullable=True, description="Warehouse of the row, when it could be read."
    )
    partition_date: Series[pd.Timestamp] = pa.Field(
        nullable=True, description="Day of the row, when it could be read."
    )
    reason: Series[Text] = pa.Field(
        nullable=False, str_length={"min_value": 1}, description="Why the row was rejected."
    )
    original_row: Series[Text] = pa.Field(
        nullable=False, description="The row as read from the source (JSON)."
    )
    detected_by: Series[Text] = pa.Field(nullable=False, description="Check that rejected the row.")

    class Config:
        strict = True


def feature_descriptions() -> dict[str, str]:
    """What each column of ``feature_table`` holds (the column docs of the Dagster UI).

    Every feature of origin D is computed from data known at the end of D; "horizon" is the forecast
    horizon D+1 .. D+30.
    """
    from demand_platform import features as F

    described: dict[str, str] = {
        F.ORIGIN_DATE: "Forecast origin D (partition dimension).",
        C.SKU: "Stock-keeping unit active in the warehouse at the origin.",
        C.WAREHOUSE_ID: "Warehouse (partition dimension).",
        F.MISSING_HISTORY_DAYS: (
            "Days of the feature lookback window (from the first day with history) without a raw_sales "
            "row in the warehouse; not a model feature."
        ),
        F.ORIGIN_DAY_OF_WEEK: "ISO day of the week of the origin (1 = Monday).",
        F.ORIGIN_MONTH: "Month of the origin.",
        F.ORIGIN_DAY_OF_MONTH: "Day of the month of the origin.",
        F.ORIGIN_WEEK_OF_YEAR: "ISO week of the origin.",
        F.ORIGIN_QUARTER: "Quarter of the origin.",
        F.ORIGIN_IS_WEEKEND: "1 when the origin is a Saturday or Sunday.",
        F.ORIGIN_IS_MONTH_START: "1 on the first day of a month.",
        F.ORIGIN_IS_MONTH_END: "1 on the last day of a month.",
        F.ORIGIN_IS_QUARTER_START: "1 on the first day of a quarter.",
        F.ORIGIN_DOW_SIN: "Sine of the day of the week (cyclic encoding).",
        F.ORIGIN_DOW_COS: "Cosine of the day of the week (cyclic encoding).",
        F.ORIGIN_DOY_SIN: "Sine of the day of the year (cyclic encoding).",
        F.ORIGIN_DOY_COS: "Cosine of the day of the year (cyclic encoding).",
        F.ORIGIN_IS_PAYDAY: "1 when the origin is a payday (null outside the calendar).",
        F.DEMAND_EXPANDING_MEAN: "Mean daily demand since the SKU's first row in the feature window (at most 393 days).",
        F.DEMAND_EXPANDING_STD: "Standard deviation of daily demand since the SKU's first row in the feature window.",
        F.DEMAND_ZERO_SHARE_28: "Share of zero-demand days among the observed days of the last 28.",
        F.DEMAND_ZERO_SHARE_SINCE_LAUNCH: "Share of zero-demand days since the SKU's first row in the feature window.",
        F.DEMAND_OBSERVED_DAYS_28: "Observed days (with a raw_sales row) among the last 28.",
        F.DAYS_SINCE_LAST_SALE: "Days since the last day with positive demand (NaN: none in the feature window).",
        F.DAYS_ACTIVE_IN_WAREHOUSE: "Days since the SKU's first row in the warehouse, at most the feature window (392).",
        F.DEMAND_ADI: "Average inter-demand interval over the last 365 days.",
        F.DEMAND_CV2: "Squared coefficient of variation of the non-zero demand sizes over the last 365 days.",
        F.ORIGIN_IS_HOLIDAY: "1 when the origin is a public holiday (null outside the calendar).",
        F.ORIGIN_HOLIDAY_NAME: "Name of the origin's holiday, when it is one.",
        F.DAYS_TO_NEXT_HOLIDAY: "Days from the origin to the next holiday.",
        F.DAYS_SINCE_LAST_HOLIDAY: "Days since the last holiday on or before the origin.",
        F.HOLIDAYS_NEXT_7: "Holidays in the 7 days after the origin.",
        F.HOLIDAYS_HORIZON: "Holidays in the horizon.",
        F.PROMO_ACTIVE: "1 when a campaign covers the SKU on the origin.",
        F.PROMO_DISCOUNT: "Discount (percent) of the SKU's campaign on the origin; 0 without one.",
        F.PROMO_DAYS_NEXT_7: "Campaign days of the SKU in the 7 days after the origin.",
        F.PROMO_MAX_DISCOUNT_NEXT_7: "Largest campaign discount (percent) in the 7 days after the origin.",
        F.PROMO_DAYS_HORIZON: "Campaign days of the SKU in the horizon.",
        F.PROMO_MAX_DISCOUNT_HORIZON: "Largest campaign discount (percent) in the horizon.",
        F.PRICE: "List unit price of the SKU.",
        F.PRICE_REL_CATEGORY: "List price over the mean list price of its category's launched SKUs.",
        F.REALISED_UNIT_PRICE_28: "Revenue per unit over the selling days of the last 28.",
        F.REALISED_DISCOUNT_28: "1 - realised unit price (last 28 days) / list price.",
        F.WEIGHT_KG: "Unit weight in kilograms.",
        F.IS_SEASONAL: "1 when the product sells seasonally.",
        F.PRODUCT_AGE_DAYS: "Days since the product's launch date.",
        F.CAPACITY_UNITS: "Storage capacity of the warehouse in units.",
        F.WEATHER_TEMP_AVG: "Average temperature on the origin in the warehouse's city (degrees Celsius).",
        F.WEATHER_TEMP_MEAN_7: "Mean daily temperature over the 7 days ending at the origin.",
        F.WEATHER_PRECIP_SUM_7: "Precipitation (mm) over the 7 days ending at the origin.",
        F.WEATHER_IS_EXTREME: "1 when the origin had extreme weather.",
        F.PRICE_X_DISCOUNT: "List price x origin discount / 100.",
        F.SEASONAL_X_MONTH: "Month of the origin for seasonal products, 0 otherwise.",
        F.CATEGORY: "Product category.",
        F.SUB_CATEGORY: "Product sub-category.",
        F.BRAND: "Brand.",
        F.LOCATION_STATE: "State of the warehouse.",
        F.CATEGORY_X_WEEKEND: "Category and whether the origin is a weekend day (category|weekend).",
    }
    for lag, name in F.DEMAND_LAG_COLUMNS.items():
        described[name] = f"Demand (units) {lag} day(s) before the first target day D+1, i.e. on D+1-{lag}."
    for stat, family in (
        ("Mean", F.DEMAND_ROLL_MEAN_COLUMNS),
        ("Standard deviation of", F.DEMAND_ROLL_STD_COLUMNS),
        ("Minimum", F.DEMAND_ROLL_MIN_COLUMNS),
        ("Maximum", F.DEMAND_ROLL_MAX_COLUMNS),
    ):
        for window, name in family.items():
            described[name] = f"{stat} daily demand over the {window} days ending at the origin."
    for halflife, name in F.DEMAND_EWM_COLUMNS.items():
        described[name] = f"Exponentially weighted mean daily demand, half-life {halflife} days."
    return described


def feature_table_schema() -> pa.DataFrameSchema:
    """``feature_table``: one row per SKU active at the origin, the features known at its end."""
    from demand_platform import features as F

    doc = feature_descriptions()
    columns: dict[str, pa.Column] = {
        F.ORIGIN_DATE: pa.Column("datetime64[ns]", nullable=False, description=doc[F.ORIGIN_DATE]),
        C.SKU: pa.Column(str, nullable=False, description=doc[C.SKU]),
        C.WAREHOUSE_ID: pa.Column(str, nullable=False, description=doc[C.WAREHOUSE_ID]),
        F.MISSING_HISTORY_DAYS: pa.Column(
            "int64", pa.Check.ge(0), nullable=False, description=doc[F.MISSING_HISTORY_DAYS]
        ),
    }
    columns.update(
        {name: pa.Column("float64", nullable=True, description=doc[name]) for name in F.FEATURE_COLUMNS}
    )
    columns.update(
        {name: pa.Column(object, nullable=True, description=doc[name]) for name in F.CATEGORICAL_FEATURES}
    )
    return pa.DataFrameSchema(
        columns,
        strict=True,
        unique=[F.ORIGIN_DATE, C.SKU, C.WAREHOUSE_ID],
        name="FeatureTable",
    )


class TierAssignmentsModel(pa.DataFrameModel):
    """``tier_assignments``: volume tier, intermittency class, cold-start flag and route per SKU."""

    sku: Series[Text] = pa.Field(
        nullable=False, description="Stock-keeping unit active in the warehouse at the origin."
    )
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse (partition dimension).")
    origin_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, description="Forecast origin D (partition dimension); only history up to D is read."
    )
    trailing_volume: Series[float] = pa.Field(
        ge=0, description="Clipped units over the tiering window ending at the origin."
    )
    trailing_revenue: Series[float] = pa.Field(
        description="Net revenue over the tiering window ending at the origin."
    )
    revenue_rank: Series[int] = pa.Field(
        ge=1, description="Rank by trailing revenue within the warehouse (1 = highest)."
    )
    tier: Series[int] = pa.Field(
        isin=[1, 2, 3], description="Volume tier by revenue rank: 1 (top SKUs), 2, 3 (the rest)."
    )
    adi: Series[float] = pa.Field(
        nullable=True,
        description="Average inter-demand interval over the intermittency window; null without demand.",
    )
    cv2: Series[float] = pa.Field(
        nullable=True,
        description="Squared coefficient of variation of the non-zero demand sizes; null without demand.",
    )
    nonzero_days_total: Series[float] = pa.Field(
        ge=0, description="Days with positive demand since the SKU's first history row."
    )
    age_days: Series[float] = pa.Field(
        nullable=True, description="Days since launch (the later of launch_date and the first history row)."
    )
    intermittency_class: Series[Text] = pa.Field(
        isin=["smooth", "erratic", "intermittent", "lumpy", "no_demand"],
        description="Syntetos-Boylan class from ADI and CV2, or no_demand.",
    )
    cold_start: Series[bool] = pa.Field(description="Launched recently or too few days with demand to model.")
    route: Series[Text] = pa.Field(
        isin=["global_ml", "statistical", "cold_start"],
        description="Model family that forecasts the SKU: global_ml, statistical or cold_start.",
    )

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE]


class TrainedModelsModel(pa.DataFrameModel):
    """``trained_models``: one row per warehouse and training date: the registry version and the gate."""

    origin_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, description="Training day (partition dimension)."
    )
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse (partition dimension).")
    model_name: Series[Text] = pa.Field(description="Registered model name of the warehouse in MLflow.")
    version: Series[Text] = pa.Field(description="Registry version of the candidate trained that day.")
    promoted: Series[bool] = pa.Field(description="Whether the gate promoted the candidate to production.")
    production_version: Series[Text] = pa.Field(
        nullable=True, description="Version in production after the gate."
    )
    validation_wmape: Series[float] = pa.Field(
        nullable=True, description="Candidate's WMAPE on the validation windows."
    )
    reference_wmape: Series[float] = pa.Field(
        nullable=True, description="WMAPE of the reference the candidate was compared with."
    )
    reference: Series[Text] = pa.Field(description="Gate's reference: production or seasonal_naive.")
    reason: Series[Text] = pa.Field(description="Gate's decision in words.")
    train_seconds: Series[float] = pa.Field(ge=0, description="Training time of the candidate, seconds.")

    class Config:
        strict = True
        unique = [C.ORIGIN_DATE, C.WAREHOUSE_ID]


class ForecastsModel(pa.DataFrameModel):
    """``forecasts``: daily forecasts D+1..D+30 per SKU, non-negative, with ordered quantiles."""

    sku: Series[Text] = pa.Field(nullable=False, description="Stock-keeping unit.")
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse (partition dimension).")
    origin_date: Series[pd.Timestamp] = pa.Field(
        nullable=False, description="Forecast origin D (partition dimension): data known at the end of D."
    )
    target_date: Series[pd.Timestamp] = pa.Field(nullable=False, description="Day forecast: D + horizon.")
    horizon: Series[int] = pa.Field(ge=1, le=90, description="Days ahead of the origin (1 = the next day).")
    forecast: Series[float] = pa.Field(ge=0, description="Point forecast of units (after overrides).")
    p50: Series[float] = pa.Field(ge=0, description="Median of demand (after overrides).")
    p90: Series[float] = pa.Field(ge=0, description="90th percentile of demand (after overrides).")
    p95: Series[float] = pa.Field(ge=0, description="95th percentile of demand (after overrides).")
    tier: Series[int] = pa.Field(isin=[1, 2, 3], description="Volume tier of the SKU at the origin.")
    model: Series[Text] = pa.Field(description="Model (or baseline) that produced the forecast.")
    forecast_unadjusted: Series[float] = pa.Field(ge=0, description="Point forecast before overrides.")
    p50_unadjusted: Series[float] = pa.Field(ge=0, description="Median before overrides.")
    p90_unadjusted: Series[float] = pa.Field(ge=0, description="90th percentile before overrides.")
    p95_unadjusted: Series[float] = pa.Field(ge=0, description="95th percentile before overrides.")
    override_applied: Series[bool] = pa.Field(description="Whether a planner override changed the row.")
    override_author: Series[Text] = pa.Field(nullable=True, description="Author of the override applied.")
    override_reason: Series[Text] = pa.Field(nullable=True, description="Reason of the override applied.")
    model_version: Series[Text] = pa.Field(
        description="Registry version of the warehouse model that served the forecast."
    )

    @pa.dataframe_check
    @classmethod
    def quantiles_ordered(cls, df: pd.DataFrame) -> "pd.Series[bool]":
        """p50 <= p90 <= p95 on every row (a small tolerance for float rounding)."""
        return (df[C.P50] <= df[C.P90] + 1e-9) & (df[C.P90] <= df[C.P95] + 1e-9)

    class Config:
        strict = True
        unique = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.HORIZON]


class ReconciledForecastsModel(ForecastsModel):
    """``reconciled_forecasts``: the ``forecasts`` of every warehouse of an origin, reconciled across the
    warehouses (``demand_platform.forecasting.pooling``), overrides applied on top."""

    pooling_ratio: Series[float] = pa.Field(
        ge=0, description="Ratio the reconciliation scaled the model's forecast by (1: kept as it was)."
    )
