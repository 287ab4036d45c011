"""The fan chart of any one SKU x warehouse at a given origin, from the platform's DuckDB tables.

For the command line (and anyone with a connection): :func:`write_sku_chart` reads the SKU's forecasts of
the origin and its last :data:`demand_platform.charts.FAN_HISTORY_DAYS` days of ``raw_sales`` through
:mod:`demand_platform.store`, and draws :func:`demand_platform.charts.plot_fan_chart`. A separate module
from :mod:`demand_platform.charts` because :mod:`demand_platform.store` imports the report's modules.
"""

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from demand_platform import charts, store
from demand_platform import columns as C
from demand_platform.days import DateLike


def _state(warehouses: pd.DataFrame | None, warehouse_id: str) -> str | None:
    """The warehouse's ``location_state`` (None when unknown)."""
    if warehouses is None or C.LOCATION_STATE not in warehouses.columns:
        return None
    rows = warehouses.loc[warehouses[C.WAREHOUSE_ID].astype(str) == warehouse_id, C.LOCATION_STATE]
    return str(rows.iloc[0]) if len(rows) and pd.notna(rows.iloc[0]) else None


def _title(products: pd.DataFrame, sku: str, warehouse_id: str, day: dt.date) -> str:
    rows = products.loc[products[C.SKU].astype(str) == sku]
    detail = ""
    if len(rows) and C.CATEGORY in rows.columns and pd.notna(rows[C.CATEGORY].iloc[0]):
        detail = f" ({rows[C.CATEGORY].iloc[0]})"
    return f"{sku}{detail} @ {warehouse_id}: forecast fan at origin {day.isoformat()}"


def write_sku_chart(
    con: duckdb.DuckDBPyConnection,
    sku: str,
    warehouse_id: str,
    day: DateLike,
    path: str | Path,
    products: pd.DataFrame,
    campaigns: pd.DataFrame | None = None,
    warehouses: pd.DataFrame | None = None,
) -> Path:
    """Write the fan chart of one SKU x warehouse at origin ``day`` as a PNG.

    History (the last 90 days of ``raw_sales`` demand up to ``day``), the D+1..D+30 point forecast, P50 and
    P50-P90 / P90-P95 bands of origin ``day``, the overridden days marked and the applicable campaigns
    shaded (see :func:`demand_platform.charts.fan_chart_data`).

    Args:
        con: DuckDB connection to the platform database.
        sku: SKU.
        warehouse_id: Warehouse.
        day: Forecast origin D.
        path: Output PNG path (parent directories created).
        products: Products (the title shows the SKU's category).
        campaigns: ``marketing_campaigns`` rows; None draws no campaign.
        warehouses: ``warehouses`` rows, for the state regional campaigns target; without it only campaigns
            without a target region are drawn.

    Returns:
        The PNG path.

    Raises:
        ValueError: Naming the SKU, warehouse and day when there is no forecast of origin ``day`` for them.
    """
    origin = pd.Timestamp(day).date()
    forecasts = store.read_sku_forecasts(con, sku, warehouse_id, origin)
    if forecasts.empty:
        raise ValueError(
            f"no forecast for SKU {sku!r} in warehouse {warehouse_id!r} at origin {origin.isoformat()}: "
            "materialize forecasts for that day and warehouse, or check the SKU"
        )
    start = origin - dt.timedelta(days=charts.FAN_HISTORY_DAYS - 1)
    history = store.read_sku_history(con, sku, warehouse_id, start, origin)
    frame = charts.fan_chart_data(
        history,
        forecasts,
        origin,
        campaigns=campaigns,
        warehouse_state=_state(warehouses, warehouse_id),
    )
    return charts.plot_fan_chart(frame, path, title=_title(products, sku, warehouse_id, origin))
