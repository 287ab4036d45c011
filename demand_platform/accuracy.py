"""Forecast accuracy against realised demand, and drift checks on accuracy and on features.

Scoring (:func:`score_forecasts`). Every forecast row whose ``target_date`` is on or before ``as_of`` is
joined to the realised demand of its SKU x warehouse x day in ``raw_sales`` (one vectorised merge, no loop
over series). Forecasts dated after ``as_of`` are never scored, whatever the actuals frame holds, so a
score computed "as of" a day cannot see the future. The actual demand is ``max(quantity, 0)`` (net
quantity with returns clipped, as everywhere in the platform). When an SKU has no ``raw_sales`` row for
the target day:

* if the actuals frame **covers** that warehouse x day (holds at least one row for the warehouse on that
  date, i.e. that ``raw_sales`` partition was ingested), the actual is 0: ingestion writes a row for every
  active SKU, so a missing row means nothing was sold (counted in ``n_zero_filled``);
* otherwise the demand of that day is unknown: the forecast is left out of every metric and counted in
  ``n_uncovered``.

Tables (:func:`accuracy_tables`). Daily-level WMAPE, MAE, RMSE and bias come from
:func:`demand_platform.metrics.metrics_by_group`; coverage of the P90 and P95 quantiles is the share of
actuals at or below the quantile (as :func:`demand_platform.metrics.coverage`). The aggregated levels that
replenishment orders on are scored too:

* **lead-time demand**: per SKU x warehouse x origin x model, the sum of forecasts and of actuals over
  horizons ``1 .. lead_time``; only complete windows (all ``lead_time`` days scored) count;
* **weekly totals**: per SKU x warehouse x origin x model x ISO week of the target dates (weeks start on
  Monday), the sums over the week; only complete weeks (7 scored days) count, so the partial first and
  last weeks of each origin's horizon are left out.

Drift. :func:`performance_drift` turns the tables into human-readable alert reasons;
:func:`psi` is the population stability index of one variable and :func:`feature_drift` applies it to
feature columns (train vs recent).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.features import DateLike
from demand_platform.metrics import BIAS, METRIC_COLUMNS, N_OBS, WMAPE, metrics_by_group

# --- columns added to the scored frame -------------------------------------------------------------------
ACTUAL = "actual"
HORIZON_BAND = "horizon_band"
WEEK_START = "week_start"

# --- metric columns of the tables (beyond metrics.METRIC_COLUMNS) -----------------------------------------
COVERAGE_P90 = "coverage_p90"
COVERAGE_P95 = "coverage_p95"
LEAD_TIME_WMAPE = "lead_time_wmape"
WEEKLY_WMAPE = "weekly_wmape"
TABLE_METRIC_COLUMNS = (*METRIC_COLUMNS, COVERAGE_P90, COVERAGE_P95)

# --- table names (keys of the accuracy_tables dict) ----------------------------------------------------
OVERALL = "overall"
BY_TIER = "tier"
BY_CATEGORY = "category"
BY_HORIZON_BAND = "horizon_band"
BY_MODEL = "model"
BY_TIER_AND_ORIGIN = "tier_by_origin"
LEAD_TIME = "lead_time"
WEEKLY = "weekly"
TABLE_NAMES = (
    OVERALL,
    BY_TIER,
    BY_CATEGORY,
    BY_HORIZON_BAND,
    BY_MODEL,
    BY_TIER_AND_ORIGIN,
    LEAD_TIME,
    WEEKLY,
)

# --- horizon bands -----------------------------------------------------------------------------------
HORIZON_BANDS = ((1, 7), (8, 14), (15, 30))
HORIZON_BAND_LABELS = tuple(f"{lo}-{hi}" for lo, hi in HORIZON_BANDS)

DEFAULT_LEAD_TIME = 7
DAYS_PER_WEEK = 7

# --- feature drift output -------------------------------------------------------------------------------
FEATURE = "feature"
PSI = "psi"
FLAGGED = "flagged"
N_EXPECTED = "n_expected"
N_ACTUAL = "n_actual"
FEATURE_DRIFT_COLUMNS = (FEATURE, PSI, FLAGGED, N_EXPECTED, N_ACTUAL)

#: Floor of a bin share in :func:`psi`, so an empty bin adds a large but finite term.
PSI_EPSILON = 1e-4

_FORECAST_COLUMNS = C.FORECAST_COLUMNS
_ALL = "_all"
_COVERED = "_covered"


@dataclass(frozen=True)
class ScoredForecasts:
    """Forecasts joined to realised demand.

    Attributes:
        frame: One row per scored forecast: the forecast columns, ``category`` (from products, NaN when the
            SKU is unknown), ``actual`` (clipped demand) and ``horizon_band`` (ordered categorical).
        as_of: Last target date scored.
        n_forecasts: Forecast rows passed in.
        n_not_due: Rows whose target date is after ``as_of`` (not scored).
        n_scored: Rows in ``frame``.
        n_zero_filled: Scored rows without a ``raw_sales`` row on a covered day (actual set to 0).
        n_uncovered: Due rows left out because the actuals do not cover their warehouse x target day.
    """

    frame: pd.DataFrame
    as_of: pd.Timestamp
    n_forecasts: int
    n_not_due: int
    n_scored: int
    n_zero_filled: int
    n_uncovered: int

    def summary(self) -> dict[str, int | str]:
        """Counts of the scoring, for logs and run metadata.

        Returns:
            ``as_of`` (ISO date) and the ``n_*`` counts.
        """
        return {
            "as_of": self.as_of.date().isoformat(),
            "n_forecasts": self.n_forecasts,
            "n_not_due": self.n_not_due,
            "n_scored": self.n_scored,
            "n_zero_filled": self.n_zero_filled,
            "n_uncovered": self.n_uncovered,
        }


def _datetime(values: pd.Series) -> pd.Series:
    """A date column as tz-naive ``datetime64[ns]`` normalised to midnight."""
    out = pd.to_datetime(values)
    if out.dt.tz is not None:
        out = out.dt.tz_localize(None)
    return out.dt.normalize()


def horizon_band(horizon: pd.Series | np.ndarray) -> pd.Categorical:
    """Horizon band labels ``1-7``, ``8-14``, ``15-30`` (NaN outside 1..30).

    Args:
        horizon: Horizons in days.

    Returns:
        An ordered categorical of the band labels.
    """
    edges = [HORIZON_BANDS[0][0] - 1, *(hi for _, hi in HORIZON_BANDS)]
    bands = pd.cut(np.asarray(horizon, dtype=np.float64), bins=edges, labels=list(HORIZON_BAND_LABELS))
    return pd.Categorical(bands, categories=list(HORIZON_BAND_LABELS), ordered=True)


def score_forecasts(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, products: pd.DataFrame, as_of: DateLike
) -> ScoredForecasts:
    """Join the forecasts due by ``as_of`` to realised demand (see the module docstring for the rules).

    Args:
        forecasts: Forecast frame (``sku``, ``warehouse_id``, ``origin_date``, ``target_date``, ``horizon``,
            ``forecast``, ``p50``, ``p90``, ``p95``, ``tier``, ``model``).
        actuals: ``raw_sales`` rows (``sku``, ``warehouse_id``, ``date``, ``quantity``), at most one per
            SKU x warehouse x date.
        products: Products (``sku``, ``category``); extra columns are ignored.
        as_of: Last target date to score (inclusive).

    Returns:
        The scored forecasts and the scoring counts.

    Raises:
        KeyError: If a required column is missing.
        ValueError: If ``actuals`` holds duplicate SKU x warehouse x date rows.
    """
    missing = [c for c in _FORECAST_COLUMNS if c not in forecasts.columns]
    if missing:
        raise KeyError(f"forecasts lack columns {missing}")
    as_of_ts = pd.Timestamp(as_of).normalize()
    n_forecasts = len(forecasts)
    target = _datetime(forecasts[C.TARGET_DATE])
    due = (target <= as_of_ts).to_numpy()
    fc = forecasts.loc[due, list(_FORECAST_COLUMNS)].copy()
    fc[C.TARGET_DATE] = target.to_numpy()[due]
    fc[C.ORIGIN_DATE] = _datetime(fc[C.ORIGIN_DATE]).to_numpy()

    act_dates = _datetime(actuals[C.DATE])
    in_range = (act_dates <= as_of_ts).to_numpy()
    if len(fc):
        in_range &= (act_dates >= fc[C.TARGET_DATE].min()).to_numpy()
    act = pd.DataFrame(
        {
            C.SKU: actuals[C.SKU].to_numpy()[in_range],
            C.WAREHOUSE_ID: actuals[C.WAREHOUSE_ID].to_numpy()[in_range],
            C.TARGET_DATE: act_dates.to_numpy()[in_range],
            ACTUAL: np.clip(actuals[C.QUANTITY].to_numpy(dtype=np.float64)[in_range], 0.0, None),
        }
    )
    covered = act[[C.WAREHOUSE_ID, C.TARGET_DATE]].drop_duplicates()
    covered[_COVERED] = True

    keys = [C.SKU, C.WAREHOUSE_ID, C.TARGET_DATE]
    scored = fc.merge(act, on=keys, how="left")
    if len(scored) != len(fc):  # cheaper than validate="many_to_one" on the largest join
        raise ValueError("actuals hold duplicate sku x warehouse_id x date rows")
    scored = scored.merge(covered, on=[C.WAREHOUSE_ID, C.TARGET_DATE], how="left")  # unique by construction
    is_covered = scored[_COVERED].notna().to_numpy()
    no_row = scored[ACTUAL].isna().to_numpy()
    n_zero_filled = int((no_row & is_covered).sum())
    n_uncovered = int((~is_covered).sum())
    scored = scored.loc[is_covered].drop(columns=_COVERED)
    scored[ACTUAL] = scored[ACTUAL].fillna(0.0)

    categories = products[[C.SKU, C.CATEGORY]].drop_duplicates(C.SKU)
    scored = scored.merge(categories, on=C.SKU, how="left", validate="many_to_one")
    scored[HORIZON_BAND] = horizon_band(scored[C.HORIZON])
    scored = scored.reset_index(drop=True)
    return ScoredForecasts(
        frame=scored,
        as_of=as_of_ts,
        n_forecasts=n_forecasts,
        n_not_due=int((~due).sum()),
        n_scored=len(scored),
        n_zero_filled=n_zero_filled,
        n_uncovered=n_uncovered,
    )


def _coverage_by_group(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Share of actuals at or below P90 and P95 per group (NaN pairs ignored, as ``metrics.coverage``)."""
    actual = frame[ACTUAL].to_numpy(dtype=np.float64)
    hits = {}
    for name, column in ((COVERAGE_P90, C.P90), (COVERAGE_P95, C.P95)):
        upper = frame[column].to_numpy(dtype=np.float64)
        hit = (actual <= upper).astype(np.float64)
        hit[np.isnan(actual) | np.isnan(upper)] = np.nan
        hits[name] = hit
    terms = pd.DataFrame(hits, index=frame.index)
    return (
        pd.concat([frame[keys], terms], axis=1).groupby(keys, observed=True, dropna=False, sort=True).mean()
    )


