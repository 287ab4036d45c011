"""Training of one warehouse: an expanding-window cross-validation, then the final models at the training date."""

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import DateLike, to_day, to_timestamp
from demand_platform.features import build_sales_panel, build_training_features
from demand_platform.forecasting.baselines import BASELINES, fit_baseline
from demand_platform.forecasting.cold_start import fit_cold_start
from demand_platform.forecasting.components import choose_stat, cold_components, lgbm_at, stat_components
from demand_platform.forecasting.config import MODEL_LGBM, MODEL_STATISTICAL, MODEL_TIERED, TrainConfig
from demand_platform.forecasting.ensemble import combine, ensemble_weights, needs_stat, weight_matrix
from demand_platform.forecasting.model import WarehouseModel
from demand_platform.forecasting.quantiles import (
    DISPERSION_PRIOR_DAYS,
    calibrate,
    history_dispersion,
    level_matrix,
    nb_quantiles,
    residual_dispersion,
)
from demand_platform.forecasting.scoring import metrics_table
from demand_platform.forecasting.state import (
    Components,
    OriginState,
    band_of_horizon,
    history_window,
    ml_history,
    origin_state,
    output_cap,
    panel_attributes,
    read_catalog,
    tiers_of,
    warehouse_history,
)
from demand_platform.models.global_lgbm import DirectTrainingSet, FeatureKeys, GlobalLGBM, TargetDayLookup
from demand_platform.tiering import ROUTE, ROUTE_COLD_START, ROUTE_GLOBAL_ML, assign_tiers, tiers_from_panel


