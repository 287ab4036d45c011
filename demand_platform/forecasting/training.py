"""Training of one warehouse: an expanding-window cross-validation, then the final models at the training date."""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import DateLike, to_day, to_timestamp
from demand_platform.features import SalesPanel, build_sales_panel, build_training_features
from demand_platform.forecasting.baselines import BASELINES, fit_baseline
from demand_platform.forecasting.cold_start import ColdStartProfile, fit_cold_start
from demand_platform.forecasting.components import (
    choose_stat,
    cold_components,
    lgbm_at,
    stat_components,
    still_selling,
)
from demand_platform.forecasting.config import MODEL_STATISTICAL, MODEL_TIERED, TrainConfig, band_of_horizon
from demand_platform.forecasting.donors import donor_history, pool_size
from demand_platform.forecasting.ensemble import (
    choose_stop_hazard,
    combine,
    ensemble_weights,
    needs_stat,
    weight_matrix,
)
from demand_platform.forecasting.events import (
    EventUplift,
    HorizonEvents,
    history_events,
    horizon_events,
    ml_with_events,
    uplift_as_of,
)
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
    catalog_price,
    history_window,
    ml_history,
    origin_state,
    output_cap,
    panel_attributes,
    read_catalog,
    tiers_of,
    warehouse_history,
)
from demand_platform.models.global_lgbm import DonorRows, FeatureKeys, TargetDayLookup
from demand_platform.models.model_registry import MLForecaster, MLTrainer, MLTrainingData, ml_trainer_factory
from demand_platform.models.statistical import StatForecaster
from demand_platform.tables import SourceTables
from demand_platform.tiering import ROUTE, ROUTE_COLD_START, ROUTE_GLOBAL_ML, assign_tiers, tiers_from_panel


@dataclass(frozen=True)
class SalesHistory:
    """The warehouse's sales panel over the training window and each panel SKU's category and launch day.

    Attributes:
        panel: Daily demand of every SKU of the warehouse, from ``training_history_days`` before the
            training date to it.
        category: Category of each panel SKU.
        launch: Effective launch epoch day of each panel SKU (see :func:`panel_attributes`).
        events: Holiday keys and campaign discounts of the panel's SKUs and days.
        tables: The source tables (the events of the days after an origin).
        warehouse_id: The warehouse.
        price: Price of each panel SKU (NaN unknown; None: no price bands for the launches).
        uplifts: The uplifts fitted so far, by day (the first CV origin's is used twice: by its fold and
            for the ML model's targets).
    """

    panel: SalesPanel
    category: np.ndarray
    launch: np.ndarray
    events: HorizonEvents
    tables: SourceTables
    warehouse_id: object
    price: np.ndarray | None = None
    uplifts: dict[int, EventUplift] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        history: pd.DataFrame,
        tables: SourceTables,
        catalog: pd.DataFrame,
        warehouse_id: object,
        train_day: int,
        config: TrainConfig,
    ) -> "SalesHistory":
        """A warehouse's sales over the ``training_history_days`` up to ``train_day`` (``history``: its
        ``raw_sales`` rows; ``catalog``: :func:`read_catalog` of the products)."""
        panel = build_sales_panel(
            history,
            end=to_timestamp(train_day),
            lookback_days=0,
            warehouse_id=warehouse_id,
            start=to_timestamp(train_day - config.training_history_days),
        )
        category, launch = panel_attributes(panel, catalog)
        return cls(
            panel,
            category,
            launch,
            history_events(tables, warehouse_id, panel),
            tables,
            warehouse_id,
            catalog_price(catalog, panel.skus),
        )

    def state_at(self, tiers: pd.DataFrame, day: int, config: TrainConfig) -> OriginState:
        """The SKUs of ``tiers`` at origin ``day`` with their history (see :func:`origin_state`)."""
        return origin_state(
            self.panel, tiers, day, self.category, self.launch, config.history_days, config.cold_start_max_age
        )

    def cold_start_at(self, day: int, config: TrainConfig, uplift: EventUplift) -> ColdStartProfile:
        """Launch profiles as of ``day``, from the launches' demand net of the events ``uplift`` knows."""

        def events(rows: np.ndarray) -> np.ndarray:
            return uplift.multiplier(self.category[rows], self.events.take(rows))

        return fit_cold_start(
            self.panel, day - self.panel.start_day, self.category, self.launch, config, events, self.price
        )

    def price_of(self, skus: np.ndarray) -> np.ndarray | None:
        """Price of each of ``skus`` in the products table, as serving reads it (NaN unknown; None without
        prices)."""
        if self.price is None:
            return None
        return catalog_price(read_catalog(self.tables.products), skus)

    def uplift_at(self, day: int) -> EventUplift:
        """Event uplifts learned from the days up to ``day`` (fitted once per day)."""
        if day not in self.uplifts:
            self.uplifts[day] = uplift_as_of(self.panel, self.category, self.events, day)
        return self.uplifts[day]


