"""Column and table names, defined once for the whole platform.

Every module refers to columns through these constants, so a rename happens in one place.
"""

# --- table names -------------------------------------------------------------------------
TRANSACTIONS = "transactions"
PRODUCTS = "products"
WAREHOUSES = "warehouses"
MARKETING_CAMPAIGNS = "marketing_campaigns"
CALENDAR = "calendar"
WEATHER = "weather"
OVERRIDES = "overrides"

REQUIRED_TABLES = (TRANSACTIONS, PRODUCTS, WAREHOUSES)
OPTIONAL_TABLES = (MARKETING_CAMPAIGNS, CALENDAR, WEATHER, OVERRIDES)
SOURCE_TABLES = REQUIRED_TABLES + OPTIONAL_TABLES

# The platform's own tables in DuckDB (asset names where the table is an asset's output).
RAW_SALES = "raw_sales"
FEATURE_TABLE = "feature_table"
TIER_ASSIGNMENTS = "tier_assignments"
TRAINED_MODELS = "trained_models"
FORECASTS = "forecasts"
#: Every warehouse's forecasts of an origin reconciled across the warehouses (what replenishment reads).
RECONCILED_FORECASTS = "reconciled_forecasts"
#: Column of ``reconciled_forecasts``: the ratio the reconciliation scaled a row by.
POOLING_RATIO = "pooling_ratio"
ACCURACY_REPORT = "accuracy_report"
REPLENISHMENT_POLICY = "replenishment_policy"
#: What needs a planner's attention per report day and warehouse (written by ``accuracy_report``).
EXCEPTIONS = "exceptions"

# --- shared keys -------------------------------------------------------------------------
SKU = "sku"
WAREHOUSE_ID = "warehouse_id"
DATE = "date"

# --- transactions ------------------------------------------------------------------------
TRANSACTION_ID = "transaction_id"
TRANSACTION_DATE = "transaction_date"
QUANTITY = "quantity"
REVENUE = "revenue"
CUSTOMER_ID = "customer_id"
ORDER_ID = "order_id"
TRANSACTION_COLUMNS = (
    TRANSACTION_ID,
    SKU,
    WAREHOUSE_ID,
    TRANSACTION_DATE,
    QUANTITY,
    REVENUE,
    CUSTOMER_ID,
    ORDER_ID,
)

# --- products ------------------------------------------------------------------------------
CATEGORY = "category"
SUB_CATEGORY = "sub_category"
BRAND = "brand"
PRICE = "price"
WEIGHT_KG = "weight_kg"
IS_SEASONAL = "is_seasonal"
LAUNCH_DATE = "launch_date"
PRODUCT_COLUMNS = (SKU, CATEGORY, SUB_CATEGORY, BRAND, PRICE, WEIGHT_KG, IS_SEASONAL, LAUNCH_DATE)

# --- warehouses ----------------------------------------------------------------------------
LOCATION_CITY = "location_city"
LOCATION_STATE = "location_state"
LATITUDE = "latitude"
LONGITUDE = "longitude"
CAPACITY_UNITS = "capacity_units"
OPERATIONAL_SINCE = "operational_since"
WAREHOUSE_COLUMNS = (
    WAREHOUSE_ID,
    LOCATION_CITY,
    LOCATION_STATE,
    LATITUDE,
    LONGITUDE,
    CAPACITY_UNITS,
    OPERATIONAL_SINCE,
)

# --- marketing_campaigns ----------------------------------------------------------------------
CAMPAIGN_ID = "campaign_id"
START_DATE = "start_date"
END_DATE = "end_date"
DISCOUNT_PERCENT = "discount_percent"
CAMPAIGN_TYPE = "campaign_type"
TARGET_REGION = "target_region"
CAMPAIGN_COLUMNS = (
    CAMPAIGN_ID,
    START_DATE,
    END_DATE,
    SKU,
    DISCOUNT_PERCENT,
    CAMPAIGN_TYPE,
    TARGET_REGION,
)

# Identifier columns: integer or text in a source, canonicalised once at read to text (see
# ``demand_platform.source.canonical_ids``), so the same id compares equal whatever its file type.
ID_COLUMNS = (TRANSACTION_ID, SKU, WAREHOUSE_ID, CUSTOMER_ID, ORDER_ID, CAMPAIGN_ID)

# --- calendar ----------------------------------------------------------------------------------
DAY_OF_WEEK = "day_of_week"
IS_WEEKEND = "is_weekend"
IS_HOLIDAY = "is_holiday"
HOLIDAY_NAME = "holiday_name"
IS_PAYDAY = "is_payday"
MONTH = "month"
QUARTER = "quarter"
YEAR = "year"
CALENDAR_COLUMNS = (
    DATE,
    DAY_OF_WEEK,
    IS_WEEKEND,
    IS_HOLIDAY,
    HOLIDAY_NAME,
    IS_PAYDAY,
    MONTH,
    QUARTER,
    YEAR,
)

# --- weather -------------------------------------------------------------------------------------
TEMPERATURE_AVG = "temperature_avg"
PRECIPITATION_MM = "precipitation_mm"
IS_EXTREME_WEATHER = "is_extreme_weather"
WEATHER_COLUMNS = (DATE, LOCATION_CITY, TEMPERATURE_AVG, PRECIPITATION_MM, IS_EXTREME_WEATHER)

# --- raw_sales (one row per SKU active in a warehouse on a day) ------------------------------------
N_ORDERS = "n_orders"
RAW_SALES_COLUMNS = (SKU, WAREHOUSE_ID, DATE, QUANTITY, REVENUE, N_ORDERS)

# --- per-day line counts of an ingested slice (``SalesSlice.lines_per_date``, ``day_fingerprints``) -----
LINES = "lines"
REJECTED = "rejected"
FINGERPRINT = "fingerprint"

# --- quarantine ----------------------------------------------------------------------------------
SOURCE_TABLE = "source_table"
REASON = "reason"
ORIGINAL_ROW = "original_row"
PARTITION_DATE = "partition_date"
DETECTED_BY = "detected_by"
QUARANTINE = "quarantine"
QUARANTINE_COLUMNS = (SOURCE_TABLE, WAREHOUSE_ID, PARTITION_DATE, REASON, ORIGINAL_ROW, DETECTED_BY)

# --- forecasting (used by later layers) ------------------------------------------------------------
ORIGIN_DATE = "origin_date"
TARGET_DATE = "target_date"
HORIZON = "horizon"
FORECAST = "forecast"
P50 = "p50"
P90 = "p90"
P95 = "p95"
TIER = "tier"
MODEL = "model"
MODEL_VERSION = "model_version"
# The forecasts replenishment reads, in this order (exports put them first).
FORECAST_COLUMNS = (
    SKU,
    WAREHOUSE_ID,
    ORIGIN_DATE,
    TARGET_DATE,
    HORIZON,
    FORECAST,
    P50,
    P90,
    P95,
    TIER,
    MODEL,
)
