"""Component forecasts at one origin: the ML model (LightGBM), the statistical models (chosen per SKU) and launch
profiles."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import weekday
from demand_platform.features import SalesPanel
from demand_platform.forecasting.cold_start import ColdStartProfile
from demand_platform.forecasting.config import TrainConfig
from demand_platform.forecasting.state import Components, OriginState
from demand_platform.models.global_lgbm import FeatureKeys, TargetDayLookup
from demand_platform.models.model_registry import MLForecaster, weekly_stat_models
from demand_platform.models.statistical import (
    SalesSilence,
    StatForecaster,
    forecast_selected,
    pooled_weekday_index,
    sales_silence,
    select_by_backtest,
    silence_probability,
    weekday_factors,
)
from demand_platform.tiering import ROUTE_COLD_START


def stat_components(
    state: OriginState,
    rows: np.ndarray,
    choice: np.ndarray,
    models: Sequence[StatForecaster],
    config: TrainConfig,
    events: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistical forecasts ``[n, H]`` of ``rows`` with their chosen models (NaN elsewhere) and model names.

    ``events`` (``[n, H]``, :meth:`demand_platform.forecasting.events.EventUplift.multiplier`) multiplies them:
    the holidays and campaigns of the target days, which the statistical models do not see.
    """
    forecast = np.full((len(state.skus), config.horizon), np.nan)
    names = np.full(len(state.skus), models[0].name, dtype=object)
    if len(rows):
        history = state.history[rows, -config.stat_history_days :]
        forecast[rows] = forecast_selected(history, config.horizon, models, choice)
        names[rows] = np.asarray([model.name for model in models], dtype=object)[choice]
        if config.weekday_profile:
            flat = rows[~np.isin(names[rows], list(weekly_stat_models()))]
            origin_weekday = weekday(state.day)
            index = pooled_weekday_index(state.history, origin_weekday)
            forecast[flat] *= weekday_factors(index, origin_weekday, config.horizon)[None, :]
        if events is not None:
            forecast[rows] *= events[rows]
    return forecast, names


def still_selling(
    state: OriginState, components: Components, hazard: float, silence: SalesSilence | None = None
) -> Components:
    """``components`` with the statistical forecasts times each SKU's probability of still selling given its
    silence since its last sale (:func:`active_probability` with the daily stop ``hazard``, on the history
    up to the origin; the trading days are those where any SKU of the origin sold). ``silence`` is
    :func:`sales_silence` of ``state.history`` when already computed."""
    if hazard == 0.0:
        return components
    active = silence_probability(silence or sales_silence(state.history), hazard)
    return Components(
        components.lgbm, components.stat * active[:, None], components.stat_name, components.cold
    )


def cold_components(
    profile: ColdStartProfile,
    state: OriginState,
    horizon: int,
    events: np.ndarray | None = None,
    price: np.ndarray | None = None,
) -> np.ndarray:
    """Launch-profile forecasts ``[n, H]`` of the cold-start SKUs (0 elsewhere), times ``events`` (see
    :func:`stat_components`); ``price`` (per SKU of ``state``) picks the launches' price band."""
    out = np.zeros((len(state.skus), horizon))
    cold = state.route == ROUTE_COLD_START
    if cold.any():
        out[cold] = profile.forecast(
            state.category[cold],
            state.launch_day[cold],
            state.history[cold],
            state.day,
            horizon,
            None if price is None else price[cold],
        )
        if events is not None:
            out[cold] *= events[cold]
    return out


def choose_stat(
    state: OriginState, rows: np.ndarray, models: Sequence[StatForecaster], config: TrainConfig
) -> np.ndarray:
    """Statistical model index of each of ``rows`` by backtest on the history up to the origin.

    A SKU keeps the default (first) model unless another one's backtest error is lower by at least
    ``config.selection_margin``: three windows of one SKU are noisy, and a free choice mostly fits the
    noise.
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    choice, errors = select_by_backtest(
        state.history[rows, -config.stat_history_days :],
        config.horizon,
        models,
        n_windows=config.stat_windows,
        error=config.selection_error,  # type: ignore[arg-type]
    )
    best = errors[np.arange(len(choice)), choice]
    clear_win = best < (1.0 - config.selection_margin) * errors[:, 0]
    return np.where(clear_win, choice, 0)


def lgbm_at(
    lgbm: MLForecaster | None,
    features: pd.DataFrame,
    keys: FeatureKeys,
    panel: SalesPanel,
    lookup: TargetDayLookup,
    state: OriginState,
    horizon: int,
) -> np.ndarray:
    """The ML model's (LightGBM's) forecasts ``[n, H]`` of the origin's global_ml SKUs (NaN for the others)."""
    out = np.full((len(state.skus), horizon), np.nan)
    if lgbm is None or not lgbm.is_fitted or not state.is_ml.any():
        return out
    at_origin = np.flatnonzero(keys.origin_day == state.day)
    position = pd.Index(state.skus).get_indexer(pd.Index(features[C.SKU].to_numpy(dtype=object)[at_origin]))
    take = (position >= 0) & state.is_ml[np.clip(position, 0, None)]
    rows = at_origin[take]
    if len(rows) == 0:
        return out
    subset = features.iloc[rows].reset_index(drop=True)
    sub_keys = FeatureKeys(
        origin_day=keys.origin_day[rows],
        sku_code=keys.sku_code[rows],
        origin_column=keys.origin_column[rows],
        origin_index=keys.origin_index[rows],
    )
    out[position[take]] = lgbm.predict(subset, panel, lookup, horizon, keys=sub_keys)
    return out