@dataclass(frozen=True)
class MLTraining:
    """The ML model's inputs: feature rows at every training and CV origin, and the registered model's
    trainer made once from them (the LightGBM's samples its training pairs once up to the training date, and
    a CV model trains on the pairs whose target day is on or before its origin, which is what an expanding
    window sees).

    Attributes:
        features: Feature rows (one per SKU x origin day); empty without ML SKUs.
        keys: Integer keys of the feature rows (None without feature rows).
        lookup: Target-day features of the origin days (None without feature rows).
        trainer: The trainer of ``config.ml_model`` (None without feature rows).
        horizon: Last horizon.
    """

    features: pd.DataFrame
    keys: FeatureKeys | None
    lookup: TargetDayLookup | None
    trainer: MLTrainer | None
    horizon: int
    net_of_holidays: bool = False

    def fit(self, cutoff: int, skus: np.ndarray) -> MLForecaster | None:
        """The model trained on the rows of ``skus`` with target days on or before ``cutoff`` (None when
        there is nothing to train on)."""
        if self.trainer is None:
            return None
        return self.trainer.fit(cutoff, skus)

    def forecast(
        self,
        model: MLForecaster | None,
        panel: SalesPanel,
        state: OriginState,
        uplift: EventUplift | None = None,
        events: HorizonEvents | None = None,
    ) -> np.ndarray:
        """``model``'s forecasts ``[n, H]`` of the origin's global_ml SKUs (NaN for the others), times
        ``uplift``'s holiday uplifts of the days of ``events`` when it learned demand net of them; on the
        days of a campaign, its forecast without the campaign times ``uplift``'s campaign lift."""
        if self.keys is None or self.lookup is None:
            return np.full((len(state.skus), self.horizon), np.nan)
        forecast = lgbm_at(model, self.features, self.keys, panel, self.lookup, state, self.horizon)
        if uplift is None or events is None:
            return forecast
        lookup = self.lookup

        def without_campaigns() -> np.ndarray:
            assert self.keys is not None
            return lgbm_at(
                model, self.features, self.keys, panel, lookup.without_campaigns(), state, self.horizon
            )

        return ml_with_events(
            forecast, without_campaigns, uplift, state.category, events, self.net_of_holidays
        )


@dataclass(frozen=True)
class FoldResult:
    """One origin of the expanding-window cross-validation: component forecasts and what they are scored on.

    Attributes:
        state: The SKUs at the CV origin (tiers as of it) with their history.
        components: ML (LightGBM), statistical and launch-profile forecasts ``[n, H]``.
        actual: Demand of the days ``origin + 1 .. origin + H`` (NaN where a SKU has no row).
        cap: Per-SKU cap of every output.
    """

    state: OriginState
    components: Components
    actual: np.ndarray
    cap: np.ndarray

    @property
    def ml_tier(self) -> np.ndarray:
        """Tier of each ML SKU (0 for the others): the rows the ensemble weights are fitted on."""
        return np.where(self.state.is_ml, self.state.tier, 0)


