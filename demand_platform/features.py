"""Point-in-time feature table for one warehouse and one forecast origin.

A row of the feature table describes one SKU active in warehouse W at the end of origin day D and is used to
forecast D+1 .. D+horizon. Every feature is computed from data known at the end of D:

* sales history: only rows dated on or before D are read (rows after D are dropped before anything else);
* calendar and marketing campaigns run ahead of the sales, so holidays and *planned* campaigns in
  D+1 .. D+horizon are allowed;
* products and warehouses are static attributes (the category mean price only counts products launched
  by D);
* weather: only observations dated on or before D.

Implementation. The long ``raw_sales`` rows are scattered once into a dense ``[n_sku, n_day]`` matrix (a
:class:`SalesPanel`): NaN before a SKU's first row, NaN on days with no row at all (holes), and the clipped
quantity (``max(quantity, 0)``) elsewhere, so zero-sale days are 0. All statistics are nan-aware reductions
over column slices of that matrix that end at the origin column, vectorised over SKUs (no per-series
Python loop). Every feature of origin D reads only the window [D - ``FEATURE_LOOKBACK_DAYS``, D] of the
matrix, so the rows of (D, W) are the same whatever history they are built from, alone or in a batch of
origins: ``feature_table``, training and serving see the same values.

Conventions worth knowing:

* ``demand_lag_k`` is the demand ``k`` days before the first target day D+1, i.e. on day ``D + 1 - k``:
  ``demand_lag_1`` is the demand on D, ``demand_lag_7`` the demand on D-6 (same weekday as D+1) and
  ``demand_lag_364`` the demand on D-363 (same weekday as D+1, 52 weeks earlier). NaN when that day is
  before the SKU's first row, is a hole, or lies before the history window.
* rolling windows over ``w`` days cover D-w+1 .. D and ignore NaN days; std is the sample std (ddof=1),
  NaN with fewer than 2 observed days; min/max/mean are NaN with no observed day.
* "since launch" (the expanding mean, std and zero share, days active) means since the SKU's first row
  within the feature window: a SKU older than the window counts ``FEATURE_LOOKBACK_DAYS`` days.
  ``days_since_last_sale`` is NaN without a sale in the window. A row exists for every SKU with at least
  one row in the window.
* ADI = observed days / days with positive demand over the trailing ``ADI_WINDOW_DAYS`` days; CV^2 is the
  squared coefficient of variation (ddof=0) of the positive demand sizes (see :func:`intermittency_stats`,
  shared with ``demand_platform.tiering``).
* weekend x category: one categorical column ``category_x_weekend`` ("<category>|weekend" or
  "<category>|weekday"), which gives a tree model a per-category weekend split without a column per
  category (the column set stays fixed whatever the catalog).
* all numeric features (``FEATURE_COLUMNS``) are float64 (flags as 0.0/1.0, NaN = unknown);
  ``CATEGORICAL_FEATURES`` are object columns of strings (None = unknown): cast them to one shared
  ``pandas.CategoricalDtype`` at model time so codes agree across partitions.

Several origins: :func:`build_training_features` builds the matrix once for all origins and loops over
origins only (the loop body is the same code as :func:`build_features`), which is cheaper than calling
:func:`build_features` per origin.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.calendar import (
    HOLIDAY_OFFSETS,
    NO_EVENT,
    build_calendar,
    holiday_keys,
    national_holidays,
)
from demand_platform.columns import (
    BRAND,
    CAMPAIGN_TYPE,
    CAPACITY_UNITS,
    CATEGORY,
    DATE,
    DISCOUNT_PERCENT,
    END_DATE,
    HOLIDAY_NAME,
    HORIZON,
    IS_EXTREME_WEATHER,
    IS_HOLIDAY,
    IS_PAYDAY,
    IS_SEASONAL,
    LAUNCH_DATE,
    LOCATION_CITY,
    LOCATION_STATE,
    ORIGIN_DATE,
    PRECIPITATION_MM,
    PRICE,
    QUANTITY,
    REVENUE,
    SKU,
    START_DATE,
    SUB_CATEGORY,
    TARGET_DATE,
    TARGET_REGION,
    TEMPERATURE_AVG,
    WAREHOUSE_ID,
    WEIGHT_KG,
)
from demand_platform.days import DateLike, to_day, to_timestamp
from demand_platform.tables import SourceTables

# --- window sizes ---------------------------------------------------------------------------------------
DEMAND_LAGS = (1, 7, 14, 28, 364)
ROLLING_WINDOWS = (7, 14, 28, 56)
EWM_HALFLIVES = (7, 28)
ADI_WINDOW_DAYS = 365
ZERO_SHARE_WINDOW_DAYS = 28
REALISED_PRICE_WINDOW_DAYS = 28
WEATHER_WINDOW_DAYS = 7
PROMO_SHORT_WINDOW_DAYS = 7
DEFAULT_HORIZON = 30
# Days before the origin that the features read: lag 364 plus a 28-day margin. The history window is
# [D - FEATURE_LOOKBACK_DAYS, D]; ``missing_history_days`` counts holes in it.
FEATURE_LOOKBACK_DAYS = 364 + 28
# Calendar days generated past the horizon when no calendar is given (to find the next holiday).
_CALENDAR_LOOKAHEAD_DAYS = 366

# --- temporal features of the origin ----------------------------------------------------------------------
ORIGIN_DAY_OF_WEEK = "origin_day_of_week"
ORIGIN_MONTH = "origin_month"
ORIGIN_DAY_OF_MONTH = "origin_day_of_month"
ORIGIN_WEEK_OF_YEAR = "origin_week_of_year"
ORIGIN_QUARTER = "origin_quarter"
ORIGIN_IS_WEEKEND = "origin_is_weekend"
ORIGIN_IS_MONTH_START = "origin_is_month_start"
ORIGIN_IS_MONTH_END = "origin_is_month_end"
ORIGIN_IS_QUARTER_START = "origin_is_quarter_start"
ORIGIN_DOW_SIN = "origin_dow_sin"
ORIGIN_DOW_COS = "origin_dow_cos"
ORIGIN_DOY_SIN = "origin_doy_sin"
ORIGIN_DOY_COS = "origin_doy_cos"
ORIGIN_IS_PAYDAY = "origin_is_payday"

# --- demand history ---------------------------------------------------------------------------------------
DEMAND_LAG_COLUMNS = {
    1: "demand_lag_1",
    7: "demand_lag_7",
    14: "demand_lag_14",
    28: "demand_lag_28",
    364: "demand_lag_364",
}
DEMAND_ROLL_MEAN_COLUMNS = {
    7: "demand_roll_mean_7",
    14: "demand_roll_mean_14",
    28: "demand_roll_mean_28",
    56: "demand_roll_mean_56",
}
DEMAND_ROLL_STD_COLUMNS = {
    7: "demand_roll_std_7",
    14: "demand_roll_std_14",
    28: "demand_roll_std_28",
    56: "demand_roll_std_56",
}
DEMAND_ROLL_MIN_COLUMNS = {
    7: "demand_roll_min_7",
    14: "demand_roll_min_14",
    28: "demand_roll_min_28",
    56: "demand_roll_min_56",
}
DEMAND_ROLL_MAX_COLUMNS = {
    7: "demand_roll_max_7",
    14: "demand_roll_max_14",
    28: "demand_roll_max_28",
    56: "demand_roll_max_56",
}
DEMAND_EWM_COLUMNS = {7: "demand_ewm_hl_7", 28: "demand_ewm_hl_28"}
DEMAND_EXPANDING_MEAN = "demand_expanding_mean"
DEMAND_EXPANDING_STD = "demand_expanding_std"
DEMAND_ZERO_SHARE_28 = "demand_zero_share_28"
DEMAND_ZERO_SHARE_SINCE_LAUNCH = "demand_zero_share_since_launch"
DEMAND_OBSERVED_DAYS_28 = "demand_observed_days_28"
DAYS_SINCE_LAST_SALE = "days_since_last_sale"
DAYS_ACTIVE_IN_WAREHOUSE = "days_active_in_warehouse"
DEMAND_ADI = "demand_adi_365"
DEMAND_CV2 = "demand_cv2_365"

# --- holidays -----------------------------------------------------------------------------------------------
ORIGIN_IS_HOLIDAY = "origin_is_holiday"
ORIGIN_HOLIDAY_NAME = "origin_holiday_name"
DAYS_TO_NEXT_HOLIDAY = "days_to_next_holiday"
DAYS_SINCE_LAST_HOLIDAY = "days_since_last_holiday"
HOLIDAYS_NEXT_7 = "holidays_next_7"
HOLIDAYS_HORIZON = "holidays_horizon"

# --- promotions -----------------------------------------------------------------------------------------------
PROMO_ACTIVE = "promo_active"
PROMO_DISCOUNT = "promo_discount"
PROMO_DAYS_NEXT_7 = "promo_days_next_7"
PROMO_MAX_DISCOUNT_NEXT_7 = "promo_max_discount_next_7"
PROMO_DAYS_HORIZON = "promo_days_horizon"
PROMO_MAX_DISCOUNT_HORIZON = "promo_max_discount_horizon"

# --- price and attributes ---------------------------------------------------------------------------------------
PRICE_REL_CATEGORY = "price_rel_category"
REALISED_UNIT_PRICE_28 = "realised_unit_price_28"
REALISED_DISCOUNT_28 = "realised_discount_28"
PRODUCT_AGE_DAYS = "product_age_days"

# --- weather ------------------------------------------------------------------------------------------------------
WEATHER_TEMP_AVG = "weather_temp_avg"
WEATHER_TEMP_MEAN_7 = "weather_temp_mean_7"
WEATHER_PRECIP_SUM_7 = "weather_precip_sum_7"
WEATHER_IS_EXTREME = "weather_is_extreme"

# --- interactions -------------------------------------------------------------------------------------------------
PRICE_X_DISCOUNT = "price_x_discount"
CATEGORY_X_WEEKEND = "category_x_weekend"
SEASONAL_X_MONTH = "seasonal_x_month"

# --- metadata (not a model feature) -------------------------------------------------------------------------------
MISSING_HISTORY_DAYS = "missing_history_days"

# --- target-day features (direct multi-horizon models) --------------------------------------------------------------
TARGET_DAY_OF_WEEK = "target_day_of_week"
TARGET_MONTH = "target_month"
TARGET_DAY_OF_MONTH = "target_day_of_month"
TARGET_WEEK_OF_YEAR = "target_week_of_year"
TARGET_IS_WEEKEND = "target_is_weekend"
TARGET_IS_HOLIDAY = "target_is_holiday"
TARGET_HOLIDAY_NAME = "target_holiday_name"
TARGET_IS_PAYDAY = "target_is_payday"
TARGET_DAYS_TO_NEXT_HOLIDAY = "target_days_to_next_holiday"
TARGET_DAYS_SINCE_LAST_HOLIDAY = "target_days_since_last_holiday"
#: The target day's holiday event: ``"<holiday> <offset>"`` within ``calendar.HOLIDAY_OFFSETS`` of a holiday.
TARGET_EVENT = "target_event"
TARGET_PROMO_ACTIVE = "target_promo_active"
TARGET_PROMO_DISCOUNT = "target_promo_discount"

FEATURE_COLUMNS = (
    ORIGIN_DAY_OF_WEEK,
    ORIGIN_MONTH,
    ORIGIN_DAY_OF_MONTH,
    ORIGIN_WEEK_OF_YEAR,
    ORIGIN_QUARTER,
    ORIGIN_IS_WEEKEND,
    ORIGIN_IS_MONTH_START,
    ORIGIN_IS_MONTH_END,
    ORIGIN_IS_QUARTER_START,
    ORIGIN_DOW_SIN,
    ORIGIN_DOW_COS,
    ORIGIN_DOY_SIN,
    ORIGIN_DOY_COS,
    ORIGIN_IS_PAYDAY,
    *DEMAND_LAG_COLUMNS.values(),
    *DEMAND_ROLL_MEAN_COLUMNS.values(),
    *DEMAND_ROLL_STD_COLUMNS.values(),
    *DEMAND_ROLL_MIN_COLUMNS.values(),
    *DEMAND_ROLL_MAX_COLUMNS.values(),
    *DEMAND_EWM_COLUMNS.values(),
    DEMAND_EXPANDING_MEAN,
    DEMAND_EXPANDING_STD,
    DEMAND_ZERO_SHARE_28,
    DEMAND_ZERO_SHARE_SINCE_LAUNCH,
    DEMAND_OBSERVED_DAYS_28,
    DAYS_SINCE_LAST_SALE,
    DAYS_ACTIVE_IN_WAREHOUSE,
    DEMAND_ADI,
    DEMAND_CV2,
    ORIGIN_IS_HOLIDAY,
    DAYS_TO_NEXT_HOLIDAY,
    DAYS_SINCE_LAST_HOLIDAY,
    HOLIDAYS_NEXT_7,
    HOLIDAYS_HORIZON,
    PROMO_ACTIVE,
    PROMO_DISCOUNT,
    PROMO_DAYS_NEXT_7,
    PROMO_MAX_DISCOUNT_NEXT_7,
    PROMO_DAYS_HORIZON,
    PROMO_MAX_DISCOUNT_HORIZON,
    PRICE,
    PRICE_REL_CATEGORY,
    REALISED_UNIT_PRICE_28,
    REALISED_DISCOUNT_28,
    WEIGHT_KG,
    IS_SEASONAL,
    PRODUCT_AGE_DAYS,
    CAPACITY_UNITS,
    WEATHER_TEMP_AVG,
    WEATHER_TEMP_MEAN_7,
    WEATHER_PRECIP_SUM_7,
    WEATHER_IS_EXTREME,
    PRICE_X_DISCOUNT,
    SEASONAL_X_MONTH,
)
CATEGORICAL_FEATURES = (
    CATEGORY,
    SUB_CATEGORY,
    BRAND,
    LOCATION_STATE,
    ORIGIN_HOLIDAY_NAME,
    CATEGORY_X_WEEKEND,
)
KEY_COLUMNS = (ORIGIN_DATE, SKU, WAREHOUSE_ID)
FEATURE_TABLE_COLUMNS = (*KEY_COLUMNS, *FEATURE_COLUMNS, *CATEGORICAL_FEATURES, MISSING_HISTORY_DAYS)

_WEEKEND = "weekend"
_WEEKDAY = "weekday"


# --- small helpers ---------------------------------------------------------------------------------------------------
def _days(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Epoch days of a date column, and the mask of non-null entries (null days are set to 0)."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values)
    elif getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    raw = values.to_numpy().astype("datetime64[D]")
    valid = ~np.isnat(raw)
    days = np.where(valid, raw.astype(np.int64), 0)
    return days, valid


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator``, NaN where the denominator is 0 (no warnings)."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _nulls_to_none(values: np.ndarray) -> np.ndarray:
    """An object copy of ``values`` with every null (None, NaN, NaT) as None."""
    out = np.asarray(values, dtype=object).copy()
    out[pd.isna(out)] = None
    return out


def _as_float(values: pd.Series | np.ndarray) -> np.ndarray:
    """Values as float64 (non-numeric entries become NaN)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


