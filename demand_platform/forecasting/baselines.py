"""The baselines (seasonal naive, 28-day moving average), the fallback served without a production model, and
the promotion gate's scores."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.forecasting.config import (
    MODEL_MOVING_AVERAGE_28,
    MODEL_SEASONAL_NAIVE,
    MODEL_TIERED,
    SEGMENT,
    SEGMENT_ALL,
    TrainConfig,
)
from demand_platform.forecasting.quantiles import DISPERSION_PRIOR_DAYS, calibrate, residual_dispersion
from demand_platform.metrics import RMSE, rmse, wmape
from demand_platform.models.statistical import moving_average, seasonal_naive

#: Baselines a warehouse can fall back to, with their forecast functions on ``[n, days]`` histories.
BASELINES = {
    MODEL_SEASONAL_NAIVE: lambda history, h: seasonal_naive(history, h, season=7),
    MODEL_MOVING_AVERAGE_28: lambda history, h: moving_average(history, h, window=28),
}


@dataclass
class BaselineForecaster:
    """The better baseline of the CV, served when a warehouse has no production model.

    The promotion gate refuses a first model that does not beat seasonal naive; the warehouse still needs
    forecasts by 08:00, so it gets the baseline the CV found best by ``GATE_METRIC`` (seasonal naive or
    the 28-day moving average), with quantiles calibrated like the tiered model's.

    Attributes:
        name: Key of ``BASELINES``.
        dispersion: Per-SKU negative-binomial dispersion from the baseline's CV residuals.
        calibration: Calibrated quantile levels (``CALIBRATION_COLUMNS``).
        validation_wmape: The baseline's pooled CV WMAPE.
    """

    name: str
    dispersion: pd.Series
    calibration: pd.DataFrame
    validation_wmape: float


GATE_METRIC = RMSE


def gate_scores(validation_metrics: pd.DataFrame) -> tuple[float, float]:
    """The promotion gate's scores: the tiered model's and seasonal naive's ``GATE_METRIC`` over all SKUs.

    The gate compares RMSE, the error the point forecast (a mean) minimises, as the ensemble weights and
    the statistical selection do. It compared WMAPE until this was found on M5, where most days are
    zero: WMAPE rewards forecasts near the median, 0 on most of those days, so seasonal naive's WMAPE
    beat the tiered model's at one origin, the model was refused, and the warehouse was served a
    baseline far worse than the refused model.

    Args:
        validation_metrics: :attr:`WarehouseModel.validation_metrics`.

    Returns:
        ``(tiered, seasonal naive)``; NaN where a row is missing.
    """
    return (
        validation_score(validation_metrics, MODEL_TIERED),
        validation_score(validation_metrics, MODEL_SEASONAL_NAIVE),
    )


def validation_score(validation_metrics: pd.DataFrame, model: str, metric: str = GATE_METRIC) -> float:
    """One model's ``metric`` over all SKUs in a validation table (NaN when the row is missing)."""
    rows = validation_metrics[
        (validation_metrics[SEGMENT] == SEGMENT_ALL) & (validation_metrics[C.MODEL] == model)
    ]
    return float(rows[metric].iloc[0]) if len(rows) else float("nan")


def fit_baseline(
    forecasts: dict[str, np.ndarray],
    actual: np.ndarray,
    cap: np.ndarray,
    skus: np.ndarray,
    prior: np.ndarray,
    segment: np.ndarray,
    config: TrainConfig,
) -> BaselineForecaster:
    """The baseline with the lowest pooled CV ``GATE_METRIC`` (RMSE), its dispersion and calibration."""
    clipped = {name: np.clip(f, 0.0, cap[:, None]) for name, f in forecasts.items()}
    errors = {name: rmse(actual, f) for name, f in clipped.items()}
    name = min(errors, key=lambda key: np.inf if np.isnan(errors[key]) else errors[key])
    point = clipped[name]
    dispersion = residual_dispersion(skus, actual, point, prior, DISPERSION_PRIOR_DAYS)
    alpha = dispersion.reindex(pd.Index(skus)).to_numpy(np.float64)
    return BaselineForecaster(
        name=name,
        dispersion=dispersion,
        calibration=calibrate(actual, point, alpha, segment, config),
        validation_wmape=float(wmape(actual, point)),
    )
