"""The model registry: the statistical models training may select and serving may run, each registered once.

Adding a statistical model is one call, :func:`register_stat_model`; its name is then a valid
``TrainConfig.stat_models`` entry, the per-SKU backtest selection of :func:`~demand_platform.forecasting.
train_warehouse` considers it, the CV scores it, and :func:`~demand_platform.forecasting.forecast_warehouse`
runs it for the SKUs it was chosen for. A trained model stores the names of its statistical models, not the
objects, so the process that serves it must have registered the same models (the built-in ones are
registered when this module is imported).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from demand_platform.models.statistical import (
    STAT_MODELS,
    SeasonalNaive,
    SeasonalWindowAverage,
    StatCombination,
    StatForecaster,
)


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
    if model.name in _STAT_MODELS:
        raise ValueError(f"a statistical model named {model.name!r} is already registered")
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


# --- the built-in models -------------------------------------------------------------------------------------------------
for _model in STAT_MODELS.values():
    register_stat_model(_model, weekly=isinstance(_model, SeasonalNaive))
register_stat_model(SeasonalWindowAverage(), weekly=True)
register_stat_model(StatCombination())