# --- the dense sales panel -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SalesPanel:
    """Dense daily matrices of one warehouse's sales over a window of days.

    Attributes:
        skus: Sorted SKUs with at least one row dated on or before the panel end, shape ``[n]``.
        start_day: Epoch day (days since 1970-01-01) of column 0.
        quantity: ``[n, n_days]`` demand clipped at 0; NaN where the SKU has no row (before its first row,
            on holes).
        revenue: ``[n, n_days]`` net revenue; NaN where the SKU has no row.
        day_present: ``[n_days]`` True where at least one row exists for that day.
        first_day: ``[n]`` epoch day of each SKU's first row (possibly before ``start_day``).
        history_first_day: Epoch day of the earliest row in the history passed in, None if empty.
        pre_codes: SKU index of each row before ``start_day`` (tiering's selling days before the panel).
        pre_quantity: Clipped demand of each row before ``start_day``.
    """

    skus: np.ndarray
    start_day: int
    quantity: np.ndarray
    revenue: np.ndarray
    day_present: np.ndarray
    first_day: np.ndarray
    history_first_day: int | None
    pre_codes: np.ndarray
    pre_quantity: np.ndarray

    @property
    def n_days(self) -> int:
        """Number of day columns."""
        return int(self.quantity.shape[1])

    @property
    def end_day(self) -> int:
        """Epoch day of the last column."""
        return self.start_day + self.n_days - 1

    def until(self, end_day: int) -> "SalesPanel":
        """The panel :func:`build_sales_panel` builds from the same history and start, ending at ``end_day``.

        The columns after ``end_day`` are dropped and so are the SKUs without a row on or before it (the
        rows before the start are unchanged): every field equals the rebuilt panel's, without re-reading
        the rows.

        Raises:
            ValueError: If ``end_day`` is outside the panel.
        """
        columns = self.column(end_day) + 1
        keep = self.first_day <= end_day
        remap = np.cumsum(keep) - 1
        history_first_day = self.history_first_day
        if history_first_day is not None and history_first_day > end_day:
            history_first_day = None
        return SalesPanel(
            skus=self.skus[keep],
            start_day=self.start_day,
            quantity=self.quantity[keep, :columns],
            revenue=self.revenue[keep, :columns],
            day_present=self.day_present[:columns],
            first_day=self.first_day[keep],
            history_first_day=history_first_day,
            pre_codes=remap[self.pre_codes],  # rows before the start belong to kept SKUs only
            pre_quantity=self.pre_quantity,
        )

    def column(self, day: DateLike | int) -> int:
        """Column index of a day (an epoch day int or a date-like value).

        Raises:
            ValueError: If the day is outside the panel.
        """
        epoch_day = day if isinstance(day, int | np.integer) else to_day(day)
        index = int(epoch_day) - self.start_day
        if not 0 <= index < self.n_days:
            raise ValueError(f"day {to_timestamp(int(epoch_day)).date()} is outside the sales panel")
        return index