def train_warehouse(
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    train_date: DateLike,
    warehouse_id: object,
    tiers: pd.DataFrame | None = None,
    config: TrainConfig | None = None,
) -> WarehouseModel:
    """Trains the tiered forecaster of one warehouse on the data dated on or before ``train_date``.

    Steps: an expanding-window CV over ``cv_origins`` origins ``c = train_date - cv_step * k`` (tiers
    re-assigned at each ``c`` with ``config.tier_config``; at each ``c`` a LightGBM trained on targets dated
    on or before ``c``, statistical models selected on the history before ``c``, launch profiles as of ``c``,
    scored on ``c + 1 .. c + horizon <= train_date``), from which the tier-1 ensemble weights, the quantile
    calibration and the validation metrics come; then the final LightGBM (targets up to ``train_date``),
    statistical selection and launch profiles at ``train_date``.

    Args:
        history: ``raw_sales`` rows (rows of other warehouses and after ``train_date`` are dropped first).
        products: The ``products`` table.
        warehouses: The ``warehouses`` table.
        calendar: The ``calendar`` table, or None to generate it.
        campaigns: The ``marketing_campaigns`` table, or None.
        weather: The ``weather`` table, or None.
        train_date: The training date.
        warehouse_id: The warehouse.
        tiers: :func:`assign_tiers` output at ``train_date`` (None = computed with ``config.tier_config``).
            The LightGBM is trained on the SKUs routed ``global_ml`` in it.
        config: Settings (default :class:`TrainConfig`).

    Returns:
        The :class:`WarehouseModel`. Its ``validation_metrics`` has one row per segment (tier_1, tier_2,
        tier_3, cold_start, all; tiers as of each CV origin) and model (tiered, lgbm, statistical,
        seasonal_naive, moving_average_28) with WMAPE, MAE, RMSE, bias, n_obs and, for the tiered model,
        the in-sample coverage of the calibrated quantiles.
    """
    config = config or TrainConfig()
    train_day = to_day(train_date)
    horizon = config.horizon
    history = warehouse_history(history, warehouse_id, train_day)
    cv_days = [train_day - config.effective_cv_step * k for k in range(config.cv_origins, 0, -1)]
    # origin_grid spans at most n_origins * origin_step days, so this reaches every feature day's history.
    first_day = train_day - config.training_history_days
    panel = build_sales_panel(
        history,
        end=to_timestamp(train_day),
        lookback_days=0,
        warehouse_id=warehouse_id,
        start=to_timestamp(first_day),
    )
    catalog = read_catalog(products)
    category, launch = panel_attributes(panel, catalog)
    models = config.stat_forecasters()
    band_of_h = band_of_horizon(config)

    def tiers_at(day: int) -> pd.DataFrame:
        # From the training panel cut at the day instead of scattering 745 days of rows into a new panel
        # per CV origin: the same tiers as assign_tiers for raw_sales' one row per SKU and day (a test
        # checks it; duplicate rows before the panel's start would count as two selling days).
        cut = panel.until(day)
        if cut.n_days < config.tier_config.panel_days:
            return tiers_of(
                assign_tiers(history, products, to_timestamp(day), config.tier_config), warehouse_id
            )
        return tiers_of(tiers_from_panel(cut, products, warehouse_id, config.tier_config), warehouse_id)

    final_tiers = tiers_of(tiers if tiers is not None else tiers_at(train_day), warehouse_id)
    cv_tiers = [tiers_at(day) for day in cv_days]

    def train_skus(frame: pd.DataFrame) -> np.ndarray:
        if config.train_on_all_routes:
            return frame.loc[frame[ROUTE] != ROUTE_COLD_START, C.SKU].to_numpy(dtype=object)
        return frame.loc[frame[ROUTE] == ROUTE_GLOBAL_ML, C.SKU].to_numpy(dtype=object)

    ml_sets = [train_skus(frame) for frame in [*cv_tiers, final_tiers]]
    ml_union = np.unique(np.concatenate(ml_sets)) if ml_sets else np.zeros(0, dtype=object)
    n_origins, origin_step = config.origin_grid(len(ml_union))
    grid = [train_day - origin_step * k for k in range(1, n_origins + 1)]
    feature_days = sorted(set(grid) | set(cv_days))
    features = pd.DataFrame()
    lookup = keys = None
    if len(ml_union):
        features = build_training_features(
            ml_history(history, ml_union),
            products,
            warehouses,
            calendar,
            campaigns,
            weather,
            [to_timestamp(day) for day in feature_days],
            warehouse_id,
            horizon=horizon,
        )
        if not features.empty:
            lookup = TargetDayLookup.build(
                calendar,
                campaigns,
                warehouses,
                warehouse_id,
                [to_timestamp(d) for d in feature_days],
                horizon,
                panel.skus,
            )
            keys = FeatureKeys.of(features, panel, lookup)
    feature_skus = features[C.SKU].to_numpy(dtype=object) if not features.empty else np.zeros(0, dtype=object)

    training_set = None
    if lookup is not None and keys is not None:
        # Pairs sampled once up to train_date; each CV model trains on the subset with targets <= its origin.
        training_set = DirectTrainingSet.build(
            features,
            panel,
            lookup,
            to_timestamp(train_day),
            config.lgbm_params(),
            config.sampling(),
            config.model_bands,
            row_mask=pd.Index(ml_union).get_indexer(pd.Index(feature_skus)) >= 0,
            keys=keys,
        )

    def fit_lgbm(cutoff: int, skus: np.ndarray) -> GlobalLGBM | None:
        if training_set is None or len(skus) == 0:
            return None
        model = GlobalLGBM(config.lgbm_params(), config.sampling(), config.model_bands)
        model.fit_training_set(
            training_set,
            to_timestamp(cutoff),
            row_mask=pd.Index(skus).get_indexer(pd.Index(feature_skus)) >= 0,
        )
        return model if model.is_fitted else None

    # --- expanding-window CV -------------------------------------------------------------------------------------------------
    cv: list[tuple[OriginState, Components, np.ndarray, np.ndarray]] = []
    for day, frame, ml_skus in zip(cv_days, cv_tiers, ml_sets[:-1], strict=True):
        state = origin_state(
            panel, frame, day, category, launch, config.history_days, config.cold_start_max_age
        )
        lgbm = fit_lgbm(day, ml_skus)
        lgbm_fc = (
            lgbm_at(lgbm, features, keys, panel, lookup, state, horizon)
            if keys is not None and lookup is not None
            else np.full((len(state.skus), horizon), np.nan)
        )
        stat_rows = np.flatnonzero(needs_stat(state, lgbm_fc))
        choice = choose_stat(state, stat_rows, models, config)
        stat_fc, stat_name = stat_components(state, stat_rows, choice, models, config)
        profile = fit_cold_start(panel, day - panel.start_day, category, launch, config)
        cold_fc = cold_components(profile, state, horizon)
        actual = history_window(panel, state.codes, day - panel.start_day + horizon, horizon)
        cv.append(
            (
                state,
                Components(lgbm_fc, stat_fc, stat_name, cold_fc),
                actual,
                output_cap(state, cold_fc, config),
            )
        )

    actual_all = np.concatenate([item[2] for item in cv])
    lgbm_all = np.concatenate([item[1].lgbm for item in cv])
    stat_all = np.concatenate([item[1].stat for item in cv])
    tier_all = np.concatenate([np.where(item[0].is_ml, item[0].tier, 0) for item in cv])
    weights_table = ensemble_weights(actual_all, lgbm_all, stat_all, tier_all, config)
    weights = weight_matrix(weights_table, config)

    points, alphas, caps, segments, histories, cv_skus = [], [], [], [], [], []
    for state, components, _, cap in cv:
        point, _ = combine(state, components, weights, band_of_h, cap)
        points.append(point)
        alphas.append(history_dispersion(state.history))
        cv_skus.append(state.skus)
        caps.append(cap)
        segments.append(state.segment)
        histories.append(state.history)
    point_all = np.concatenate(points)
    cap_all = np.concatenate(caps)
    segment_all = np.concatenate(segments)
    sku_all = np.concatenate(cv_skus)
    dispersion = residual_dispersion(
        sku_all, actual_all, point_all, np.concatenate(alphas), DISPERSION_PRIOR_DAYS
    )
    alpha_all = dispersion.reindex(pd.Index(sku_all)).to_numpy(np.float64)
    calibration = calibrate(actual_all, point_all, alpha_all, segment_all, config)
    levels = level_matrix(calibration, config)
    quantiles = nb_quantiles(point_all, alpha_all, segment_all, levels, band_of_h, cap_all)
    history_all = np.concatenate(histories)
    baseline_fc = {name: forecast(history_all, horizon) for name, forecast in BASELINES.items()}
    validation = metrics_table(
        actual_all,
        {MODEL_TIERED: point_all, MODEL_LGBM: lgbm_all, MODEL_STATISTICAL: stat_all, **baseline_fc},
        segment_all,
        quantiles,
        config.quantiles,
    )
    baseline = fit_baseline(
        baseline_fc, actual_all, cap_all, sku_all, np.concatenate(alphas), segment_all, config
    )

    # --- final models at the training date -----------------------------------------------------------------------------------
    # Selected for every SKU not in cold start, so SKUs that change route after training have a choice.
    final_state = origin_state(
        panel, final_tiers, train_day, category, launch, config.history_days, config.cold_start_max_age
    )
    choice_rows = np.flatnonzero(final_state.route != ROUTE_COLD_START)
    choice = choose_stat(final_state, choice_rows, models, config)
    stat_choice = pd.Series(
        np.asarray([model.name for model in models], dtype=object)[choice],
        index=pd.Index(final_state.skus[choice_rows], name=C.SKU),
        dtype=object,
    )
    return WarehouseModel(
        warehouse_id=warehouse_id,
        train_date=to_timestamp(train_day),
        config=config,
        lgbm=fit_lgbm(train_day, ml_sets[-1]),
        stat_choice=stat_choice,
        ensemble_weights=weights_table,
        calibration=calibration,
        cold_start=fit_cold_start(panel, train_day - panel.start_day, category, launch, config),
        validation_metrics=validation,
        cv_origin_dates=[to_timestamp(day) for day in cv_days],
        dispersion=dispersion,
        baseline=baseline,
    )
