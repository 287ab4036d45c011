"""The trained model of one warehouse: everything serving needs."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from demand_platform.forecasting.baselines import BaselineForecaster
from demand_platform.forecasting.cold_start import ColdStartProfile
from demand_platform.forecasting.config import TrainConfig
from demand_platform.forecasting.events import EventUplift
from demand_platform.models.global_lgbm import GlobalLGBM
from demand_platform.models.model_registry import MLForecaster


@dataclass
class WarehouseModel:
    """Everything :func:`forecast_warehouse` needs for one warehouse (picklable).

    Attributes:
        warehouse_id: The warehouse.
        train_date: Training date (no data after it was read).
        config: The training settings.
        lgbm: The fitted ML model, by default the global LightGBM's band models (None when there was nothing
            to train on); ``config.ml_model`` names it.
        stat_choice: Statistical model name per SKU (index = SKU), chosen by backtest at ``train_date``.
        ensemble_weights: LightGBM weights per ensembled tier and horizon band (``ENSEMBLE_COLUMNS``).
        calibration: Calibrated quantile levels per segment x band x level (``CALIBRATION_COLUMNS``).
        cold_start: Launch profiles.
        validation_metrics: CV metrics per segment and model (see :func:`train_warehouse`).
        cv_origin_dates: The CV origins.
        dispersion: Negative-binomial dispersion per SKU (index = SKU) from its CV residuals, shrunk
            towards the dispersion of its history; SKUs not in it use their history's.
        baseline: The best baseline of the CV, for ``forecast_warehouse(..., baseline=True)``.
        events: Holiday and campaign uplifts of the statistical and launch-profile forecasts (models
            trained before them have none: multiplier 1).
        ml_net_of_holidays: The ML model learned demand net of the holiday uplifts, so ``events``' holiday
            uplifts multiply its forecasts (False for models trained before, which learned them).
        stop_hazard: Daily probability that a selling series stops, chosen on the CV; the statistical
            forecasts are multiplied by each SKU's probability of still selling under it (0: unchanged, as
            for models trained before).
        pooled_series: Series of other warehouses whose training rows the LightGBM learned from besides
            the warehouse's own (0: its own only, as for models trained before).
    """

    warehouse_id: object
    train_date: pd.Timestamp
    config: TrainConfig
    lgbm: MLForecaster | None
    stat_choice: pd.Series
    ensemble_weights: pd.DataFrame
    calibration: pd.DataFrame
    cold_start: ColdStartProfile
    validation_metrics: pd.DataFrame
    cv_origin_dates: list[pd.Timestamp]
    dispersion: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.float64))
    baseline: BaselineForecaster | None = None
    events: EventUplift = field(default_factory=EventUplift.none)
    ml_net_of_holidays: bool = False
    stop_hazard: float = 0.0
    pooled_series: int = 0

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickle, a model of an earlier version included: it has no event uplifts (multiplier 1), its
        ML model learned the holidays itself, and its statistical forecasts are not adjusted for stopped
        series."""
        state.setdefault("events", EventUplift.none())
        state.setdefault("ml_net_of_holidays", False)
        state.setdefault("stop_hazard", 0.0)
        state.setdefault("pooled_series", 0)
        self.__dict__.update(state)

    def feature_importance(self) -> pd.DataFrame:
        """Importance of the features in the ML model (the LightGBM's gain; empty without a model)."""
        if self.lgbm is None:
            return GlobalLGBM().feature_importance()
        return self.lgbm.feature_importance()