def build_sales_panel(
    history: pd.DataFrame,
    end: DateLike,
    lookback_days: int,
    warehouse_id: object | None = None,
    start: DateLike | None = None,
) -> SalesPanel:
    """Scatters long ``raw_sales`` rows into a dense ``[sku, day]`` panel ending at ``end``.

    Rows dated after ``end`` are dropped first, so nothing after ``end`` can reach the panel. Duplicate
    (sku, date) rows are summed in the panel.

    Args:
        history: ``raw_sales`` rows (sku, warehouse_id, date, quantity, revenue, ...).
        end: Last day of the panel (the origin).
        lookback_days: The panel covers [end - lookback_days, end] (``lookback_days + 1`` columns) unless
            ``start`` is given.
        warehouse_id: When given, rows of other warehouses are ignored.
        start: First day of the panel; overrides ``lookback_days``.

    Returns:
        The :class:`SalesPanel`.
    """
    end_day = to_day(end)
    start_day = to_day(start) if start is not None else end_day - lookback_days
    if start_day > end_day:
        raise ValueError("sales panel start is after its end")
    n_days = end_day - start_day + 1

    row_day, valid = _days(history[DATE])
    keep = valid & (row_day <= end_day)
    if warehouse_id is not None and WAREHOUSE_ID in history.columns:
        same_warehouse = history[WAREHOUSE_ID].to_numpy() == warehouse_id
        if not same_warehouse.all():
            keep &= same_warehouse
    codes_all, uniques = pd.factorize(history[SKU], use_na_sentinel=True)
    keep &= codes_all >= 0
    codes_all = codes_all[keep]
    row_day = row_day[keep]
    quantity_raw = _as_float(history[QUANTITY].to_numpy()[keep])
    revenue_raw = _as_float(history[REVENUE].to_numpy()[keep])

    # Keep only SKUs with a row on or before `end`, sorted, and remap the codes.
    used = np.flatnonzero(np.bincount(codes_all, minlength=len(uniques)) > 0)
    used_skus = np.asarray(uniques)[used]
    order = np.argsort(used_skus, kind="stable")
    skus = used_skus[order]
    remap = np.full(len(uniques), -1, dtype=np.int64)
    remap[used[order]] = np.arange(len(used))
    codes = remap[codes_all]
    n_sku = len(skus)

    first_day = np.full(n_sku, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_day, codes, row_day)

    in_window = row_day >= start_day
    flat = codes[in_window] * n_days + (row_day[in_window] - start_day)
    size = n_sku * n_days
    counts = np.bincount(flat, minlength=size)
    observed = counts > 0
    quantity_sum = np.bincount(flat, weights=np.nan_to_num(quantity_raw[in_window]), minlength=size)
    revenue_sum = np.bincount(flat, weights=np.nan_to_num(revenue_raw[in_window]), minlength=size)
    quantity = np.where(observed, np.maximum(quantity_sum, 0.0), np.nan).reshape(n_sku, n_days)
    revenue = np.where(observed, revenue_sum, np.nan).reshape(n_sku, n_days)
    day_present = np.bincount(row_day[in_window] - start_day, minlength=n_days) > 0

    pre = ~in_window
    pre_codes = codes[pre]
    pre_quantity = np.maximum(np.nan_to_num(quantity_raw[pre]), 0.0)
    return SalesPanel(
        skus=skus,
        start_day=start_day,
        quantity=quantity,
        revenue=revenue,
        day_present=day_present,
        first_day=first_day,
        history_first_day=int(row_day.min()) if len(row_day) else None,
        pre_codes=pre_codes,
        pre_quantity=pre_quantity,
    )


# --- shared statistical kernels ------------------------------------------------------------------------------------------
class IntermittencyStats(NamedTuple):
    """Per-series intermittency statistics (Syntetos-Boylan inputs).

    Attributes:
        adi: Average inter-demand interval = observed periods / periods with positive demand (NaN if none).
        cv2: Squared coefficient of variation (ddof=0) of the positive demand sizes (NaN if none; 0 with one).
        n_nonzero: Periods with positive demand.
        n_observed: Observed (non-NaN) periods.
    """

    adi: np.ndarray
    cv2: np.ndarray
    n_nonzero: np.ndarray
    n_observed: np.ndarray


def intermittency_stats(demand: np.ndarray) -> IntermittencyStats:
    """Computes ADI and CV^2 of each row of a ``[n_series, n_periods]`` demand matrix.

    NaN periods (not launched, holes) are not observed and count neither as zero nor as demand.

    Args:
        demand: Non-negative demand, NaN where unobserved.

    Returns:
        The :class:`IntermittencyStats` of each row.
    """
    observed = ~np.isnan(demand)
    positive = demand > 0  # NaN compares False
    n_observed = observed.sum(axis=1).astype(np.float64)
    n_nonzero = positive.sum(axis=1).astype(np.float64)
    sizes = np.where(positive, demand, 0.0)
    mean_size = _safe_divide(sizes.sum(axis=1), n_nonzero)
    squared_dev = np.where(positive, (demand - mean_size[:, None]) ** 2, 0.0)
    variance = _safe_divide(squared_dev.sum(axis=1), n_nonzero)
    return IntermittencyStats(
        adi=_safe_divide(n_observed, n_nonzero),
        cv2=_safe_divide(variance, mean_size**2),
        n_nonzero=n_nonzero,
        n_observed=n_observed,
    )


class _WindowStats(NamedTuple):
    n_observed: np.ndarray
    total: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    zeros: np.ndarray


def _window_stats(window: np.ndarray) -> _WindowStats:
    """Nan-aware count, sum, mean, sample std, min, max and zero count of each row of a window."""
    observed = ~np.isnan(window)
    count = observed.sum(axis=1).astype(np.float64)
    filled = np.where(observed, window, 0.0)
    total = filled.sum(axis=1)
    mean = _safe_divide(total, count)
    squared_dev = np.where(observed, (window - mean[:, None]) ** 2, 0.0).sum(axis=1)
    std = np.sqrt(_safe_divide(squared_dev, count - 1.0))
    std[count < 2] = np.nan
    empty = count == 0
    minimum = np.where(observed, window, np.inf).min(axis=1, initial=np.inf)
    maximum = np.where(observed, window, -np.inf).max(axis=1, initial=-np.inf)
    minimum[empty] = np.nan
    maximum[empty] = np.nan
    zeros = (window == 0).sum(axis=1).astype(np.float64)
    return _WindowStats(count, total, mean, std, minimum, maximum, zeros)


def _trailing(matrix: np.ndarray, column: int, window: int) -> np.ndarray:
    """Columns ``column - window + 1 .. column`` of a matrix (fewer at the panel start)."""
    return matrix[:, max(0, column - window + 1) : column + 1]


