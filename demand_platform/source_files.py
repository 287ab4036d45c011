"""The parquet layout of a source directory's files, shared by everything that writes one.

The synthetic generator and the importers write these exact Arrow schemas, so the platform reads the
same types whichever produced the source (strings, ``date32`` dates, float capacities).
"""

import pyarrow as pa

from demand_platform import columns as C

SOURCE_FILE_SCHEMAS: dict[str, pa.Schema] = {
    C.TRANSACTIONS: pa.schema(
        [
            (C.TRANSACTION_ID, pa.string()),
            (C.SKU, pa.string()),
            (C.WAREHOUSE_ID, pa.string()),
            (C.TRANSACTION_DATE, pa.date32()),
            (C.QUANTITY, pa.int64()),
            (C.REVENUE, pa.float64()),
            (C.CUSTOMER_ID, pa.string()),
            (C.ORDER_ID, pa.string()),
        ]
    ),
    C.PRODUCTS: pa.schema(
        [
            (C.SKU, pa.string()),
            (C.CATEGORY, pa.string()),
            (C.SUB_CATEGORY, pa.string()),
            (C.BRAND, pa.string()),
            (C.PRICE, pa.float64()),
            (C.WEIGHT_KG, pa.float64()),
            (C.IS_SEASONAL, pa.bool_()),
            (C.LAUNCH_DATE, pa.date32()),
        ]
    ),
    C.WAREHOUSES: pa.schema(
        [
            (C.WAREHOUSE_ID, pa.string()),
            (C.LOCATION_CITY, pa.string()),
            (C.LOCATION_STATE, pa.string()),
            (C.LATITUDE, pa.float64()),
            (C.LONGITUDE, pa.float64()),
            (C.CAPACITY_UNITS, pa.float64()),
            (C.OPERATIONAL_SINCE, pa.date32()),
        ]
    ),
    C.MARKETING_CAMPAIGNS: pa.schema(
        [
            (C.CAMPAIGN_ID, pa.string()),
            (C.START_DATE, pa.date32()),
            (C.END_DATE, pa.date32()),
            (C.SKU, pa.string()),
            (C.DISCOUNT_PERCENT, pa.float64()),
            (C.CAMPAIGN_TYPE, pa.string()),
            (C.TARGET_REGION, pa.string()),
        ]
    ),
    C.WEATHER: pa.schema(
        [
            (C.DATE, pa.date32()),
            (C.LOCATION_CITY, pa.string()),
            (C.TEMPERATURE_AVG, pa.float64()),
            (C.PRECIPITATION_MM, pa.float64()),
            (C.IS_EXTREME_WEATHER, pa.bool_()),
        ]
    ),
    C.CALENDAR: pa.schema(
        [
            (C.DATE, pa.date32()),
            (C.DAY_OF_WEEK, pa.int64()),
            (C.IS_WEEKEND, pa.bool_()),
            (C.IS_HOLIDAY, pa.bool_()),
            (C.HOLIDAY_NAME, pa.string()),
            (C.IS_PAYDAY, pa.bool_()),
            (C.MONTH, pa.int64()),
            (C.QUARTER, pa.int64()),
            (C.YEAR, pa.int64()),
        ]
    ),
}
