"""Tiered forecasting pipeline of one warehouse: train, forecast D+1 .. D+horizon, override, backtest.

Modules: :mod:`~demand_platform.forecasting.config` (:class:`TrainConfig`, the names of the output
values), :mod:`~demand_platform.forecasting.state` (the SKUs at one origin), ``cold_start`` (launch
profiles), ``components`` (LightGBM, statistical and launch-profile forecasts at an origin), ``ensemble``
(the blend weights and the point forecast), ``quantiles`` (dispersion, negative-binomial quantiles and
their calibration), ``scoring`` (validation and backtest tables), ``baselines`` (the fallback baselines
and the promotion gate's scores), ``model`` (:class:`WarehouseModel`), ``training``
(:func:`train_warehouse`), ``serving`` (:func:`forecast_warehouse`), ``overrides``
(:func:`apply_overrides`), ``backtest`` (:func:`backtest_warehouse`), ``events`` (holiday and campaign
uplifts), ``donors`` (the other warehouses' series a warehouse's LightGBM borrows) and ``pooling``
(reconciliation of a SKU's forecasts across warehouses). Everything used outside the
package is importable from ``demand_platform.forecasting``. The statistical and ML models it can use are
those of :mod:`demand_platform.models.model_registry` (adding one is one registration).

Routing (from :func:`demand_platform.tiering.assign_tiers` at the origin):

* route ``global_ml``, tiers 1 and 2: the global LightGBM (:mod:`demand_platform.models.global_lgbm`)
  blended with the SKU's statistical model at the tier's CV weight, model name ``"ensemble"`` (``"lgbm"``
  for a tier-2 SKU whose weights are all 1);
* route ``global_ml``, other tiers: the global LightGBM, ``"lgbm"``;
* route ``statistical``: the statistical model chosen per SKU by backtest, named after the model;
* route ``cold_start``: category launch profile, ``"cold_start"``.

Training (:func:`train_warehouse`) at a training date T runs an expanding-window CV over ``cv_origins``
origins ``c = T - cv_step * k`` (``cv_step`` = the horizon by default; tiers re-assigned at each ``c``): at
each ``c`` a LightGBM trained on targets dated on or before ``c``, statistical models selected on the
history up to ``c`` and launch profiles as of ``c`` forecast ``c + 1 .. c + horizon`` (all on or before
T). The CV residuals give the ensemble weights (tiers 1-2), the quantile calibration and the validation
metrics; the final models are then fitted at T. The LightGBM training pairs (SKUs routed ``global_ml``,
origins every ``origin_step`` days plus the CV origins) are sampled and binned once at T
(:class:`demand_platform.models.global_lgbm.DirectTrainingSet`); each CV model trains on the subset whose
target day is on or before its origin, which is what an expanding window sees.

Design decisions (see also the docstrings of the functions; the measurements behind them are in
BENCHMARKS.md):

* **LightGBM objective**: Tweedie (power 1.2) by default. Tweedie and Poisson were within noise of each
  other on the synthetic benchmarks; Tweedie is kept for its heavier zero mass and tail on the
  zero-inflated tier-2 SKUs.
* **One LightGBM per warehouse, learning from other warehouses where it has few series.** Each warehouse's
  model is trained, gated and retrained alone (one ``trained_models`` partition). A warehouse with fewer
  than ``pool_series`` (2,000) series routed to its LightGBM borrows the difference from other warehouses
  (``donors``: whole donor warehouses in a stable order of their own per warehouse, their series' training
  pairs built like its own and capped at ``pool_max_rows``); a full-size warehouse borrows nothing and
  trains as before. Measured on ``bench.scenarios`` (five warehouses of 300 SKUs; see BENCHMARKS.md); a
  model pooled over every warehouse's rows in one job was not built: one design matrix of all 50
  warehouses, no warehouse retrained alone by the drift sensor, one gate for all. The forecasts are also
  pooled after the fact (``pooling``: a SKU's total over the warehouses split by their long-run shares),
  a step after every warehouse's forecasts: the date-partitioned ``reconciled_forecasts`` asset.
* **Statistical model selection** uses :func:`select_by_backtest` with ``error="rmse"`` over the last
  ``stat_windows`` windows of ``horizon`` days before the training date. MAE is minimised by the median,
  which is zero on intermittent data, so MAE selection picks models that forecast zero (and under-stocks);
  RMSE is minimised by the mean, the quantity the LightGBM (Tweedie) and the quantile calibration are built
  around. A scaled error (RMSSE, MASE) would not change anything here: the selection is per series and a
  per-series scale does not change the ranking of the models of that series. The default model is the
  combination of SBA, TSB and SES; a SKU leaves it only for a model that wins its backtest by
  ``selection_margin``, since a free choice on three windows mostly fits noise (the margin helped on M5
  and cost little on the synthetic weekly world, where the seasonal window average wins most SKUs).
* **Weekday profile of the statistical forecasts.** SBA, TSB, SES, the moving average and their
  combination forecast a flat level; the weekday is then put back with the warehouse's pooled weekday
  index (:func:`demand_platform.models.statistical.pooled_weekday_index`: the demand of every SKU at the
  origin over the last 364 days, shrunk towards 1 when there is little of it, mean 1 so every 7-day
  total stays), for every SKU whose model is not already weekly (seasonal naive, seasonal window
  average). A per-SKU index would fit the noise of sparse SKUs; the pooled one is what a warehouse's
  week looks like. It matters most for tier 1, whose LightGBM partner was flat, and is neutral on sparse
  items. The statistical selection still backtests the flat forecasts.
* **Lines that stopped selling.** SBA, in the default combination, updates only on demand days, so a line
  that stopped keeps its last level (Online Retail: wholesale lines forecast 550-860 units over the
  horizon after four weeks of nothing). The statistical forecasts are multiplied by each SKU's probability
  of still selling given its quiet trading days since its last sale and its rate while it sold
  (:func:`demand_platform.models.statistical.active_probability`, a daily stop hazard), in the CV, the
  ensemble weights and serving alike. The hazard is picked per warehouse on the CV
  (:func:`~demand_platform.forecasting.ensemble.choose_stop_hazard`, 0 unless a candidate lowers the
  blended point's MSE) and kept in the model. The chance of stopping in the days ahead is left out: it
  lowers every series alike, a trend the CV picked wherever demand fell over its origins.
* **Training origins** are ``origin_step`` days apart over a year; a warehouse with few LightGBM SKUs
  gets them closer together over the same span (:meth:`TrainConfig.origin_grid`, while SKUs x origins
  stay within ``origin_budget``), so it learns from more weeks instead of a few snapshots. A full-size
  warehouse keeps ``n_origins`` origins, so its cost is unchanged; a small one pays more training time.
* **Ensemble weights** are per tier (1 and 2) and horizon band: the convex weight of the LightGBM against
  the statistical partner that minimises the validation MSE pooled over the tier's SKU-days in all CV
  origins, ``w = sum((a - s)(l - s)) / sum((l - s)^2)`` clipped to [0, 1]. Tier 2 was LightGBM alone in the
  first design; on M5 its LightGBM lost to the statistical models and the CV had shown it, so the CV now
  decides how much of it to keep (w = 1 keeps it alone). An inverse-MSE weight never drops a component
  however bad it is. Per-SKU weights from a few noisy CV windows would mostly fit noise and would not
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
  targets dated on or before it. Borrowed series follow the same rules, a day earlier: their rows from the
  training date on are dropped (another warehouse's day D may not be in when a warehouse trains at D), and
  a CV model trains on their pairs whose target day is on or before its origin, of the series routed to
  the LightGBM at that origin.
"""