# --- missing days --------------------------------------------------------------------------------------------------------
def history_start(
    first_day: DateLike, warehouses: pd.DataFrame, products: pd.DataFrame, warehouse_id: str
) -> dt.date:
    """The first day a warehouse's ``raw_sales`` must have rows: holes are only looked for from here.

    Ingestion writes no row before a warehouse is operational nor before the first SKU launches, so the
    later of those and the first partition day.
    """
    bounds = [to_day(first_day)]
    since = warehouses.loc[warehouses[C.WAREHOUSE_ID].astype(str) == str(warehouse_id), C.OPERATIONAL_SINCE]
    since = pd.to_datetime(since).dropna()
    if len(since):
        bounds.append(to_day(since.min()))
    launches = pd.to_datetime(products[C.LAUNCH_DATE]).dropna()
    if len(launches):
        bounds.append(to_day(launches.min()))
    return to_timestamp(max(bounds)).date()


def missing_days(
    history: pd.DataFrame, origin: DateLike, lookback: int, since: DateLike | None = None
) -> list[dt.date]:
    """Dates in [origin - lookback, origin] with no ``raw_sales`` row at all (holes).

    Args:
        history: ``raw_sales`` rows of one warehouse.
        origin: Last day of the window.
        lookback: Days before ``origin`` in the window.
        since: When given, days before it are not checked (e.g. the first day the source has data).

    Returns:
        The missing dates, ascending.
    """
    end_day = to_day(origin)
    start_day = end_day - lookback
    if since is not None:
        start_day = max(start_day, to_day(since))
    if start_day > end_day:
        return []
    row_day, valid = _days(history[DATE])
    in_window = valid & (row_day >= start_day) & (row_day <= end_day)
    present = np.bincount(row_day[in_window] - start_day, minlength=end_day - start_day + 1) > 0
    return [to_timestamp(start_day + int(i)).date() for i in np.flatnonzero(~present)]


# --- static and look-ahead inputs, prepared once per call ------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    """Everything besides the sales panel, aligned to ``panel.skus`` where per SKU."""

    warehouse_id: object
    state: object
    capacity: float
    price: np.ndarray
    weight: np.ndarray
    is_seasonal: np.ndarray
    category: np.ndarray
    sub_category: np.ndarray
    brand: np.ndarray
    launch_day: np.ndarray  # float epoch day, NaN unknown
    products: pd.DataFrame
    calendar_days: np.ndarray
    calendar_is_holiday: np.ndarray
    calendar_holiday_name: np.ndarray
    calendar_is_payday: np.ndarray
    holiday_days: np.ndarray
    campaigns: pd.DataFrame | None
    weather: pd.DataFrame | None  # indexed by epoch day, the warehouse's city only


def _warehouse_row(warehouses: pd.DataFrame, warehouse_id: object) -> pd.Series | None:
    rows = warehouses.loc[warehouses[WAREHOUSE_ID] == warehouse_id]
    return None if rows.empty else rows.iloc[0]


def _prepare_calendar(calendar: pd.DataFrame) -> dict[str, np.ndarray]:
    days, valid = _days(calendar[DATE])
    frame = calendar.loc[valid]
    days = days[valid]
    order = np.argsort(days, kind="stable")
    is_holiday = frame[IS_HOLIDAY].fillna(False).to_numpy(dtype=bool)[order]
    names = frame[HOLIDAY_NAME].to_numpy(dtype=object)[order] if HOLIDAY_NAME in frame else None
    if names is None:
        names = np.full(len(order), None, dtype=object)
    names = _nulls_to_none(names)
    payday = (
        frame[IS_PAYDAY].fillna(False).to_numpy(dtype=bool)[order]
        if IS_PAYDAY in frame
        else np.zeros(len(order), dtype=bool)
    )
    sorted_days = days[order]
    return {
        "days": sorted_days,
        "is_holiday": is_holiday,
        "holiday_name": names,
        "is_payday": payday,
        "holiday_days": sorted_days[is_holiday],
    }


def _prepare_context(
    skus: np.ndarray,
    products: pd.DataFrame,
    warehouses: pd.DataFrame,
    calendar: pd.DataFrame | None,
    campaigns: pd.DataFrame | None,
    weather: pd.DataFrame | None,
    warehouse_id: object,
    first_origin_day: int,
    last_origin_day: int,
    horizon: int,
) -> _Context:
    warehouse = _warehouse_row(warehouses, warehouse_id)
    state = None if warehouse is None or pd.isna(warehouse[LOCATION_STATE]) else warehouse[LOCATION_STATE]
    city = None if warehouse is None or pd.isna(warehouse[LOCATION_CITY]) else warehouse[LOCATION_CITY]
    capacity = np.nan if warehouse is None else float(pd.to_numeric(warehouse[CAPACITY_UNITS]))

    catalog = products.drop_duplicates(SKU, keep="last")
    index = pd.Index(catalog[SKU]).get_indexer(skus)
    found = index >= 0

    def per_sku(values: np.ndarray, fill: object) -> np.ndarray:
        out = np.full(len(skus), fill, dtype=values.dtype if fill is not None else object)
        out[found] = values[index[found]]
        return out

    def per_sku_text(column: str) -> np.ndarray:
        values = catalog[column].to_numpy(dtype=object)
        return per_sku(_nulls_to_none(values), None)

    launch, launch_valid = _days(catalog[LAUNCH_DATE])
    launch_float = np.where(launch_valid, launch.astype(np.float64), np.nan)

    if calendar is None:
        calendar = build_calendar(
            to_timestamp(first_origin_day - FEATURE_LOOKBACK_DAYS),
            to_timestamp(last_origin_day + horizon + _CALENDAR_LOOKAHEAD_DAYS),
        )
    cal = _prepare_calendar(calendar)

    weather_frame = None
    if weather is not None and city is not None and not weather.empty:
        city_rows = weather.loc[weather[LOCATION_CITY] == city]
        weather_days, weather_valid = _days(city_rows[DATE])
        keep = weather_valid & (weather_days <= last_origin_day)
        weather_frame = pd.DataFrame(
            {
                TEMPERATURE_AVG: _as_float(city_rows[TEMPERATURE_AVG].to_numpy()[keep]),
                PRECIPITATION_MM: _as_float(city_rows[PRECIPITATION_MM].to_numpy()[keep]),
                IS_EXTREME_WEATHER: _as_float(city_rows[IS_EXTREME_WEATHER].to_numpy()[keep]),
            },
            index=pd.Index(weather_days[keep], name=DATE),
        )
        weather_frame = weather_frame.groupby(level=0).mean()

    return _Context(
        warehouse_id=warehouse_id,
        state=state,
        capacity=capacity,
        price=per_sku(_as_float(catalog[PRICE]), np.nan),
        weight=per_sku(_as_float(catalog[WEIGHT_KG]), np.nan),
        is_seasonal=per_sku(_as_float(catalog[IS_SEASONAL]), np.nan),
        category=per_sku_text(CATEGORY),
        sub_category=per_sku_text(SUB_CATEGORY),
        brand=per_sku_text(BRAND),
        launch_day=per_sku(launch_float, np.nan),
        products=pd.DataFrame(
            {CATEGORY: catalog[CATEGORY].to_numpy(), PRICE: _as_float(catalog[PRICE]), "launch": launch_float}
        ),
        calendar_days=cal["days"],
        calendar_is_holiday=cal["is_holiday"],
        calendar_holiday_name=cal["holiday_name"],
        calendar_is_payday=cal["is_payday"],
        holiday_days=cal["holiday_days"],
        campaigns=campaigns,
        weather=weather_frame,
    )


# --- campaigns -----------------------------------------------------------------------------------------------------------
class _CampaignDays(NamedTuple):
    """Applicable campaigns per day of a window, split into all-SKU and SKU-specific parts."""

    all_active: np.ndarray  # [n_days] bool
    all_discount: np.ndarray  # [n_days] max discount of all-SKU campaigns (0 when none)
    sku_index: np.ndarray  # [m] index into the SKU list of SKUs with specific campaigns
    sku_active: np.ndarray  # [m, n_days] bool (specific or all-SKU)
    sku_discount: np.ndarray  # [m, n_days] max discount (specific or all-SKU)


class _ExpandedCampaigns(NamedTuple):
    """The campaigns applicable to a warehouse that touch a window, one record per campaign x day in it."""

    rows: np.ndarray  # [c] row of each kept campaign in the campaigns table
    discount: np.ndarray  # [c] discount (NaN = 0)
    sku: np.ndarray  # [c] SKU (None/NaN = every SKU)
    start: np.ndarray  # [c] epoch day of the campaign's first day (may precede the window)
    campaign_of_day: np.ndarray  # [m] campaign (0 .. c-1) of each campaign-day
    day: np.ndarray  # [m] window column of each campaign-day


