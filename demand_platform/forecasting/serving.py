"""Forecasts of one warehouse at an origin from its trained model (or from the model's fallback baseline)."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import NS_PER_DAY, DateLike, to_day, to_timestamp
from demand_platform.features import build_features, build_sales_panel
from demand_platform.forecasting.baselines import BASELINES
from demand_platform.forecasting.components import cold_components, lgbm_at, stat_components, still_selling
from demand_platform.forecasting.config import MODEL_COLD_START, TrainConfig, band_of_horizon, quantile_column
from demand_platform.forecasting.ensemble import combine, needs_stat, weight_matrix
from demand_platform.forecasting.events import horizon_events, ml_with_events
from demand_platform.forecasting.model import WarehouseModel
from demand_platform.forecasting.quantiles import dispersion_of, level_matrix, nb_quantiles
from demand_platform.forecasting.state import (
    Components,
    OriginState,
    catalog_price,
    ml_history,
    origin_state,
    output_cap,
    panel_attributes,
    read_catalog,
    tiers_of,
    warehouse_history,
)
from demand_platform.models.global_lgbm import FeatureKeys, TargetDayLookup
from demand_platform.tables import SourceTables
from demand_platform.tiering import ROUTE_COLD_START, assign_tiers


@dataclass
class OriginForecast:
    """Forecasts of one origin as arrays: point ``[n, H]``, quantiles ``[n_q, n, H]``, model name per SKU."""

    state: OriginState
    point: np.ndarray
    quantiles: np.ndarray
    names: np.ndarray


def forecast_arrays(
    model: WarehouseModel,
    history: pd.DataFrame,
    tables: SourceTables,
    origin_day: int,
    warehouse_id: object,
    tiers: pd.DataFrame | None,
    baseline: bool = False,
    features: pd.DataFrame | None = None,
) -> OriginForecast:
    """Forecast arrays of the tiered model (or of its baseline) at ``origin_day``; see :func:`forecast_warehouse`."""
    config = model.config
    horizon = config.horizon
    history = warehouse_history(history, warehouse_id, origin_day)
    panel = build_sales_panel(
        history,
        end=to_timestamp(origin_day),
        lookback_days=config.history_days - 1,
        warehouse_id=warehouse_id,
    )
    if tiers is None:
        tiers = assign_tiers(history, tables.products, to_timestamp(origin_day), config.tier_config)
    catalog = read_catalog(tables.products)
    category, launch = panel_attributes(panel, catalog)
    state = origin_state(
        panel,
        tiers_of(tiers, warehouse_id),
        origin_day,
        category,
        launch,
        config.history_days,
        config.cold_start_max_age,
    )
    models = config.stat_forecasters()
    band_of_h = band_of_horizon(config)
    if baseline:
        return _baseline_arrays(model, state, band_of_h, catalog_price(catalog, state.skus))

    ahead = horizon_events(tables, warehouse_id, state.skus, origin_day + 1, horizon)
    events = model.events.multiplier(state.category, ahead)
    lgbm_fc = np.full((len(state.skus), horizon), np.nan)
    if model.lgbm is not None and state.is_ml.any():
        ml_skus = state.skus[state.is_ml]
        if features is None:
            features = build_features(
                ml_history(history, ml_skus), tables, to_timestamp(origin_day), warehouse_id, horizon=horizon
            )
        else:
            features = served_features(features, ml_skus, origin_day, warehouse_id)
        if not features.empty:
            lookup = TargetDayLookup.build(
                tables, warehouse_id, [to_timestamp(origin_day)], horizon, panel.skus
            )
            keys = FeatureKeys.of(features, panel, lookup)
            lgbm_fc = ml_with_events(
                lgbm_at(model.lgbm, features, keys, panel, lookup, state, horizon),
                lambda: lgbm_at(
                    model.lgbm, features, keys, panel, lookup.without_campaigns(), state, horizon
                ),
                model.events,
                state.category,
                ahead,
                model.ml_net_of_holidays,
            )

    names = pd.Index([m.name for m in models])
    choice = names.get_indexer(pd.Index(model.stat_choice.reindex(state.skus).to_numpy(dtype=object)))
    choice = np.where(choice >= 0, choice, 0)  # SKUs without a backtest take the first model
    stat_rows = np.flatnonzero(needs_stat(state, lgbm_fc))
    stat_fc, stat_name = stat_components(state, stat_rows, choice[stat_rows], models, config, events)
    cold_fc = cold_components(model.cold_start, state, horizon, events, catalog_price(catalog, state.skus))
    cap = output_cap(state, cold_fc, config)
    weights = weight_matrix(model.ensemble_weights, config)
    components = still_selling(state, Components(lgbm_fc, stat_fc, stat_name, cold_fc), model.stop_hazard)
    point, model_names = combine(state, components, weights, band_of_h, cap, config.ml_model)
    quantiles = _calibrated_quantiles(
        point, state, model.dispersion, model.calibration, config, band_of_h, cap
    )
    return OriginForecast(state=state, point=point, quantiles=quantiles, names=model_names)


def served_features(
    features: pd.DataFrame, skus: np.ndarray, origin_day: int, warehouse_id: object
) -> pd.DataFrame:
    """The rows of ``skus`` in a warehouse's materialized feature table at the origin, as
    :func:`build_features` returns them (sorted by SKU, index reset).

    Raises:
        ValueError: If a SKU has no row at the origin (the feature table is older than the tiers).
    """
    at_origin = features.loc[
        (pd.to_datetime(features[C.ORIGIN_DATE]).dt.normalize() == to_timestamp(origin_day))
        & (features[C.WAREHOUSE_ID].astype(str) == str(warehouse_id))
        & features[C.SKU].isin(skus)
    ]
    wanted = pd.Index(np.asarray(skus, dtype=object))
    missing = np.sort(wanted[~wanted.isin(at_origin[C.SKU].to_numpy(dtype=object))].unique().to_numpy())
    if len(missing):
        raise ValueError(
            f"feature_table has no row for {len(missing)} SKU(s) of warehouse {warehouse_id} at origin "
            f"{to_timestamp(origin_day).date()} (first: {', '.join(map(str, missing[:5]))}): "
            "materialize feature_table for that partition again"
        )
    return at_origin.sort_values(C.SKU, kind="stable").reset_index(drop=True)


def _calibrated_quantiles(
    point: np.ndarray,
    state: OriginState,
    dispersion: pd.Series,
    calibration: pd.DataFrame,
    config: TrainConfig,
    band_of_h: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Quantiles ``[n_q, n, H]`` of a forecast with a trained dispersion and calibration table."""
    alpha = dispersion_of(dispersion, state.skus, state.history)
    return nb_quantiles(point, alpha, state.segment, level_matrix(calibration, config), band_of_h, cap)