@dataclass(frozen=True)
class PooledFolds:
    """The folds stacked: row i of every array is one SKU at one CV origin (``[N, H]`` or ``[N]``).

    Attributes:
        actual: Actuals.
        lgbm: The ML model's (LightGBM's) forecasts (NaN where not an ML SKU).
        stat: Statistical forecasts (NaN where not needed).
        ml_tier: Tier of the ML SKUs, 0 for the others.
        skus: SKU of each row.
        segment: Calibration segment of each row.
        cap: Per-row cap.
        history: Demand history up to the row's origin.
        history_dispersion: Negative-binomial dispersion of each row's history.
    """

    actual: np.ndarray
    lgbm: np.ndarray
    stat: np.ndarray
    ml_tier: np.ndarray
    skus: np.ndarray
    segment: np.ndarray
    cap: np.ndarray
    history: np.ndarray
    history_dispersion: np.ndarray

    @classmethod
    def of(cls, folds: Sequence[FoldResult]) -> "PooledFolds":
        """Stacks the folds in order."""
        return cls(
            actual=np.concatenate([fold.actual for fold in folds]),
            lgbm=np.concatenate([fold.components.lgbm for fold in folds]),
            stat=np.concatenate([fold.components.stat for fold in folds]),
            ml_tier=np.concatenate([fold.ml_tier for fold in folds]),
            skus=np.concatenate([fold.state.skus for fold in folds]),
            segment=np.concatenate([fold.state.segment for fold in folds]),
            cap=np.concatenate([fold.cap for fold in folds]),
            history=np.concatenate([fold.state.history for fold in folds]),
            history_dispersion=np.concatenate([history_dispersion(fold.state.history) for fold in folds]),
        )


def _tiers_at(
    sales: SalesHistory,
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouse_id: object,
    day: int,
    config: TrainConfig,
) -> pd.DataFrame:
    """Tiers of the warehouse's SKUs at ``day`` with ``config.tier_config``.

    From the training panel cut at the day instead of scattering 745 days of rows into a new panel per CV
    origin: the same tiers as :func:`assign_tiers` for raw_sales' one row per SKU and day (a test checks
    it; duplicate rows before the panel's start would count as two selling days).
    """
    cut = sales.panel.until(day)
    if cut.n_days < config.tier_config.panel_days:
        return tiers_of(assign_tiers(history, products, to_timestamp(day), config.tier_config), warehouse_id)
    return tiers_of(tiers_from_panel(cut, products, warehouse_id, config.tier_config), warehouse_id)