from demand_platform.forecasting.backtest import (
    backtest_warehouse,
)
from demand_platform.forecasting.baselines import (
    BASELINES,
    GATE_METRIC,
    BaselineForecaster,
    gate_scores,
    validation_score,
)
from demand_platform.forecasting.cold_start import (
    MIN_LAUNCHES_FOR_PRIOR,
    ColdStartProfile,
)
from demand_platform.forecasting.config import (
    BAND,
    BAND_END,
    BAND_START,
    CALIBRATION_SEGMENTS,
    CAP_WINDOW_DAYS,
    FORECAST_COLUMNS,
    MODEL_COLD_START,
    MODEL_ENSEMBLE,
    MODEL_LGBM,
    MODEL_MOVING_AVERAGE_28,
    MODEL_SEASONAL_NAIVE,
    MODEL_STATISTICAL,
    MODEL_TIERED,
    SEGMENT,
    SEGMENT_ALL,
    SEGMENT_COLD_START,
    SEGMENT_TIERS,
    TrainConfig,
    quantile_column,
)
from demand_platform.forecasting.donors import (
    choose_donor_series,
    pool_size,
)
from demand_platform.forecasting.ensemble import (
    ENSEMBLE_COLUMNS,
    ENSEMBLE_PRIOR_WEIGHT,
    ENSEMBLE_TIERS,
    MSE_LGBM,
    MSE_STAT,
    WEIGHT_LGBM,
    WEIGHT_STAT,
)
from demand_platform.forecasting.model import (
    WarehouseModel,
)
from demand_platform.forecasting.overrides import (
    OVERRIDE_ABSOLUTE,
    OVERRIDE_APPLIED,
    OVERRIDE_AUTHOR,
    OVERRIDE_AUTHOR_OUT,
    OVERRIDE_COLUMNS,
    OVERRIDE_END_DATE,
    OVERRIDE_MULTIPLIER,
    OVERRIDE_REASON,
    OVERRIDE_REASON_OUT,
    OVERRIDE_SKU,
    OVERRIDE_START_DATE,
    OVERRIDE_WAREHOUSE_ID,
    UNADJUSTED_SUFFIX,
    apply_overrides,
)
from demand_platform.forecasting.pooling import (
    pooling_weight,
    reconcile_across_warehouses,
    warehouse_shares,
)
from demand_platform.forecasting.quantiles import (
    CALIBRATED_LEVEL,
    CALIBRATION_COLUMNS,
    CALIBRATION_SOURCE,
    DEFAULT_DISPERSION,
    DISPERSION_PRIOR_DAYS,
    MAX_DISPERSION,
    MAX_LEVEL,
    MIN_DISPERSION,
    MIN_LEVEL,
    N_RESIDUALS,
    NB_EXACT_MAX_MEAN,
    NB_EXACT_STEPS,
    QUANTILE,
    SCALE_WINDOW_DAYS,
)
from demand_platform.forecasting.scoring import (
    COVERAGE_PREFIX,
)
from demand_platform.forecasting.serving import (
    forecast_warehouse,
)
from demand_platform.forecasting.training import (
    train_warehouse,
)
from demand_platform.models.statistical import (
    SeasonalWindowAverage,
    seasonal_window_average,
)