def _expand_campaigns(
    campaigns: pd.DataFrame | None, state: object, first_day: int, n_days: int
) -> _ExpandedCampaigns | None:
    """Campaigns applicable to a warehouse in ``state`` on days ``first_day .. first_day + n_days - 1``,
    expanded to their days (vectorised); None when none applies.

    A campaign applies when its target region is null or equals ``state``; rows without valid dates are
    ignored (ingestion keeps them aside).
    """
    if campaigns is None or campaigns.empty:
        return None
    start, start_valid = _days(campaigns[START_DATE])
    end, end_valid = _days(campaigns[END_DATE])
    region = campaigns[TARGET_REGION].to_numpy(dtype=object)
    region_ok = pd.isna(region) | (region == state) if state is not None else pd.isna(region)
    last_day = first_day + n_days - 1
    keep = start_valid & end_valid & region_ok & (end >= first_day) & (start <= last_day) & (end >= start)
    if not keep.any():
        return None
    lo = np.maximum(start[keep], first_day) - first_day
    hi = np.minimum(end[keep], last_day) - first_day
    lengths = hi - lo + 1
    campaign_of_day = np.repeat(np.arange(len(lo)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return _ExpandedCampaigns(
        rows=np.flatnonzero(keep),
        discount=np.nan_to_num(_as_float(campaigns[DISCOUNT_PERCENT].to_numpy()[keep])),
        sku=campaigns[SKU].to_numpy(dtype=object)[keep],
        start=start[keep].astype(np.int64),
        campaign_of_day=campaign_of_day,
        day=lo[campaign_of_day] + offsets,
    )


def _campaign_days(
    campaigns: pd.DataFrame | None, state: object, skus: np.ndarray, first_day: int, n_days: int
) -> _CampaignDays:
    """Campaigns applicable to a warehouse in ``state`` on days ``first_day .. first_day + n_days - 1``.

    A campaign applies when its target region is null or equals ``state`` and its SKU is null (all SKUs)
    or is the SKU. The discount of a day is the max over applicable campaigns (NaN discounts count as 0).
    """
    all_active = np.zeros(n_days, dtype=bool)
    all_discount = np.zeros(n_days)
    expanded = _expand_campaigns(campaigns, state, first_day, n_days)
    if expanded is None:
        return _CampaignDays(
            all_active,
            all_discount,
            np.zeros(0, dtype=np.int64),
            np.zeros((0, n_days), bool),
            np.zeros((0, n_days)),
        )
    discount, campaign_sku = expanded.discount, expanded.sku
    campaign_of_day, day = expanded.campaign_of_day, expanded.day

    is_all = pd.isna(campaign_sku)[campaign_of_day]
    all_active[day[is_all]] = True
    np.maximum.at(all_discount, day[is_all], discount[campaign_of_day[is_all]])

    specific_sku = _specific_sku(campaign_sku, skus)
    sku_of_day = specific_sku[campaign_of_day]
    mask = sku_of_day >= 0
    sku_index, row = np.unique(sku_of_day[mask], return_inverse=True)
    sku_active = np.repeat(all_active[None, :], len(sku_index), axis=0)
    sku_discount = np.repeat(all_discount[None, :], len(sku_index), axis=0)
    sku_active[row, day[mask]] = True
    np.maximum.at(sku_discount, (row, day[mask]), discount[campaign_of_day[mask]])
    return _CampaignDays(all_active, all_discount, sku_index, sku_active, sku_discount)


def _specific_sku(campaign_sku: np.ndarray, skus: np.ndarray) -> np.ndarray:
    """Index into ``skus`` of each campaign's SKU (-1 for every-SKU campaigns and SKUs not in the list)."""
    specific = np.full(len(campaign_sku), -1, dtype=np.int64)
    named = ~pd.isna(campaign_sku)
    if named.any():
        specific[named] = pd.Index(skus).get_indexer(pd.Index(campaign_sku[named]))
    return specific


SITEWIDE_SCOPE = "sitewide"
SKU_SCOPE = "sku"
#: Campaign type of rows whose ``campaign_type`` is null.
UNTYPED_CAMPAIGN = "campaign"


def campaign_kind_names(campaigns: pd.DataFrame | None) -> tuple[str, ...]:
    """Every campaign kind of the table, ``"<scope> <type>"`` (scope ``sitewide`` or ``sku``), sorted."""
    if campaigns is None or campaigns.empty:
        return ()
    return tuple(sorted(set(_campaign_kinds(campaigns).tolist())))


def _campaign_kinds(campaigns: pd.DataFrame) -> np.ndarray:
    scope = np.where(pd.isna(campaigns[SKU].to_numpy(dtype=object)), SITEWIDE_SCOPE, SKU_SCOPE)
    given = campaigns[CAMPAIGN_TYPE] if CAMPAIGN_TYPE in campaigns else pd.Series(None, index=campaigns.index)
    kind = given.astype(object).where(given.notna(), UNTYPED_CAMPAIGN).astype(str).to_numpy(dtype=str)
    return np.char.add(np.char.add(scope.astype(str), " "), kind).astype(object)


class CampaignEvents(NamedTuple):
    """The campaign of each SKU x day of a window: the applicable campaign with the largest discount.

    Attributes:
        discount: ``[n, n_days]`` its discount in percent (0 without a campaign).
        kind: ``[n, n_days]`` int16 index into ``kinds`` (-1 without a campaign).
        kinds: Every campaign kind of the table (:func:`campaign_kind_names`).
        day_into: ``[n, n_days]`` int16 day of the campaign, 1 on its first day (0 without a campaign).
    """

    discount: np.ndarray
    kind: np.ndarray
    kinds: tuple[str, ...]
    day_into: np.ndarray


def campaign_events(
    tables: SourceTables, warehouse_id: object, skus: np.ndarray, first_day: int, n_days: int
) -> CampaignEvents:
    """The campaign (discount, kind, day into it) of each SKU in the warehouse on each day of a window.

    The same campaigns as the target-day features' (:func:`_campaign_days`); where several apply, the one
    with the largest discount. Planned campaigns count (the table runs ahead of the sales).
    """
    n = len(skus)
    discount = np.zeros((n, n_days))
    kind = np.full((n, n_days), -1, dtype=np.int16)
    day_into = np.zeros((n, n_days), dtype=np.int16)
    campaigns = tables.campaigns
    kinds = campaign_kind_names(campaigns)
    warehouse = _warehouse_row(tables.warehouses, warehouse_id)
    state = None if warehouse is None or pd.isna(warehouse[LOCATION_STATE]) else warehouse[LOCATION_STATE]
    expanded = _expand_campaigns(campaigns, state, first_day, n_days)
    if expanded is None or n == 0:
        return CampaignEvents(discount, kind, kinds, day_into)
    assert campaigns is not None
    kind_of_campaign = pd.Index(kinds).get_indexer(pd.Index(_campaign_kinds(campaigns.iloc[expanded.rows])))
    c, day = expanded.campaign_of_day, expanded.day
    # Largest discount last, then one record per cell (its last): that campaign wins the cell.
    order = np.lexsort((expanded.discount[c], day))
    c, day = c[order], day[order]
    into = (first_day + day - expanded.start[c] + 1).astype(np.int16)
    sitewide = pd.isna(expanded.sku)[c]
    last = np.r_[day[sitewide][1:] != day[sitewide][:-1], True] if sitewide.any() else np.zeros(0, bool)
    site_day = day[sitewide][last]
    site_campaign = c[sitewide][last]
    discount[:, site_day] = expanded.discount[site_campaign][None, :]
    kind[:, site_day] = kind_of_campaign[site_campaign][None, :]
    day_into[:, site_day] = into[sitewide][last][None, :]

    sku_row = _specific_sku(expanded.sku, np.asarray(skus, dtype=object))[c]
    own = sku_row >= 0
    if own.any():
        cell = sku_row[own] * n_days + day[own]
        order = np.lexsort((expanded.discount[c[own]], cell))
        cell, campaign, cell_into = cell[order], c[own][order], into[own][order]
        last = np.r_[cell[1:] != cell[:-1], True]
        cell, campaign, cell_into = cell[last], campaign[last], cell_into[last]
        row, col = np.divmod(cell, n_days)
        wins = expanded.discount[campaign] > discount[row, col]
        row, col, campaign, cell_into = row[wins], col[wins], campaign[wins], cell_into[wins]
        discount[row, col] = expanded.discount[campaign]
        kind[row, col] = kind_of_campaign[campaign]
        day_into[row, col] = cell_into
    return CampaignEvents(discount, kind, kinds, day_into)


def holiday_calendar(tables: SourceTables, first_day: int, last_day: int) -> tuple[np.ndarray, np.ndarray]:
    """Holiday epoch days (sorted) and names from ``first_day`` to ``last_day``: the source's calendar, else
    the national one (``calendar.national_holidays``), which also completes a calendar ending earlier."""
    first_year, last_year = to_timestamp(first_day).year, to_timestamp(last_day).year
    national_days, national_names = national_holidays(first_year, last_year)
    calendar = tables.calendar
    if calendar is not None and not calendar.empty:
        cal = _prepare_calendar(calendar)
        later = national_days > (cal["days"].max() if len(cal["days"]) else first_day - 1)
        days = np.concatenate([cal["holiday_days"], national_days[later]])
        names = np.concatenate([cal["holiday_name"][cal["is_holiday"]], national_names[later]])
    else:
        days, names = national_days, national_names
    keep = (days >= first_day) & (days <= last_day)
    names = np.array(["holiday" if n is None else str(n) for n in names[keep]], dtype=object)
    return days[keep].astype(np.int64), names


# --- the features of one origin ---------------------------------------------------------------------------------------------
def _origin_calendar_features(origin: pd.Timestamp) -> dict[str, float]:
    dow = origin.isoweekday()
    doy = origin.dayofyear
    month = origin.month
    return {
        ORIGIN_DAY_OF_WEEK: float(dow),
        ORIGIN_MONTH: float(month),
        ORIGIN_DAY_OF_MONTH: float(origin.day),
        ORIGIN_WEEK_OF_YEAR: float(origin.isocalendar()[1]),
        ORIGIN_QUARTER: float(origin.quarter),
        ORIGIN_IS_WEEKEND: float(dow >= 6),
        ORIGIN_IS_MONTH_START: float(origin.day == 1),
        ORIGIN_IS_MONTH_END: float(origin.is_month_end),
        ORIGIN_IS_QUARTER_START: float(origin.day == 1 and month in (1, 4, 7, 10)),
        ORIGIN_DOW_SIN: float(np.sin(2 * np.pi * (dow - 1) / 7)),
        ORIGIN_DOW_COS: float(np.cos(2 * np.pi * (dow - 1) / 7)),
        ORIGIN_DOY_SIN: float(np.sin(2 * np.pi * (doy - 1) / 365.25)),
        ORIGIN_DOY_COS: float(np.cos(2 * np.pi * (doy - 1) / 365.25)),
    }


def _holiday_features(ctx: _Context, origin_day: int, horizon: int) -> dict[str, object]:
    position = np.searchsorted(ctx.calendar_days, origin_day)
    known = position < len(ctx.calendar_days) and ctx.calendar_days[position] == origin_day
    holidays = ctx.holiday_days
    next_index = np.searchsorted(holidays, origin_day, side="right")
    last_index = next_index - 1
    return {
        ORIGIN_IS_HOLIDAY: float(ctx.calendar_is_holiday[position]) if known else np.nan,
        ORIGIN_HOLIDAY_NAME: ctx.calendar_holiday_name[position] if known else None,
        ORIGIN_IS_PAYDAY: float(ctx.calendar_is_payday[position]) if known else np.nan,
        DAYS_TO_NEXT_HOLIDAY: float(holidays[next_index] - origin_day)
        if next_index < len(holidays)
        else np.nan,
        DAYS_SINCE_LAST_HOLIDAY: float(origin_day - holidays[last_index]) if last_index >= 0 else np.nan,
        HOLIDAYS_NEXT_7: float(
            np.count_nonzero((holidays > origin_day) & (holidays <= origin_day + PROMO_SHORT_WINDOW_DAYS))
        ),
        HOLIDAYS_HORIZON: float(
            np.count_nonzero((holidays > origin_day) & (holidays <= origin_day + horizon))
        ),
    }


def _weather_features(ctx: _Context, origin_day: int) -> dict[str, float]:
    nan = {WEATHER_TEMP_AVG: np.nan, WEATHER_TEMP_MEAN_7: np.nan, WEATHER_PRECIP_SUM_7: np.nan}
    if ctx.weather is None:
        return {**nan, WEATHER_IS_EXTREME: np.nan}
    window = ctx.weather.reindex(np.arange(origin_day - WEATHER_WINDOW_DAYS + 1, origin_day + 1))
    temperature = window[TEMPERATURE_AVG].to_numpy()
    precipitation = window[PRECIPITATION_MM].to_numpy()
    return {
        WEATHER_TEMP_AVG: float(temperature[-1]),
        WEATHER_TEMP_MEAN_7: float(np.nanmean(temperature)) if np.isfinite(temperature).any() else np.nan,
        WEATHER_PRECIP_SUM_7: float(np.nansum(precipitation)) if np.isfinite(precipitation).any() else np.nan,
        WEATHER_IS_EXTREME: float(window[IS_EXTREME_WEATHER].to_numpy()[-1]),
    }


def _expanding_stats(window: np.ndarray) -> tuple[np.ndarray, ...]:
    """Count, mean, sample std and zero count of clipped demand over the observed days of ``window``."""
    observed = ~np.isnan(window)
    count = observed.sum(axis=1).astype(np.float64)
    filled = np.where(observed, window, 0.0)
    mean = _safe_divide(filled.sum(axis=1), count)
    squared_dev = np.where(observed, (window - mean[:, None]) ** 2, 0.0).sum(axis=1)
    std = np.sqrt(_safe_divide(squared_dev, count - 1.0))
    std[count < 2] = np.nan
    zeros = (window == 0).sum(axis=1)
    return count, mean, std, zeros


def _features_at(
    panel: SalesPanel, ctx: _Context, origin_day: int, horizon: int, missing_count: int
) -> pd.DataFrame:
    """The feature table of one origin (which must be a column of ``panel``)."""
    column = panel.column(origin_day)
    # The feature window [D - FEATURE_LOOKBACK_DAYS, D]: every feature reads these columns only, so an
    # origin's rows are the same whatever history window (or batch of origins) they are built from.
    first = column - FEATURE_LOOKBACK_DAYS
    if first < 0:
        raise ValueError("the sales panel does not cover the feature window of the origin")
    observed_in_window = ~np.isnan(panel.quantity[:, first : column + 1])
    rows = np.flatnonzero(observed_in_window.any(axis=1))
    quantity = panel.quantity[rows, : column + 1]  # nothing after the origin from here on
    revenue = panel.revenue[rows, : column + 1]
    n = len(rows)
    origin = to_timestamp(origin_day)
    out: dict[str, object] = {
        ORIGIN_DATE: np.full(n, origin.to_datetime64()),
        SKU: panel.skus[rows],
        WAREHOUSE_ID: np.full(n, ctx.warehouse_id, dtype=object),
    }
    calendar_features = _origin_calendar_features(origin)
    out.update(calendar_features)

    # Lags relative to the first target day D+1: lag k = demand on D+1-k.
    for lag, name in DEMAND_LAG_COLUMNS.items():
        index = column + 1 - lag
        out[name] = quantity[:, index] if index >= 0 else np.full(n, np.nan)
    for window in ROLLING_WINDOWS:
        stats = _window_stats(_trailing(quantity, column, window))
        out[DEMAND_ROLL_MEAN_COLUMNS[window]] = stats.mean
        out[DEMAND_ROLL_STD_COLUMNS[window]] = stats.std
        out[DEMAND_ROLL_MIN_COLUMNS[window]] = stats.minimum
        out[DEMAND_ROLL_MAX_COLUMNS[window]] = stats.maximum
    # EWM over the lookback window only, so that the value does not depend on the panel start.
    recent = _trailing(quantity, column, FEATURE_LOOKBACK_DAYS + 1)
    observed = ~np.isnan(recent)
    filled = np.where(observed, recent, 0.0)
    age = np.arange(recent.shape[1] - 1, -1, -1, dtype=np.float64)
    for halflife, name in DEMAND_EWM_COLUMNS.items():
        weights = 0.5 ** (age / halflife)
        # Row sums, not a matrix product: BLAS blocks by matrix shape, so a SKU's value would change in the
        # last bit with the other SKUs in the batch (feature_table and serving batch them differently).
        out[name] = _safe_divide((filled * weights).sum(axis=1), (observed * weights).sum(axis=1))

    zero_window = _window_stats(_trailing(quantity, column, ZERO_SHARE_WINDOW_DAYS))
    out[DEMAND_ZERO_SHARE_28] = _safe_divide(zero_window.zeros, zero_window.n_observed)
    out[DEMAND_OBSERVED_DAYS_28] = zero_window.n_observed
    lookback = quantity[:, first:]
    count, mean, std, zeros = _expanding_stats(lookback)
    out[DEMAND_EXPANDING_MEAN] = mean
    out[DEMAND_EXPANDING_STD] = std
    out[DEMAND_ZERO_SHARE_SINCE_LAUNCH] = _safe_divide(zeros, count)

    positive = lookback > 0
    days_since_sale = np.argmax(positive[:, ::-1], axis=1).astype(np.float64)
    out[DAYS_SINCE_LAST_SALE] = np.where(positive.any(axis=1), days_since_sale, np.nan)
    first_row = np.argmax(observed_in_window[rows], axis=1)  # every row has one (see ``rows``)
    out[DAYS_ACTIVE_IN_WAREHOUSE] = (FEATURE_LOOKBACK_DAYS - first_row).astype(np.float64)
    intermittency = intermittency_stats(_trailing(quantity, column, ADI_WINDOW_DAYS))
    out[DEMAND_ADI] = intermittency.adi
    out[DEMAND_CV2] = intermittency.cv2

    out.update(_holiday_features(ctx, origin_day, horizon))

    promos = _campaign_days(ctx.campaigns, ctx.state, panel.skus[rows], origin_day, horizon + 1)
    active = np.repeat(promos.all_active[None, :], n, axis=0)
    discount = np.repeat(promos.all_discount[None, :], n, axis=0)
    active[promos.sku_index] = promos.sku_active
    discount[promos.sku_index] = promos.sku_discount
    discount = np.where(active, discount, 0.0)
    short = slice(1, PROMO_SHORT_WINDOW_DAYS + 1)
    long = slice(1, horizon + 1)
    out[PROMO_ACTIVE] = active[:, 0].astype(np.float64)
    out[PROMO_DISCOUNT] = discount[:, 0]
    out[PROMO_DAYS_NEXT_7] = active[:, short].sum(axis=1).astype(np.float64)
    out[PROMO_MAX_DISCOUNT_NEXT_7] = discount[:, short].max(axis=1, initial=0.0)
    out[PROMO_DAYS_HORIZON] = active[:, long].sum(axis=1).astype(np.float64)
    out[PROMO_MAX_DISCOUNT_HORIZON] = discount[:, long].max(axis=1, initial=0.0)

    price = ctx.price[rows]
    launched = ctx.products.loc[~(ctx.products["launch"] > origin_day)]
    category_mean = launched.groupby(CATEGORY, dropna=True)[PRICE].mean()
    category = ctx.category[rows]
    out[PRICE] = price
    out[PRICE_REL_CATEGORY] = _safe_divide(price, _as_float(pd.Series(category).map(category_mean)))
    sold = _trailing(quantity, column, REALISED_PRICE_WINDOW_DAYS) > 0
    realised = _safe_divide(
        np.where(sold, _trailing(revenue, column, REALISED_PRICE_WINDOW_DAYS), 0.0).sum(axis=1),
        np.where(sold, _trailing(quantity, column, REALISED_PRICE_WINDOW_DAYS), 0.0).sum(axis=1),
    )
    out[REALISED_UNIT_PRICE_28] = realised
    out[REALISED_DISCOUNT_28] = 1.0 - _safe_divide(realised, price)
    out[WEIGHT_KG] = ctx.weight[rows]
    out[IS_SEASONAL] = ctx.is_seasonal[rows]
    out[PRODUCT_AGE_DAYS] = origin_day - ctx.launch_day[rows]
    out[CAPACITY_UNITS] = np.full(n, ctx.capacity)
    out.update(_weather_features(ctx, origin_day))

    out[PRICE_X_DISCOUNT] = price * out[PROMO_DISCOUNT] / 100.0
    out[SEASONAL_X_MONTH] = ctx.is_seasonal[rows] * calendar_features[ORIGIN_MONTH]

    out[CATEGORY] = category
    out[SUB_CATEGORY] = ctx.sub_category[rows]
    out[BRAND] = ctx.brand[rows]
    out[LOCATION_STATE] = np.full(n, ctx.state, dtype=object)
    holiday_name = out.pop(ORIGIN_HOLIDAY_NAME)
    out[ORIGIN_HOLIDAY_NAME] = np.full(n, holiday_name, dtype=object)
    weekend = _WEEKEND if calendar_features[ORIGIN_IS_WEEKEND] else _WEEKDAY
    category_x_weekend = (
        pd.Series(category, dtype=object).astype(str).add(f"|{weekend}").to_numpy(dtype=object)
    )
    category_x_weekend[pd.isna(category)] = None
    out[CATEGORY_X_WEEKEND] = category_x_weekend
    out[MISSING_HISTORY_DAYS] = np.full(n, missing_count, dtype=np.int64)

    frame = pd.DataFrame(out)
    numeric = list(FEATURE_COLUMNS)
    frame[numeric] = frame[numeric].astype(np.float64)
    return frame.loc[:, list(FEATURE_TABLE_COLUMNS)]


def _missing_count(panel: SalesPanel, origin_day: int, lookback: int) -> int:
    """Days of [origin - lookback, origin] with no row, from the first day the history has data."""
    if panel.history_first_day is None:
        return lookback + 1
    start = max(origin_day - lookback, panel.history_first_day, panel.start_day)
    if start > origin_day:
        return 0
    present = panel.day_present[start - panel.start_day : origin_day - panel.start_day + 1]
    return int(np.count_nonzero(~present))


# --- public entry points ---------------------------------------------------------------------------------------------------
def build_features(
    history: pd.DataFrame,
    tables: SourceTables,
    origin: DateLike,
    warehouse_id: object,
    horizon: int = DEFAULT_HORIZON,
) -> pd.DataFrame:
    """Builds the feature table of one warehouse at the end of one origin day.

    Args:
        history: ``raw_sales`` rows of the warehouse (rows of other warehouses and rows after ``origin``
            are ignored). Only the days in [D - ``FEATURE_LOOKBACK_DAYS``, D] are read.
        tables: The source tables: ``products``, ``warehouses``, the ``calendar`` (may run ahead of the
            sales; None generates the US calendar), planned ``marketing_campaigns`` (may run ahead) and
            ``weather`` (None makes the weather features NaN).
        origin: The origin day D; the features describe the end of D.
        warehouse_id: The warehouse W.
        horizon: Last horizon (days after D) of the look-ahead promotion and holiday windows.

    Returns:
        One row per SKU with a history row on or before D, sorted by SKU, with the columns
        ``FEATURE_TABLE_COLUMNS``: keys (origin_date, sku, warehouse_id), ``FEATURE_COLUMNS`` (float64),
        ``CATEGORICAL_FEATURES`` (object) and ``missing_history_days`` (holes in
        [D - FEATURE_LOOKBACK_DAYS, D] counted from the history's first day).
    """
    return build_training_features(history, tables, [origin], warehouse_id, horizon)


def origins_panel(history: pd.DataFrame, origins: Sequence[DateLike], warehouse_id: object) -> SalesPanel:
    """The sales panel the features of ``origins`` read: [min(origins) - FEATURE_LOOKBACK_DAYS, max(origins)].

    Raises:
        ValueError: If no origin is given.
    """
    origin_days = sorted({to_day(origin) for origin in origins})
    if not origin_days:
        raise ValueError("no origin given")
    return build_sales_panel(
        history,
        end=to_timestamp(origin_days[-1]),
        lookback_days=0,
        warehouse_id=warehouse_id,
        start=to_timestamp(origin_days[0] - FEATURE_LOOKBACK_DAYS),
    )


def build_training_features(
    history: pd.DataFrame,
    tables: SourceTables,
    origins: Sequence[DateLike],
    warehouse_id: object,
    horizon: int = DEFAULT_HORIZON,
    panel: SalesPanel | None = None,
) -> pd.DataFrame:
    """Builds the feature tables of one warehouse for several origins, stacked.

    The sales panel is built once over [min(origins) - FEATURE_LOOKBACK_DAYS, max(origins)] and each
    origin only reads the panel columns up to itself, so the rows of an origin equal those of
    :func:`build_features` at that origin.

    Args:
        history: ``raw_sales`` rows of the warehouse.
        tables: The source tables (see :func:`build_features`).
        origins: Origin days (any order; duplicates are dropped).
        warehouse_id: The warehouse W.
        horizon: Last horizon of the look-ahead windows.
        panel: ``origins_panel(history, origins, warehouse_id)`` when the caller built it already.

    Returns:
        The stacked feature tables (``FEATURE_TABLE_COLUMNS``), sorted by origin then SKU.
    """
    origin_days = sorted({to_day(origin) for origin in origins})
    if panel is None:
        panel = origins_panel(history, origins, warehouse_id)
    ctx = _prepare_context(
        panel.skus,
        tables.products,
        tables.warehouses,
        tables.calendar,
        tables.campaigns,
        tables.weather,
        warehouse_id,
        origin_days[0],
        origin_days[-1],
        horizon,
    )
    frames = [
        _features_at(panel, ctx, day, horizon, _missing_count(panel, day, FEATURE_LOOKBACK_DAYS))
        for day in origin_days
    ]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class TargetDayFeatures:
    """Target-day features for direct multi-horizon models at one origin and warehouse.

    Attributes:
        by_horizon: One row per horizon: horizon, target_date, calendar features of the target day and the
            promotion of campaigns that apply to every SKU (``target_promo_active``,
            ``target_promo_discount``).
        by_sku: One row per (sku, horizon) only for SKUs with a SKU-specific campaign in the horizon:
            sku, horizon, ``target_promo_active`` and ``target_promo_discount`` (all-SKU campaigns
            included, max discount).
    """

    by_horizon: pd.DataFrame
    by_sku: pd.DataFrame

    def for_skus(self, skus: np.ndarray | pd.Series | list[object]) -> pd.DataFrame:
        """Expands to one row per (sku, horizon) for the given SKUs (vectorised).

        Args:
            skus: The SKUs, e.g. the ``sku`` column of the feature table.

        Returns:
            Columns sku, horizon, the calendar columns of ``by_horizon`` and the promotion of each SKU.
        """
        sku_array = np.asarray(skus, dtype=object)
        n_horizons = len(self.by_horizon)
        frame = pd.DataFrame({SKU: np.repeat(sku_array, n_horizons)})
        tiled = self.by_horizon.iloc[np.tile(np.arange(n_horizons), len(sku_array))].reset_index(drop=True)
        frame = pd.concat([frame, tiled], axis=1)
        if not self.by_sku.empty:
            key = pd.MultiIndex.from_arrays([frame[SKU], frame[HORIZON]])
            specific = self.by_sku.set_index([SKU, HORIZON])
            position = specific.index.get_indexer(key)
            hit = position >= 0
            for name in (TARGET_PROMO_ACTIVE, TARGET_PROMO_DISCOUNT):
                values = frame[name].to_numpy(copy=True)
                values[hit] = specific[name].to_numpy()[position[hit]]
                frame[name] = values
        return frame


def target_day_features(
    tables: SourceTables,
    origin: DateLike,
    warehouse_id: object,
    horizons: range | list[int] = range(1, DEFAULT_HORIZON + 1),
    skus: np.ndarray | pd.Series | list[object] | None = None,
) -> TargetDayFeatures:
    """Calendar and planned-campaign features of each target day D+h, for direct multi-horizon models.

    Everything here is known at the origin (calendar and planned campaigns run ahead).

    Args:
        tables: The source tables: the ``calendar`` (None generates the US calendar), the
            ``marketing_campaigns`` (or None) and the ``warehouses`` (the warehouse's state selects
            region-targeted campaigns).
        origin: The origin day D.
        warehouse_id: The warehouse W.
        horizons: Horizons h >= 1 (target day D+h).
        skus: SKUs to consider for SKU-specific campaigns; None = every SKU a campaign names.

    Returns:
        The :class:`TargetDayFeatures` (a horizon frame and a sparse (sku, horizon) campaign frame).
    """
    origin_day = to_day(origin)
    horizon_array = np.asarray(list(horizons), dtype=np.int64)
    if len(horizon_array) == 0 or horizon_array.min() < 1:
        raise ValueError("horizons must be a non-empty list of integers >= 1")
    max_horizon = int(horizon_array.max())
    calendar, campaigns, warehouses = tables.calendar, tables.campaigns, tables.warehouses
    if calendar is None:
        calendar = build_calendar(
            to_timestamp(origin_day),
            to_timestamp(origin_day + max_horizon + _CALENDAR_LOOKAHEAD_DAYS),
        )
    cal = _prepare_calendar(calendar)
    target_days = origin_day + horizon_array
    position = np.clip(np.searchsorted(cal["days"], target_days), 0, max(len(cal["days"]) - 1, 0))
    known = (cal["days"][position] == target_days) if len(cal["days"]) else np.zeros(len(target_days), bool)
    target_dates = pd.DatetimeIndex(target_days.astype("datetime64[D]").astype("datetime64[ns]"))
    holidays = cal["holiday_days"]
    next_index = np.searchsorted(holidays, target_days, side="left")
    has_next = next_index < len(holidays)
    days_to_next = np.full(len(target_days), np.nan)
    days_to_next[has_next] = holidays[next_index[has_next]] - target_days[has_next]

    warehouse = _warehouse_row(warehouses, warehouse_id)
    state = None if warehouse is None or pd.isna(warehouse[LOCATION_STATE]) else warehouse[LOCATION_STATE]
    if skus is None:
        named = (
            campaigns[SKU].dropna().unique() if campaigns is not None and not campaigns.empty else np.zeros(0)
        )
        sku_array = np.sort(np.asarray(named, dtype=object))
    else:
        sku_array = np.asarray(skus, dtype=object)
    promos = _campaign_days(campaigns, state, sku_array, origin_day, max_horizon + 1)
    hol_days, hol_names = holiday_calendar(
        tables, origin_day - 400, origin_day + max_horizon + HOLIDAY_OFFSETS[1]
    )
    event = holiday_keys(hol_days, hol_names, origin_day + 1, max_horizon)[horizon_array - 1]
    days_since_last = np.full(len(target_days), np.nan)
    last_index = np.searchsorted(hol_days, target_days, side="right") - 1
    has_last = last_index >= 0  # a calendar without a holiday before the target day leaves NaN
    days_since_last[has_last] = target_days[has_last] - hol_days[last_index[has_last]]
    dow = target_dates.dayofweek.to_numpy() + 1
    by_horizon = pd.DataFrame(
        {
            HORIZON: horizon_array,
            TARGET_DATE: target_dates,
            TARGET_DAY_OF_WEEK: dow.astype(np.float64),
            TARGET_MONTH: target_dates.month.to_numpy().astype(np.float64),
            TARGET_DAY_OF_MONTH: target_dates.day.to_numpy().astype(np.float64),
            TARGET_WEEK_OF_YEAR: target_dates.isocalendar().week.to_numpy().astype(np.float64),
            TARGET_IS_WEEKEND: (dow >= 6).astype(np.float64),
            TARGET_IS_HOLIDAY: np.where(known, cal["is_holiday"][position], np.nan),
            TARGET_HOLIDAY_NAME: _nulls_to_none(
                np.where(known, cal["holiday_name"][position].astype(object), np.nan).astype(object)
            ),
            TARGET_IS_PAYDAY: np.where(known, cal["is_payday"][position], np.nan),
            TARGET_DAYS_TO_NEXT_HOLIDAY: days_to_next,
            TARGET_DAYS_SINCE_LAST_HOLIDAY: days_since_last,
            TARGET_EVENT: _nulls_to_none(np.where(event == NO_EVENT, np.nan, event).astype(object)),
            TARGET_PROMO_ACTIVE: promos.all_active[horizon_array].astype(np.float64),
            TARGET_PROMO_DISCOUNT: np.where(
                promos.all_active[horizon_array], promos.all_discount[horizon_array], 0.0
            ),
        }
    )
    n_specific = len(promos.sku_index)
    by_sku = pd.DataFrame(
        {
            SKU: np.repeat(sku_array[promos.sku_index], len(horizon_array)),
            HORIZON: np.tile(horizon_array, n_specific),
            TARGET_PROMO_ACTIVE: promos.sku_active[:, horizon_array].reshape(-1).astype(np.float64),
            TARGET_PROMO_DISCOUNT: np.where(
                promos.sku_active[:, horizon_array], promos.sku_discount[:, horizon_array], 0.0
            ).reshape(-1),
        }
    )
    return TargetDayFeatures(by_horizon=by_horizon, by_sku=by_sku)