def _baseline_arrays(
    model: WarehouseModel, state: OriginState, band_of_h: np.ndarray, price: np.ndarray | None = None
) -> OriginForecast:
    """The baseline's forecasts (launch profiles for cold-start SKUs, by ``price`` band), quantiles as
    calibrated for it."""
    if model.baseline is None:
        raise ValueError(f"the model of warehouse {model.warehouse_id!r} has no baseline (trained before it)")
    config, fallback = model.config, model.baseline
    cold_fc = cold_components(model.cold_start, state, config.horizon, price=price)
    cap = output_cap(state, cold_fc, config)
    is_cold = state.route == ROUTE_COLD_START
    base = np.nan_to_num(BASELINES[fallback.name](state.history, config.horizon), nan=0.0)
    point = np.clip(np.where(is_cold[:, None], cold_fc, base), 0.0, cap[:, None])
    names = np.where(is_cold, MODEL_COLD_START, fallback.name).astype(object)
    quantiles = _calibrated_quantiles(
        point, state, fallback.dispersion, fallback.calibration, config, band_of_h, cap
    )
    return OriginForecast(state=state, point=point, quantiles=quantiles, names=names)


def forecast_warehouse(
    model: WarehouseModel,
    history: pd.DataFrame,
    tables: SourceTables,
    origin: DateLike,
    warehouse_id: object,
    tiers: pd.DataFrame | None = None,
    baseline: bool = False,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecasts D+1 .. D+horizon of every SKU active in the warehouse at ``origin``.

    All SKUs are forecast at once: one LightGBM prediction per band over the matrix of global_ml SKUs x
    horizons, the statistical kernels over the matrix of statistical (and tier-1 partner) SKUs, the launch
    profiles over the cold-start SKUs. History rows after ``origin`` are never read.

    Args:
        model: The trained :class:`WarehouseModel` (``train_date <= origin``).
        history: ``raw_sales`` rows.
        tables: The source tables (products, warehouses, calendar, campaigns, weather).
        origin: The origin day D.
        warehouse_id: The warehouse.
        tiers: :func:`assign_tiers` output at ``origin`` (None = computed with the model's tier config); its
            SKUs are the SKUs forecast.
        baseline: Serve the model's :class:`BaselineForecaster` instead of the tiered model (a warehouse
            whose first model the promotion gate refused); cold-start SKUs keep their launch profiles.
        features: The warehouse's materialized ``feature_table`` rows at ``origin`` (the ML model is served
            with them); None builds them from ``history`` with :func:`build_features` (the same values).

    Returns:
        ``FORECAST_COLUMNS``, one row per SKU x horizon, sorted by SKU then horizon: non-negative point
        forecast (the mean), p50 <= p90 <= p95, all capped, the SKU's tier and the model used.

    Raises:
        ValueError: If ``origin`` is before the model's training date, the warehouse differs, or a baseline
            is asked of a model trained without one.
    """
    origin_day = to_day(origin)
    if origin_day < to_day(model.train_date):
        raise ValueError(
            f"origin {to_timestamp(origin_day).date()} is before the training date {model.train_date.date()}"
        )
    if model.warehouse_id != warehouse_id:
        raise ValueError(f"model of warehouse {model.warehouse_id!r} used for {warehouse_id!r}")
    result = forecast_arrays(
        model,
        history,
        tables,
        origin_day,
        warehouse_id,
        tiers,
        baseline,
        features,
    )
    return _long_frame(result, model.config, warehouse_id)


def _long_frame(result: OriginForecast, config: TrainConfig, warehouse_id: object) -> pd.DataFrame:
    """The arrays as ``FORECAST_COLUMNS`` rows, one per SKU x horizon."""
    state, horizon = result.state, config.horizon
    n = len(state.skus)
    h = np.tile(np.arange(1, horizon + 1), n)
    origin = to_timestamp(state.day).to_datetime64()
    frame: dict[str, object] = {
        C.SKU: np.repeat(state.skus, horizon),
        C.WAREHOUSE_ID: np.full(n * horizon, warehouse_id, dtype=object),
        C.ORIGIN_DATE: np.full(n * horizon, origin),
        C.TARGET_DATE: origin + (h * NS_PER_DAY).astype("timedelta64[ns]"),
        C.HORIZON: h,
        C.FORECAST: result.point.reshape(-1),
    }
    for level_index, q in enumerate(config.quantiles):
        frame[quantile_column(q)] = result.quantiles[level_index].reshape(-1)
    frame[C.TIER] = np.repeat(state.tier, horizon)
    frame[C.MODEL] = np.repeat(result.names, horizon)
    return pd.DataFrame(frame)
