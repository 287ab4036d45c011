"""The model registry: the statistical and ML models training may use and serving may run, each registered once.

Adding a statistical model is one call, :func:`register_stat_model`; its name is then a valid
``TrainConfig.stat_models`` entry, the per-SKU backtest selection of :func:`~demand_platform.forecasting.
train_warehouse` considers it, the CV scores it, and :func:`~demand_platform.forecasting.forecast_warehouse`
runs it for the SKUs it was chosen for. A trained model stores the names of its statistical models, not the
objects, so the process that serves it must have registered the same models (the built-in ones are
registered when this module is imported).

Adding an ML model is one call too, :func:`register_ml_model`, with a factory that makes an
:class:`MLTrainer` from the warehouse's feature rows (:class:`MLTrainingData`); ``TrainConfig.ml_model``
names the one a warehouse uses (the global LightGBM by default). It takes the LightGBM's place: trained at
every CV origin on the SKUs routed ``global_ml``, blended with the statistical partner at the CV's weights,
and served for those SKUs. The fitted model is stored in the trained model, so serving needs no
registration, only the model's code.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from demand_platform.features import SalesPanel
from demand_platform.models.global_lgbm import (
    LGBM_MODEL_NAME,
    DonorRows,
    FeatureKeys,
    GlobalLGBMTrainer,
    TargetDayLookup,
)
from demand_platform.models.statistical import (
    STAT_MODELS,
    SeasonalNaive,
    SeasonalWindowAverage,
    StatCombination,
    StatForecaster,
)

if TYPE_CHECKING:
    from demand_platform.forecasting.config import TrainConfig


@dataclass(frozen=True)
class RegisteredStatModel:
    """A registered statistical model.

    Attributes:
        model: The forecaster; its ``name`` is the registry key and the ``model`` value of its forecasts.
        weekly: Its forecasts already follow the week, so the weekday profile leaves them as they are (a
            flat forecast is spread over the week by the warehouse's pooled weekday index).
    """

    model: StatForecaster
    weekly: bool = False


_STAT_MODELS: dict[str, RegisteredStatModel] = {}

#: Every registered statistical model by name (a read-only view of the registry).
STAT_REGISTRY: Mapping[str, RegisteredStatModel] = MappingProxyType(_STAT_MODELS)


def register_stat_model(model: StatForecaster, *, weekly: bool = False) -> StatForecaster:
    """Registers a statistical model under its ``name``.

    Args:
        model: Any object with a ``name`` and ``forecast(y, h)`` returning ``[n_series, h]`` non-negative
            forecasts from a ``[n_series, n_days]`` history (see
            :class:`~demand_platform.models.statistical.StatForecaster`).
        weekly: Its forecasts already follow the week (no weekday profile on top).

    Returns:
        The model.

    Raises:
        ValueError: If a model of that name is already registered.
    """
    if model.name in _STAT_MODELS or model.name in _ML_MODELS:
        raise ValueError(f"a model named {model.name!r} is already registered")
    _STAT_MODELS[model.name] = RegisteredStatModel(model=model, weekly=weekly)
    return model


def unregister_stat_model(name: str) -> None:
    """Removes a registered statistical model (for code that registered one for a while, such as a test).

    Raises:
        ValueError: If no model of that name is registered.
    """
    if name not in _STAT_MODELS:
        raise ValueError(f"no statistical model named {name!r} is registered")
    del _STAT_MODELS[name]


def stat_model(name: str) -> StatForecaster:
    """The registered statistical model called ``name``.

    Raises:
        ValueError: If no model of that name is registered.
    """
    if name not in _STAT_MODELS:
        raise ValueError(f"unknown statistical model {name!r}; choose from {sorted(_STAT_MODELS)}")
    return _STAT_MODELS[name].model


def weekly_stat_models() -> frozenset[str]:
    """Names of the registered models whose forecasts already follow the week."""
    return frozenset(name for name, entry in _STAT_MODELS.items() if entry.weekly)


# --- ML models ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLTrainingData:
    """What an ML model trains on: the feature rows of a warehouse at its training and CV origins.

    Attributes:
        features: Feature rows (one per SKU x origin day, :func:`demand_platform.features.build_training_features`).
        feature_skus: SKU of each feature row.
        keys: Integer keys of the feature rows.
        lookup: Target-day features of the origin days.
        panel: Sales panel holding the targets (the training date is its last day).
        train_day: Epoch day of the training date: no target after it may be used.
        skus: Every SKU any of the models will be trained on.
        target_divisor: ``[panel SKUs, panel days]`` the event multiplier each target is divided by (the
            model learns demand net of the events, which multiply its forecasts back); None: raw targets.
        donors: Other warehouses' feature rows pooled into the training rows (a model that cannot use them
            ignores them).
    """

    features: pd.DataFrame
    feature_skus: np.ndarray
    keys: FeatureKeys
    lookup: TargetDayLookup
    panel: SalesPanel
    train_day: int
    skus: np.ndarray
    target_divisor: np.ndarray | None = None
    donors: tuple[DonorRows, ...] = ()


class MLForecaster(Protocol):
    """A fitted ML model: direct forecasts of horizons 1 .. H for feature rows (pickled with the trained model)."""

    @property
    def is_fitted(self) -> bool:
        """True when it can forecast."""
        ...

    @property
    def boosters(self) -> Mapping[str, Any]:
        """LightGBM boosters by band label, which the model registry also logs as MLflow LightGBM models
        (empty for a model without any)."""
        ...

    def predict(
        self,
        features: pd.DataFrame,
        panel: SalesPanel,
        lookup: TargetDayLookup,
        horizon: int,
        keys: FeatureKeys | None = None,
    ) -> np.ndarray:
        """Non-negative forecasts ``[n_rows, horizon]`` of the feature rows (NaN where it has none)."""
        ...

    def feature_importance(self) -> pd.DataFrame:
        """Importance of the features (``demand_platform.models.global_lgbm.IMPORTANCE_COLUMNS``)."""
        ...


class MLTrainer(Protocol):
    """Fits one kind of ML model; made once per training, then asked for the model of every CV origin and of
    the training date."""

    def fit(self, cutoff_day: int, skus: np.ndarray) -> MLForecaster | None:
        """A model trained on the rows of ``skus`` with target days on or before ``cutoff_day`` (None when
        there is nothing to train on)."""
        ...


#: Makes the trainer of one warehouse from its training data and settings.
MLTrainerFactory = Callable[[MLTrainingData, "TrainConfig"], MLTrainer]

_ML_MODELS: dict[str, MLTrainerFactory] = {}

#: Every registered ML model's trainer factory by name (a read-only view of the registry).
ML_REGISTRY: Mapping[str, MLTrainerFactory] = MappingProxyType(_ML_MODELS)


def register_ml_model(name: str, factory: MLTrainerFactory) -> MLTrainerFactory:
    """Registers an ML model under ``name`` (the ``model`` value of its forecasts).

    Raises:
        ValueError: If a model of that name is already registered.
    """
    if name in _ML_MODELS or name in _STAT_MODELS:
        raise ValueError(f"a model named {name!r} is already registered")
    _ML_MODELS[name] = factory
    return factory


def unregister_ml_model(name: str) -> None:
    """Removes a registered ML model.

    Raises:
        ValueError: If no model of that name is registered.
    """
    if name not in _ML_MODELS:
        raise ValueError(f"no ML model named {name!r} is registered")
    del _ML_MODELS[name]


def ml_trainer_factory(name: str) -> MLTrainerFactory:
    """The trainer factory of the registered ML model ``name``.

    Raises:
        ValueError: If no model of that name is registered.
    """
    if name not in _ML_MODELS:
        raise ValueError(f"unknown ML model {name!r}; choose from {sorted(_ML_MODELS)}")
    return _ML_MODELS[name]


def _global_lgbm(data: MLTrainingData, config: "TrainConfig") -> GlobalLGBMTrainer:
    """The global LightGBM's trainer: pairs sampled and binned once at the training date."""
    return GlobalLGBMTrainer.build(
        data.features,
        data.feature_skus,
        data.keys,
        data.lookup,
        data.panel,
        data.train_day,
        data.skus,
        config.lgbm_params(),
        config.sampling(),
        config.model_bands,
        data.target_divisor,
        data.donors,
    )


# --- the built-in models -------------------------------------------------------------------------------------------------
for _model in STAT_MODELS.values():
    register_stat_model(_model, weekly=isinstance(_model, SeasonalNaive))
register_stat_model(SeasonalWindowAverage(), weekly=True)
register_stat_model(StatCombination())
register_ml_model(LGBM_MODEL_NAME, _global_lgbm)
