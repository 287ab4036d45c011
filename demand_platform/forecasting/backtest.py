"""Rolling-origin backtest of one warehouse: train at each origin, forecast, score against the actuals."""

from collections.abc import Sequence
from dataclasses import dataclass

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
from demand_platform.tables import SourceTables
from demand_platform.tiering import assign_tiers


@dataclass(frozen=True)
class _ScoredOrigin:
    """Forecasts of one backtest origin (or of several pooled) with the actuals they are scored on.

    Attributes:
        actual: Actuals ``[n, H]`` (NaN = not scored).
        forecasts: Point forecasts ``[n, H]`` by model name (the tiered model and the baselines).
        segment: Segment of each row.
        quantiles: The tiered model's quantiles ``[n_q, n, H]``.
    """

    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    segment: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def pool(cls, origins: Sequence["_ScoredOrigin"]) -> "_ScoredOrigin":
        """The origins' rows stacked in order."""
        return cls(
            actual=np.concatenate([item.actual for item in origins]),
            forecasts={
                name: np.concatenate([item.forecasts[name] for item in origins])
                for name in origins[0].forecasts
            },
            segment=np.concatenate([item.segment for item in origins]),
            quantiles=np.concatenate([item.quantiles for item in origins], axis=1),
        )

    def metrics(self, config: TrainConfig) -> pd.DataFrame:
        """The metrics table (see :func:`metrics_table`)."""
        return metrics_table(self.actual, self.forecasts, self.segment, self.quantiles, config.quantiles)


def backtest_warehouse(
    history: pd.DataFrame,
    tables: SourceTables,
    warehouse_id: object,
    origins: Sequence[DateLike],
    config: TrainConfig | None = None,
) -> pd.DataFrame:
    """Rolling-origin backtest: at each origin, tier, train on data <= origin, forecast, score.

    Args:
        history: ``raw_sales`` rows, including the days after the origins (the actuals).
        tables: The source tables (products, warehouses, calendar, campaigns, weather).
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
    per_origin: list[pd.DataFrame] = []
    pooled: list[_ScoredOrigin] = []
    for origin in origins:
        origin_day = to_day(origin)
        past = warehouse_history(history, warehouse_id, origin_day)
        tiers = assign_tiers(past, tables.products, to_timestamp(origin_day), config.tier_config)
        model = train_warehouse(past, tables, to_timestamp(origin_day), warehouse_id, tiers, config)
        result = forecast_arrays(model, past, tables, origin_day, warehouse_id, tiers)
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
        scored = _ScoredOrigin(
            actual=actual,
            forecasts={
                MODEL_TIERED: result.point,
                **{name: forecast(result.state.history, horizon) for name, forecast in BASELINES.items()},
            },
            segment=result.state.segment,
            quantiles=result.quantiles,
        )
        table = scored.metrics(config)
        table.insert(0, C.ORIGIN_DATE, to_timestamp(origin_day))
        per_origin.append(table)
        pooled.append(scored)
    if not per_origin:
        return pd.DataFrame()
    total = _ScoredOrigin.pool(pooled).metrics(config)
    total.insert(0, C.ORIGIN_DATE, pd.Series(pd.NaT, index=total.index, dtype="datetime64[ns]"))
    return pd.concat([*per_origin, total], ignore_index=True)
