"""Rolling-origin backtest of one warehouse: train at each origin, forecast, score against the actuals."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import DateLike, to_day, to_timestamp
from demand_platform.features import build_sales_panel
from demand_platform.forecasting.baselines import BASELINES
from demand_platform.forecasting.config import MODEL_TIERED, TrainConfig
from demand_platform.forecasting.scoring import metrics_table
from demand_platform.forecasting.serving import forecast_arrays
from demand_platform.forecasting.state import history_window, warehouse_history
from demand_platform.forecasting.training import train_warehouse
from demand_platform.tiering import assign_tiers


def backtest_warehouse(
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    warehouse_id: object,
    origins: Sequence[DateLike],
    config: TrainConfig | None = None,
) -> pd.DataFrame:
    """Rolling-origin backtest: at each origin, tier, train on data <= origin, forecast, score.

    Args:
        history: ``raw_sales`` rows, including the days after the origins (the actuals).
        products: The ``products`` table.
        warehouses: The ``warehouses`` table.
        calendar: The ``calendar`` table, or None.
        campaigns: The ``marketing_campaigns`` table, or None.
        weather: The ``weather`` table, or None.
        warehouse_id: The warehouse.
        origins: Origin days.
        config: Settings (default :class:`TrainConfig`).

    Returns:
        One row per origin (plus rows pooled over all origins, ``origin_date`` NaT), segment (tiers as of the
        origin, cold_start, all) and model (tiered, seasonal_naive, moving_average_28): WMAPE, MAE, RMSE,
        bias, n_obs and, for the tiered model, the share of actuals at or below each quantile
        (``coverage_p50``, ``coverage_p90``, ``coverage_p95``). Days without a history row are not scored.
    """
    config = config or TrainConfig()
    horizon = config.horizon
    tables, pooled = [], []
    for origin in origins:
        origin_day = to_day(origin)
        past = warehouse_history(history, warehouse_id, origin_day)
        tiers = assign_tiers(past, products, to_timestamp(origin_day), config.tier_config)
        model = train_warehouse(
            past,
            products,
            warehouses,
            calendar,
            campaigns,
            weather,
            to_timestamp(origin_day),
            warehouse_id,
            tiers,
            config,
        )
        result = forecast_arrays(
            model, past, products, warehouses, calendar, campaigns, weather, origin_day, warehouse_id, tiers
        )
        future = warehouse_history(history, warehouse_id, origin_day + horizon)
        panel = build_sales_panel(
            future,
            end=to_timestamp(origin_day + horizon),
            lookback_days=horizon - 1,
            warehouse_id=warehouse_id,
        )
        actual = history_window(
            panel, pd.Index(panel.skus).get_indexer(pd.Index(result.state.skus)), panel.n_days - 1, horizon
        )
        forecasts = {
            MODEL_TIERED: result.point,
            **{name: forecast(result.state.history, horizon) for name, forecast in BASELINES.items()},
        }
        segment = result.state.segment
        table = metrics_table(actual, forecasts, segment, result.quantiles, config.quantiles)
        table.insert(0, C.ORIGIN_DATE, to_timestamp(origin_day))
        tables.append(table)
        pooled.append((actual, forecasts, segment, result.quantiles))
    if not tables:
        return pd.DataFrame()
    actual_all = np.concatenate([item[0] for item in pooled])
    forecasts_all = {name: np.concatenate([item[1][name] for item in pooled]) for name in pooled[0][1]}
    segment_all = np.concatenate([item[2] for item in pooled])
    quantiles_all = np.concatenate([item[3] for item in pooled], axis=1)
    total = metrics_table(actual_all, forecasts_all, segment_all, quantiles_all, config.quantiles)
    total.insert(0, C.ORIGIN_DATE, pd.Series(pd.NaT, index=total.index, dtype="datetime64[ns]"))
    return pd.concat([*tables, total], ignore_index=True)
