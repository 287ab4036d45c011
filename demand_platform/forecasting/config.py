"""Settings of training and forecasting (:class:`TrainConfig`) and the names of the output tables' values."""

import math
from dataclasses import dataclass, field

import numpy as np

from demand_platform import columns as C
from demand_platform.days import HORIZON_BANDS
from demand_platform.models.global_lgbm import (
    LGBM_MODEL_NAME,
    PANEL_LOOKBACK_DAYS,
    LGBMParams,
    SamplingConfig,
)
from demand_platform.models.model_registry import ML_REGISTRY, STAT_REGISTRY, stat_model
from demand_platform.models.statistical import StatForecaster
from demand_platform.tiering import TierConfig

# --- model names (values of the ``model`` column) ----------------------------------------------------------------------
MODEL_LGBM = LGBM_MODEL_NAME
MODEL_ENSEMBLE = "ensemble"
MODEL_COLD_START = "cold_start"
# names of the rows of the validation / backtest tables
MODEL_TIERED = "tiered"
MODEL_STATISTICAL = "statistical"
MODEL_SEASONAL_NAIVE = "seasonal_naive"
MODEL_MOVING_AVERAGE_28 = "moving_average_28"

# --- segments of the validation / backtest tables ------------------------------------------------------------------------
SEGMENT = "segment"
SEGMENT_TIERS = ("tier_1", "tier_2", "tier_3")
SEGMENT_COLD_START = "cold_start"
SEGMENT_ALL = "all"
CALIBRATION_SEGMENTS = (*SEGMENT_TIERS, SEGMENT_COLD_START)


# --- output tables -------------------------------------------------------------------------------------------------------
FORECAST_COLUMNS = C.FORECAST_COLUMNS
BAND = "band"
BAND_START = "band_start"
BAND_END = "band_end"


#: Days of the max-demand window of the cap and of the long scale window.
CAP_WINDOW_DAYS = 365