def _lgbm_skus(tiers: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """The SKUs the ML model trains on: routed global_ml (every SKU not in cold start with
    ``train_on_all_routes``)."""
    if config.train_on_all_routes:
        return tiers.loc[tiers[ROUTE] != ROUTE_COLD_START, C.SKU].to_numpy(dtype=object)
    return tiers.loc[tiers[ROUTE] == ROUTE_GLOBAL_ML, C.SKU].to_numpy(dtype=object)


def _feature_rows(
    history: pd.DataFrame,
    tables: SourceTables,
    warehouse_id: object,
    panel: SalesPanel,
    feature_days: Sequence[int],
    skus: np.ndarray,
    config: TrainConfig,
) -> tuple[pd.DataFrame, TargetDayLookup | None, FeatureKeys | None]:
    """The ML feature rows of ``skus`` at ``feature_days``, their target-day lookup and their keys in
    ``panel`` (an empty frame and None, None when there is no row)."""
    if not len(skus):
        return pd.DataFrame(), None, None
    days = [to_timestamp(day) for day in feature_days]
    features = build_training_features(
        ml_history(history, skus), tables, days, warehouse_id, horizon=config.horizon
    )
    if features.empty:
        return features, None, None
    lookup = TargetDayLookup.build(tables, warehouse_id, days, config.horizon, panel.skus)
    return features, lookup, FeatureKeys.of(features, panel, lookup)


def _ml_training(
    history: pd.DataFrame,
    tables: SourceTables,
    warehouse_id: object,
    panel: SalesPanel,
    train_day: int,
    feature_days: Sequence[int],
    skus: np.ndarray,
    config: TrainConfig,
    target_divisor: np.ndarray | None = None,
    donors: Sequence[DonorRows] = (),
) -> MLTraining:
    """Feature rows of ``skus`` at ``feature_days`` and the trainer of ``config.ml_model`` made from them
    (targets divided by ``target_divisor``, the event multiplier of their day, when given; ``donors``' rows
    pooled into its training rows)."""
    features, lookup, keys = _feature_rows(history, tables, warehouse_id, panel, feature_days, skus, config)
    trainer = None
    if lookup is not None and keys is not None:
        data = MLTrainingData(
            features=features,
            feature_skus=features[C.SKU].to_numpy(dtype=object),
            keys=keys,
            lookup=lookup,
            panel=panel,
            train_day=train_day,
            skus=skus,
            target_divisor=target_divisor,
            donors=tuple(donors),
        )
        trainer = ml_trainer_factory(config.ml_model)(data, config)
    return MLTraining(features, keys, lookup, trainer, config.horizon, target_divisor is not None)


def _donor_rows(
    history: pd.DataFrame,
    tables: SourceTables,
    train_day: int,
    feature_days: Sequence[int],
    cutoffs: Sequence[int],
    config: TrainConfig,
) -> list[DonorRows]:
    """The LightGBM training rows of other warehouses' series (``history``: their ``raw_sales`` rows, see
    :func:`demand_platform.forecasting.donors.donor_history`), built as the warehouse's own: at the same
    feature days, targets net of their own warehouse's holiday uplifts as of the first CV origin. A donor
    series' rows train the models of the cutoffs (``cutoffs``: the CV origins, then the training date) at
    which it is routed to the global model, as the warehouse's own do."""
    out: list[DonorRows] = []
    if history.empty:
        return out
    catalog = read_catalog(tables.products)
    # One pass per donor warehouse (at most the platform's warehouses), vectorised over its series.
    for warehouse_id, rows in history.groupby(C.WAREHOUSE_ID, sort=True, observed=True):
        sales = SalesHistory.build(rows, tables, catalog, warehouse_id, train_day, config)
        panel = sales.panel
        routed_skus = {
            day: _lgbm_skus(_tiers_at(sales, rows, tables.products, warehouse_id, day, config), config)
            for day in cutoffs
        }
        skus = np.unique(np.concatenate(list(routed_skus.values())))
        features, lookup, keys = _feature_rows(rows, tables, warehouse_id, panel, feature_days, skus, config)
        if lookup is None or keys is None:
            continue
        out.append(
            DonorRows(
                warehouse_id=str(warehouse_id),
                features=features,
                keys=keys,
                lookup=lookup,
                panel=panel,
                routed={
                    day: pd.Index(routed).get_indexer(pd.Index(features[C.SKU].to_numpy(dtype=object))) >= 0
                    for day, routed in routed_skus.items()
                },
                target_divisor=ml_target_divisor(sales, cutoffs[0], config),
            )
        )
    return out


def ml_target_divisor(sales: SalesHistory, first_cv_day: int, config: TrainConfig) -> np.ndarray | None:
    """The holiday uplift of every panel SKU-day as learned up to the first CV origin, which divides the ML
    model's targets (None when ``config.ml_net_of_holidays`` is off).

    The LightGBM sees a holiday through a rare category of its target-day event key: two Black Fridays in
    two years, a few thousand rows among a million, which the trees split on too little (tier 1 was 12-13%
    short on Black Friday and its weekend). Net of the uplifts, learned from every past instance, it learns
    the ordinary demand of those days, and the uplifts multiply its forecasts back. The uplifts are fitted as
    of the first CV origin, so no CV model (trained on targets up to its origin) sees a fit of later days.
    """
    if not config.ml_net_of_holidays:
        return None
    return sales.uplift_at(first_cv_day).holidays(sales.category, sales.events)


def _fold(
    sales: SalesHistory,
    tiers: pd.DataFrame,
    day: int,
    ml_skus: np.ndarray,
    ml: MLTraining,
    models: Sequence[StatForecaster],
    config: TrainConfig,
) -> FoldResult:
    """The component forecasts at CV origin ``day``: an ML model trained on targets up to ``day``, the
    statistical models selected on the history up to it, launch profiles as of it."""
    panel, horizon = sales.panel, config.horizon
    state = sales.state_at(tiers, day, config)
    uplift = sales.uplift_at(day)
    ahead = horizon_events(sales.tables, sales.warehouse_id, state.skus, day + 1, horizon)
    events = uplift.multiplier(state.category, ahead)
    lgbm_fc = ml.forecast(ml.fit(day, ml_skus), panel, state, uplift, ahead)
    stat_rows = np.flatnonzero(needs_stat(state, lgbm_fc))
    choice = choose_stat(state, stat_rows, models, config)
    stat_fc, stat_name = stat_components(state, stat_rows, choice, models, config, events)
    cold_fc = cold_components(
        sales.cold_start_at(day, config, uplift), state, horizon, events, sales.price_of(state.skus)
    )
    return FoldResult(
        state=state,
        components=Components(lgbm_fc, stat_fc, stat_name, cold_fc),
        actual=history_window(panel, state.codes, day - panel.start_day + horizon, horizon),
        cap=output_cap(state, cold_fc, config),
    )


def train_warehouse(
    history: pd.DataFrame,
    tables: SourceTables,
    train_date: DateLike,
    warehouse_id: object,
    tiers: pd.DataFrame | None = None,
    config: TrainConfig | None = None,
) -> WarehouseModel:
    """Trains the tiered forecaster of one warehouse on the data dated on or before ``train_date``.

    Steps: an expanding-window CV over ``cv_origins`` origins ``c = train_date - cv_step * k`` (tiers
    re-assigned at each ``c`` with ``config.tier_config``; at each ``c`` an ML model (``config.ml_model``,
    the LightGBM by default) trained on targets dated on or before ``c``, statistical models selected on
    the history before ``c``, launch profiles as of ``c``, scored on ``c + 1 .. c + horizon <=
    train_date``), from which the ensemble weights of tiers 1-2, the quantile calibration and the
    validation metrics come; then the final ML model (targets up to ``train_date``),
    statistical selection and launch profiles at ``train_date``.

    Args:
        history: ``raw_sales`` rows (rows after ``train_date`` are dropped first). Rows of other warehouses
            are the LightGBM's pool: a warehouse with fewer than ``config.pool_series`` series routed to
            it borrows the difference among them (see :mod:`~demand_platform.forecasting.donors`), whose
            training rows join its own; the rest are dropped.
        tables: The source tables (products, warehouses, calendar, campaigns, weather).
        train_date: The training date.
        warehouse_id: The warehouse.
        tiers: :func:`assign_tiers` output at ``train_date`` (None = computed with ``config.tier_config``).
            The ML model is trained on the SKUs routed ``global_ml`` in it.
        config: Settings (default :class:`TrainConfig`).

    Returns:
        The :class:`WarehouseModel`. Its ``validation_metrics`` has one row per segment (tier_1, tier_2,
        tier_3, cold_start, all; tiers as of each CV origin) and model (tiered, ``config.ml_model`` (lgbm),
        statistical, seasonal_naive, moving_average_28) with WMAPE, MAE, RMSE, bias, n_obs and, for the tiered model,
        the in-sample coverage of the calibrated quantiles.
    """
    config = config or TrainConfig()
    train_day = to_day(train_date)
    horizon = config.horizon
    every_warehouse = history
    history = warehouse_history(history, warehouse_id, train_day)
    cv_days = [train_day - config.effective_cv_step * k for k in range(config.cv_origins, 0, -1)]
    # The panel starts training_history_days back: origin_grid spans at most n_origins * origin_step days,
    # so it reaches every feature day's history.
    sales = SalesHistory.build(
        history, tables, read_catalog(tables.products), warehouse_id, train_day, config
    )
    panel = sales.panel
    models = config.stat_forecasters()
    band_of_h = band_of_horizon(config)

    final_tiers = tiers_of(
        tiers
        if tiers is not None
        else _tiers_at(sales, history, tables.products, warehouse_id, train_day, config),
        warehouse_id,
    )
    cv_tiers = [_tiers_at(sales, history, tables.products, warehouse_id, day, config) for day in cv_days]
    cv_ml_skus = [_lgbm_skus(frame, config) for frame in cv_tiers]
    final_ml_skus = _lgbm_skus(final_tiers, config)
    ml_union = np.unique(np.concatenate([*cv_ml_skus, final_ml_skus]))
    n_origins, origin_step = config.origin_grid(len(ml_union))
    grid = [train_day - origin_step * k for k in range(1, n_origins + 1)]
    feature_days = sorted(set(grid) | set(cv_days))
    cutoffs = [*cv_days, train_day]
    borrowed = pool_size(len(ml_union), config.pool_series) if len(ml_union) else 0
    pool = donor_history(every_warehouse, warehouse_id, to_timestamp(train_day), borrowed)
    donors = _donor_rows(pool, tables, train_day, feature_days, cutoffs, config)
    ml = _ml_training(
        history,
        tables,
        warehouse_id,
        panel,
        train_day,
        feature_days,
        ml_union,
        config,
        ml_target_divisor(sales, cv_days[0], config),
        donors,
    )

    # --- expanding-window CV -------------------------------------------------------------------------------------------------
    folds = [
        _fold(sales, frame, day, ml_skus, ml, models, config)
        for day, frame, ml_skus in zip(cv_days, cv_tiers, cv_ml_skus, strict=True)
    ]
    stop_hazard, _ = choose_stop_hazard(
        [fold.state for fold in folds],
        [fold.components for fold in folds],
        np.concatenate([fold.actual for fold in folds]),
        [fold.cap for fold in folds],
        config,
    )
    folds = [
        replace(fold, components=still_selling(fold.state, fold.components, stop_hazard)) for fold in folds
    ]
    cv = PooledFolds.of(folds)
    weights_table = ensemble_weights(cv.actual, cv.lgbm, cv.stat, cv.ml_tier, config)
    weights = weight_matrix(weights_table, config)
    point = np.concatenate(
        [
            combine(fold.state, fold.components, weights, band_of_h, fold.cap, config.ml_model)[0]
            for fold in folds
        ]
    )
    dispersion = residual_dispersion(cv.skus, cv.actual, point, cv.history_dispersion, DISPERSION_PRIOR_DAYS)
    alpha = dispersion.reindex(pd.Index(cv.skus)).to_numpy(np.float64)
    calibration = calibrate(cv.actual, point, alpha, cv.segment, config)
    levels = level_matrix(calibration, config)
    quantiles = nb_quantiles(point, alpha, cv.segment, levels, band_of_h, cv.cap)
    baseline_fc = {name: forecast(cv.history, horizon) for name, forecast in BASELINES.items()}
    validation = metrics_table(
        cv.actual,
        {MODEL_TIERED: point, config.ml_model: cv.lgbm, MODEL_STATISTICAL: cv.stat, **baseline_fc},
        cv.segment,
        quantiles,
        config.quantiles,
    )
    baseline = fit_baseline(
        baseline_fc, cv.actual, cv.cap, cv.skus, cv.history_dispersion, cv.segment, config
    )

    # --- final models at the training date -----------------------------------------------------------------------------------
    final_uplift = sales.uplift_at(train_day)
    # Selected for every SKU not in cold start, so SKUs that change route after training have a choice.
    final_state = sales.state_at(final_tiers, train_day, config)
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
        lgbm=ml.fit(train_day, final_ml_skus),
        stat_choice=stat_choice,
        ensemble_weights=weights_table,
        calibration=calibration,
        cold_start=sales.cold_start_at(train_day, config, final_uplift),
        validation_metrics=validation,
        cv_origin_dates=[to_timestamp(day) for day in cv_days],
        dispersion=dispersion,
        baseline=baseline,
        events=final_uplift,
        ml_net_of_holidays=ml.net_of_holidays,
        stop_hazard=stop_hazard,
        pooled_series=sum(int(donor.features[C.SKU].nunique()) for donor in donors),
    )