__all__ = [
    "choose_donor_series",
    "pool_size",
    "BAND",
    "BAND_END",
    "BAND_START",
    "BASELINES",
    "BaselineForecaster",
    "CALIBRATED_LEVEL",
    "CALIBRATION_COLUMNS",
    "CALIBRATION_SEGMENTS",
    "CALIBRATION_SOURCE",
    "CAP_WINDOW_DAYS",
    "COVERAGE_PREFIX",
    "ColdStartProfile",
    "DEFAULT_DISPERSION",
    "DISPERSION_PRIOR_DAYS",
    "ENSEMBLE_COLUMNS",
    "ENSEMBLE_PRIOR_WEIGHT",
    "ENSEMBLE_TIERS",
    "FORECAST_COLUMNS",
    "GATE_METRIC",
    "MAX_DISPERSION",
    "MAX_LEVEL",
    "MIN_DISPERSION",
    "MIN_LAUNCHES_FOR_PRIOR",
    "MIN_LEVEL",
    "MODEL_COLD_START",
    "MODEL_ENSEMBLE",
    "MODEL_LGBM",
    "MODEL_MOVING_AVERAGE_28",
    "MODEL_SEASONAL_NAIVE",
    "MODEL_STATISTICAL",
    "MODEL_TIERED",
    "MSE_LGBM",
    "MSE_STAT",
    "NB_EXACT_MAX_MEAN",
    "NB_EXACT_STEPS",
    "N_RESIDUALS",
    "OVERRIDE_ABSOLUTE",
    "OVERRIDE_APPLIED",
    "OVERRIDE_AUTHOR",
    "OVERRIDE_AUTHOR_OUT",
    "OVERRIDE_COLUMNS",
    "OVERRIDE_END_DATE",
    "OVERRIDE_MULTIPLIER",
    "OVERRIDE_REASON",
    "OVERRIDE_REASON_OUT",
    "OVERRIDE_SKU",
    "OVERRIDE_START_DATE",
    "OVERRIDE_WAREHOUSE_ID",
    "QUANTILE",
    "SCALE_WINDOW_DAYS",
    "SEGMENT",
    "SEGMENT_ALL",
    "SEGMENT_COLD_START",
    "SEGMENT_TIERS",
    "SeasonalWindowAverage",
    "TrainConfig",
    "UNADJUSTED_SUFFIX",
    "WEIGHT_LGBM",
    "WEIGHT_STAT",
    "WarehouseModel",
    "apply_overrides",
    "backtest_warehouse",
    "pooling_weight",
    "reconcile_across_warehouses",
    "warehouse_shares",
    "forecast_warehouse",
    "gate_scores",
    "quantile_column",
    "seasonal_window_average",
    "train_warehouse",
    "validation_score",
]