def quantile_column(q: float) -> str:
    """Output column of quantile level ``q`` (0.9 -> ``"p90"``, matching ``columns.P90``)."""
    return f"p{round(q * 100):d}"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_warehouse` (and of the forecasts of the trained model).

    Attributes:
        horizon: Last horizon (days after the origin).
        n_origins: Training origins of the LightGBM, ``train_date - origin_step * k`` for k = 1..n_origins.
        origin_step: Days between training origins. Not a multiple of 7, so the origins fall on every
            weekday (with a weekly step every origin would share the training date's weekday and the model
            could learn the weekday from the horizon, which breaks for origins on other weekdays). With
            ``n_origins`` it spans more than a year, so every holiday of the year has been a training target
            once: with origins spanning half a year, a model trained on 2 December had seen Black Friday
            but no December and forecast the weeks before Christmas like Black Friday (strongly biased
            upwards on the demo warehouses; the year-long span, at the same number of origins and the
            same cost, removed most of it).
        dense_origin_steps: Denser origin steps (none a multiple of 7) for warehouses with few LightGBM SKUs:
            :meth:`origin_grid` takes the smallest step whose origins over the same span, times the SKUs,
            stay within ``origin_budget``.
        origin_budget: Most SKU x origin feature rows the denser steps may build (a full-size warehouse's
            LightGBM SKUs x ``n_origins`` is at it, so it keeps ``origin_step``).
        zero_sample_rate: Share of zero-target training pairs kept (re-weighted).
        max_rows: Cap on training rows per band model.
        n_estimators: Boosting rounds per band model.
        num_leaves: Leaves per tree.
        learning_rate: LightGBM learning rate.
        min_data_in_leaf: Minimum rows per leaf.
        feature_fraction: Share of features per tree.
        bagging_fraction: Share of rows per tree.
        objective: ``"tweedie"`` or ``"poisson"``.
        tweedie_variance_power: Tweedie power.
        num_threads: LightGBM threads (always explicit).
        seed: Seed of LightGBM and of the row sampling.
        bands: Horizon bands of the LightGBM (one model each); they must cover 1 .. horizon.
        cv_origins: Expanding-window CV origins ``train_date - cv_step * k``, k = cv_origins..1.
        cv_step: Days between CV origins (>= horizon so every CV target is on or before the training
            date); None = ``horizon``.
        stat_models: Candidate statistical models (names registered in
            :mod:`demand_platform.models.model_registry`); the first is the default (SKUs without a backtest, and SKUs where no other model wins by ``selection_margin``).
        selection_margin: A SKU leaves the default statistical model only for a model whose backtest
            error is at least this share lower (0 = free per-SKU choice).
        stat_windows: Backtest windows of the statistical model selection.
        stat_history_days: Days of history the statistical models read.
        selection_error: Error of the statistical selection, ``"rmse"`` (default) or ``"mae"``.
        quantiles: Quantile levels, ascending (the defaults give the columns p50, p90, p95).
        cap_multiple: Cap as a multiple of the SKU's 365-day max daily demand.
        cold_start_floor: Smallest cap of a cold-start SKU.
        cold_lookback_days: Launches of these last days make the cold-start profiles.
        cold_max_age_days: Age (days since launch) covered by the launch ramp; older ages reuse its last week.
        cold_prior_skus: Pseudo-SKUs shrinking a category's launch level towards the warehouse's.
        cold_prior_days: Most pseudo-days of the profile level against a cold-start SKU's own history (fewer
            when the recent launches' levels are spread widely, see ``launch_prior_days``).
        min_calibration_rows: Residuals a segment x band needs for its own quantile offsets.
        tier_config: Tiering of the CV origins (and of the training date when no tiers are passed).
        train_on_all_routes: Train the LightGBM on every non-cold-start SKU instead of the global_ml ones.
        weekday_profile: Multiply the flat statistical forecasts (those of models not registered as weekly)
            by the warehouse's pooled weekday index (:func:`pooled_weekday_index` of every SKU at the origin).
        ml_model: The ML model of the ``global_ml`` SKUs (a name registered in
            :mod:`demand_platform.models.model_registry`); the LightGBM settings above are the default one's.
        ml_net_of_holidays: The ML model learns demand net of the holiday uplifts (its targets divided by
            them, as of the first CV origin), which then multiply its forecasts; False: it learns the
            holidays itself from the target day's event key.
        stop_hazards: Candidate daily probabilities that a selling series stops for good; the statistical
            forecasts are multiplied by each SKU's probability of still selling
            (:func:`demand_platform.models.statistical.active_probability`) under the candidate whose
            blended point forecast has the lowest MSE on the CV, per warehouse (0: no adjustment; ``(0.0,)``
            turns it off).
        pool_series: Series the LightGBM of a warehouse learns from at least: a warehouse with fewer of its
            own routed to it borrows the difference from other warehouses (chosen by
            :func:`demand_platform.forecasting.donors.choose_donor_series`; their training pairs capped at
            ``pool_max_rows`` per band). A full-size warehouse has more and borrows nothing. 0: never.
        pool_max_rows: Cap on the borrowed series' training pairs per band model.
    """

    horizon: int = 30
    n_origins: int = 20
    origin_step: int = 19
    dense_origin_steps: tuple[int, ...] = (9, 6, 3)
    origin_budget: int = 100_000
    zero_sample_rate: float = 0.3
    max_rows: int = 60_000
    n_estimators: int = 80
    num_leaves: int = 31
    learning_rate: float = 0.1
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    objective: str = "tweedie"
    tweedie_variance_power: float = 1.2
    num_threads: int = 1
    seed: int = 0
    bands: tuple[tuple[int, int], ...] = HORIZON_BANDS
    cv_origins: int = 3
    cv_step: int | None = None
    stat_models: tuple[str, ...] = (
        "combination",
        "tsb",
        "croston_sba",
        "auto_ses",
        "moving_average",
        "seasonal_window_average",
    )
    selection_margin: float = 0.1
    stat_windows: int = 3
    stat_history_days: int = 365
    selection_error: str = "rmse"
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.95)
    cap_multiple: float = 3.0
    cold_start_floor: float = 1.0
    cold_lookback_days: int = 365
    cold_max_age_days: int = 91
    cold_prior_skus: float = 5.0
    cold_prior_days: float = 14.0
    min_calibration_rows: int = 200
    tier_config: TierConfig = field(default_factory=TierConfig)
    train_on_all_routes: bool = False
    weekday_profile: bool = True
    ml_model: str = MODEL_LGBM
    ml_net_of_holidays: bool = True
    stop_hazards: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
    pool_series: int = 2000
    pool_max_rows: int = 180_000

    def __post_init__(self) -> None:
        """Validates the settings.

        Raises:
            ValueError: On inconsistent settings.
        """
        if self.horizon < 1:
            raise ValueError("horizon must be positive")
        if self.n_origins < 1 or self.origin_step < 1 or self.cv_origins < 1:
            raise ValueError("n_origins, origin_step and cv_origins must be positive")
        if any(step < 1 or step % 7 == 0 for step in self.dense_origin_steps) or self.origin_budget < 0:
            raise ValueError(
                f"dense_origin_steps {self.dense_origin_steps} must be positive and no multiple of 7 "
                "(origins on every weekday), origin_budget non-negative"
            )
        if self.effective_cv_step < self.horizon:
            raise ValueError("cv_step must be >= horizon (every CV target must be on or before train_date)")
        starts = [first for first, _ in self.bands]
        if starts[0] != 1 or any(b[0] != a[1] + 1 for a, b in zip(self.bands, self.bands[1:], strict=False)):
            raise ValueError(f"bands {self.bands} must be contiguous from horizon 1")
        if self.bands[-1][1] < self.horizon:
            raise ValueError(f"bands {self.bands} do not cover horizon {self.horizon}")
        unknown = [name for name in self.stat_models if name not in STAT_REGISTRY]
        if unknown or not self.stat_models:
            raise ValueError(f"unknown statistical models {unknown}; choose from {sorted(STAT_REGISTRY)}")
        if self.ml_model not in ML_REGISTRY:
            raise ValueError(f"unknown ML model {self.ml_model!r}; choose from {sorted(ML_REGISTRY)}")
        if self.pool_series < 0 or self.pool_max_rows < 1:
            raise ValueError(
                f"pool_series ({self.pool_series}) must be non-negative, pool_max_rows ({self.pool_max_rows}) positive"
            )
        if not 0.0 <= self.selection_margin < 1.0:
            raise ValueError("selection_margin must be in [0, 1)")
        if self.selection_error not in ("rmse", "mae"):
            raise ValueError("selection_error must be 'rmse' or 'mae'")
        levels = list(self.quantiles)
        if not levels or levels != sorted(levels) or levels[0] <= 0 or levels[-1] >= 1:
            raise ValueError(f"quantiles {self.quantiles} must be ascending levels in (0, 1)")
        if not self.stop_hazards or any(not 0.0 <= p < 1.0 for p in self.stop_hazards):
            raise ValueError(f"stop_hazards {self.stop_hazards} must be probabilities in [0, 1)")
        if self.stat_history_days <= self.stat_windows * self.horizon:
            raise ValueError("stat_history_days must exceed stat_windows * horizon")

    @property
    def effective_cv_step(self) -> int:
        """Days between CV origins."""
        return self.horizon if self.cv_step is None else self.cv_step

    @property
    def model_bands(self) -> tuple[tuple[int, int], ...]:
        """Bands truncated to the horizon."""
        return tuple((a, min(b, self.horizon)) for a, b in self.bands if a <= self.horizon)

    def lgbm_params(self) -> LGBMParams:
        """The LightGBM settings."""
        return LGBMParams(
            objective=self.objective,  # type: ignore[arg-type]
            tweedie_variance_power=self.tweedie_variance_power,
            n_estimators=self.n_estimators,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            min_data_in_leaf=self.min_data_in_leaf,
            feature_fraction=self.feature_fraction,
            bagging_fraction=self.bagging_fraction,
            num_threads=self.num_threads,
            seed=self.seed,
        )

    def sampling(self) -> SamplingConfig:
        """The training-row sampling."""
        return SamplingConfig(
            zero_sample_rate=self.zero_sample_rate,
            max_rows=self.max_rows,
            seed=self.seed,
            pool_max_rows=self.pool_max_rows,
        )

    def stat_forecasters(self) -> list[StatForecaster]:
        """The candidate statistical models, from the registry."""
        return [stat_model(name) for name in self.stat_models]

    @property
    def cold_start_max_age(self) -> int:
        """Age in days (whole weeks) up to which a cold-start SKU is new and gets the launch profile."""
        return 7 * math.ceil(self.cold_max_age_days / 7)

    def origin_grid(self, n_skus: int) -> tuple[int, int]:
        """Training origins and their step for a LightGBM over ``n_skus`` SKUs: ``(n_origins, step)``.

        The span ``n_origins * origin_step`` stays (a year of holidays as targets); a warehouse with few
        SKUs gets its origins closer together, so the model sees more weeks of the year: the smallest of
        ``dense_origin_steps`` with ``(span // step) * n_skus <= origin_budget``, else ``origin_step``.
        """
        span = self.n_origins * self.origin_step
        for step in sorted(self.dense_origin_steps):
            if step < self.origin_step and (span // step) * n_skus <= self.origin_budget:
                return span // step, step
        return self.n_origins, self.origin_step

    @property
    def training_history_days(self) -> int:
        """Days of history before the training date that :func:`train_warehouse` reads."""
        reach = max(self.origin_step * self.n_origins, self.effective_cv_step * self.cv_origins)
        return reach + self.history_days

    @property
    def history_days(self) -> int:
        """Days of history (ending at an origin) read for the statistical models, scale, cap and profiles."""
        return max(self.stat_history_days, CAP_WINDOW_DAYS, PANEL_LOOKBACK_DAYS + 1)


def band_of_horizon(config: TrainConfig) -> np.ndarray:
    """Band index of each horizon 1..H."""
    out = np.zeros(config.horizon, dtype=np.int64)
    for index, (first, last) in enumerate(config.model_bands):
        out[first - 1 : last] = index
    return out
