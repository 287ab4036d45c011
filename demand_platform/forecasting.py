"""Tiered forecasting pipeline of one warehouse: train, forecast D+1 .. D+horizon, override, backtest.

Routing (from :func:`demand_platform.tiering.assign_tiers` at the origin):

* route ``global_ml``, tier 1: ensemble of the global LightGBM
  (:mod:`demand_platform.models.global_lgbm`) and the SKU's statistical model, model name ``"ensemble"``;
* route ``global_ml``, other tiers: the global LightGBM, ``"lgbm"``;
* route ``statistical``: the statistical model chosen per SKU by backtest, named after the model;
* route ``cold_start``: category launch profile, ``"cold_start"``.

Training (:func:`train_warehouse`) at a training date T runs an expanding-window CV over ``cv_origins``
origins ``c = T - cv_step * k`` (``cv_step`` = the 30-day horizon by default; tiers re-assigned at each
``c``): at each ``c`` a LightGBM trained on targets dated on or before ``c``, statistical models selected on
the history up to ``c`` and launch profiles as of ``c`` forecast ``c + 1 .. c + 30`` (all on or before T). The CV residuals give the ensemble weights (tiers 1-2), the
quantile calibration and the validation metrics; the final models are then fitted at T. The LightGBM
training pairs (SKUs routed ``global_ml``, origins every ``origin_step`` days plus the CV origins) are
sampled and binned once at T (:class:`demand_platform.models.global_lgbm.DirectTrainingSet`); each CV model
trains on the subset whose target day is on or before its origin, which is what an expanding window sees.

Design decisions (see also the docstrings of the functions):

* **LightGBM objective**: Tweedie (power 1.2) by default. On the synthetic benchmarks Tweedie (1.1, 1.2,
  1.5) and Poisson were within noise of each other (WMAPE 0.386-0.388, bias within +-1%); Tweedie is kept
  for its heavier zero mass and tail on the zero-inflated tier-2 SKUs.

* **One LightGBM per warehouse, not pooled across warehouses.** ``bench/bench_pooling.py`` (synthetic,
  1,000 SKUs, two held-out origins, raw LightGBM means) found a model pooled over the same training rows
  better: WMAPE -4.6% (4 warehouses), -4.0% (8), -0.9% (4, another seed), losing in 7 of 32 warehouse x
  origin cells; pooled rows capped at one warehouse's budget kept almost none of it at 8 warehouses
  (-0.3%), so the gain is the extra data, at the same total boosting time. Kept per warehouse for now:
  a pooled model makes one job of all 50 warehouses (3 M rows per band at full size, one design matrix
  in memory, no warehouse trained or retrained alone by the drift sensor, one gate for all), while the
  ensemble with the statistical partner already shrinks the LightGBM's share where it is weak. Worth
  revisiting with more seeds and real multi-warehouse data.
* **Statistical model selection** uses :func:`select_by_backtest` with ``error="rmse"`` over the last
  ``stat_windows`` windows of ``horizon`` days before the training date. MAE is minimised by the median,
  which is zero on intermittent data, so MAE selection picks models that forecast zero (and under-stocks);
  RMSE is minimised by the mean, the quantity the LightGBM (Tweedie) and the quantile calibration are built
  around. A scaled error (RMSSE, MASE) would not change anything here: the selection is per series and a
  per-series scale does not change the ranking of the models of that series. The default model is the
  combination of SBA, TSB and SES; a SKU leaves it only for a model that wins its backtest by
  ``selection_margin`` (10%), since a free choice on three windows mostly fits noise. Measured: M5
  HOBBIES_2, six origins, WRMSSE 0.824 free vs 0.8145 with the 10% margin; on the synthetic weekly test
  world the margin costs 0.2-0.8% WMAPE (three seeds), where the seasonal window average wins most SKUs.
* **Weekday profile of the statistical forecasts.** SBA, TSB, SES, the moving average and their
  combination forecast a flat level; the weekday is then put back with the warehouse's pooled weekday
  index (:func:`demand_platform.models.statistical.pooled_weekday_index`: the demand of every SKU at the
  origin over the last 364 days, shrunk towards 1 when there is little of it, mean 1 so every 7-day
  total stays), for every SKU whose model is not already weekly (seasonal naive, seasonal window
  average). A per-SKU index would fit the noise of sparse SKUs; the pooled one is what a warehouse's
  week looks like. Measured: synthetic 500 SKUs, two origins (``bench/bench_synthetic_configs.py``),
  point WRMSSE 0.6749 -> 0.6709 (tier 1: the partner of the
  LightGBM was flat); M5 HOBBIES_2, six origins d_1801..d_1941 (``bench/bench_m5_configs.py``, every
  origin promoted), 0.8165 -> 0.8164 (sparse items: parity). The statistical selection still backtests
  the flat forecasts.
* **Training origins** are ``origin_step`` (19) days apart over a year; a warehouse with few LightGBM
  SKUs gets them closer together over the same span (:meth:`TrainConfig.origin_grid`: 3, 6 or 9 days,
  while SKUs x origins stay within ``origin_budget`` = 100,000), so it learns from more weeks instead of
  20 snapshots. A full-size warehouse (~5,000 LightGBM SKUs) keeps 20 origins, so its cost is unchanged.
  Measured as above: M5 (75 LightGBM SKUs, step 3) 0.8165 -> 0.8109 (0.8164 -> 0.8115 with the
  weekday profile on); synthetic (~260 SKUs, step 3) 0.6709 -> 0.6714 (no gain) at twice the training
  time there.
* **Ensemble weights** are per tier (1 and 2) and horizon band: the convex weight of the LightGBM against
  the statistical partner that minimises the validation MSE pooled over the tier's SKU-days in all CV
  origins, ``w = sum((a - s)(l - s)) / sum((l - s)^2)`` clipped to [0, 1]. Tier 2 was LightGBM alone in the
  first design; on M5 HOBBIES_2 its LightGBM lost to the statistical models and the CV had shown it, so
  the CV now decides how much of it to keep (w = 1 keeps it alone). An inverse-MSE weight never drops a
  component however bad it is. Per-SKU weights from 3 x 30 noisy days would mostly fit noise and would not
  exist for SKUs entering a tier after training.
* **Quantiles** come from a negative binomial per SKU x horizon with the point forecast as its mean and
  the SKU's own dispersion ``alpha = (var - mean) / mean^2`` of the trailing 56 days (365 when it sold
  nothing in 56), so a steady seller's p50 sits near its mean while a sporadic SKU's p50 is 0: the chance
  of a zero day is the SKU's, not its segment's. The levels are recalibrated per segment (tier 1, 2, 3,
  cold start) and horizon band on the CV origins: ``q'`` is the ``q`` quantile of the mid-PIT values
  ``(F(a - 1) + F(a)) / 2`` of the validation actuals, which are uniform when the distribution is right, so
  ``q' = q`` then, and ``q'`` moves outwards when the spread is too narrow (inwards when too wide).
  Segments with too few residuals use the band's pooled levels. (The first design used pooled additive
  offsets on a per-SKU scale; where more than half of a segment's days were zero its p50 offset was the
  lowest residual and every SKU's p50 was 0, the high sellers' included: Online Retail, UK.)
* **Cold start**: profile = category level x launch ramp. From the SKUs launched in the last
  ``cold_lookback_days`` (first row after the history's first day), the ramp is the mean demand by age week
  (shrunk towards 1) over the overall mean, and the category level is the de-ramped mean demand of the
  category's launches, shrunk towards the warehouse level with ``cold_prior_skus`` pseudo-SKUs. A cold-start
  SKU's own days since launch update its level like a Gamma-Poisson posterior with ``cold_prior_days``
  pseudo-days; SKUs older than the ramp (cold start by too few selling days) follow their own history
  only, so a long run of zeros forecasts zero.
* **Cap**: every output is capped at ``cap_multiple`` x the SKU's max daily demand over the last 365 days;
  cold-start SKUs younger than the ramp get at least ``cap_multiple`` x their profile's max, and
  ``cold_start_floor``.
* **Leakage**: ``train_warehouse`` drops every history row dated after the training date before anything
  else; the CV origins ``c`` satisfy ``c + horizon <= train_date`` and the models of a CV origin only use
  targets dated on or before it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import nbinom

from demand_platform import columns as C
from demand_platform.features import (
    DateLike,
    SalesPanel,
    build_features,
    build_sales_panel,
    build_training_features,
)
from demand_platform.metrics import BIAS, MAE, N_OBS, RMSE, WMAPE, bias, mae, rmse, wmape
from demand_platform.models.global_lgbm import (
    HORIZON_BANDS,
    PANEL_LOOKBACK_DAYS,
    DirectTrainingSet,
    FeatureKeys,
    GlobalLGBM,
    LGBMParams,
    SamplingConfig,
    TargetDayLookup,
    band_label,
)
from demand_platform.models.statistical import (
    STAT_MODELS,
    SeasonalNaive,
    StatCombination,
    StatForecaster,
    forecast_selected,
    moving_average,
    pooled_weekday_index,
    seasonal_naive,
    select_by_backtest,
    weekday_factors,
)
from demand_platform.tiering import (
    ROUTE,
    ROUTE_COLD_START,
    ROUTE_GLOBAL_ML,
    ROUTE_STATISTICAL,
    TierConfig,
    assign_tiers,
    tiers_from_panel,
)

# --- model names (values of the ``model`` column) ----------------------------------------------------------------------
MODEL_LGBM = "lgbm"
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
QUANTILE = "quantile"
CALIBRATED_LEVEL = "calibrated_level"
N_RESIDUALS = "n_residuals"
CALIBRATION_SOURCE = "source"
CALIBRATION_COLUMNS = (
    SEGMENT,
    BAND,
    BAND_START,
    BAND_END,
    QUANTILE,
    CALIBRATED_LEVEL,
    N_RESIDUALS,
    CALIBRATION_SOURCE,
)
MSE_LGBM = "mse_lgbm"
MSE_STAT = "mse_stat"
WEIGHT_LGBM = "weight_lgbm"
WEIGHT_STAT = "weight_stat"
ENSEMBLE_COLUMNS = (C.TIER, BAND, BAND_START, BAND_END, MSE_LGBM, MSE_STAT, WEIGHT_LGBM, WEIGHT_STAT, N_OBS)
COVERAGE_PREFIX = "coverage_"
#: Tiers whose LightGBM is blended with the statistical model, and their weight without validation days.
ENSEMBLE_TIERS = (1, 2)
ENSEMBLE_PRIOR_WEIGHT = {1: 0.5, 2: 1.0}

# --- overrides -----------------------------------------------------------------------------------------------------------
OVERRIDE_SKU = C.SKU
OVERRIDE_WAREHOUSE_ID = C.WAREHOUSE_ID
OVERRIDE_START_DATE = C.START_DATE
OVERRIDE_END_DATE = C.END_DATE
OVERRIDE_MULTIPLIER = "multiplier"
OVERRIDE_ABSOLUTE = "absolute_value"
OVERRIDE_AUTHOR = "author"
OVERRIDE_REASON = C.REASON
OVERRIDE_COLUMNS = (
    OVERRIDE_SKU,
    OVERRIDE_WAREHOUSE_ID,
    OVERRIDE_START_DATE,
    OVERRIDE_END_DATE,
    OVERRIDE_MULTIPLIER,
    OVERRIDE_ABSOLUTE,
    OVERRIDE_AUTHOR,
    OVERRIDE_REASON,
)
UNADJUSTED_SUFFIX = "_unadjusted"
OVERRIDE_APPLIED = "override_applied"
OVERRIDE_AUTHOR_OUT = "override_author"
OVERRIDE_REASON_OUT = "override_reason"

#: Days of the max-demand window of the cap and of the long scale window.
CAP_WINDOW_DAYS = 365
SCALE_WINDOW_DAYS = 56
#: Negative-binomial dispersion bounds (near-Poisson .. very lumpy) and the value of SKUs without sales.
MIN_DISPERSION = 0.01
MAX_DISPERSION = 50.0
DEFAULT_DISPERSION = 1.0
#: Negative-binomial quantiles: exact pmf walk up to this many steps, for means up to this (scipy beyond).
NB_EXACT_STEPS = 400
NB_EXACT_MAX_MEAN = 60.0
#: Recent launches (observed for a week) needed to estimate the strength of the launch prior.
MIN_LAUNCHES_FOR_PRIOR = 10
#: Pseudo-days of the history's dispersion against a SKU's CV residuals.
DISPERSION_PRIOR_DAYS = 30.0
#: Bounds of a calibrated quantile level.
MIN_LEVEL = 0.01
MAX_LEVEL = 0.999
_NS_PER_DAY = 86_400 * 10**9
_RAMP_PRIOR_OBS = 50.0


def _to_day(value: DateLike) -> int:
    return int(pd.Timestamp(value).normalize().value // _NS_PER_DAY)


def _weekday(day: int) -> int:
    """Weekday (Monday = 0) of an epoch day (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def _timestamp(day: int) -> pd.Timestamp:
    return pd.Timestamp(int(day) * _NS_PER_DAY)


def quantile_column(q: float) -> str:
    """Output column of quantile level ``q`` (0.9 -> ``"p90"``, matching ``columns.P90``)."""
    return f"p{round(q * 100):d}"


# --- an extra statistical model: seasonal window average ---------------------------------------------------------------
def seasonal_window_average(y: np.ndarray, h: int, season: int = 7, windows: int = 4) -> np.ndarray:
    """Mean of the last ``windows`` values at the same position of the season, cycled over the horizon.

    Like ``statsforecast.models.SeasonalWindowAverage(season_length=season, window_size=windows)`` but, as
    the kernels of :mod:`demand_platform.models.statistical`, days before a series' first valid day do not
    count, later NaN days count as zero, positions without any valid day take the mean of the series' valid
    days (zero without any) and the output is non-negative.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        season: Season length in days.
        windows: Number of seasons averaged.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    y = np.asarray(y, dtype=np.float64)
    n_series, n_days = y.shape
    if n_days == 0:
        return np.zeros((n_series, h))
    observed = ~np.isnan(y)
    start = np.where(observed.any(axis=1), observed.argmax(axis=1), n_days)
    values = np.nan_to_num(y, nan=0.0)
    phase = np.arange(h) % season  # step i forecasts the season position of column n_days + i
    total = np.zeros((n_series, h))
    count = np.zeros((n_series, h))
    for m in range(1, windows + 1):
        column = n_days + phase - season * m
        ok = (column[None, :] >= start[:, None]) & (column[None, :] >= 0)
        total += np.where(ok, values[:, np.clip(column, 0, None)], 0.0)
        count += ok
    n_valid = n_days - start
    fallback = np.divide(values.sum(axis=1), n_valid, out=np.zeros(n_series), where=n_valid > 0)
    forecast = np.where(count > 0, total / np.maximum(count, 1), fallback[:, None])
    return np.maximum(forecast, 0.0)


@dataclass(frozen=True)
class SeasonalWindowAverage:
    """Seasonal window average (see :func:`seasonal_window_average`).

    Attributes:
        season: Season length in days.
        windows: Seasons averaged.
        name: Model name.
    """

    season: int = 7
    windows: int = 4
    name: str = "seasonal_window_average"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see :func:`seasonal_window_average`)."""
        return seasonal_window_average(y, h, self.season, self.windows)


#: Statistical models whose forecasts already follow the week; the weekday profile leaves them as they are.
WEEKLY_SEASONAL_MODELS = frozenset({SeasonalWindowAverage().name, SeasonalNaive().name})


#: The statistical models a :class:`TrainConfig` may name: ``STAT_MODELS``, the seasonal window average
#: and the combination.
AVAILABLE_STAT_MODELS: dict[str, StatForecaster] = {
    **STAT_MODELS,
    SeasonalWindowAverage().name: SeasonalWindowAverage(),
    StatCombination().name: StatCombination(),
}


# --- configuration ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_warehouse` (and of the forecasts of the trained model).

    Attributes:
        horizon: Last horizon (days after the origin).
        n_origins: Training origins of the LightGBM, ``train_date - origin_step * k`` for k = 1..n_origins.
        origin_step: Days between training origins. Not a multiple of 7, so the origins fall on every
            weekday (with a weekly step every origin would share the training date's weekday and the model
            could learn the weekday from the horizon, which breaks for origins on other weekdays). With
            ``n_origins`` it spans 380 days, so every holiday of the year has been a training target once:
            with 9 days (180 days back) a model trained on 2 December had seen Black Friday but no
            December and forecast the weeks before Christmas like Black Friday (4 demo warehouses, origins
            2-23 December, horizons 1-30, ``bench/bench_origin_span.py``: bias +47% to +66%, WMAPE
            0.96-1.09 against MA28's 0.72-0.77; with 19 days +10% to +16%, 0.69-0.78, below MA28 on 3 of
            4; CV WMAPE lower on all four; same number of origins, same cost).
        dense_origin_steps: Denser origin steps (none a multiple of 7) for warehouses with few LightGBM SKUs:
            :meth:`origin_grid` takes the smallest step whose origins over the same span, times the SKUs,
            stay within ``origin_budget``.
        origin_budget: Most SKU x origin feature rows the denser steps may build (a full-size warehouse,
            ~5,000 LightGBM SKUs x 20 origins, is at it, so it keeps ``origin_step``).
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
        stat_models: Candidate statistical models (names in ``AVAILABLE_STAT_MODELS``); the first is the
            default (SKUs without a backtest, and SKUs where no other model wins by ``selection_margin``).
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
            when the recent launches' levels are spread widely, see ``_prior_days``).
        min_calibration_rows: Residuals a segment x band needs for its own quantile offsets.
        tier_config: Tiering of the CV origins (and of the training date when no tiers are passed).
        train_on_all_routes: Train the LightGBM on every non-cold-start SKU instead of the global_ml ones.
        weekday_profile: Multiply the flat statistical forecasts (all but ``WEEKLY_SEASONAL_MODELS``) by the
            warehouse's pooled weekday index (:func:`pooled_weekday_index` of every SKU at the origin).
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
        unknown = [name for name in self.stat_models if name not in AVAILABLE_STAT_MODELS]
        if unknown or not self.stat_models:
            raise ValueError(
                f"unknown statistical models {unknown}; choose from {sorted(AVAILABLE_STAT_MODELS)}"
            )
        if not 0.0 <= self.selection_margin < 1.0:
            raise ValueError("selection_margin must be in [0, 1)")
        if self.selection_error not in ("rmse", "mae"):
            raise ValueError("selection_error must be 'rmse' or 'mae'")
        levels = list(self.quantiles)
        if not levels or levels != sorted(levels) or levels[0] <= 0 or levels[-1] >= 1:
            raise ValueError(f"quantiles {self.quantiles} must be ascending levels in (0, 1)")
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
        return SamplingConfig(zero_sample_rate=self.zero_sample_rate, max_rows=self.max_rows, seed=self.seed)

    def stat_forecasters(self) -> list[StatForecaster]:
        """The candidate statistical models."""
        return [AVAILABLE_STAT_MODELS[name] for name in self.stat_models]

    @property
    def cold_start_max_age(self) -> int:
        """Age in days (whole weeks) up to which a cold-start SKU is new and gets the launch profile."""
        return 7 * math.ceil(self.cold_max_age_days / 7)

    def origin_grid(self, n_skus: int) -> tuple[int, int]:
        """Training origins and their step for a LightGBM over ``n_skus`` SKUs: ``(n_origins, step)``.

        The span ``n_origins * origin_step`` stays (a year of holidays as targets); a warehouse with few
        SKUs gets its origins closer together, so the model sees more weeks of the year: the smallest of
        ``dense_origin_steps`` with ``(span // step) * n_skus <= origin_budget``, else ``origin_step``.
        Measured on M5 HOBBIES_2 (75 LightGBM SKUs, six origins d_1801..d_1941,
        ``bench/bench_m5_configs.py``): step 3 instead of 19 lowered the point WRMSSE 0.8165 -> 0.8109.
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


# --- cold start ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColdStartProfile:
    """Launch profiles of one warehouse: category level x launch ramp by age week.

    Attributes:
        categories: Categories with a level.
        category_level: De-ramped daily demand level of each category's launches (shrunk).
        global_level: De-ramped level of all launches (the level of unknown categories).
        ramp: Demand multiplier by age week since launch (index = age // 7; the last one beyond).
        n_launches: Launches the profile was estimated from (0 = fallback on mature SKUs, flat ramp).
        prior_days: Pseudo-days of the profile level against a SKU's own history.
    """

    categories: tuple[str, ...]
    category_level: np.ndarray
    global_level: float
    ramp: np.ndarray
    n_launches: int
    prior_days: float

    @property
    def max_age_days(self) -> int:
        """Age (days since launch) covered by the ramp; older SKUs follow their own history."""
        return 7 * len(self.ramp)

    def level_of(self, category: np.ndarray) -> np.ndarray:
        """Profile level of each SKU's category (the global level for unknown categories)."""
        index = pd.Index(self.categories).get_indexer(pd.Index(pd.Series(category, dtype=object).astype(str)))
        return np.where(index >= 0, self.category_level[np.clip(index, 0, None)], self.global_level)

    def ramp_at(self, age: np.ndarray) -> np.ndarray:
        """Ramp multiplier at each age in days (ages before launch use week 0)."""
        week = np.clip(np.asarray(age) // 7, 0, len(self.ramp) - 1).astype(np.int64)
        return self.ramp[week]

    def forecast(
        self, category: np.ndarray, launch_day: np.ndarray, history: np.ndarray, origin_day: int, horizon: int
    ) -> np.ndarray:
        """Cold-start forecasts: posterior level (profile prior + own days since launch) x ramp.

        Args:
            category: Category of each SKU.
            launch_day: Effective launch epoch day of each SKU.
            history: ``[n, L]`` demand of the last L days up to the origin (NaN where no row).
            origin_day: Epoch day of the origin.
            horizon: Last horizon.

        Returns:
            Forecasts ``[n, horizon]``.
        """
        n, n_days = history.shape
        prior = self.level_of(category)
        day = origin_day - n_days + 1 + np.arange(n_days)
        age = day[None, :] - launch_day[:, None]
        observed = ~np.isnan(history) & (age >= 0)
        own_sum = np.where(observed, history, 0.0).sum(axis=1)
        ramp_sum = np.where(observed, self.ramp_at(np.where(observed, age, 0)), 0.0).sum(axis=1)
        # The profile is a prior for young SKUs only: an SKU older than the ramp (cold start because it
        # rarely sells) follows its own history, so a long run of zeros forecasts ~zero.
        young = (origin_day - launch_day) < self.max_age_days
        prior_days = np.where(young, self.prior_days, 0.0)
        level = np.divide(
            own_sum + prior_days * prior,
            ramp_sum + prior_days,
            out=np.where(young, prior, 0.0),
            where=(ramp_sum + prior_days) > 0,
        )
        target_age = (origin_day - launch_day)[:, None] + np.arange(1, horizon + 1)[None, :]
        return np.maximum(level[:, None] * self.ramp_at(target_age), 0.0)


def _fit_cold_start(
    panel: SalesPanel,
    end_column: int,
    category: np.ndarray,
    launch_day: np.ndarray,
    config: TrainConfig,
) -> ColdStartProfile:
    """Launch profiles from the SKUs launched in the ``cold_lookback_days`` before panel column ``end_column``.

    Args:
        panel: Sales panel (only columns up to ``end_column`` are read).
        end_column: Column of the date the profiles describe.
        category: Category of each panel SKU.
        launch_day: Effective launch epoch day of each panel SKU.
        config: Settings.

    Returns:
        The profile.
    """
    end_day = panel.start_day + end_column
    n_weeks = math.ceil(config.cold_max_age_days / 7)
    history_start = panel.history_first_day if panel.history_first_day is not None else end_day
    recent = (
        (panel.first_day > history_start)
        & (launch_day <= end_day)
        & (launch_day >= end_day - config.cold_lookback_days)
    )
    rows = np.flatnonzero(recent)
    if len(rows) == 0:
        # No launch to learn from: a new SKU is an average SKU of its category, flat ramp.
        window = panel.quantity[:, max(0, end_column - 27) : end_column + 1]
        observed = (~np.isnan(window)).sum(axis=1)
        sku_mean = np.divide(
            np.nansum(window, axis=1), observed, out=np.zeros(len(window)), where=observed > 0
        )
        has = observed > 0
        frame = pd.DataFrame(
            {"category": pd.Series(category[has], dtype=object).astype(str), "m": sku_mean[has]}
        )
        levels = frame.groupby("category", sort=True)["m"].mean()
        return ColdStartProfile(
            categories=tuple(levels.index),
            category_level=levels.to_numpy(np.float64),
            global_level=float(sku_mean[has].mean()) if has.any() else 0.0,
            ramp=np.ones(n_weeks),
            n_launches=0,
            prior_days=config.cold_prior_days,
        )
    launch_column = (launch_day[rows] - panel.start_day).astype(np.int64)
    age = np.arange(n_weeks * 7)
    column = launch_column[:, None] + age[None, :]
    ok = (column >= 0) & (column <= end_column)
    values = np.full(column.shape, np.nan)
    sku_rows = np.broadcast_to(rows[:, None], column.shape)
    values[ok] = panel.quantity[sku_rows[ok], column[ok]]
    observed = ~np.isnan(values)
    filled = np.where(observed, values, 0.0)
    total, count = filled.sum(), observed.sum()
    overall = total / count if count else 0.0
    week_total = filled.reshape(len(rows), n_weeks, 7).sum(axis=(0, 2))
    week_count = observed.reshape(len(rows), n_weeks, 7).sum(axis=(0, 2))
    if overall > 0:
        ramp = (week_total + _RAMP_PRIOR_OBS * overall) / (week_count + _RAMP_PRIOR_OBS) / overall
    else:
        ramp = np.ones(n_weeks)
    ramp_of_cell = np.where(observed, ramp[age // 7][None, :], 0.0)
    sku_total = filled.sum(axis=1)
    sku_ramp = ramp_of_cell.sum(axis=1)
    global_level = sku_total.sum() / sku_ramp.sum() if sku_ramp.sum() > 0 else 0.0
    frame = pd.DataFrame(
        {"category": pd.Series(category[rows], dtype=object).astype(str), "y": sku_total, "r": sku_ramp}
    )
    grouped = frame.groupby("category", sort=True).agg(y=("y", "sum"), r=("r", "sum"), n=("y", "size"))
    level = np.divide(
        grouped["y"], grouped["r"], out=np.full(len(grouped), global_level), where=grouped["r"] > 0
    )
    shrunk = (grouped["n"] * level + config.cold_prior_skus * global_level) / (
        grouped["n"] + config.cold_prior_skus
    )
    return ColdStartProfile(
        categories=tuple(grouped.index),
        category_level=shrunk.to_numpy(np.float64),
        global_level=float(global_level),
        ramp=ramp,
        n_launches=len(rows),
        prior_days=_prior_days(sku_total, sku_ramp, float(global_level), config.cold_prior_days),
    )


def _prior_days(total: np.ndarray, ramp_days: np.ndarray, level: float, max_days: float) -> float:
    """Weight (in days) of the launch profile against a new SKU's own days: empirical-Bayes Gamma-Poisson.

    With launch levels ``lambda_i ~ Gamma(mean mu, variance s2)``, the posterior mean after ``n`` (ramp-
    weighted) days is ``(mu * b + sum y) / (b + n)`` with ``b = mu / s2``. ``s2`` is the spread of the
    launches' own levels net of their Poisson noise. Homogeneous launches give a strong prior (capped at
    ``max_days``); heterogeneous ones (Online Retail's wholesale lines) a weak one, so that weeks of zeros
    since launch bring the forecast down instead of keeping the category's average launch level.

    Args:
        total: Units sold by each recent launch over its observed ages.
        ramp_days: Ramp-weighted observed days of each launch.
        level: The launches' pooled level ``mu``.
        max_days: Upper bound (``TrainConfig.cold_prior_days``); also the value with fewer than
            ``MIN_LAUNCHES_FOR_PRIOR`` launches observed for a week.
    """
    seen = ramp_days >= 7.0
    if seen.sum() < MIN_LAUNCHES_FOR_PRIOR or level <= 0:
        return max_days
    own = total[seen] / ramp_days[seen]
    between = float(np.var(own)) - level * float(np.mean(1.0 / ramp_days[seen]))
    if between <= 0:
        return max_days
    return float(min(max_days, level / between))


# --- the baseline fallback ---------------------------------------------------------------------------------------------------
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


# --- the trained model -------------------------------------------------------------------------------------------------------
@dataclass
class WarehouseModel:
    """Everything :func:`forecast_warehouse` needs for one warehouse (picklable).

    Attributes:
        warehouse_id: The warehouse.
        train_date: Training date (no data after it was read).
        config: The training settings.
        lgbm: Global LightGBM band models (None when there was nothing to train on).
        stat_choice: Statistical model name per SKU (index = SKU), chosen by backtest at ``train_date``.
        ensemble_weights: LightGBM weights per ensembled tier and horizon band (``ENSEMBLE_COLUMNS``).
        calibration: Calibrated quantile levels per segment x band x level (``CALIBRATION_COLUMNS``).
        cold_start: Launch profiles.
        validation_metrics: CV metrics per segment and model (see :func:`train_warehouse`).
        cv_origin_dates: The CV origins.
        dispersion: Negative-binomial dispersion per SKU (index = SKU) from its CV residuals, shrunk
            towards the dispersion of its history; SKUs not in it use their history's.
        baseline: The best baseline of the CV, for ``forecast_warehouse(..., baseline=True)``.
    """

    warehouse_id: object
    train_date: pd.Timestamp
    config: TrainConfig
    lgbm: GlobalLGBM | None
    stat_choice: pd.Series
    ensemble_weights: pd.DataFrame
    calibration: pd.DataFrame
    cold_start: ColdStartProfile
    validation_metrics: pd.DataFrame
    cv_origin_dates: list[pd.Timestamp]
    dispersion: pd.Series = field(default_factory=lambda: pd.Series(dtype=np.float64))
    baseline: BaselineForecaster | None = None

    def feature_importance(self) -> pd.DataFrame:
        """Gain importance of the LightGBM band models (empty without LightGBM)."""
        if self.lgbm is None:
            return GlobalLGBM().feature_importance()
        return self.lgbm.feature_importance()


# --- per-origin working state --------------------------------------------------------------------------------------------------
@dataclass
class _Origin:
    """SKUs to forecast at one origin, aligned arrays."""

    day: int
    skus: np.ndarray
    tier: np.ndarray
    route: np.ndarray
    codes: np.ndarray  # index into panel.skus, -1 when the SKU has no history
    history: np.ndarray  # [n, history_days] demand up to the origin
    category: np.ndarray
    launch_day: np.ndarray

    @property
    def segment(self) -> np.ndarray:
        """Calibration segment index (0..2 = tiers 1..3, 3 = cold start)."""
        tier_index = np.clip(self.tier.astype(np.int64), 1, len(SEGMENT_TIERS)) - 1
        return np.where(self.route == ROUTE_COLD_START, len(SEGMENT_TIERS), tier_index)

    @property
    def is_ml(self) -> np.ndarray:
        """SKUs routed to the global model."""
        return self.route == ROUTE_GLOBAL_ML


@dataclass
class _Components:
    """Component forecasts ``[n, H]`` at one origin."""

    lgbm: np.ndarray  # NaN where not predicted
    stat: np.ndarray
    stat_name: np.ndarray
    cold: np.ndarray


def _warehouse_history(history: pd.DataFrame, warehouse_id: object, end_day: int) -> pd.DataFrame:
    """Rows of the warehouse dated on or before ``end_day`` (nothing later is ever read)."""
    keep = pd.to_datetime(history[C.DATE]) <= _timestamp(end_day)
    if C.WAREHOUSE_ID in history.columns:
        keep &= history[C.WAREHOUSE_ID] == warehouse_id
    return history.loc[keep]


def _catalog(products: pd.DataFrame) -> pd.DataFrame:
    catalog = products.drop_duplicates(C.SKU, keep="last").set_index(C.SKU)
    launch = pd.to_datetime(catalog[C.LAUNCH_DATE]).to_numpy().astype("datetime64[D]")
    return pd.DataFrame(
        {
            C.CATEGORY: catalog[C.CATEGORY].astype(object).to_numpy(),
            "launch": np.where(np.isnat(launch), np.nan, launch.astype(np.int64).astype(np.float64)),
        },
        index=catalog.index,
    )


def _panel_attributes(panel: SalesPanel, catalog: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Category and effective launch day of each panel SKU.

    The effective launch is the later of the launch date and the SKU's first row (as in tiering), except
    for SKUs whose first row is the history's first day (left-censored: they may have sold long before),
    which take the earlier of the two.
    """
    info = catalog.reindex(panel.skus)
    category = info[C.CATEGORY].to_numpy(dtype=object)
    launch_date = info["launch"].to_numpy(np.float64)
    first_row = panel.first_day.astype(np.float64)
    history_start = panel.history_first_day if panel.history_first_day is not None else np.inf
    censored = first_row <= history_start
    launch = np.where(censored, np.fmin(launch_date, first_row), np.fmax(launch_date, first_row))
    return category, launch


def _window(panel: SalesPanel, codes: np.ndarray, end_column: int, n_days: int) -> np.ndarray:
    """``[len(codes), n_days]`` panel demand ending at ``end_column`` (NaN before the panel / for code -1)."""
    columns = end_column - n_days + 1 + np.arange(n_days)
    out = np.full((len(codes), n_days), np.nan)
    ok_columns = columns >= 0
    ok_rows = codes >= 0
    if ok_rows.any() and ok_columns.any():
        out[np.ix_(ok_rows, ok_columns)] = panel.quantity[np.ix_(codes[ok_rows], columns[ok_columns])]
    return out


def _tiers_of(tiers: pd.DataFrame, warehouse_id: object) -> pd.DataFrame:
    if C.WAREHOUSE_ID in tiers.columns:
        tiers = tiers.loc[tiers[C.WAREHOUSE_ID] == warehouse_id]
    return tiers.drop_duplicates(C.SKU, keep="last").sort_values(C.SKU, kind="stable")


def _origin_state(
    panel: SalesPanel,
    tiers: pd.DataFrame,
    origin_day: int,
    category: np.ndarray,
    launch: np.ndarray,
    n_days: int,
    new_max_age: int,
) -> _Origin:
    """The SKUs of ``tiers`` at the origin with their history; cold start is kept for new SKUs only.

    Tiering routes to cold start both new SKUs and old ones with too few selling days. Those older than
    ``new_max_age`` days are forecast by the statistical models instead: a launch profile says nothing
    about them, and their flat long-run mean kept forecasting the lumps of SKUs that sold four wholesale
    orders in a year (Online Retail EU).
    """
    skus = tiers[C.SKU].to_numpy(dtype=object)
    codes = pd.Index(panel.skus).get_indexer(pd.Index(skus))
    route = tiers[ROUTE].to_numpy(dtype=object).copy()
    route[codes < 0] = ROUTE_COLD_START
    found = codes >= 0
    sku_category = np.full(len(skus), None, dtype=object)
    sku_category[found] = category[codes[found]]
    sku_launch = np.full(len(skus), float(origin_day))
    sku_launch[found] = launch[codes[found]]
    old = (route == ROUTE_COLD_START) & (origin_day - sku_launch >= new_max_age) & found
    route[old] = ROUTE_STATISTICAL
    return _Origin(
        day=origin_day,
        skus=skus,
        tier=tiers[C.TIER].to_numpy(np.int64),
        route=route,
        codes=codes,
        history=_window(panel, codes, origin_day - panel.start_day, n_days),
        category=sku_category,
        launch_day=sku_launch,
    )


def _window_stats(history: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    window = history[:, -days:]
    observed = ~np.isnan(window)
    count = observed.sum(axis=1)
    filled = np.where(observed, window, 0.0)
    mean = np.divide(filled.sum(axis=1), count, out=np.zeros(len(window)), where=count > 0)
    var = np.divide(
        np.where(observed, (window - mean[:, None]) ** 2, 0.0).sum(axis=1),
        count,
        out=np.zeros(len(window)),
        where=count > 0,
    )
    return mean, var


def _dispersion(history: np.ndarray) -> np.ndarray:
    """Per-SKU negative-binomial dispersion ``alpha`` (variance = mean + alpha * mean^2) of daily demand.

    From the last 56 days (365 when the SKU sold nothing in 56): ``(var - mean) / mean^2`` clipped to
    ``[MIN_DISPERSION, MAX_DISPERSION]``; SKUs without a sale in the year get ``DEFAULT_DISPERSION``.
    """
    mean_short, var_short = _window_stats(history, SCALE_WINDOW_DAYS)
    mean_long, var_long = _window_stats(history, CAP_WINDOW_DAYS)
    short = mean_short > 0
    mean = np.where(short, mean_short, mean_long)
    var = np.where(short, var_short, var_long)
    alpha = np.divide(var - mean, mean**2, out=np.full(len(mean), DEFAULT_DISPERSION), where=mean > 0)
    return np.clip(alpha, MIN_DISPERSION, MAX_DISPERSION)


def _residual_dispersion(
    skus: np.ndarray, actual: np.ndarray, point: np.ndarray, prior: np.ndarray, prior_days: float
) -> pd.Series:
    """Per-SKU dispersion from forecast errors: ``sum((a - f)^2 - f) / sum(f^2)`` over the SKU's scored CV
    days (all origins), shrunk towards ``prior`` (the history's dispersion, one per row) with
    ``prior_days`` pseudo-days. This measures the model's own error, not the history's weekly swings.

    Args:
        skus: SKU of each row of the ``[N, H]`` arrays (a SKU may have rows at several origins).
        actual: Actuals (NaN = not scored).
        point: Point forecasts.
        prior: Dispersion of each row's SKU from its history.
        prior_days: Weight of the prior in days.
    """
    ok = ~np.isnan(actual) & ~np.isnan(point)
    f = np.where(ok, point, 0.0)
    err = np.where(ok, (np.nan_to_num(actual) - f) ** 2 - f, 0.0)
    frame = pd.DataFrame(
        {
            C.SKU: skus,
            "err": err.sum(axis=1),
            "f2": (f**2).sum(axis=1),
            "n": ok.sum(axis=1),
            "prior": prior * ok.sum(axis=1),
        }
    )
    sums = frame.groupby(C.SKU, sort=True)[["err", "f2", "n", "prior"]].sum()
    n = sums["n"].to_numpy(np.float64)
    prior_mean = np.divide(sums["prior"].to_numpy(), n, out=np.full(len(n), DEFAULT_DISPERSION), where=n > 0)
    f2 = sums["f2"].to_numpy()
    own = np.divide(sums["err"].to_numpy(), f2, out=prior_mean.copy(), where=f2 > 0)
    own = np.clip(own, MIN_DISPERSION, MAX_DISPERSION)
    # Shrink in log space: dispersions span four orders of magnitude.
    blended = np.exp((n * np.log(own) + prior_days * np.log(prior_mean)) / (n + prior_days))
    return pd.Series(np.clip(blended, MIN_DISPERSION, MAX_DISPERSION), index=sums.index, name="dispersion")


def _dispersion_of(model_dispersion: pd.Series, skus: np.ndarray, history: np.ndarray) -> np.ndarray:
    """The model's per-SKU dispersion, the history's for SKUs it does not know."""
    known = model_dispersion.reindex(pd.Index(skus)).to_numpy(np.float64)
    return np.where(np.isnan(known), _dispersion(history), known)


def _nb_params(mean: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy ``nbinom`` (n, p) of a negative binomial with this mean and dispersion."""
    n = 1.0 / alpha
    return n, n / (n + np.maximum(mean, 0.0))


def _pit(actual: np.ndarray, mean: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and mid PIT ``F(a - 1)``, ``(F(a - 1) + F(a)) / 2`` of the actuals under the negative binomial.

    The mid-PIT is uniform when the distribution is right. Non-integer actuals are rounded up (a quantile
    forecast is an integer count); negatives count as 0.
    """
    a = np.ceil(np.maximum(actual, 0.0))
    n, p = _nb_params(mean, alpha)
    below = np.where(a > 0, nbinom.cdf(a - 1.0, n, p), 0.0)
    return below, 0.5 * (below + nbinom.cdf(a, n, p))


def _cap(state: _Origin, cold: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Per-SKU cap of every output."""
    window = state.history[:, -CAP_WINDOW_DAYS:]
    has = (~np.isnan(window)).any(axis=1)
    peak = np.where(has, np.nanmax(np.where(has[:, None], window, 0.0), axis=1), 0.0)
    cap = config.cap_multiple * peak
    young = (state.day - state.launch_day) < config.cold_start_max_age
    is_cold = (state.route == ROUTE_COLD_START) & young
    cold_cap = np.maximum(config.cap_multiple * cold.max(axis=1, initial=0.0), config.cold_start_floor)
    return np.where(is_cold, np.maximum(cap, cold_cap), cap)


def _band_of_horizon(config: TrainConfig) -> np.ndarray:
    """Band index of each horizon 1..H."""
    out = np.zeros(config.horizon, dtype=np.int64)
    for index, (first, last) in enumerate(config.model_bands):
        out[first - 1 : last] = index
    return out


def _needs_stat(state: _Origin, lgbm: np.ndarray) -> np.ndarray:
    """SKUs that use a statistical forecast: every SKU but the cold-start ones and the LightGBM SKUs of
    tiers that are not ensembled."""
    has_lgbm = state.is_ml & ~np.isnan(lgbm).any(axis=1)
    ensembled = np.isin(state.tier, ENSEMBLE_TIERS)
    return ~((has_lgbm & ~ensembled) | (state.route == ROUTE_COLD_START))


def _stat_components(
    state: _Origin,
    rows: np.ndarray,
    choice: np.ndarray,
    models: Sequence[StatForecaster],
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistical forecasts ``[n, H]`` of ``rows`` with their chosen models (NaN elsewhere) and model names."""
    forecast = np.full((len(state.skus), config.horizon), np.nan)
    names = np.full(len(state.skus), models[0].name, dtype=object)
    if len(rows):
        history = state.history[rows, -config.stat_history_days :]
        forecast[rows] = forecast_selected(history, config.horizon, models, choice)
        names[rows] = np.asarray([model.name for model in models], dtype=object)[choice]
        if config.weekday_profile:
            flat = rows[~np.isin(names[rows], list(WEEKLY_SEASONAL_MODELS))]
            weekday = _weekday(state.day)
            index = pooled_weekday_index(state.history, weekday)
            forecast[flat] *= weekday_factors(index, weekday, config.horizon)[None, :]
    return forecast, names


def _cold_components(profile: ColdStartProfile, state: _Origin, horizon: int) -> np.ndarray:
    """Launch-profile forecasts ``[n, H]`` of the cold-start SKUs (0 elsewhere)."""
    out = np.zeros((len(state.skus), horizon))
    cold = state.route == ROUTE_COLD_START
    if cold.any():
        out[cold] = profile.forecast(
            state.category[cold], state.launch_day[cold], state.history[cold], state.day, horizon
        )
    return out


def _combine(
    state: _Origin, components: _Components, weights: np.ndarray, band_of_h: np.ndarray, cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tiered point forecast ``[n, H]`` (capped, non-negative) and the model name of each SKU.

    ``weights`` is the ``[tier, band]`` LightGBM weight (:func:`_weight_matrix`); a LightGBM SKU of an
    ensembled tier gets ``w * lgbm + (1 - w) * stat`` (named ensemble unless every weight of its tier is 1).
    """
    has_lgbm = state.is_ml & ~np.isnan(components.lgbm).any(axis=1)
    tier_row = np.clip(state.tier.astype(np.int64), 0, len(weights) - 1)
    w = np.where(has_lgbm[:, None], weights[tier_row][:, band_of_h], 1.0)
    lgbm = np.nan_to_num(components.lgbm, nan=0.0)
    stat = np.nan_to_num(components.stat, nan=0.0)
    blended = np.where(w < 1.0, w * lgbm + (1.0 - w) * stat, lgbm)
    point = np.where(has_lgbm[:, None], blended, components.stat)
    is_cold = state.route == ROUTE_COLD_START
    point = np.where(is_cold[:, None], components.cold, point)
    mixed = (w < 1.0).any(axis=1) | (has_lgbm & (state.tier == 1))
    names = np.where(has_lgbm, np.where(mixed, MODEL_ENSEMBLE, MODEL_LGBM), components.stat_name)
    names = np.where(is_cold, MODEL_COLD_START, names).astype(object)
    return np.clip(point, 0.0, cap[:, None]), names


def _nb_ppf(levels: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Negative-binomial quantiles ``[m, n_q]``: the smallest count k with ``F(k) >= level`` (scipy's ppf).

    Vectorised by walking the pmf recursion ``P(k + 1) = P(k) (k + n) / (k + 1) (1 - p)`` for all rows at
    once, dropping each row as soon as all its levels are reached: most demand is a few units a day, so
    this takes a few dozen steps where scipy's ppf inverts the incomplete beta per element (~3 us each,
    seconds per warehouse). Rows with a large mean, or still open after ``NB_EXACT_STEPS`` steps, go to
    scipy.

    Args:
        levels: Quantile levels ``[m, n_q]``.
        n: Negative-binomial size ``[m]``.
        p: Success probability ``[m]`` (1 = a point mass at 0).
    """
    m = len(n)
    out = np.zeros(levels.shape)
    large = (n * (1.0 - p) / np.maximum(p, 1e-300)) > NB_EXACT_MAX_MEAN
    idx = np.flatnonzero(~large)
    lv, nn, q1 = levels[idx], n[idx], 1.0 - p[idx]
    pmf = np.exp(nn * np.log(np.maximum(p[idx], 1e-300)))
    cdf = pmf.copy()
    res = np.full(lv.shape, -1.0)
    for k in range(NB_EXACT_STEPS):
        res = np.where((res < 0) & (cdf[:, None] >= lv), float(k), res)
        done = (res >= 0).all(axis=1)
        if done.any():
            out[idx[done]] = res[done]
            keep = ~done
            idx, lv, nn, q1, pmf, cdf, res = (
                idx[keep],
                lv[keep],
                nn[keep],
                q1[keep],
                pmf[keep],
                cdf[keep],
                res[keep],
            )
        if len(idx) == 0:
            break
        pmf = pmf * (k + nn) / (k + 1.0) * q1
        cdf = cdf + pmf
    rest = np.union1d(np.flatnonzero(large), idx) if m else idx
    if len(rest):
        out[rest] = nbinom.ppf(levels[rest], n[rest, None], p[rest, None])
    return out


def _quantiles(
    point: np.ndarray,
    alpha: np.ndarray,
    segment: np.ndarray,
    levels: np.ndarray,
    band_of_h: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Quantile forecasts ``[n_q, n, H]``: negative-binomial quantiles at the calibrated levels, capped.

    Each SKU x horizon has a negative binomial with mean ``point`` and the SKU's dispersion ``alpha``, so
    a quantile reflects the SKU's own chance of a zero day (a steady seller's p50 is near its mean, a
    sporadic one's is 0). The level is ``levels[segment, band, q]`` (the nominal level recalibrated on
    the CV); the result is clipped to ``[0, cap]`` and made monotone in q.
    """
    n, p = _nb_params(point, np.broadcast_to(alpha[:, None], point.shape))
    q_levels = levels[segment][:, band_of_h, :]  # [n, H, n_q]
    flat = _nb_ppf(q_levels.reshape(-1, q_levels.shape[2]), n.reshape(-1), p.reshape(-1))
    values = np.moveaxis(flat.reshape(q_levels.shape), 2, 0)
    values = np.clip(np.nan_to_num(values, nan=0.0, posinf=0.0), 0.0, cap[None, :, None])
    return np.maximum.accumulate(values, axis=0)


def _level_matrix(calibration: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """Calibration table -> ``[n_segments, n_bands, n_q]`` calibrated levels (nominal where missing)."""
    shape = (len(CALIBRATION_SEGMENTS), len(config.model_bands), len(config.quantiles))
    out = np.broadcast_to(np.asarray(config.quantiles, dtype=np.float64), shape).copy()
    if calibration.empty:
        return out
    segment = pd.Index(CALIBRATION_SEGMENTS).get_indexer(pd.Index(calibration[SEGMENT]))
    band = pd.Index([band_label(b) for b in config.model_bands]).get_indexer(pd.Index(calibration[BAND]))
    level = pd.Index(list(config.quantiles)).get_indexer(pd.Index(calibration[QUANTILE]))
    ok = (segment >= 0) & (band >= 0) & (level >= 0)
    out[segment[ok], band[ok], level[ok]] = calibration[CALIBRATED_LEVEL].to_numpy(np.float64)[ok]
    return out


def _solve_levels(lower: np.ndarray, mid: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Calibrated levels ``q'`` of the nominal ``quantiles`` from the PIT values of the validation actuals.

    ``lower = F(a - 1)`` and ``mid = (F(a - 1) + F(a)) / 2``. The quantile at level ``q'`` covers an actual
    iff ``lower < q'``. Levels above the median (the stocking quantiles) are set so that the pooled
    coverage is as close to ``q`` as the discrete counts allow (among the levels giving that coverage, the
    one nearest the mid-PIT solution). The median and lower levels are the ``q`` quantile of the mid-PIT
    values: matching pooled coverage there would let the zero days of the sporadic SKUs (always covered)
    drag the steady sellers' p50 down to 0.
    """
    nominal = np.asarray(quantiles, dtype=np.float64)
    if len(mid) == 0:
        return nominal.copy()
    by_pit = np.quantile(mid, nominal)
    values, counts = np.unique(lower, return_counts=True)
    covered = np.cumsum(counts) / len(lower)  # coverage of any level in (values[j], values[j + 1]]
    upper_end = np.append(values[1:], 1.0)
    out = by_pit.copy()
    for index, q in enumerate(nominal):
        if q <= 0.5:
            continue
        j = int(np.argmin(np.abs(covered - q)))
        out[index] = np.clip(by_pit[index], np.nextafter(values[j], 1.0), upper_end[j])
    return np.clip(out, MIN_LEVEL, MAX_LEVEL)


def _calibrate(
    actual: np.ndarray,
    point: np.ndarray,
    alpha: np.ndarray,
    segment: np.ndarray,
    config: TrainConfig,
) -> pd.DataFrame:
    """Per segment x band calibrated levels from the pooled CV forecasts ``[N, H]`` (segments with few rows
    use all rows of the band)."""
    band_of_h = _band_of_horizon(config)
    usable = ~np.isnan(actual)
    lower = np.full(actual.shape, np.nan)
    mid = np.full(actual.shape, np.nan)
    alpha_full = np.broadcast_to(alpha[:, None], actual.shape)
    lower[usable], mid[usable] = _pit(actual[usable], point[usable], alpha_full[usable])

    def levels_of(mask: np.ndarray) -> np.ndarray:
        return _solve_levels(lower[mask], mid[mask], config.quantiles)

    records = []
    for band_index, band in enumerate(config.model_bands):
        in_band = usable & (band_of_h[None, :] == band_index)
        pooled = levels_of(in_band)
        for segment_index, segment_name in enumerate(CALIBRATION_SEGMENTS):
            mask = in_band & (segment[:, None] == segment_index)
            n_rows = int(mask.sum())
            if n_rows >= config.min_calibration_rows:
                levels, source = levels_of(mask), segment_name
            else:
                levels, source = pooled, SEGMENT_ALL
            for level, calibrated in zip(config.quantiles, levels, strict=True):
                records.append(
                    (
                        segment_name,
                        band_label(band),
                        band[0],
                        band[1],
                        level,
                        float(calibrated),
                        n_rows,
                        source,
                    )
                )
    return pd.DataFrame.from_records(records, columns=list(CALIBRATION_COLUMNS))


def _ensemble_weights(
    actual: np.ndarray, lgbm: np.ndarray, stat: np.ndarray, tier: np.ndarray, config: TrainConfig
) -> pd.DataFrame:
    """LightGBM weight of the LightGBM + statistical blend per ensembled tier and horizon band.

    The weight minimising the pooled validation MSE of ``w * lgbm + (1 - w) * stat`` over the tier's
    SKU-days of all CV origins, ``w = sum((a - s)(l - s)) / sum((l - s)^2)`` clipped to [0, 1]: 1 keeps the
    LightGBM alone, 0 replaces it by the statistical model where the CV shows it is worse. Without scored
    days the weight is ``ENSEMBLE_PRIOR_WEIGHT`` of the tier.

    Args:
        actual: CV actuals ``[N, H]``.
        lgbm: LightGBM forecasts (NaN where the SKU was not a LightGBM SKU).
        stat: Statistical forecasts.
        tier: Tier of each row (tier of the SKU at its CV origin).
        config: Settings (bands).
    """
    band_of_h = _band_of_horizon(config)
    records = []
    for tier_value in ENSEMBLE_TIERS:
        for band_index, band in enumerate(config.model_bands):
            mask = (tier == tier_value)[:, None] & (band_of_h[None, :] == band_index)
            mask &= ~np.isnan(actual) & ~np.isnan(lgbm) & ~np.isnan(stat)
            n = int(mask.sum())
            weight = ENSEMBLE_PRIOR_WEIGHT[tier_value]
            mse_l = mse_s = float("nan")
            if n:
                a, l_, s_ = actual[mask], lgbm[mask], stat[mask]
                mse_l = float(np.mean((l_ - a) ** 2))
                mse_s = float(np.mean((s_ - a) ** 2))
                spread = float(np.sum((l_ - s_) ** 2))
                if spread > 0:
                    weight = float(np.clip(np.sum((a - s_) * (l_ - s_)) / spread, 0.0, 1.0))
            records.append(
                (tier_value, band_label(band), band[0], band[1], mse_l, mse_s, weight, 1.0 - weight, n)
            )
    return pd.DataFrame.from_records(records, columns=list(ENSEMBLE_COLUMNS))


def _weight_matrix(table: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """Weights table -> ``[max ensembled tier + 1, n_bands]`` LightGBM weights (1 = LightGBM alone)."""
    out = np.ones((max(ENSEMBLE_TIERS) + 1, len(config.model_bands)))
    labels = pd.Index([band_label(b) for b in config.model_bands])
    for row in table.itertuples(index=False):
        band = labels.get_indexer(pd.Index([getattr(row, BAND)]))[0]
        tier_value = int(getattr(row, C.TIER))
        if band >= 0 and 0 <= tier_value < len(out):
            out[tier_value, band] = float(getattr(row, WEIGHT_LGBM))
    return out


def _segment_masks(segment: np.ndarray) -> dict[str, np.ndarray]:
    masks = {name: segment == index for index, name in enumerate(CALIBRATION_SEGMENTS)}
    masks[SEGMENT_ALL] = np.ones(len(segment), dtype=bool)
    return masks


def _metrics_table(
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    segment: np.ndarray,
    quantiles: np.ndarray | None,
    levels: Sequence[float],
) -> pd.DataFrame:
    """WMAPE, MAE, RMSE, bias, n_obs (and quantile coverage of the tiered forecast) per segment and model."""
    coverage_columns = [COVERAGE_PREFIX + quantile_column(q) for q in levels]
    records = []
    for segment_name, rows in _segment_masks(segment).items():
        if not rows.any():
            continue
        a = actual[rows]
        for model_name, forecast in forecasts.items():
            f = forecast[rows]
            valid = ~np.isnan(a) & ~np.isnan(f)
            record: dict[str, object] = {
                SEGMENT: segment_name,
                C.MODEL: model_name,
                WMAPE: wmape(a, f),
                MAE: mae(a, f),
                RMSE: rmse(a, f),
                BIAS: bias(a, f),
                N_OBS: int(valid.sum()),
            }
            for column, level_index in zip(coverage_columns, range(len(levels)), strict=True):
                if model_name == MODEL_TIERED and quantiles is not None:
                    q = quantiles[level_index][rows]
                    ok = ~np.isnan(a)
                    record[column] = float((a[ok] <= q[ok]).mean()) if ok.any() else float("nan")
                else:
                    record[column] = float("nan")
            records.append(record)
    columns = [SEGMENT, C.MODEL, WMAPE, MAE, RMSE, BIAS, N_OBS, *coverage_columns]
    return pd.DataFrame.from_records(records, columns=columns)


def _choose_stat(
    state: _Origin, rows: np.ndarray, models: Sequence[StatForecaster], config: TrainConfig
) -> np.ndarray:
    """Statistical model index of each of ``rows`` by backtest on the history up to the origin.

    A SKU keeps the default (first) model unless another one's backtest error is lower by at least
    ``config.selection_margin``: three windows of one SKU are noisy, and a free choice mostly fits the
    noise (M5 HOBBIES_2, six origins: WRMSSE 0.824 free, 0.814 with a 10-40% margin).
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


#: Validation metric of the promotion gate and of the choice of the fallback baseline.
GATE_METRIC = RMSE


def gate_scores(validation_metrics: pd.DataFrame) -> tuple[float, float]:
    """The promotion gate's scores: the tiered model's and seasonal naive's ``GATE_METRIC`` over all SKUs.

    The gate compares RMSE, the error the point forecast (a mean) minimises, as the ensemble weights and
    the statistical selection do. It compared WMAPE until this was found on M5 HOBBIES_2 (84% zero days,
    ``bench/bench_m5_configs.py``): WMAPE rewards forecasts near the median, 0 on most of those days, so
    at origin d_1857 seasonal naive's WMAPE beat the tiered model's, the model was refused, and the
    warehouse was served a baseline scoring WRMSSE 1.165 where the model scored 0.841 (SBA: 0.836).

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


def _fit_baseline(
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
    dispersion = _residual_dispersion(skus, actual, point, prior, DISPERSION_PRIOR_DAYS)
    alpha = dispersion.reindex(pd.Index(skus)).to_numpy(np.float64)
    return BaselineForecaster(
        name=name,
        dispersion=dispersion,
        calibration=_calibrate(actual, point, alpha, segment, config),
        validation_wmape=float(wmape(actual, point)),
    )


def _lgbm_at(
    lgbm: GlobalLGBM | None,
    features: pd.DataFrame,
    keys: FeatureKeys,
    panel: SalesPanel,
    lookup: TargetDayLookup,
    state: _Origin,
    horizon: int,
) -> np.ndarray:
    """LightGBM forecasts ``[n, H]`` of the origin's global_ml SKUs (NaN for the others)."""
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


def _ml_history(history: pd.DataFrame, skus: np.ndarray) -> pd.DataFrame:
    return history.loc[history[C.SKU].isin(skus)]


# --- training -----------------------------------------------------------------------------------------------------------------
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
    train_day = _to_day(train_date)
    horizon = config.horizon
    history = _warehouse_history(history, warehouse_id, train_day)
    cv_days = [train_day - config.effective_cv_step * k for k in range(config.cv_origins, 0, -1)]
    # origin_grid spans at most n_origins * origin_step days, so this reaches every feature day's history.
    first_day = train_day - config.training_history_days
    panel = build_sales_panel(
        history,
        end=_timestamp(train_day),
        lookback_days=0,
        warehouse_id=warehouse_id,
        start=_timestamp(first_day),
    )
    catalog = _catalog(products)
    category, launch = _panel_attributes(panel, catalog)
    models = config.stat_forecasters()
    band_of_h = _band_of_horizon(config)

    def tiers_at(day: int) -> pd.DataFrame:
        # From the training panel cut at the day instead of scattering 745 days of rows into a new panel
        # per CV origin: the same tiers as assign_tiers for raw_sales' one row per SKU and day (a test
        # checks it; duplicate rows before the panel's start would count as two selling days).
        cut = panel.until(day)
        if cut.n_days < config.tier_config.panel_days:
            return _tiers_of(
                assign_tiers(history, products, _timestamp(day), config.tier_config), warehouse_id
            )
        return _tiers_of(tiers_from_panel(cut, products, warehouse_id, config.tier_config), warehouse_id)

    final_tiers = _tiers_of(tiers if tiers is not None else tiers_at(train_day), warehouse_id)
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
            _ml_history(history, ml_union),
            products,
            warehouses,
            calendar,
            campaigns,
            weather,
            [_timestamp(day) for day in feature_days],
            warehouse_id,
            horizon=horizon,
        )
        if not features.empty:
            lookup = TargetDayLookup.build(
                calendar,
                campaigns,
                warehouses,
                warehouse_id,
                [_timestamp(d) for d in feature_days],
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
            _timestamp(train_day),
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
            training_set, _timestamp(cutoff), row_mask=pd.Index(skus).get_indexer(pd.Index(feature_skus)) >= 0
        )
        return model if model.is_fitted else None

    # --- expanding-window CV -------------------------------------------------------------------------------------------------
    cv: list[tuple[_Origin, _Components, np.ndarray, np.ndarray]] = []
    for day, frame, ml_skus in zip(cv_days, cv_tiers, ml_sets[:-1], strict=True):
        state = _origin_state(
            panel, frame, day, category, launch, config.history_days, config.cold_start_max_age
        )
        lgbm = fit_lgbm(day, ml_skus)
        lgbm_fc = (
            _lgbm_at(lgbm, features, keys, panel, lookup, state, horizon)
            if keys is not None and lookup is not None
            else np.full((len(state.skus), horizon), np.nan)
        )
        stat_rows = np.flatnonzero(_needs_stat(state, lgbm_fc))
        choice = _choose_stat(state, stat_rows, models, config)
        stat_fc, stat_name = _stat_components(state, stat_rows, choice, models, config)
        profile = _fit_cold_start(panel, day - panel.start_day, category, launch, config)
        cold_fc = _cold_components(profile, state, horizon)
        actual = _window(panel, state.codes, day - panel.start_day + horizon, horizon)
        cv.append(
            (state, _Components(lgbm_fc, stat_fc, stat_name, cold_fc), actual, _cap(state, cold_fc, config))
        )

    actual_all = np.concatenate([item[2] for item in cv])
    lgbm_all = np.concatenate([item[1].lgbm for item in cv])
    stat_all = np.concatenate([item[1].stat for item in cv])
    tier_all = np.concatenate([np.where(item[0].is_ml, item[0].tier, 0) for item in cv])
    weights_table = _ensemble_weights(actual_all, lgbm_all, stat_all, tier_all, config)
    weights = _weight_matrix(weights_table, config)

    points, alphas, caps, segments, histories, cv_skus = [], [], [], [], [], []
    for state, components, _, cap in cv:
        point, _ = _combine(state, components, weights, band_of_h, cap)
        points.append(point)
        alphas.append(_dispersion(state.history))
        cv_skus.append(state.skus)
        caps.append(cap)
        segments.append(state.segment)
        histories.append(state.history)
    point_all = np.concatenate(points)
    cap_all = np.concatenate(caps)
    segment_all = np.concatenate(segments)
    sku_all = np.concatenate(cv_skus)
    dispersion = _residual_dispersion(
        sku_all, actual_all, point_all, np.concatenate(alphas), DISPERSION_PRIOR_DAYS
    )
    alpha_all = dispersion.reindex(pd.Index(sku_all)).to_numpy(np.float64)
    calibration = _calibrate(actual_all, point_all, alpha_all, segment_all, config)
    levels = _level_matrix(calibration, config)
    quantiles = _quantiles(point_all, alpha_all, segment_all, levels, band_of_h, cap_all)
    history_all = np.concatenate(histories)
    baseline_fc = {name: forecast(history_all, horizon) for name, forecast in BASELINES.items()}
    validation = _metrics_table(
        actual_all,
        {MODEL_TIERED: point_all, MODEL_LGBM: lgbm_all, MODEL_STATISTICAL: stat_all, **baseline_fc},
        segment_all,
        quantiles,
        config.quantiles,
    )
    baseline = _fit_baseline(
        baseline_fc, actual_all, cap_all, sku_all, np.concatenate(alphas), segment_all, config
    )

    # --- final models at the training date -----------------------------------------------------------------------------------
    # Selected for every SKU not in cold start, so SKUs that change route after training have a choice.
    final_state = _origin_state(
        panel, final_tiers, train_day, category, launch, config.history_days, config.cold_start_max_age
    )
    choice_rows = np.flatnonzero(final_state.route != ROUTE_COLD_START)
    choice = _choose_stat(final_state, choice_rows, models, config)
    stat_choice = pd.Series(
        np.asarray([model.name for model in models], dtype=object)[choice],
        index=pd.Index(final_state.skus[choice_rows], name=C.SKU),
        dtype=object,
    )
    return WarehouseModel(
        warehouse_id=warehouse_id,
        train_date=_timestamp(train_day),
        config=config,
        lgbm=fit_lgbm(train_day, ml_sets[-1]),
        stat_choice=stat_choice,
        ensemble_weights=weights_table,
        calibration=calibration,
        cold_start=_fit_cold_start(panel, train_day - panel.start_day, category, launch, config),
        validation_metrics=validation,
        cv_origin_dates=[_timestamp(day) for day in cv_days],
        dispersion=dispersion,
        baseline=baseline,
    )


# --- forecasting --------------------------------------------------------------------------------------------------------------
@dataclass
class _Forecast:
    state: _Origin
    point: np.ndarray
    quantiles: np.ndarray
    names: np.ndarray


def _forecast_arrays(
    model: WarehouseModel,
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    origin_day: int,
    warehouse_id: object,
    tiers: pd.DataFrame | None,
    baseline: bool = False,
) -> _Forecast:
    config = model.config
    horizon = config.horizon
    history = _warehouse_history(history, warehouse_id, origin_day)
    panel = build_sales_panel(
        history, end=_timestamp(origin_day), lookback_days=config.history_days - 1, warehouse_id=warehouse_id
    )
    if tiers is None:
        tiers = assign_tiers(history, products, _timestamp(origin_day), config.tier_config)
    catalog = _catalog(products)
    category, launch = _panel_attributes(panel, catalog)
    state = _origin_state(
        panel,
        _tiers_of(tiers, warehouse_id),
        origin_day,
        category,
        launch,
        config.history_days,
        config.cold_start_max_age,
    )
    models = config.stat_forecasters()
    band_of_h = _band_of_horizon(config)
    if baseline:
        return _baseline_arrays(model, state, band_of_h)

    lgbm_fc = np.full((len(state.skus), horizon), np.nan)
    if model.lgbm is not None and state.is_ml.any():
        features = build_features(
            _ml_history(history, state.skus[state.is_ml]),
            products,
            warehouses,
            calendar,
            campaigns,
            weather,
            _timestamp(origin_day),
            warehouse_id,
            horizon=horizon,
        )
        if not features.empty:
            lookup = TargetDayLookup.build(
                calendar, campaigns, warehouses, warehouse_id, [_timestamp(origin_day)], horizon, panel.skus
            )
            keys = FeatureKeys.of(features, panel, lookup)
            lgbm_fc = _lgbm_at(model.lgbm, features, keys, panel, lookup, state, horizon)

    names = pd.Index([m.name for m in models])
    choice = names.get_indexer(pd.Index(model.stat_choice.reindex(state.skus).to_numpy(dtype=object)))
    choice = np.where(choice >= 0, choice, 0)  # SKUs without a backtest take the first model
    stat_rows = np.flatnonzero(_needs_stat(state, lgbm_fc))
    stat_fc, stat_name = _stat_components(state, stat_rows, choice[stat_rows], models, config)
    cold_fc = _cold_components(model.cold_start, state, horizon)
    cap = _cap(state, cold_fc, config)
    weights = _weight_matrix(model.ensemble_weights, config)
    point, model_names = _combine(
        state, _Components(lgbm_fc, stat_fc, stat_name, cold_fc), weights, band_of_h, cap
    )
    quantiles = _calibrated_quantiles(
        point, state, model.dispersion, model.calibration, config, band_of_h, cap
    )
    return _Forecast(state=state, point=point, quantiles=quantiles, names=model_names)


def _calibrated_quantiles(
    point: np.ndarray,
    state: _Origin,
    dispersion: pd.Series,
    calibration: pd.DataFrame,
    config: TrainConfig,
    band_of_h: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Quantiles ``[n_q, n, H]`` of a forecast with a trained dispersion and calibration table."""
    alpha = _dispersion_of(dispersion, state.skus, state.history)
    return _quantiles(point, alpha, state.segment, _level_matrix(calibration, config), band_of_h, cap)


def _baseline_arrays(model: WarehouseModel, state: _Origin, band_of_h: np.ndarray) -> _Forecast:
    """The baseline's forecasts (launch profiles for cold-start SKUs), quantiles as calibrated for it."""
    if model.baseline is None:
        raise ValueError(f"the model of warehouse {model.warehouse_id!r} has no baseline (trained before it)")
    config, fallback = model.config, model.baseline
    cold_fc = _cold_components(model.cold_start, state, config.horizon)
    cap = _cap(state, cold_fc, config)
    is_cold = state.route == ROUTE_COLD_START
    base = np.nan_to_num(BASELINES[fallback.name](state.history, config.horizon), nan=0.0)
    point = np.clip(np.where(is_cold[:, None], cold_fc, base), 0.0, cap[:, None])
    names = np.where(is_cold, MODEL_COLD_START, fallback.name).astype(object)
    quantiles = _calibrated_quantiles(
        point, state, fallback.dispersion, fallback.calibration, config, band_of_h, cap
    )
    return _Forecast(state=state, point=point, quantiles=quantiles, names=names)


def forecast_warehouse(
    model: WarehouseModel,
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    origin: DateLike,
    warehouse_id: object,
    tiers: pd.DataFrame | None = None,
    baseline: bool = False,
) -> pd.DataFrame:
    """Forecasts D+1 .. D+horizon of every SKU active in the warehouse at ``origin``.

    All SKUs are forecast at once: one LightGBM prediction per band over the matrix of global_ml SKUs x
    horizons, the statistical kernels over the matrix of statistical (and tier-1 partner) SKUs, the launch
    profiles over the cold-start SKUs. History rows after ``origin`` are never read.

    Args:
        model: The trained :class:`WarehouseModel` (``train_date <= origin``).
        history: ``raw_sales`` rows.
        products: The ``products`` table.
        warehouses: The ``warehouses`` table.
        calendar: The ``calendar`` table, or None.
        campaigns: The ``marketing_campaigns`` table, or None.
        weather: The ``weather`` table, or None.
        origin: The origin day D.
        warehouse_id: The warehouse.
        tiers: :func:`assign_tiers` output at ``origin`` (None = computed with the model's tier config); its
            SKUs are the SKUs forecast.
        baseline: Serve the model's :class:`BaselineForecaster` instead of the tiered model (a warehouse
            whose first model the promotion gate refused); cold-start SKUs keep their launch profiles.

    Returns:
        ``FORECAST_COLUMNS``, one row per SKU x horizon, sorted by SKU then horizon: non-negative point
        forecast (the mean), p50 <= p90 <= p95, all capped, the SKU's tier and the model used.

    Raises:
        ValueError: If ``origin`` is before the model's training date, the warehouse differs, or a baseline
            is asked of a model trained without one.
    """
    origin_day = _to_day(origin)
    if origin_day < _to_day(model.train_date):
        raise ValueError(
            f"origin {_timestamp(origin_day).date()} is before the training date {model.train_date.date()}"
        )
    if model.warehouse_id != warehouse_id:
        raise ValueError(f"model of warehouse {model.warehouse_id!r} used for {warehouse_id!r}")
    result = _forecast_arrays(
        model,
        history,
        products,
        warehouses,
        calendar,
        campaigns,
        weather,
        origin_day,
        warehouse_id,
        tiers,
        baseline,
    )
    return _long_frame(result, model.config, warehouse_id)


def _long_frame(result: _Forecast, config: TrainConfig, warehouse_id: object) -> pd.DataFrame:
    state, horizon = result.state, config.horizon
    n = len(state.skus)
    h = np.tile(np.arange(1, horizon + 1), n)
    origin = _timestamp(state.day).to_datetime64()
    frame: dict[str, object] = {
        C.SKU: np.repeat(state.skus, horizon),
        C.WAREHOUSE_ID: np.full(n * horizon, warehouse_id, dtype=object),
        C.ORIGIN_DATE: np.full(n * horizon, origin),
        C.TARGET_DATE: origin + (h * _NS_PER_DAY).astype("timedelta64[ns]"),
        C.HORIZON: h,
        C.FORECAST: result.point.reshape(-1),
    }
    for level_index, q in enumerate(config.quantiles):
        frame[quantile_column(q)] = result.quantiles[level_index].reshape(-1)
    frame[C.TIER] = np.repeat(state.tier, horizon)
    frame[C.MODEL] = np.repeat(result.names, horizon)
    return pd.DataFrame(frame)


# --- overrides ------------------------------------------------------------------------------------------------------------------
def apply_overrides(forecasts: pd.DataFrame, overrides: pd.DataFrame | None) -> pd.DataFrame:
    """Applies planner overrides to the forecasts of the target dates they cover.

    An override row (``OVERRIDE_COLUMNS``) matches a forecast row when its SKU and warehouse equal the row's
    (a null SKU or warehouse matches every SKU / warehouse) and ``start_date <= target_date <= end_date``.
    Exactly one of ``multiplier`` and ``absolute_value`` is set: a multiplier scales the point forecast and
    every quantile; an absolute value replaces the point forecast and scales the quantiles by the same
    ratio (all set to the value when the forecast was 0). When several overrides match a row, the most
    specific wins (SKU and warehouse set > one of them > none), then the latest start date, then the last
    row of the table.

    Args:
        forecasts: Output of :func:`forecast_warehouse` (quantile columns ``p*`` are adjusted too).
        overrides: The overrides table, or None / empty.

    Returns:
        The forecasts with the adjusted values, the unadjusted ones in ``<column>_unadjusted``, and
        ``override_applied``, ``override_author`` and ``override_reason`` (null where none applied).

    Raises:
        ValueError: If an override sets both or neither of multiplier and absolute value, or a negative one,
            or the forecasts already carry ``*_unadjusted`` columns (overrides applied twice).
    """
    value_columns = [C.FORECAST, *[c for c in forecasts.columns if c.startswith("p") and c[1:].isdigit()]]
    if any(column + UNADJUSTED_SUFFIX in forecasts.columns for column in value_columns):
        raise ValueError("overrides were already applied to these forecasts; apply them to the model output")
    out = forecasts.copy()
    for column in value_columns:
        out[column + UNADJUSTED_SUFFIX] = forecasts[column].to_numpy(copy=True)
    n = len(out)
    author = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    applied = np.zeros(n, dtype=bool)
    if overrides is not None and not overrides.empty and n:
        table = overrides.reset_index(drop=True)
        multiplier = pd.to_numeric(table[OVERRIDE_MULTIPLIER], errors="coerce").to_numpy(np.float64)
        absolute = pd.to_numeric(table[OVERRIDE_ABSOLUTE], errors="coerce").to_numpy(np.float64)
        if (np.isnan(multiplier) == np.isnan(absolute)).any():
            raise ValueError("every override needs exactly one of multiplier and absolute_value")
        if (multiplier < 0).any() or (absolute < 0).any():
            raise ValueError("override multipliers and absolute values must be non-negative")
        start = pd.to_datetime(table[OVERRIDE_START_DATE]).to_numpy("datetime64[ns]")
        end = pd.to_datetime(table[OVERRIDE_END_DATE]).to_numpy("datetime64[ns]")
        target = pd.to_datetime(out[C.TARGET_DATE]).to_numpy("datetime64[ns]")
        sku_null = table[OVERRIDE_SKU].isna().to_numpy()
        warehouse_null = table[OVERRIDE_WAREHOUSE_ID].isna().to_numpy()
        specificity = (~sku_null).astype(np.int64) + (~warehouse_null).astype(np.int64)
        rank_order = np.lexsort((np.arange(len(table)), start.astype(np.int64), specificity))
        rank = np.empty(len(table), dtype=np.int64)
        rank[rank_order] = np.arange(len(table))

        left = pd.DataFrame(
            {
                "_row": np.arange(n),
                C.SKU: out[C.SKU].to_numpy(),
                C.WAREHOUSE_ID: out[C.WAREHOUSE_ID].to_numpy(),
            }
        )
        candidates = []
        for use_sku in (True, False):
            for use_warehouse in (True, False):
                subset = np.flatnonzero((sku_null != use_sku) & (warehouse_null != use_warehouse))
                if len(subset) == 0:
                    continue
                right = pd.DataFrame({"_override": subset})
                keys = []
                if use_sku:
                    right[C.SKU] = table[OVERRIDE_SKU].to_numpy(dtype=object)[subset]
                    keys.append(C.SKU)
                if use_warehouse:
                    right[C.WAREHOUSE_ID] = table[OVERRIDE_WAREHOUSE_ID].to_numpy(dtype=object)[subset]
                    keys.append(C.WAREHOUSE_ID)
                matched = left.merge(right, on=keys, how="inner") if keys else left.merge(right, how="cross")
                candidates.append(matched[["_row", "_override"]])
        if candidates:
            pairs = pd.concat(candidates, ignore_index=True)
            row = pairs["_row"].to_numpy(np.int64)
            override = pairs["_override"].to_numpy(np.int64)
            inside = (target[row] >= start[override]) & (target[row] <= end[override])
            row, override = row[inside], override[inside]
            order = np.lexsort((-rank[override], row))
            row, override = row[order], override[order]
            first = np.ones(len(row), dtype=bool)
            first[1:] = row[1:] != row[:-1]
            row, override = row[first], override[first]  # the highest-ranked override of each row
            point = out[C.FORECAST].to_numpy(np.float64, copy=True)
            is_multiplier = ~np.isnan(multiplier[override])
            new_point = np.where(is_multiplier, point[row] * multiplier[override], absolute[override])
            ratio = np.where(
                is_multiplier,
                multiplier[override],
                np.divide(
                    absolute[override], point[row], out=np.full(len(row), np.nan), where=point[row] > 0
                ),
            )
            for column in value_columns:
                values = out[column].to_numpy(np.float64, copy=True)
                if column == C.FORECAST:
                    values[row] = new_point
                else:
                    values[row] = np.where(np.isnan(ratio), new_point, values[row] * np.nan_to_num(ratio))
                out[column] = values
            applied[row] = True
            author[row] = table[OVERRIDE_AUTHOR].to_numpy(dtype=object)[override]
            reason[row] = table[OVERRIDE_REASON].to_numpy(dtype=object)[override]
    out[OVERRIDE_APPLIED] = applied
    out[OVERRIDE_AUTHOR_OUT] = author
    out[OVERRIDE_REASON_OUT] = reason
    return out


# --- backtest ---------------------------------------------------------------------------------------------------------------------
def backtest_warehouse(
    history: pd.DataFrame,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    warehouse_id: object,
    origins: Sequence[DateLike],
    config: TrainConfig | None = None,
) -> pd.DataFrame:
    """Rolling-origin backtest: at each origin, tier, train on data <= origin, forecast, score.

    Args:
        history: ``raw_sales`` rows, including the days after the origins (the actuals).
        products: The ``products`` table.
        warehouses: The ``warehouses`` table.
        calendar: The ``calendar`` table, or None.
        campaigns: The ``marketing_campaigns`` table, or None.
        weather: The ``weather`` table, or None.
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
    tables, pooled = [], []
    for origin in origins:
        origin_day = _to_day(origin)
        past = _warehouse_history(history, warehouse_id, origin_day)
        tiers = assign_tiers(past, products, _timestamp(origin_day), config.tier_config)
        model = train_warehouse(
            past,
            products,
            warehouses,
            calendar,
            campaigns,
            weather,
            _timestamp(origin_day),
            warehouse_id,
            tiers,
            config,
        )
        result = _forecast_arrays(
            model, past, products, warehouses, calendar, campaigns, weather, origin_day, warehouse_id, tiers
        )
        future = _warehouse_history(history, warehouse_id, origin_day + horizon)
        panel = build_sales_panel(
            future, end=_timestamp(origin_day + horizon), lookback_days=horizon - 1, warehouse_id=warehouse_id
        )
        actual = _window(
            panel, pd.Index(panel.skus).get_indexer(pd.Index(result.state.skus)), panel.n_days - 1, horizon
        )
        forecasts = {
            MODEL_TIERED: result.point,
            **{name: forecast(result.state.history, horizon) for name, forecast in BASELINES.items()},
        }
        segment = result.state.segment
        table = _metrics_table(actual, forecasts, segment, result.quantiles, config.quantiles)
        table.insert(0, C.ORIGIN_DATE, _timestamp(origin_day))
        tables.append(table)
        pooled.append((actual, forecasts, segment, result.quantiles))
    if not tables:
        return pd.DataFrame()
    actual_all = np.concatenate([item[0] for item in pooled])
    forecasts_all = {name: np.concatenate([item[1][name] for item in pooled]) for name in pooled[0][1]}
    segment_all = np.concatenate([item[2] for item in pooled])
    quantiles_all = np.concatenate([item[3] for item in pooled], axis=1)
    total = _metrics_table(actual_all, forecasts_all, segment_all, quantiles_all, config.quantiles)
    total.insert(0, C.ORIGIN_DATE, pd.Series(pd.NaT, index=total.index, dtype="datetime64[ns]"))
    return pd.concat([*tables, total], ignore_index=True)