def _daily_table(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``metrics_by_group`` plus P90/P95 coverage per group of daily rows."""
    table = metrics_by_group(frame, keys, ACTUAL, C.FORECAST)
    cov = _coverage_by_group(frame, keys).reset_index()
    return table.merge(cov, on=keys, how="left")


def _window_totals(frame: pd.DataFrame, keys: list[str], n_days: int) -> pd.DataFrame:
    """Sums of forecast and actual per group, keeping only groups with exactly ``n_days`` rows."""
    sums = (
        frame[[*keys, C.FORECAST, ACTUAL]]
        .groupby(keys, observed=True, dropna=False, sort=False)
        .agg(
            **{C.FORECAST: (C.FORECAST, "sum"), ACTUAL: (ACTUAL, "sum"), "_n": (ACTUAL, "size")},
        )
    )
    return sums.loc[sums["_n"] == n_days].drop(columns="_n").reset_index()


def lead_time_totals(
    scored: ScoredForecasts | pd.DataFrame, lead_time: int = DEFAULT_LEAD_TIME
) -> pd.DataFrame:
    """Lead-time demand: forecast and actual summed over horizons ``1 .. lead_time`` of each origin.

    Args:
        scored: Scored forecasts (or their frame).
        lead_time: Lead time ``L`` in days.

    Returns:
        One row per SKU x warehouse x origin x model x tier with a complete window: the keys, ``forecast``
        and ``actual``.

    Raises:
        ValueError: If ``lead_time`` is below 1.
    """
    if lead_time < 1:
        raise ValueError(f"lead_time must be at least 1, got {lead_time}")
    frame = scored.frame if isinstance(scored, ScoredForecasts) else scored
    window = frame.loc[frame[C.HORIZON].to_numpy() <= lead_time]
    keys = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.MODEL, C.TIER]
    return _window_totals(window, keys, lead_time)


def weekly_totals(scored: ScoredForecasts | pd.DataFrame) -> pd.DataFrame:
    """Weekly totals: forecast and actual summed per ISO week (Monday start) of the target dates.

    Args:
        scored: Scored forecasts (or their frame).

    Returns:
        One row per SKU x warehouse x origin x model x tier x complete week: the keys, ``week_start`` (the
        Monday), ``forecast`` and ``actual``.
    """
    frame = scored.frame if isinstance(scored, ScoredForecasts) else scored
    day = frame[C.TARGET_DATE].to_numpy().astype("datetime64[D]").astype(np.int64)
    monday = day - (day + 3) % DAYS_PER_WEEK  # 1970-01-01 was a Thursday
    keys = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.MODEL, C.TIER, WEEK_START]
    weeks = frame[[C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.MODEL, C.TIER, C.FORECAST, ACTUAL]].assign(
        **{WEEK_START: monday.astype("datetime64[D]").astype("datetime64[ns]")}
    )
    return _window_totals(weeks, keys, DAYS_PER_WEEK)


def _overall_wmape(totals: pd.DataFrame) -> float:
    table = metrics_by_group(totals.assign(**{_ALL: 0}), _ALL, ACTUAL, C.FORECAST)
    return float(table[WMAPE].iloc[0]) if len(table) else float("nan")


def accuracy_tables(scored: ScoredForecasts, lead_time: int = DEFAULT_LEAD_TIME) -> dict[str, pd.DataFrame]:
    """Accuracy tables of scored forecasts, by the cuts the business reads.

    Args:
        scored: Output of :func:`score_forecasts`.
        lead_time: Lead time ``L`` (days) of the lead-time demand level.

    Returns:
        Tables keyed by :data:`TABLE_NAMES`:

        * ``overall``: one row: ``wmape``, ``mae``, ``rmse``, ``bias``, ``n_obs``, ``coverage_p90``,
          ``coverage_p95`` (daily level), then ``lead_time_wmape`` and ``weekly_wmape``;
        * ``tier``, ``category``, ``horizon_band``, ``model``, ``tier_by_origin`` (``origin_date`` x
          ``tier``): the group column(s) and the daily-level metrics and coverages;
        * ``lead_time`` and ``weekly``: per tier, ``metrics_by_group`` of the aggregated totals.
    """
    frame = scored.frame.assign(**{_ALL: 0})
    tables: dict[str, pd.DataFrame] = {}
    overall = _daily_table(frame, [_ALL]).drop(columns=_ALL)
    if overall.empty:
        overall = pd.DataFrame({c: [0 if c == N_OBS else np.nan] for c in TABLE_METRIC_COLUMNS})
    lt = lead_time_totals(frame, lead_time)
    weeks = weekly_totals(frame)
    overall[LEAD_TIME_WMAPE] = _overall_wmape(lt)
    overall[WEEKLY_WMAPE] = _overall_wmape(weeks)
    tables[OVERALL] = overall
    tables[BY_TIER] = _daily_table(frame, [C.TIER])
    tables[BY_CATEGORY] = _daily_table(frame, [C.CATEGORY])
    tables[BY_HORIZON_BAND] = _daily_table(frame, [HORIZON_BAND])
    tables[BY_MODEL] = _daily_table(frame, [C.MODEL])
    tables[BY_TIER_AND_ORIGIN] = _daily_table(frame, [C.ORIGIN_DATE, C.TIER])
    tables[LEAD_TIME] = metrics_by_group(lt, C.TIER, ACTUAL, C.FORECAST)
    tables[WEEKLY] = metrics_by_group(weeks, C.TIER, ACTUAL, C.FORECAST)
    return tables


# --- drift ---------------------------------------------------------------------------------------------
_WMAPE_LEVELS = {
    "daily": (WMAPE, BY_TIER),
    LEAD_TIME: (LEAD_TIME_WMAPE, LEAD_TIME),
    WEEKLY: (WEEKLY_WMAPE, WEEKLY),
}


def _exceeds(value: float, limit: float) -> bool:
    return not math.isnan(value) and value > limit


def performance_drift(
    tables: dict[str, pd.DataFrame],
    wmape_max: float = 0.25,
    bias_max: float = 0.10,
    *,
    level: str = LEAD_TIME,
    coverage_tolerance: float | None = 0.05,
) -> list[str]:
    """Reasons to alert on forecast performance (empty list: all good).

    Checks, overall and per tier (``NaN`` metrics, e.g. a tier without volume, raise nothing):

    * WMAPE above ``wmape_max`` at ``level``: ``lead_time`` (default: the level replenishment orders on;
      SKU x day WMAPE of intermittent series is routinely far above 25%), ``weekly`` or ``daily``;
    * absolute daily bias above ``bias_max`` (over- or under-forecasting);
    * with ``coverage_tolerance`` set: P90 coverage below ``0.90 - tolerance`` or P95 coverage below
      ``0.95 - tolerance`` (quantiles too narrow, so safety stocks too low), overall only;
    * no scored forecast at all.

    Args:
        tables: Output of :func:`accuracy_tables`.
        wmape_max: Highest acceptable WMAPE.
        bias_max: Highest acceptable absolute relative bias.
        level: ``lead_time``, ``weekly`` or ``daily``: the level of the WMAPE check.
        coverage_tolerance: Allowed shortfall of quantile coverage, or None to skip the check.

    Returns:
        Human-readable reasons, overall first.

    Raises:
        ValueError: If ``level`` is unknown.
    """
    if level not in _WMAPE_LEVELS:
        raise ValueError(f"level must be one of {sorted(_WMAPE_LEVELS)}, got {level!r}")
    overall = tables[OVERALL].iloc[0]
    if overall[N_OBS] == 0:
        return ["no scored forecasts"]
    overall_col, tier_table = _WMAPE_LEVELS[level]
    reasons = []
    if _exceeds(float(overall[overall_col]), wmape_max):
        reasons.append(f"overall {level} WMAPE {overall[overall_col]:.3f} > {wmape_max:.3f}")
    if _exceeds(abs(float(overall[BIAS])), bias_max):
        reasons.append(f"overall bias {overall[BIAS]:+.3f} beyond +/-{bias_max:.3f}")
    if coverage_tolerance is not None:
        for column, nominal in ((COVERAGE_P90, 0.90), (COVERAGE_P95, 0.95)):
            floor = nominal - coverage_tolerance
            value = float(overall[column])
            if not math.isnan(value) and value < floor:
                reasons.append(f"overall {column} {value:.3f} < {floor:.3f}")
    for row in tables[tier_table].itertuples(index=False):
        value = float(getattr(row, WMAPE))
        if _exceeds(value, wmape_max):
            reasons.append(f"tier {getattr(row, C.TIER)} {level} WMAPE {value:.3f} > {wmape_max:.3f}")
    for row in tables[BY_TIER].itertuples(index=False):
        value = float(getattr(row, BIAS))
        if _exceeds(abs(value), bias_max):
            reasons.append(f"tier {getattr(row, C.TIER)} bias {value:+.3f} beyond +/-{bias_max:.3f}")
    return reasons


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total, PSI_EPSILON)


def _psi_from_counts(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    if expected_counts.sum() == 0 or actual_counts.sum() == 0:
        return float("nan")
    e, a = _shares(expected_counts), _shares(actual_counts)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (numeric values).

    ``PSI = sum_b (a_b - e_b) * ln(a_b / e_b)`` over bins ``b`` cut at the quantiles
    ``1/bins, 2/bins, ...`` of ``expected``; bin ``b`` is ``(edge_{b-1}, edge_b]`` with open outer bins, so
    values beyond the expected range land in the first or last bin. Repeated edges (ties, e.g. many zero
    demand days) are merged, so a discrete variable gets fewer, wider bins. Shares are floored at
    :data:`PSI_EPSILON` so an empty bin gives a large finite term. ``NaN`` values are dropped. Rule of
    thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.

    Args:
        expected: Reference sample (e.g. the training window).
        actual: Recent sample.
        bins: Number of quantile bins.

    Returns:
        PSI (0 for identical distributions); ``NaN`` when either sample is empty after dropping ``NaN``.

    Raises:
        ValueError: If ``bins`` is below 2.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if e.size == 0 or a.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    n_bins = edges.size + 1
    e_counts = np.bincount(np.searchsorted(edges, e, side="left"), minlength=n_bins).astype(np.float64)
    a_counts = np.bincount(np.searchsorted(edges, a, side="left"), minlength=n_bins).astype(np.float64)
    return _psi_from_counts(e_counts, a_counts)


def _categorical_psi(expected: pd.Series, actual: pd.Series) -> float:
    """PSI over the categories of a non-numeric column (missing values dropped)."""
    e, a = expected.dropna().astype(str), actual.dropna().astype(str)
    if e.empty or a.empty:
        return float("nan")
    levels, codes = np.unique(np.concatenate([e.to_numpy(), a.to_numpy()]), return_inverse=True)
    e_counts = np.bincount(codes[: len(e)], minlength=levels.size).astype(np.float64)
    a_counts = np.bincount(codes[len(e) :], minlength=levels.size).astype(np.float64)
    return _psi_from_counts(e_counts, a_counts)


def feature_drift(
    train_features: pd.DataFrame,
    recent_features: pd.DataFrame,
    columns: Sequence[str],
    threshold: float = 0.2,
    bins: int = 10,
) -> pd.DataFrame:
    """PSI of each feature column, recent rows against training rows.

    Numeric columns use :func:`psi` (quantile bins of the training values); other columns (categorical
    features) compare category shares, with the same epsilon floor.

    Args:
        train_features: Feature rows the model was trained on.
        recent_features: Recent feature rows (e.g. the latest origins).
        columns: Feature columns to check.
        threshold: PSI above which a column is flagged.
        bins: Quantile bins of numeric columns.

    Returns:
        One row per column, in the order given: ``feature``, ``psi``, ``flagged`` (``psi > threshold``),
        ``n_expected`` and ``n_actual`` (non-missing values compared).
    """
    rows = []
    for column in columns:
        train, recent = train_features[column], recent_features[column]
        numeric = pd.api.types.is_numeric_dtype(train) and pd.api.types.is_numeric_dtype(recent)
        if numeric:
            value = psi(
                train.to_numpy(dtype=np.float64, na_value=np.nan),
                recent.to_numpy(dtype=np.float64, na_value=np.nan),
                bins,
            )
        else:
            value = _categorical_psi(train, recent)
        rows.append(
            (column, value, bool(value > threshold), int(train.notna().sum()), int(recent.notna().sum()))
        )
    return pd.DataFrame(rows, columns=list(FEATURE_DRIFT_COLUMNS))
